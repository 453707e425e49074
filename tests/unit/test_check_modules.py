"""The check modules against the simulator over loopback: the fleet sweep
(bemore_checks), the host readings (bemore_host_checks), single reads
(bemore_api) and the smoke test (bemore_smoke_test)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import pytest

from tests.conftest import free_port

SWEEP_ROLES = ["health_check", "error_monitoring", "tmp_cleanup", "performance_check", "api_security"]


def inputs_for(url, **group):
    base = {"runbook": dict({"bemore_base_url": url, "bemore_api_retries": 0, "bemore_api_timeout": 3,
                             "bemore_frontend_origin": "https://app.bemore.dev"}, **group),
            "health_check": {"health_check_expected_commit": "", "health_check_restart_tolerance": 60},
            "error_monitoring": {"error_monitoring_target_rate": 0.1, "error_monitoring_warning_rate": 1.0,
                                 "error_monitoring_critical_rate": 5.0, "error_monitoring_recent_limit": 5},
            "tmp_cleanup": {"tmp_cleanup_interval_min": 60, "tmp_cleanup_max_size_mb": 500,
                            "tmp_cleanup_check_service": True},
            "performance_check": {"performance_check_paths": ["/health"], "performance_check_samples": 3,
                                  "performance_check_api_target_ms": 200},
            "api_security": {"api_security_checks": ["cors", "rate_limit"],
                             "api_security_foreign_origin": "https://evil.example"}}
    return base


def sweep(run_module, hosts, roles=SWEEP_ROLES, **extra):
    args = {"inputs": hosts, "selected": dict((h, roles) for h in hosts)}
    args.update(extra)
    return run_module("bemore_checks", args)


def by_step(result, host):
    return dict((s["step"], s) for s in result["hosts"][host]["steps"])


def sim_state(sim):
    with urllib.request.urlopen(sim.url + "/__sim/state", timeout=5) as resp:
        return json.loads(resp.read())


def test_one_sweep_decides_every_selected_step_of_a_healthy_backend(run_module, sim):
    result = sweep(run_module, {"api1": inputs_for(sim.url)})
    steps = by_step(result, "api1")
    assert list(steps) == ["health", "error_monitoring", "tmp_cleanup", "performance", "api_security"]
    assert steps["health"]["status"] == "ok" and steps["health"]["figures"]["commit"] is None
    assert "commit unknown" in steps["health"]["summary"]
    # A fresh backend has no error (its counters are read before the foreign CORS probe adds one).
    assert steps["error_monitoring"]["figures"]["total_errors"] == 0
    # Without a log and with no earlier reading there is no rate at all, and the summary says why.
    assert steps["error_monitoring"]["figures"]["error_rate_percent"] is None
    assert "error rate unknown (no log; first reading of the counters)" in steps["error_monitoring"]["summary"]
    assert steps["api_security"]["figures"]["rate_limit"]["limit"] == 600
    assert steps["api_security"]["figures"]["rate_limit"]["requests"] == 0
    assert steps["api_security"]["figures"]["cors"]["frontend_allowed"] is True
    assert steps["performance"]["figures"]["samples"] == 3
    assert result["hosts"]["api1"]["state"]["health"]["uptime_s"] > 0
    assert result["runbook_steps"]["api1"] == result["hosts"]["api1"]["steps"]


def test_the_sweep_reads_many_hosts_in_about_one_round_trip(run_module, sim_factory):
    # A latency long against a busy machine's overhead, so the bound below tells concurrency from speed.
    sim = sim_factory("latency_ms=1000")
    hosts = dict(("h%02d" % i, inputs_for(sim.url, bemore_api_timeout=10)) for i in range(12))
    started = time.monotonic()
    result = sweep(run_module, hosts, roles=["health_check", "error_monitoring"])
    elapsed = time.monotonic() - started
    assert all(by_step(result, h)["health"]["status"] == "ok" for h in hosts)
    # Sequentially: 12 hosts x 3 requests x 1 s = 36 s. Concurrently: health, then the rest: about 2 s.
    assert elapsed < 12.0, elapsed


def test_a_refused_host_is_critical_and_does_not_stop_the_others(run_module, sim):
    dead = "http://127.0.0.1:%d" % free_port()
    result = sweep(run_module, {"up": inputs_for(sim.url), "down": inputs_for(dead)},
                   roles=["health_check", "error_monitoring"])
    assert by_step(result, "up")["health"]["status"] == "ok"
    down = by_step(result, "down")
    assert down["health"]["status"] == "critical" and "service down" in down["health"]["summary"]
    assert down["error_monitoring"]["status"] == "warning"
    assert "health" not in result["hosts"]["down"]["state"]


def test_a_service_that_dies_after_its_health_answer_is_critical(run_module, sim):
    # Every answer takes 2 s; 0.5 s into the run, while /health is being
    # answered, the backend stops accepting connections: /health answers,
    # every call after it is refused.
    sim.fault(latency_ms=2000)
    timer = threading.Timer(0.5, lambda: sim.fault(refuse_s=8))
    timer.start()
    try:
        result = sweep(run_module, {"api1": inputs_for(sim.url)}, roles=["health_check", "error_monitoring"])
    finally:
        timer.join()
    health = by_step(result, "api1")["health"]
    assert health["status"] == "critical", health
    assert "went down during the run" in health["summary"]


def test_a_hanging_api_is_bounded(run_module, sim_factory):
    sim = sim_factory("latency_ms=5000")
    started = time.monotonic()
    result = sweep(run_module, {"slow": inputs_for(sim.url, bemore_api_timeout=0.5)},
                   roles=["health_check", "error_monitoring"])
    assert time.monotonic() - started < 4
    assert "timed out" in by_step(result, "slow")["health"]["summary"]


def test_the_rate_limit_probe_runs_only_when_asked_and_stops_at_the_limit(run_module, sim_factory):
    sim = sim_factory(extra=["--rate-limit", "8", "--rate-window", "60"])
    hosts = {"h": inputs_for(sim.url)}
    hosts["h"]["api_security"].update(api_security_rate_limit_probe=True, api_security_rate_limit_probe_max=30)
    result = sweep(run_module, hosts, roles=["api_security"])
    rate = by_step(result, "h")["api_security"]["figures"]["rate_limit"]
    assert rate["limit"] == 8 and rate["window_s"] == 60
    assert rate["probe"]["sent"] <= 8 and rate["requests"] == rate["probe"]["sent"]


def test_an_api_only_host_shows_host_steps_as_not_applicable(run_module, sim):
    hosts = {"paas": inputs_for(sim.url, bemore_host_access="api_only")}
    hosts["paas"]["disk_usage"] = {"disk_usage_filesystem_of": "/srv"}
    result = sweep(run_module, hosts, roles=["health_check", "disk_usage", "log_management"])
    steps = by_step(result, "paas")
    assert steps["disk_usage"]["status"] == "not_applicable" and "api_only" in steps["disk_usage"]["summary"]
    assert steps["log_management"]["status"] == "not_applicable"
    assert steps["health"]["status"] == "ok"


def test_tokens_are_sent_but_never_returned(run_module, sim):
    result = sweep(run_module, {"api1": inputs_for(sim.url)}, roles=["health_check"],
                   tokens={"api1": "tok-very-secret-123"})
    assert "tok-very-secret-123" not in json.dumps(result)


def test_bad_input_is_refused_before_any_request(run_module, sim):
    result = sweep(run_module, {"api1": inputs_for("http://u:pw@127.0.0.1:1")}, roles=["health_check"])
    assert result["failed"] and "credentials" in result["msg"] and "pw" not in result["msg"]


# --- the host readings ---------------------------------------------------------------------

def test_the_host_module_reads_disk_folder_and_process(run_module, tmp_path):
    folder = tmp_path / "tmp"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.wav").write_bytes(b"x" * 2048)
    (folder / "sub" / "b.wav").write_bytes(b"x" * 1024)
    os.symlink("/etc/passwd", folder / "link")
    pid_file = tmp_path / "app.pid"
    pid_file.write_text(str(os.getpid()))
    inputs = {"runbook": {"bemore_base_url": "http://127.0.0.1:1", "bemore_log_source": "none"},
              "disk_usage": {"disk_usage_filesystem_of": str(tmp_path), "disk_usage_folder": str(folder)},
              "tmp_cleanup": {"tmp_cleanup_path": str(folder)},
              "performance_check": {"performance_check_pid_file": str(pid_file), "performance_check_cpu_sample_s": 0.2}}
    result = run_module("bemore_host_checks", {"inputs": inputs, "selected": ["disk_usage", "tmp_cleanup",
                                                                              "performance_check"]})
    readings = result["readings"]
    assert readings["disk"]["folder"]["files"] == 2 and readings["disk"]["folder"]["bytes"] == 3072
    st = os.statvfs(str(tmp_path))
    assert readings["disk"]["filesystem"]["avail_bytes"] == pytest.approx(st.f_bavail * st.f_frsize, rel=0.01)
    assert readings["tmp_folder"]["files"] == 2
    assert readings["process"]["found"] and readings["process"]["rss_mb"] > 1
    assert result["changed"] is False


def test_a_missing_process_is_a_reading_not_a_failure(run_module, tmp_path):
    inputs = {"runbook": {"bemore_base_url": "http://127.0.0.1:1"},
              "performance_check": {"performance_check_pid_file": str(tmp_path / "none.pid")}}
    result = run_module("bemore_host_checks", {"inputs": inputs, "selected": ["performance_check"]})
    assert result["readings"]["process"]["found"] is False and "none.pid" in result["readings"]["process"]["reason"]


def test_the_host_module_reads_the_api_itself_when_it_answers_only_there(run_module, sim):
    inputs = inputs_for(sim.url, bemore_api_from="host")
    result = run_module("bemore_host_checks", {"inputs": inputs, "selected": ["health_check"], "api_token": "t0k"})
    assert result["readings"]["api"]["health"]["health"]["status"] == "ok"
    assert "t0k" not in json.dumps(result)


# --- single reads and the smoke test ------------------------------------------------------------

def test_bemore_api_reads_one_endpoint_and_matches_commits(run_module, sim):
    sim.control("POST", "/__sim/commit", {"commit": "abc1234def567"})
    result = run_module("bemore_api", {"base_url": sim.url, "endpoint": "health", "expected_commit": "abc1234"})
    assert result["data"]["commit"] == "abc1234def567" and result["commit_matches"] is True
    assert result["rate_limit"]["limit"] == 600
    result = run_module("bemore_api", {"base_url": sim.url, "endpoint": "errors_by_category", "category": "NETWORK"})
    assert result["data"]["category"] == "NETWORK" and isinstance(result["data"]["total"], int)


def test_bemore_api_names_the_endpoint_of_a_bad_answer(run_module, sim):
    sim.fault(malformed_json=True)
    result = run_module("bemore_api", {"base_url": sim.url, "endpoint": "temp_cleanup_stats", "retries": 0})
    assert result["failed"] and result["msg"].startswith("/api/system/temp-cleanup-stats: ")


def test_the_smoke_test_ends_the_session_it_starts(run_module, sim_factory):
    sim = sim_factory(extra=["--session-end-wait", "0.2"])
    before = sim_state(sim)["sessions"]
    result = run_module("bemore_smoke_test", {"base_url": sim.url, "error_rate": 0.01, "baseline": 0.02})
    assert result["session"]["ended"] is True and result["step"]["status"] == "ok"
    after = sim_state(sim)["sessions"]
    assert after["total"] == before["total"] + 1 and after["ended"] == before["ended"] + 1 and after["open"] == 0


def test_the_smoke_test_starts_no_session_in_check_mode(run_module, sim):
    before = sim_state(sim)
    result = run_module("bemore_smoke_test", {"base_url": sim.url}, check_mode=True)
    assert result["session"]["skipped"] is True and sim_state(sim)["sessions"] == before["sessions"]


# --- the HTTP client ---------------------------------------------------------------------------

def client(url, **kw):
    from ansible.module_utils.bemore_api import Client  # pylint: disable=import-outside-toplevel
    return Client(url, **kw)


def test_a_5xx_from_the_proxy_is_retried_then_reported_with_its_status(sim):
    from ansible.module_utils.bemore_api import ApiError  # pylint: disable=import-outside-toplevel
    sim.fault(status_5xx=502)
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        client(sim.url, retries=2, backoff=0.1).get_json("/health")
    assert err.value.status == 502 and err.value.kind == "http"
    assert 0.3 <= time.monotonic() - started < 3  # two backoffs: 0.1 + 0.2


def test_a_4xx_and_every_post_are_answered_once(sim):
    from ansible.module_utils.bemore_api import ApiError  # pylint: disable=import-outside-toplevel
    before = sim_state(sim)["sessions"]["total"]
    with pytest.raises(ApiError) as err:
        client(sim.url, retries=3).post_json("/api/session/start", {})
    assert err.value.status == 400 and "Validation failed" in str(err.value)
    sim.fault(status_5xx=503)
    with pytest.raises(ApiError):
        client(sim.url, retries=3, backoff=0.01).post_json("/api/session/start", {"userId": "a", "counselorId": "b"})
    sim.clear()
    assert sim_state(sim)["sessions"]["total"] == before


def test_a_refused_connection_and_a_timeout_say_which(sim_factory):
    from ansible.module_utils.bemore_api import ApiError  # pylint: disable=import-outside-toplevel
    with pytest.raises(ApiError) as err:
        client("http://127.0.0.1:%d" % free_port(), retries=0).get_json("/health")
    assert err.value.kind == "connect" and "cannot connect" in str(err.value)
    slow = sim_factory("latency_ms=3000")
    c = client(slow.url, timeout=0.3, retries=1, backoff=0.1)
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        c.get_json("/health")
    assert err.value.kind == "timeout" and time.monotonic() - started <= c.max_wall_time() + 0.5


def test_the_group_token_reaches_every_api_call_of_the_sweep(run_module):
    import http.server  # pylint: disable=import-outside-toplevel

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            body = json.dumps({"status": "ok", "uptime": 1.0, "total": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d" % server.server_address[1]
        result = sweep(run_module, {"api1": inputs_for(url)}, roles=["health_check", "error_monitoring"],
                       tokens={"api1": "tok-42"})
    finally:
        server.shutdown()
        server.server_close()
    assert {path for path, _ in seen} >= {"/health", "/api/errors/stats"}
    assert all(auth == "Bearer tok-42" for _, auth in seen)
    assert "tok-42" not in json.dumps(result)
