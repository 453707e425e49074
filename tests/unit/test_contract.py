"""The API contract: every parser reads the answers recorded from the real
backend (the spec page's samples and answers recorded by running it), and
the simulator's answers, the same way. The simulator shares no parsing code
with module_utils/bemore_api.py, so a misreading on either side fails here."""

from __future__ import annotations

import glob
import json
import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import REPO, register_module_utils

register_module_utils()

from ansible.module_utils import bemore_api as api  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_checks as checks  # noqa: E402  pylint: disable=wrong-import-position

FIXTURES = os.path.join(REPO, "tests", "fixtures", "observed")
SPEC = json.load(open(os.path.join(FIXTURES, "spec-samples.json"), encoding="utf-8"))


def recorded(name):
    with open(os.path.join(FIXTURES, "real-%s.json" % name), encoding="utf-8") as handle:
        return json.load(handle)


PARSERS = {
    "health": api.parse_health,
    "errors-stats": api.parse_error_stats,
    "monitoring-error-stats": api.parse_error_stats,
    "recent-errors": api.parse_recent_errors,
    "errors-category": api.parse_category,
    "monitoring-health": api.parse_monitoring_health,
    "temp-cleanup-stats": api.parse_cleanup_stats,
    "session-start": api.parse_session_start,
}


# --- the spec page's samples -------------------------------------------------------

def test_the_spec_pages_health_with_a_null_commit_is_healthy_and_the_commit_unknown():
    health = api.parse_health(SPEC["health"]["body"])
    assert health == {"status": "ok", "timestamp": "2026-12-02T09:45:51.548Z", "uptime_s": pytest.approx(133.204912349),
                      "version": "1.0.0", "commit": None}


def test_the_spec_pages_error_stats_have_no_envelope_and_recent_is_oldest_first():
    stats = api.parse_error_stats(SPEC["errors-stats"]["body"])
    assert stats["total"] == 5
    assert stats["by_type"] == {"UNKNOWN": 5}
    assert stats["by_code"] == {"UNKNOWN": 4, "VALIDATION_ERROR": 1}
    assert [e["module"] for e in stats["recent"]] == ["express", "session-end"]
    assert stats["recent"][1]["code"] is None and stats["recent"][1]["requestId"] is None
    assert stats["recent"][1]["message"] == "세션을 찾을 수 없습니다: bogus"


@pytest.mark.parametrize("name, check", [
    ("recent-errors", lambda d: d["count"] == 2 and d["limit"] == 2 and len(d["errors"]) == 1),
    ("errors-category", lambda d: d == {"category": "NETWORK", "total": 0}),
    ("monitoring-health", lambda d: d["status"] == "healthy" and d["error_rate_per_s"] == pytest.approx(0.0225)
     and d["total_errors"] == 3),
    ("temp-cleanup-stats", lambda d: d["bytes_freed"] == 0 and d["checks_run"] == 1
     and d["last_check_time"] == "2026-12-02T09:43:39.205Z"),
    ("session-start", lambda d: d == {"session_id": "sess_1796204570192_374e720d"}),
])
def test_every_enveloped_spec_sample_parses(name, check):
    assert check(PARSERS[name](SPEC[name]["body"]))


def test_the_spec_pages_rate_limit_headers_give_600_per_600_seconds():
    assert api.parse_rate_limit(SPEC["rate-limit-headers"]) == {
        "limit": 600, "remaining": 599, "reset_s": 600, "window_s": 600, "policy": "600;w=600"}


@pytest.mark.parametrize("name", ["errors-category-invalid", "session-start-empty", "not-found"])
def test_the_backends_error_bodies_give_their_message(name):
    message = api.error_message(SPEC[name]["body"])
    assert message.startswith(SPEC[name]["body"]["error"]["message"])
    assert SPEC[name]["body"]["error"]["code"] in message


# --- answers recorded from the running backend ------------------------------------------

@pytest.mark.parametrize("name, parser", [
    ("health", "health"), ("health-with-commit", "health"), ("errors-stats", "errors-stats"),
    ("errors-stats-fresh", "errors-stats"), ("errors-stats-mixed-types", "errors-stats"),
    ("monitoring-error-stats", "monitoring-error-stats"), ("recent-errors-limit-2", "recent-errors"),
    ("recent-errors-limit-abc", "recent-errors"), ("errors-category-network", "errors-category"),
    ("errors-category-database", "errors-category"), ("monitoring-health", "monitoring-health"),
    ("monitoring-health-fresh", "monitoring-health"), ("monitoring-health-after-errors", "monitoring-health"),
    ("temp-cleanup-stats", "temp-cleanup-stats"), ("session-start", "session-start"),
])
def test_every_recorded_answer_parses(name, parser):
    answer = recorded(name)
    assert 200 <= answer["status"] < 300
    parsed = PARSERS[parser](answer["body"])
    assert isinstance(parsed, dict) and parsed


def test_recorded_stats_and_the_monitoring_copy_agree():
    plain = api.parse_error_stats(recorded("errors-stats")["body"])
    enveloped = api.parse_error_stats(recorded("monitoring-error-stats")["body"])
    assert enveloped["total"] >= plain["total"] and set(plain["by_type"]) <= set(enveloped["by_type"]) | {"UNKNOWN"}


def test_recorded_types_and_levels_come_through():
    stats = api.parse_error_stats(recorded("errors-stats-mixed-types")["body"])
    assert set(stats["by_type"]) == {"AI_SERVICE", "AUTH", "WEBSOCKET"}
    assert {e["level"] for e in stats["recent"]} <= set(api.LEVELS)
    assert all(e["type"] in api.ERROR_TYPES for e in stats["recent"])


def test_the_recorded_category_total_is_bytype_of_the_stats():
    assert api.parse_category(recorded("errors-category-database")["body"])["total"] >= 1


def test_the_recorded_health_with_a_commit_keeps_it():
    assert api.parse_health(recorded("health-with-commit")["body"])["commit"]


def test_recorded_rate_limit_headers_announce_the_limit_and_the_session_start_the_write_limit():
    assert api.parse_rate_limit(recorded("health")["headers"])["limit"] == 600
    write = api.parse_rate_limit(recorded("session-start")["headers"])
    assert write["limit"] == 300 and write["window_s"] == 600


def test_recorded_error_answers_are_refused_with_their_message():
    for name in ("errors-category-bogus", "session-start-no-body", "session-end-bogus", "not-found"):
        answer = recorded(name)
        resp = api.Response(answer["status"], answer["headers"], json.dumps(answer["body"]).encode(), 0.001)
        with pytest.raises(api.ApiError) as err:
            api.expect_json(resp, answer["request"]["path"])
        assert "HTTP %d" % answer["status"] in str(err.value)
        assert answer["body"]["error"]["message"][:20] in str(err.value)


# --- tolerance and refusals ------------------------------------------------------

def test_extra_fields_are_ignored_and_absent_optional_ones_are_unknown():
    health = api.parse_health({"status": "ok", "build": {"node": "20"}})
    assert health == {"status": "ok", "timestamp": None, "uptime_s": None, "version": None, "commit": None}
    stats = api.parse_error_stats({"total": 0})
    assert stats == {"total": 0, "by_type": {}, "by_code": {}, "by_module": {}, "recent": []}
    cleanup = api.parse_cleanup_stats({"success": True, "data": {"lastCheckTime": None}})
    assert cleanup["last_check_time"] is None and cleanup["bytes_freed"] is None


@pytest.mark.parametrize("parser, body, endpoint, field", [
    (api.parse_health, {"uptime": 1}, "/health", "'status'"),
    (api.parse_health, ["ok"], "/health", "an array"),
    (api.parse_error_stats, {"byType": {}}, "/api/errors/stats", "'total'"),
    (api.parse_error_stats, {"total": "5"}, "/api/errors/stats", "'total'"),
    (api.parse_error_stats, {"total": True}, "/api/errors/stats", "'total'"),
    (api.parse_error_stats, {"total": -1}, "/api/errors/stats", "'total'"),
    (api.parse_category, {"success": True, "data": {"count": 0}}, "/api/monitoring/errors/{category}", "'total'"),
    (api.parse_monitoring_health, {"success": True}, "/api/monitoring/health", "'data'"),
    (api.parse_monitoring_health, {"success": False, "error": {"message": "nope"}}, "/api/monitoring/health", "nope"),
    (api.parse_cleanup_stats, {"success": True, "data": {"filesDeleted": 1}}, "/api/system/temp-cleanup-stats",
     "'data.lastCheckTime'"),
    (api.parse_cleanup_stats, {"success": True, "data": {"lastCheckTime": 5}}, "/api/system/temp-cleanup-stats",
     "'data.lastCheckTime'"),
    (api.parse_session_start, {"success": True, "data": {"sessionId": ""}}, "/api/session/start", "'data.sessionId'"),
])
def test_an_answer_lacking_what_the_check_needs_names_the_endpoint_and_the_field(parser, body, endpoint, field):
    with pytest.raises(api.ContractError) as err:
        parser(body)
    assert str(err.value).startswith(endpoint + ":")
    assert field in str(err.value)


def test_a_non_json_answer_is_refused_as_such():
    resp = api.Response(200, {}, b"<html>502 Bad Gateway</html>", 0.01)
    with pytest.raises(api.ApiError) as err:
        resp.json("/health")
    assert err.value.kind == "json" and "not JSON" in str(err.value)


@pytest.mark.parametrize("headers, expected", [
    ({"ratelimit-limit": "100", "ratelimit-remaining": "0", "ratelimit-reset": "30"},
     {"limit": 100, "remaining": 0, "reset_s": 30, "window_s": None, "policy": None}),
    ({"RateLimit": "limit=10, remaining=9, reset=5", "RateLimit-Policy": "10;w=60"},
     {"limit": 10, "remaining": 9, "reset_s": 5, "window_s": 60, "policy": "10;w=60"}),
    ({"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "49", "X-RateLimit-Reset": "20"},
     {"limit": 50, "remaining": 49, "reset_s": 20, "window_s": None, "policy": None}),
    ({"Content-Type": "application/json"}, None),
])
def test_rate_limit_headers_of_every_flavour(headers, expected):
    assert api.parse_rate_limit(headers) == expected


@pytest.mark.parametrize("url, fragment", [
    ("ftp://api.example", "http:// or https://"),
    ("http://user:secret@api.example", "credentials"),
    ("http://api.example/../../", "path"),
    ("https://api.example/api", "path"),
    ("https://api.example/?x=1", "query"),
    ("https://:443", "no host"),
    ("http://api.example:99999", "not a valid URL"),
    ("", "empty"),
])
def test_bad_base_urls_are_refused_clearly_and_never_repeat_a_password(url, fragment):
    with pytest.raises(ValueError) as err:
        api.check_base_url(url)
    assert fragment in str(err.value)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("url, normal", [
    ("https://api.bemore.dev", "https://api.bemore.dev"), ("http://127.0.0.1:3000/", "http://127.0.0.1:3000"),
    ("http://[::1]:8000", "http://[::1]:8000"),
])
def test_good_base_urls_are_normalised(url, normal):
    assert api.check_base_url(url) == normal


def test_redaction_hides_userinfo_anywhere_in_a_text():
    assert api.redact_url("GET http://u:p@h/x and https://t@h2") == "GET http://***@h/x and https://***@h2"


# --- the simulator serves the same shapes ------------------------------------------

def _get(sim, path):
    try:
        with urllib.request.urlopen(sim.url + path, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.mark.parametrize("path, parser", [
    ("/health", api.parse_health),
    ("/api/errors/stats", api.parse_error_stats),
    ("/api/monitoring/error-stats", api.parse_error_stats),
    ("/api/monitoring/recent-errors?limit=5", api.parse_recent_errors),
    ("/api/monitoring/errors/NETWORK", api.parse_category),
    ("/api/monitoring/health", api.parse_monitoring_health),
    ("/api/system/temp-cleanup-stats", api.parse_cleanup_stats),
])
def test_the_simulators_answers_parse_like_the_recorded_ones(sim, path, parser):
    status, headers, body = _get(sim, path)
    assert status == 200
    assert parser(body)
    assert api.parse_rate_limit(headers)["limit"] > 0


def test_the_simulator_and_the_real_backend_agree_on_the_keys_of_every_answer(sim):
    pairs = [("/health", "health"), ("/api/errors/stats", "errors-stats"),
             ("/api/monitoring/health", "monitoring-health"), ("/api/system/temp-cleanup-stats", "temp-cleanup-stats"),
             ("/api/monitoring/errors/NETWORK", "errors-category-network")]
    for path, name in pairs:
        real = recorded(name)["body"]
        simulated = _get(sim, path)[2]
        assert set(simulated) == set(real), path
        if isinstance(real.get("data"), dict):
            assert set(simulated["data"]) == set(real["data"]), path


def test_the_simulators_error_answers_have_the_backends_shape(sim):
    status, _headers, body = _get(sim, "/api/monitoring/errors/bogus")
    assert status == 400 and body["error"]["code"] == "INVALID_CATEGORY"
    status, _headers, body = _get(sim, "/nowhere")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


def test_every_fixture_file_is_used():
    names = {os.path.basename(p)[5:-5] for p in glob.glob(os.path.join(FIXTURES, "real-*.json"))}
    source = open(__file__, encoding="utf-8").read()
    assert all('"%s"' % n in source for n in names), sorted(n for n in names if '"%s"' % n not in source)


# --- recorded answers replayed over HTTP ----------------------------------------------

class Replay(object):
    """Serves recorded answers by (method, path, Origin) over loopback, byte for byte as recorded."""

    def __init__(self, answers):
        self.answers = answers
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                key = (self.command, self.path, self.headers.get("Origin"))
                answer = replay.answers.get(key) or replay.answers.get((self.command, self.path, None))
                if answer is None:
                    answer = recorded("not-found")
                body = answer["body"]
                raw = b"" if body in (None, "") else (body.encode() if isinstance(body, str)
                                                       else json.dumps(body).encode())
                self.send_response(answer["status"])
                for key_, value in answer["headers"].items():
                    if key_.lower() != "content-length":
                        self.send_header(key_, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_OPTIONS = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def replay():
    started = []

    def make(*names, origin=None):
        answers = {}
        for name in names:
            answer = recorded(name)
            req = answer["request"]
            answers[(req["method"], req["path"], origin if req["method"] == "OPTIONS" else None)] = answer
        server = Replay(answers)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


def test_cors_is_read_from_the_recorded_preflights(replay):
    allowed = recorded("preflight-allowed")
    foreign = recorded("preflight-foreign")
    answers = {("OPTIONS", allowed["request"]["path"], "http://localhost:5173"): allowed,
               ("OPTIONS", foreign["request"]["path"], "https://evil.example"): foreign}
    server = Replay(answers)
    try:
        out = checks.read_cors(api.Client(server.url, retries=0), allowed["request"]["path"],
                               "http://localhost:5173", "https://evil.example")
    finally:
        server.close()
    assert out["frontend_allowed"] is True and out["allowed_origin"] == "http://localhost:5173"
    assert out["foreign_allowed"] is False and out["foreign_status"] == 400
    assert out["problems"] == []


def test_the_sweep_reads_the_recorded_backend_whole(replay):
    server = replay("health", "errors-stats", "monitoring-health", "temp-cleanup-stats")
    results, _elapsed = checks.sweep({"h": {"api": {"base_url": server.url, "retries": 0},
                                            "wants": ["health", "error_stats", "monitoring", "cleanup", "rate"],
                                            "cfg": {}}})
    got = results["h"]
    assert got["health"]["health"]["commit"] is None and got["health"]["error"] is None
    assert got["error_stats"]["data"]["total"] == recorded("errors-stats")["body"]["total"]
    assert got["monitoring"]["data"]["status"] == "healthy"
    assert got["cleanup"]["data"]["checks_run"] >= 1
    assert got["rate"]["limit"] == 600 and got["rate"]["window_s"] == 600 and got["rate"]["requests"] == 0
    assert "recheck" not in got


@pytest.mark.parametrize("name", sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "sandbox", "*.py"))))
def test_the_simulator_shares_no_code_with_the_modules(name):
    """The contract test means something only while the simulator parses and
    answers on its own: no import of ansible, of the project's module_utils or
    library, and no path into them."""
    import ast  # pylint: disable=import-outside-toplevel

    ours = set(os.path.splitext(n)[0] for n in os.listdir(os.path.join(REPO, "module_utils")) if n.endswith(".py"))
    ours |= set(os.path.splitext(n)[0] for n in os.listdir(os.path.join(REPO, "library")) if n.endswith(".py"))
    with open(os.path.join(REPO, "sandbox", name), encoding="utf-8") as handle:
        source = handle.read()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= set(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    tops = set(m.split(".")[0] for m in imported) | set(m.split(".")[-1] for m in imported)
    assert not tops & ({"ansible"} | ours), sorted(tops & ({"ansible"} | ours))
    assert "module_utils" not in source and "library" not in source.replace("stdlib", "")
