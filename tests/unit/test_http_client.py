"""The runbook's HTTP client against the real simulator over loopback: its
request ids, its total deadline, redirects and the token, and 429s.

Times are asserted as upper bounds with a generous margin only (a busy
machine is slower, never faster); nothing waits for a fixed time where it
can wait for a condition."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
import urllib.request

import pytest

from tests.helpers import serve_tls

from ansible.module_utils import bemore_api as api
from ansible.module_utils.bemore_api import ApiError, Client, RUNBOOK_REQUEST_ID_PREFIX
from ansible.module_utils.bemore_checks import read_host, run_session

# A busy machine finishes late, never early: the margin added to each bound.
MARGIN = 5.0
TOKEN = "tok-7f3a9c-secret"


def sim_state(sim):
    with urllib.request.urlopen(sim.url + "/__sim/state", timeout=5) as resp:
        return json.loads(resp.read())


def seen_tokens(sim):
    """Every Authorization header that reached the simulator's app routes."""
    seen = set()
    for values in sim_state(sim)["authorizations"].values():
        seen.update(v for v in values if v)
    return seen


def access_lines(sim):
    with open(sim.log_file, encoding="utf-8") as fh:
        return [line for line in fh if " reqId=" in line]


# --- 0. request ids ----------------------------------------------------------

def test_every_request_the_client_sends_carries_a_runbook_request_id_of_its_own(sim):
    client = Client(sim.url, timeout=5, retries=0)
    client.get_json("/health")
    client.get_json("/api/errors/stats")
    client.request("OPTIONS", "/api/session/start", extra_headers={"Origin": "https://app.bemore.dev"})
    client.request("GET", "/no-such-path")
    ids = [re.search(r"reqId=(\S+)", line).group(1) for line in access_lines(sim)
           if "/health" in line or "/api/errors/stats" in line or "/api/session/start" in line or "/no-such" in line]
    ids = [i for i in ids if i.startswith(RUNBOOK_REQUEST_ID_PREFIX)]
    assert len(ids) == 4, access_lines(sim)
    assert len(set(ids)) == 4


def test_the_test_session_and_its_end_carry_runbook_request_ids(sim_factory):
    sim = sim_factory(extra=["--session-end-wait", "0"])
    client = Client(sim.url, timeout=5, retries=0)
    out = run_session(client, {"userId": "runbook", "counselorId": "runbook"}, end_timeout=5)
    assert out["ended"], out
    lines = [line for line in access_lines(sim) if "/api/session/" in line]
    assert len(lines) == 2 and all("reqId=" + RUNBOOK_REQUEST_ID_PREFIX in line for line in lines), lines


# --- 10. redirects and the token -------------------------------------------

def test_a_redirect_to_another_origin_is_not_followed_and_the_token_stays_home(sim_factory):
    elsewhere = sim_factory()
    sim = sim_factory("redirect=%s" % elsewhere.url)
    client = Client(sim.url, timeout=5, retries=0, api_token=TOKEN)
    with pytest.raises(ApiError) as err:
        client.get_json("/health")
    assert err.value.kind == "redirect"
    assert "redirected to %s" % elsewhere.url in err.value.reason and "not followed" in err.value.reason
    assert TOKEN not in str(err.value)
    assert seen_tokens(elsewhere) == set()
    assert sim_state(elsewhere)["authorizations"] == {}


def test_a_redirect_to_another_origin_is_a_finding_of_the_health_step_not_ok(run_module, sim_factory):
    from tests.unit.test_check_modules import by_step, inputs_for, sweep
    elsewhere = sim_factory()
    sim = sim_factory("redirect=%s" % elsewhere.url)
    result = sweep(run_module, {"api1": inputs_for(sim.url)}, roles=["health_check"], tokens={"api1": TOKEN})
    health = by_step(result, "api1")["health"]
    assert health["status"] != "ok" and health["severity"] == "high"
    assert "redirected to %s" % elsewhere.url in health["summary"] and "not followed" in health["summary"]
    assert seen_tokens(elsewhere) == set()


def test_a_same_origin_redirect_is_followed_with_the_token(sim):
    sim.fault(redirect="self")
    client = Client(sim.url, timeout=5, retries=0, api_token=TOKEN)
    resp, body = client.get_json("/health")
    assert body["status"] == "ok" and "_sim_redirected=1" in resp.url
    assert seen_tokens(sim) == {"Bearer " + TOKEN}


def test_the_origin_includes_scheme_and_port():
    assert api.origin_of("http://h:80/x") == api.origin_of("http://H/y")
    assert api.origin_of("https://h/x") != api.origin_of("http://h/x")
    assert api.origin_of("http://h:8080/") != api.origin_of("http://h/")
    assert api.shown_origin("http://user:pw@h:81/p?token=1") == "http://h:81"


# --- 11. the total deadline --------------------------------------------------

def test_a_dribbling_answer_is_cut_at_the_deadline(sim_factory):
    sim = sim_factory("dribble_s=0.5")  # /health's ~110 bytes would take about a minute
    client = Client(sim.url, timeout=2, retries=0)
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        client.get_json("/health")
    elapsed = time.monotonic() - started
    assert err.value.kind == "timeout" and "2.0s deadline" in err.value.reason
    assert elapsed < 2 + MARGIN


def test_retries_of_a_dribbling_answer_stay_within_the_run_bound(sim_factory):
    sim = sim_factory("dribble_s=0.5")
    client = Client(sim.url, timeout=1.5, retries=2, backoff=0.2)
    started = time.monotonic()
    with pytest.raises(ApiError):
        client.get_json("/health")
    assert time.monotonic() - started < client.max_wall_time() + MARGIN


class DribblingHeaders(object):
    """A loopback server that sends its status line and headers one byte at a time."""

    def __init__(self, interval=0.3):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.interval = interval
        self.stopped = threading.Event()
        self.connections = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.dribble, args=(conn,), daemon=True).start()

    def dribble(self, conn):
        answer = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\nContent-Length: 2\r\n\r\n{}"
        try:
            for i in range(len(answer)):
                if self.stopped.wait(self.interval):
                    break
                conn.sendall(answer[i:i + 1])
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def dribbling_headers():
    server = DribblingHeaders()
    yield server
    server.stop()


def test_dribbled_headers_are_cut_at_the_deadline_too(dribbling_headers):
    client = Client(dribbling_headers.url, timeout=1.5, retries=0)
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        client.get_json("/health")
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 1.5 + MARGIN


def test_the_webhook_post_has_a_total_deadline(dribbling_headers):
    from ansible.module_utils.runbook_notify import post_webhook
    started = time.monotonic()
    ok, outcome = post_webhook(dribbling_headers.url + "/hook-secret", {"text": "x"}, timeout=1.5, retries=1, delay=0.2)
    assert not ok and "deadline" in outcome and "hook-secret" not in outcome
    assert time.monotonic() - started < 2 * 1.5 + 0.2 + MARGIN


# --- 3. rate limits ----------------------------------------------------------

def spend_quota(sim, count):
    for _ in range(count):
        try:
            urllib.request.urlopen(sim.url + "/health", timeout=5).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 429
            return


def test_a_429_is_rate_limited_with_its_reset_not_a_failure(sim_factory):
    sim = sim_factory(extra=["--rate-limit", "3", "--rate-window", "600"])
    spend_quota(sim, 3)
    client = Client(sim.url, timeout=3, retries=2, backoff=0.1)
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        client.get_json("/health")
    # A reset of about 600 s does not fit in the bound: no wait, one answer.
    assert time.monotonic() - started < client.max_wall_time()
    assert err.value.kind == "rate_limited" and err.value.status == 429
    assert 500 < err.value.reset_s <= 600
    assert err.value.reason == "rate limited (HTTP 429, resets in %d s)" % err.value.reset_s


def test_a_429_whose_reset_fits_the_budget_is_waited_for_and_retried(sim_factory):
    sim = sim_factory(extra=["--rate-limit", "2", "--rate-window", "2"])
    spend_quota(sim, 2)
    client = Client(sim.url, timeout=4, retries=1, backoff=0.1)
    started = time.monotonic()
    _resp, body = client.get_json("/health")
    assert body["status"] == "ok"
    assert time.monotonic() - started < client.max_wall_time() + MARGIN


def test_a_429_is_not_retried_when_retries_are_off(sim_factory):
    sim = sim_factory(extra=["--rate-limit", "2", "--rate-window", "2"])
    spend_quota(sim, 2)
    with pytest.raises(ApiError) as err:
        Client(sim.url, timeout=4, retries=0).get_json("/health")
    assert err.value.kind == "rate_limited"


def test_retry_after_reads_ratelimit_reset_then_retry_after():
    assert api.retry_after_s({"RateLimit-Reset": "42", "Retry-After": "7"}) == 42
    assert api.retry_after_s({"Retry-After": "7"}) == 7
    assert api.retry_after_s({"Retry-After": "Mon, 07 Dec 2026 16:00:30 GMT"}, now=1796659200.0) == 30
    assert api.retry_after_s({"Retry-After": "soon"}) is None
    assert api.retry_after_s({"RateLimit-Reset": "0"}) == 0
    assert api.retry_after_s({}) is None


def test_a_rate_limited_sweep_names_each_reading_not_read(sim_factory):
    sim = sim_factory(extra=["--rate-limit", "3", "--rate-window", "600"])
    spend_quota(sim, 3)
    client = Client(sim.url, timeout=3, retries=0)
    out = read_host(client, {"health", "error_stats", "monitoring", "cleanup", "latency"},
                    {"latency_paths": ["/health"], "latency_samples": 5})
    assert out["health"]["error"]["kind"] == "rate_limited"
    for name in ("error_stats", "monitoring", "cleanup"):
        assert out[name]["error"]["kind"] == "rate_limited", name
    assert out["latency"]["failed"] == 0 and out["latency"]["rate_limited"]["kind"] == "rate_limited"
    assert "recheck" not in out


# --- HTTPS with a certificate made here ---------------------------------------

class SessionApi(http.server.BaseHTTPRequestHandler):
    """Just enough of the session routes, over TLS, to start and end a session."""

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/api/session/start":
            status, body = 201, {"success": True, "data": {"sessionId": "sess_1_abcd"}}
        else:
            status, body = 200, {"success": True, "data": {"status": "ended"}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def https_api(tmp_path):
    yield from serve_tls(tmp_path, SessionApi)


def test_the_session_end_keeps_the_clients_certificate_setting(https_api):
    out = run_session(Client(https_api, timeout=5, retries=0, validate_certs=False), {"userId": "t", "counselorId": "t"},
                      end_timeout=5)
    assert out["session_id"] == "sess_1_abcd" and out["ended"] is True, out
    strict = run_session(Client(https_api, timeout=5, retries=0), {"userId": "t", "counselorId": "t"}, end_timeout=5)
    assert strict["session_id"] is None and "CERTIFICATE_VERIFY_FAILED" in strict["error"]


# --- one bound per host, not one per call --------------------------------------

def test_after_health_timed_out_no_other_call_is_sent_and_each_is_named(sim_factory):
    sim = sim_factory("dribble_s=0.5")
    client = Client(sim.url, timeout=1.5, retries=0)
    out = read_host(client, {"health", "error_stats", "monitoring", "cleanup", "latency", "cors"},
                    {"latency_paths": ["/health"], "latency_samples": 3, "frontend_origin": "https://app.bemore.dev"})
    assert out["health"]["error"]["kind"] == "timeout"
    assert set(sim_state(sim)["authorizations"]) == {"GET /health"}
    for name in ("error_stats", "monitoring", "cleanup"):
        assert out[name]["error"]["reason"].startswith("not read: /health did not answer (timed out"), out[name]
    assert out["latency"]["not_read"]["kind"] == "not_read"
    assert out["cors"]["problems"][0].startswith("the preflights were not sent: not read: /health did not answer")


def test_latency_sampling_stops_at_the_first_timeout(sim_factory):
    from ansible.module_utils.bemore_checks import read_latency
    sim = sim_factory("dribble_s=0.5")
    client = Client(sim.url, timeout=1, retries=0)
    out = read_latency(client, ["/health", "/api/errors/stats"], 4)
    assert out["failed"] == 1 and out["stopped_after_timeout"] is True
    assert out["failures"][0]["kind"] == "timeout" and out["times_ms"] == []


def test_failed_latency_samples_are_failures_not_times(sim):
    from ansible.module_utils.bemore_checks import read_latency
    sim.fault(status_5xx=502)
    out = read_latency(Client(sim.url, timeout=3, retries=0), ["/health"], 3)
    assert out["failed"] == 3 and out["times_ms"] == [] and out["stopped_after_timeout"] is False


def test_the_limit_is_read_from_the_429_itself(sim_factory):
    sim = sim_factory(extra=["--rate-limit", "3", "--rate-window", "600"])
    spend_quota(sim, 3)
    out = read_host(Client(sim.url, timeout=3, retries=0), {"health", "rate"}, {})
    assert out["health"]["error"]["kind"] == "rate_limited"
    assert out["rate"]["limit"] == 3 and out["rate"]["remaining"] == 0 and out["rate"]["source"] == "/health"


@pytest.mark.parametrize("kwargs", [{"timeout": float("nan")}, {"timeout": float("inf")}, {"timeout": 0},
                                    {"backoff": float("nan")}, {"backoff": -1}, {"retries": -1}])
def test_a_client_with_an_unbounded_or_negative_setting_is_refused(kwargs):
    with pytest.raises(ValueError) as err:
        Client("http://127.0.0.1:1", **kwargs)
    assert "finite" in str(err.value)


def test_a_cut_json_200_on_health_answers_but_not_with_the_health_json(run_module, sim):
    from tests.unit.test_check_modules import by_step, inputs_for, sweep
    sim.fault(malformed_json=True)
    health = by_step(sweep(run_module, {"api1": inputs_for(sim.url)}, roles=["health_check"]), "api1")["health"]
    assert health["status"] == "critical" and "service down" not in health["summary"]
    assert health["summary"].startswith("/health answers, but not with the health JSON: the answer is not JSON (HTTP 200, ")
    assert health["figures"]["reachable"] is True


def test_the_simulators_redirect_and_dribble_faults_refuse_bad_values():
    import os
    import sys
    from tests.conftest import REPO
    sys.path.insert(0, os.path.join(REPO, "sandbox"))
    import bemore_sim  # pylint: disable=import-outside-toplevel
    assert bemore_sim.parse_fault("redirect", "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert bemore_sim.parse_fault("redirect", "self") == "self"
    assert bemore_sim.parse_fault("redirect", "") is None
    for bad in ("ftp://x", "http://x/path", "127.0.0.1:9"):
        with pytest.raises(ValueError, match="redirect wants an origin"):
            bemore_sim.parse_fault("redirect", bad)
    assert bemore_sim.parse_fault("dribble_s", "0.5") == 0.5
    for bad in ("-1", "nan", "61", "slow"):
        with pytest.raises(ValueError, match="dribble_s"):
            bemore_sim.parse_fault("dribble_s", bad)
