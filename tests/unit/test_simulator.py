"""The sandbox simulator against the recorded real backend (spec/bemore-api-observed.md).

These tests assert the shapes, headers and log lines themselves, not through
the project's parsers, so that a contract test can trust the simulator.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from tests.conftest import free_port
from tests.helpers import REPO, require

sys.path.insert(0, os.path.join(REPO, "sandbox"))
import bemore_sim  # noqa: E402  pylint: disable=wrong-import-position
import sandboxctl  # noqa: E402  pylint: disable=wrong-import-position

QUIET = ["--background-rps", "0", "--session-end-wait", "0"]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ACCESS = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|OPTIONS|HEAD) (\S+) (\d{3}) (\d+|-) - (\d+\.\d{3}) ms reqId=(\S+)$")
ERROR_LINE = re.compile(r"^\x1b\[(31|35|33|36)m\[(ERROR|CRITICAL|WARN|INFO)\]\x1b\[0m \x1b\[90m(\S+)\x1b\[0m "
                        r"\x1b\[34m\[([^\]]+)\]\x1b\[0m \x1b\[33m\(([A-Z_]+)\)\x1b\[0m (.*)$")
ENTRY_KEYS = {"type", "level", "message", "module", "timestamp", "code", "requestId"}


def call(sim, path, method="GET", body=None, headers=None, port=None, raw=None):
    """One request on its own connection: (status, headers as a dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port or sim.port, timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = dict(headers or {})
    if body is not None and raw is None:
        hdrs.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(sim, path, method="GET", body=None, **kwargs):
    status, headers, body = call(sim, path, method, body, **kwargs)
    return status, headers, json.loads(body)


def log_lines(sim):
    with open(sim.log_file, encoding="utf-8") as handle:
        return handle.read().splitlines()


def access_lines(sim):
    return [m.groups() for m in map(ACCESS.match, log_lines(sim)) if m]


def error_entries(sim):
    return [m.groups() for m in map(ERROR_LINE.match, log_lines(sim)) if m]


def quiet(sim_factory, *faults, extra=()):
    return sim_factory(*faults, extra=QUIET + list(extra))


def write_env(tmp_path, text):
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    env = app / ".env"
    env.write_text(text, encoding="utf-8")
    return str(env)


# --------------------------------------------------------------- endpoints

def test_health_has_no_envelope_a_float_uptime_and_a_null_commit(sim_factory):
    sim = quiet(sim_factory)
    time.sleep(0.05)
    status, headers, body = get_json(sim, "/health")
    assert status == 200 and headers["content-type"] == "application/json; charset=utf-8"
    assert list(body) == ["status", "timestamp", "uptime", "version", "commit"]
    assert body["status"] == "ok" and body["version"] == "1.0.0" and body["commit"] is None
    assert isinstance(body["uptime"], float) and 0 < body["uptime"] < 30
    assert ISO.match(body["timestamp"])


def test_commit_comes_from_the_command_line_the_release_file_or_the_env_file(sim_factory, tmp_path):
    assert get_json(quiet(sim_factory, extra=["--commit", "abc1234"]), "/health")[2]["commit"] == "abc1234"
    revision = tmp_path / "REVISION"
    revision.write_text("def5678\n")
    assert get_json(quiet(sim_factory, extra=["--commit-file", str(revision)]), "/health")[2]["commit"] == "def5678"
    env = write_env(tmp_path, "GIT_COMMIT=0123abc\n")
    assert get_json(quiet(sim_factory, extra=["--env-file", env]), "/health")[2]["commit"] == "0123abc"


def make_errors(sim, count, prefix="req"):
    """``count`` validation errors, each tagged with a request id of ours."""
    ids = []
    for i in range(count):
        rid = "%s-%03d" % (prefix, i)
        status, headers, _ = call(sim, "/api/session/start", "POST", raw=b"", headers={"x-request-id": rid})
        assert status == 400 and headers["x-request-id"] == rid
        ids.append(rid)
    return ids


def test_error_stats_shape_counts_and_envelope(sim_factory):
    sim = quiet(sim_factory)
    make_errors(sim, 2)
    call(sim, "/api/session/start", "POST", raw=b"{bad", headers={"Content-Type": "application/json"})
    call(sim, "/api/session/bogus/end", "POST")
    status, _, stats = get_json(sim, "/api/errors/stats")
    assert status == 200
    assert list(stats) == ["total", "byType", "byCode", "byModule", "recent", "summary"]
    assert stats["total"] == 4 and stats["byType"] == {"UNKNOWN": 4}
    assert stats["byCode"] == {"VALIDATION_ERROR": 2, "UNKNOWN": 2}
    assert stats["byModule"] == {"express": 3, "session-end": 1}
    for entry in stats["recent"]:
        assert set(entry) == ENTRY_KEYS and ISO.match(entry["timestamp"])
    assert stats["recent"][2]["code"] is None  # the body parser's error has no code
    assert stats["recent"][3] == dict(stats["recent"][3], module="session-end", requestId=None, code=None,
                                      message="세션을 찾을 수 없습니다: bogus")
    assert stats["summary"] == {"total": 4, "byType": {"UNKNOWN": 4},
                                "byCode": {"VALIDATION_ERROR": 2, "UNKNOWN": 2},
                                "topModules": {"express": 3, "session-end": 1}}
    status, _, enveloped = get_json(sim, "/api/monitoring/error-stats")
    assert status == 200 and enveloped == {"success": True, "data": stats}


def test_counters_keep_first_seen_order_and_the_summary_sorts_by_count(sim_factory):
    sim = quiet(sim_factory)
    for i in range(6):  # six unknown sessions: UNKNOWN errors of module session-end
        call(sim, "/api/session/s%d/end" % i, "POST")
    sim.fault(error_spike="NETWORK:10")  # 50 NETWORK errors of module express
    stats = get_json(sim, "/api/errors/stats")[2]
    assert list(stats["byType"]) == ["UNKNOWN", "NETWORK"] and list(stats["byModule"]) == ["session-end", "express"]
    assert list(stats["summary"]["byType"]) == ["NETWORK", "UNKNOWN"]
    assert stats["summary"]["topModules"] == {"express": 50, "session-end": 6}
    assert list(stats["summary"]["byCode"].values()) == sorted(stats["byCode"].values(), reverse=True)


def test_recent_keeps_the_last_100_oldest_first(sim_factory):
    sim = quiet(sim_factory)
    ids = make_errors(sim, 105)
    stats = get_json(sim, "/api/errors/stats")[2]
    assert stats["total"] == 105
    assert [e["requestId"] for e in stats["recent"]] == ids[5:]


@pytest.mark.parametrize("query, limit, expected", [
    ("limit=2", 2, slice(0, 2)),
    ("", 20, slice(0, 20)),
    ("limit=abc", 20, slice(0, 20)),
    ("limit=0", 20, slice(0, 20)),
    ("limit=-3", -3, slice(0, -3)),
    ("limit=500", 500, slice(0, 500)),
    ("limit=7abc", 7, slice(0, 7)),
    ("limit=0x10", 16, slice(0, 16)),
    ("limit=3&limit=9", 3, slice(0, 3)),
])
def test_recent_errors_slices_from_the_front_like_parseint(sim_factory, query, limit, expected):
    sim = quiet(sim_factory)
    ids = make_errors(sim, 30)
    status, _, body = get_json(sim, "/api/monitoring/recent-errors?" + query)
    assert status == 200 and body["success"] is True
    data = body["data"]
    assert list(data) == ["count", "limit", "errors"]
    assert data["limit"] == limit
    assert [e["requestId"] for e in data["errors"]] == ids[expected]
    assert data["count"] == len(data["errors"])


def test_category_totals_equal_bytype_and_bad_categories_get_400(sim_factory):
    sim = quiet(sim_factory)
    sim.fault(error_spike="NETWORK:4")
    sim.fault(error_spike="DATABASE:2")
    by_type = get_json(sim, "/api/errors/stats")[2]["byType"]
    assert by_type == {"NETWORK": 20, "DATABASE": 10}
    for category in bemore_sim.CATEGORIES:
        status, _, body = get_json(sim, "/api/monitoring/errors/" + category.lower())
        assert status == 200
        assert body == {"success": True, "data": {"category": category, "count": 0,
                                                  "total": by_type.get(category, 0), "limit": 50, "errors": []}}
    assert get_json(sim, "/api/monitoring/errors/NETWORK?limit=5")[2]["data"]["limit"] == 5
    for bad in ("AI_SERVICE", "nope"):
        status, _, body = get_json(sim, "/api/monitoring/errors/" + bad)
        assert status == 400 and body["success"] is False
        assert body["error"]["code"] == "INVALID_CATEGORY" and "WEBSOCKET" in body["error"]["message"]


def test_monitoring_health_rates_errors_per_second(sim_factory):
    sim = quiet(sim_factory)
    body = get_json(sim, "/api/monitoring/health")[2]
    data = body["data"]
    assert body["success"] is True and list(data) == ["status", "uptime", "errorRate", "totalErrors",
                                                      "recentErrors", "timestamp"]
    assert data["status"] == "healthy" and data["errorRate"] == "0.0000" and isinstance(data["uptime"], int)
    assert abs(data["timestamp"] - time.time() * 1000) < 5000
    sim.fault(error_spike="DATABASE:100")  # 500 errors within the first seconds
    before = get_json(sim, "/health")[2]["uptime"]
    data = get_json(sim, "/api/monitoring/health")[2]["data"]
    after = get_json(sim, "/health")[2]["uptime"]
    assert data["totalErrors"] == 500 and data["recentErrors"] == 100
    assert re.match(r"^\d+\.\d{4}$", data["errorRate"])
    assert 500 / after - 0.0001 <= float(data["errorRate"]) <= 500 / before + 0.0001
    assert data["status"] == "unhealthy"


def test_temp_cleanup_stats_count_checks_at_the_env_interval(sim_factory, tmp_path):
    env = write_env(tmp_path, "TEMP_CLEANUP_INTERVAL_MIN=0.01\n")  # 0.6 s
    sim = quiet(sim_factory, extra=["--env-file", env])
    status, _, body = get_json(sim, "/api/system/temp-cleanup-stats")
    data = body["data"]
    assert status == 200 and body["success"] is True
    assert list(data) == ["filesDeleted", "bytesFreed", "checksRun", "lastCheckTime", "errors", "bytesFreedMB"]
    assert data["checksRun"] == 1 and data["bytesFreed"] == 0 and data["bytesFreedMB"] == "0.00"
    assert ISO.match(data["lastCheckTime"])
    # Waits for the checks, not for a time: a busy machine runs them late, never more often than the interval.
    started = time.monotonic()
    later = data
    while later["checksRun"] < 3:
        assert time.monotonic() - started < 30, "the cleanup service stopped checking: %s" % later
        time.sleep(0.1)
        later = get_json(sim, "/api/system/temp-cleanup-stats")[2]["data"]
    assert later["checksRun"] - 1 <= (time.monotonic() - started) / 0.6 + 1
    assert later["lastCheckTime"] > data["lastCheckTime"]


def test_cleanup_service_applies_the_policy_only_when_asked(sim_factory, tmp_path):
    env = write_env(tmp_path, "TEMP_FILE_MAX_AGE_DAYS=7\nTEMP_FILE_MAX_SIZE_MB=500\n")
    tmp = tmp_path / "app" / "tmp"
    (tmp / "sub").mkdir(parents=True)
    old, new, nested = tmp / "old.wav", tmp / "new.wav", tmp / "sub" / "older.wav"
    for path, size in ((old, 3000), (new, 1000), (nested, 500)):
        path.write_bytes(b"x" * size)
    stamp = time.time() - 9 * 86400
    os.utime(old, (stamp, stamp))
    os.utime(nested, (stamp, stamp))
    quiet(sim_factory, extra=["--env-file", env])
    assert old.exists()  # without --cleanup-tmp the service only counts its checks
    sim = quiet(sim_factory, extra=["--env-file", env, "--cleanup-tmp"])
    data = get_json(sim, "/api/system/temp-cleanup-stats")[2]["data"]
    assert not old.exists() and new.exists() and nested.exists()  # top-level regular files only
    assert data["filesDeleted"] == 1 and data["bytesFreed"] == 3000 and data["bytesFreedMB"] == "0.00"


def test_cleanup_faults_stall_the_service_and_record_file_errors(sim_factory):
    sim = quiet(sim_factory)
    fresh = get_json(sim, "/api/system/temp-cleanup-stats")[2]["data"]
    sim.fault(cleanup_stalled=True)
    stalled = get_json(sim, "/api/system/temp-cleanup-stats")[2]["data"]
    age = time.time() - datetime.strptime(stalled["lastCheckTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()
    assert stalled["checksRun"] == fresh["checksRun"] and 3 * 3600 - 60 < age < 3 * 3600 + 60  # 3 intervals
    sim.clear()
    sim.fault(cleanup_errors=2)
    data = get_json(sim, "/api/system/temp-cleanup-stats")[2]["data"]
    assert data["errors"] == 2 and data["checksRun"] == fresh["checksRun"] + 2
    stats = get_json(sim, "/api/errors/stats")[2]
    assert stats["byType"] == {"FILE": 2} and stats["byModule"] == {"TempFileCleanup": 2}
    assert all(e["code"] == "EACCES" and e["requestId"] is None for e in stats["recent"])


def test_session_start_end_and_the_open_session_count(sim_factory):
    sim = quiet(sim_factory)
    status, headers, body = get_json(sim, "/api/session/start", "POST", {"userId": "test", "counselorId": "test"})
    assert status == 201 and body["success"] is True  # the backend's code answers 201
    data = body["data"]
    assert re.match(r"^sess_\d{13}_[0-9a-f]{8}$", data["sessionId"])
    host = "127.0.0.1:%d" % sim.port
    assert data["wsUrls"] == {name: "ws://%s/ws/%s?sessionId=%s" % (host, name, data["sessionId"])
                              for name in ("landmarks", "voice", "session")}
    assert data["status"] == "active" and data["userId"] == "test" and isinstance(data["startedAt"], int)
    assert sim.control("GET", "/__sim/state")["sessions"] == {"open": 1, "ended": 0, "total": 1}
    assert sim.control("GET", "/__sim/faults")["open_sessions"] == 1
    status, _, ended = get_json(sim, "/api/session/%s/end" % data["sessionId"], "POST")
    assert status == 200 and ended["data"]["status"] == "ended" and ended["data"]["emotionSummary"] is None
    assert ended["data"]["duration"] == ended["data"]["endedAt"] - data["startedAt"]
    assert sim.control("GET", "/__sim/state")["sessions"] == {"open": 0, "ended": 1, "total": 1}
    assert get_json(sim, "/api/errors/stats")[2]["total"] == 0
    status, _, again = get_json(sim, "/api/session/%s/end" % data["sessionId"], "POST")
    assert status == 200 and again["data"]["endedAt"] == ended["data"]["endedAt"]


def test_session_end_holds_its_answer_for_the_grace_period(sim_factory):
    sim = sim_factory(extra=["--background-rps", "0", "--session-end-wait", "1.5"])
    sid = get_json(sim, "/api/session/start", "POST", {"userId": "u", "counselorId": "c"})[2]["data"]["sessionId"]
    result = {}

    def end():
        started = time.monotonic()
        result["status"] = call(sim, "/api/session/%s/end" % sid, "POST")[0]
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=end)
    thread.start()
    # Ended at once, answered later: the session closes while the answer is still on its way.
    while sim.control("GET", "/__sim/state")["sessions"]["open"] != 0:
        assert thread.is_alive(), "answered before the session was seen closed"
        time.sleep(0.05)
    thread.join(10)
    assert result["status"] == 200 and 1.4 < result["took"] < 5


def test_unknown_session_end_is_a_400_with_an_error_without_request_id(sim_factory):
    sim = quiet(sim_factory)
    status, _, body = get_json(sim, "/api/session/nope/end", "POST")
    assert status == 400
    assert body == {"success": False, "error": {"code": "SESSION_END_ERROR", "message": "세션을 찾을 수 없습니다: nope"}}
    entry = get_json(sim, "/api/errors/stats")[2]["recent"][-1]
    assert entry["module"] == "session-end" and entry["requestId"] is None


@pytest.mark.parametrize("raw, ctype, message, code", [
    (b"", None, "Validation failed", "VALIDATION_ERROR"),
    (b'{"userId": "x"}', "application/json", "Validation failed", "VALIDATION_ERROR"),
    (b'{"userId": 5, "counselorId": "c"}', "application/json", "Validation failed", "VALIDATION_ERROR"),
    (b'{"userId": "u", "counselorId": "c"}', "text/plain", "Validation failed", "VALIDATION_ERROR"),
    (b"{bad", "application/json", "Expected property name or '}' in JSON at position 1", "UNKNOWN"),
])
def test_bad_session_start_bodies_are_400_and_one_more_error(sim_factory, raw, ctype, message, code):
    sim = quiet(sim_factory)
    headers = {"Content-Type": ctype} if ctype else {}
    status, resp_headers, body = call(sim, "/api/session/start", "POST", raw=raw, headers=headers)
    body = json.loads(body)
    rid = resp_headers["x-request-id"]
    assert status == 400 and re.match(UUID, rid)
    assert list(body["error"]) == ["type", "message", "timestamp", "requestId", "code"]
    assert body["error"]["type"] == "UNKNOWN" and body["error"]["message"] == message
    assert body["error"]["code"] == code and body["error"]["requestId"] == rid
    stats = get_json(sim, "/api/errors/stats")[2]
    assert stats["total"] == 1 and stats["recent"][0]["requestId"] == rid
    assert [a for a in access_lines(sim) if a[5] == rid][0][2] == "400"


@pytest.mark.parametrize("raw, kind, level, colour", [
    (b"unauthorized", "AUTH", "WARN", "33"),
    (b"API", "AI_SERVICE", "ERROR", "31"),
    (b"ws", "WEBSOCKET", "ERROR", "31"),
    (b'{"note": "database"', "UNKNOWN", "ERROR", "31"),  # the message quotes no body past the position
])
def test_parse_errors_are_classified_by_their_message(sim_factory, raw, kind, level, colour):
    sim = quiet(sim_factory)
    call(sim, "/api/session/start", "POST", raw=raw, headers={"Content-Type": "application/json"})
    entry = get_json(sim, "/api/errors/stats")[2]["recent"][0]
    assert (entry["type"], entry["level"], entry["code"]) == (kind, level, None)
    if not raw.startswith(b"{"):
        assert entry["message"] == 'Unexpected token \'%s\', "%s" is not valid JSON' % (chr(raw[0]), raw.decode())
    assert [(e[0], e[1], e[4]) for e in error_entries(sim)] == [(colour, level, kind)]


def test_unknown_path_is_the_backend_404(sim_factory):
    sim = quiet(sim_factory)
    status, headers, body = get_json(sim, "/x?y=1")
    assert status == 404
    assert body == {"success": False, "error": {"code": "NOT_FOUND", "message": "Resource not found", "path": "/x",
                                                "requestId": headers["x-request-id"]}}
    assert get_json(sim, "/health", method="POST", body={})[0] == 404
    assert get_json(sim, "/API/Errors/Stats/")[0] == 200  # Express routes ignore case and a trailing slash


# --------------------------------------------------------------- headers

def test_rate_limit_headers_and_429_past_a_small_limit(sim_factory):
    sim = quiet(sim_factory, extra=["--rate-limit", "4"])
    remaining = []
    for _ in range(4):
        status, headers, _ = call(sim, "/health")
        assert status == 200 and headers["ratelimit-policy"] == "4;w=600" and headers["ratelimit-limit"] == "4"
        assert 599 <= int(headers["ratelimit-reset"]) <= 600
        remaining.append(int(headers["ratelimit-remaining"]))
    assert remaining == [3, 2, 1, 0]
    for _ in range(3):  # control routes are never limited
        sim.control("GET", "/__sim/faults")
    status, headers, body = call(sim, "/api/errors/stats")
    assert status == 429 and body == b"Too many requests, please try again later."
    assert headers["content-type"] == "text/html; charset=utf-8" and headers["retry-after"]
    assert "x-request-id" not in headers and headers["strict-transport-security"]
    assert len(access_lines(sim)) == 4  # the limiter answers before the access log
    sim.control("DELETE", "/__sim/rate-window")
    assert call(sim, "/health")[1]["ratelimit-remaining"] == "3"


def test_writes_carry_the_stricter_write_limiter(sim_factory):
    sim = quiet(sim_factory, extra=["--rate-limit", "10", "--write-rate-limit", "2"])
    statuses = []
    for _ in range(3):
        status, headers, _ = call(sim, "/api/session/nope/end", "POST")
        statuses.append(status)
    assert statuses == [400, 400, 429]
    assert headers["ratelimit-policy"] == "2;w=600"
    status, headers, _ = call(sim, "/health")  # reads still have room in the main window
    assert status == 200 and headers["ratelimit-policy"] == "10;w=600" and headers["ratelimit-remaining"] == "6"


def test_rate_window_resets_the_budget(sim_factory):
    sim = quiet(sim_factory, extra=["--rate-limit", "1", "--rate-window", "1"])
    assert [call(sim, "/health")[0] for _ in range(2)] == [200, 429]
    time.sleep(1.1)
    status, headers, _ = call(sim, "/health")
    assert status == 200 and headers["ratelimit-policy"] == "1;w=1"


def test_without_a_limiter_there_are_no_ratelimit_headers(sim_factory):
    sim = quiet(sim_factory, extra=["--rate-limit", "0"])
    headers = call(sim, "/health")[1]
    assert not [h for h in headers if h.startswith("ratelimit")]
    limited = quiet(sim_factory, extra=["--rate-limit", "2"])
    limited.fault(no_rate_limit=True)
    assert {call(limited, "/health")[0] for _ in range(4)} == {200}
    assert "ratelimit-limit" not in call(limited, "/health")[1]


def test_cors_allows_the_frontend_urls_and_refuses_others(sim_factory, tmp_path):
    env = write_env(tmp_path, "FRONTEND_URLS=https://app.bemore.dev, https://admin.bemore.dev\n")
    sim = quiet(sim_factory, extra=["--env-file", env, "--cors-origin", "https://extra.example"])
    for origin in ("https://app.bemore.dev", "https://admin.bemore.dev", "https://extra.example",
                   "https://be-more-frontend-git-x.vercel.app"):
        status, headers, body = call(sim, "/api/session/start", "OPTIONS", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert status == 204 and body == b"" and headers["access-control-allow-origin"] == origin
        assert "POST" in headers["access-control-allow-methods"].split(",")
        assert headers["vary"] == "Origin" and headers["access-control-allow-credentials"] == "true"
    for method in ("OPTIONS", "GET"):
        status, headers, body = call(sim, "/health", method, headers={"Origin": "http://localhost:5173"})
        assert status == 400, method  # FRONTEND_URLS replaces the built-in origins
        assert "access-control-allow-origin" not in headers
        error = json.loads(body)["error"]
        assert error["message"] == "CORS policy: Origin http://localhost:5173 is not allowed"
        assert error["code"] == "UNKNOWN" and error["requestId"] == headers["x-request-id"]
    assert get_json(sim, "/api/errors/stats")[2]["total"] == 2
    assert "❌ CORS: Blocked origin: http://localhost:5173" in log_lines(sim)
    plain = call(sim, "/health")[1]  # no Origin: allowed, without an allow-origin header
    assert "access-control-allow-origin" not in plain and plain["vary"] == "Origin"


def test_cors_built_in_origins_apply_without_frontend_urls(tmp_path):
    import subprocess  # pylint: disable=import-outside-toplevel

    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "sandbox", "bemore_sim.py"), "--port", str(port)]
                            + QUIET, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline, "the simulator did not start"
                time.sleep(0.05)
        server = type("Bare", (), {"port": port})()
        for origin in bemore_sim.CORS_DEFAULT_ORIGINS:
            assert call(server, "/health", headers={"Origin": origin})[0] == 200, origin
        assert call(server, "/health", headers={"Origin": "https://app.bemore.dev"})[0] == 400
    finally:
        proc.terminate()
        proc.wait(5)


def test_cors_command_line_list_wins_over_the_env_file(sim_factory, tmp_path):
    env = write_env(tmp_path, "FRONTEND_URLS=https://env.example\n")
    sim = quiet(sim_factory, extra=["--env-file", env, "--frontend-urls", "https://a.example,https://b.example"])
    assert call(sim, "/health", headers={"Origin": "https://b.example"})[0] == 200
    assert call(sim, "/health", headers={"Origin": "https://env.example"})[0] == 400


def test_helmet_headers_and_no_server_banner(sim):
    _, headers, body = call(sim, "/health")
    assert headers["strict-transport-security"] == "max-age=15552000; includeSubDomains"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy-report-only"].startswith("default-src 'self'")
    assert "x-powered-by" not in headers and "server" not in headers
    digest = base64.b64encode(hashlib.sha1(body).digest()).decode()[:27]
    assert headers["etag"] == 'W/"%x-%s"' % (len(body), digest)  # Express's weak ETag


# --------------------------------------------------------------- logs

def test_access_and_error_lines_match_by_request_id(sim_factory):
    sim = quiet(sim_factory)
    call(sim, "/health")
    status, headers, _ = call(sim, "/api/session/start", "POST", raw=b"")
    rid = headers["x-request-id"]
    lines = log_lines(sim)
    access = [i for i, line in enumerate(lines) if line.endswith("reqId=" + rid)]
    assert len(access) == 1
    line = lines[access[0]]
    assert re.match(r"^POST /api/session/start 400 190 - \d+\.\d{3} ms reqId=" + rid + "$", line)
    error = ERROR_LINE.match(lines[access[0] - 1])  # the error is written before its request's access line
    assert error and error.groups()[:2] == ("31", "ERROR") and error.group(4) == "express"
    assert error.group(5) == "UNKNOWN" and error.group(6) == "Validation failed"
    assert "\x1b[31m[ERROR]\x1b[0m \x1b[90m" in lines[access[0] - 1]
    entry = get_json(sim, "/api/errors/stats")[2]["recent"][-1]
    assert entry["requestId"] == rid and entry["timestamp"] == error.group(3)
    assert re.match(r"^GET /health 200 1\d\d - \d+\.\d{3} ms reqId=" + UUID + "$", lines[access[0] - 2])


def test_critical_lines_are_followed_by_a_stack_trace(sim_factory):
    sim = quiet(sim_factory)
    sim.fault(error_spike="DATABASE:2")
    lines = log_lines(sim)
    critical = [i for i, line in enumerate(lines) if line.startswith("\x1b[35m[CRITICAL]\x1b[0m")]
    assert len(critical) == 10
    for i in critical:
        assert lines[i + 1] == "\x1b[90mStack Trace:\x1b[0m"
        assert lines[i + 2].startswith("SequelizeConnectionError: database connection lost")
        assert lines[i + 3].startswith("    at ")
    failed = [a for a in access_lines(sim) if a[2] != "200" and a[2] != "201" and a[2] != "204"]
    assert {a[2] for a in failed} == {"500"} and len(failed) == 10


def test_error_spike_burst_has_the_asked_failure_share(sim_factory):
    sim = quiet(sim_factory)
    sim.fault(error_spike="GEMINI:7")  # a guide category, stored as the backend's type
    assert sim.control("GET", "/__sim/faults")["faults"]["error_spike"]["type"] == "AI_SERVICE"
    access = access_lines(sim)
    failed = [a for a in access if int(a[2]) >= 400]
    assert len(access) == bemore_sim.SPIKE_BURST and len(failed) == 35
    errors = error_entries(sim)
    assert len(errors) == 35 and {e[4] for e in errors} == {"AI_SERVICE"}
    stats = get_json(sim, "/api/errors/stats")[2]
    assert stats["byType"] == {"AI_SERVICE": 35}
    assert {e["requestId"] for e in stats["recent"]} == {a[5] for a in failed}


def with_own_log(sim_factory, tmp_path, name, *faults, extra=()):
    """A simulator writing a log of its own (the fixture's log is shared per test)."""
    log = str(tmp_path / name)
    sim = sim_factory(*faults, extra=["--log-file", log] + list(extra))
    sim.log_file = log
    return sim


def background_share(sim, skip=0, seconds=2.0):
    time.sleep(seconds)
    lines = access_lines(sim)[skip:]
    assert len(lines) >= 200 * seconds
    return sum(1 for a in lines if int(a[2]) >= 400), len(lines)


def test_background_traffic_fails_at_its_base_share_and_the_spike_share(sim_factory, tmp_path):
    quiet_one = with_own_log(sim_factory, tmp_path, "quiet.log",
                             extra=["--background-rps", "400", "--random-seed", "7"])
    failed, total = background_share(quiet_one)
    assert failed <= 3  # 0.02 % of about 800: well inside the guide's 0.1 %
    assert len(error_entries(quiet_one)) == failed
    quiet_one.stop()
    noisy = with_own_log(sim_factory, tmp_path, "noisy.log",
                         extra=["--background-rps", "400", "--random-seed", "7", "--base-failure", "0.05"])
    failed, total = background_share(noisy)
    assert 0.025 < failed / total < 0.075
    noisy.stop()
    spiked = with_own_log(sim_factory, tmp_path, "spiked.log", "error_spike=NETWORK:20",
                          extra=["--background-rps", "400", "--random-seed", "7"])
    failed, total = background_share(spiked, skip=bemore_sim.SPIKE_BURST)
    assert 0.15 < failed / total < 0.25


def test_request_errors_fail_every_client_request_but_health(sim_factory):
    sim = quiet(sim_factory, "request_errors=WEBSOCKET")
    assert call(sim, "/health")[0] == 200
    for n in range(3):
        status, headers, body = call(sim, "/api/errors/stats?n=%d" % n)
        assert status == 400 and json.loads(body)["error"]["type"] == "WEBSOCKET"
    sim.clear()
    stats = get_json(sim, "/api/errors/stats")[2]
    assert stats["byType"] == {"WEBSOCKET": 3} and len(error_entries(sim)) == 3


def test_control_routes_leave_no_trace(sim_factory):
    sim = quiet(sim_factory)
    before = log_lines(sim)
    sim.control("GET", "/__sim/state")
    sim.control("GET", "/__sim/faults")
    sim.control("POST", "/__sim/commit", {"commit": "feedbee"})
    assert log_lines(sim) == before
    assert get_json(sim, "/health")[2]["commit"] == "feedbee"


# --------------------------------------------------------------- faults

def test_restart_resets_what_a_process_restart_resets(sim_factory):
    sim = quiet(sim_factory, extra=["--rate-limit", "50"])
    make_errors(sim, 3)
    get_json(sim, "/api/session/start", "POST", {"userId": "u", "counselorId": "c"})
    sim.fault(health_down=True, latency_ms=5, memory_mb=8)
    time.sleep(0.3)
    sim.control("POST", "/__sim/restart")
    faults = sim.control("GET", "/__sim/faults")["faults"]
    assert faults == {"latency_ms": 5.0}  # the app's own trouble ends, the outside's stays
    status, headers, health = get_json(sim, "/health")
    assert status == 200 and health["uptime"] < 0.3
    assert headers["ratelimit-remaining"] == "49"
    assert get_json(sim, "/api/errors/stats")[2]["total"] == 0
    assert sim.control("GET", "/__sim/state")["sessions"]["total"] == 0
    lines = log_lines(sim)
    assert "🛑 Received SIGTERM. Shutting down gracefully..." in lines
    assert lines.count("🚀 서버 실행 중 (port): %d" % sim.port) == 2


def test_a_deployed_commit_survives_a_restart_and_a_release_file_is_read_again(sim_factory, tmp_path):
    sim = quiet(sim_factory, extra=["--commit", "aaa1111"])
    sim.control("POST", "/__sim/commit", {"commit": "bbb2222"})
    sim.control("POST", "/__sim/restart")
    assert get_json(sim, "/health")[2]["commit"] == "bbb2222"
    revision = tmp_path / "REVISION"
    revision.write_text("ccc3333\n")
    release = quiet(sim_factory, extra=["--commit-file", str(revision)])
    revision.write_text("ddd4444\n")
    assert get_json(release, "/health")[2]["commit"] == "ccc3333"
    release.control("POST", "/__sim/restart")
    assert get_json(release, "/health")[2]["commit"] == "ddd4444"


@pytest.mark.parametrize("fault, code, title", [
    ({"health_down": True}, 503, "503 Service Temporarily Unavailable"),
    ({"status_5xx": 502}, 502, "502 Bad Gateway"),
    ({"status_5xx": 500}, 500, "500 Internal Server Error"),
])
def test_a_dead_or_broken_app_answers_through_its_proxy(sim_factory, fault, code, title):
    sim = quiet(sim_factory)
    before = log_lines(sim)
    sim.fault(**fault)
    for path in ("/health", "/api/errors/stats", "/nope"):
        status, headers, body = call(sim, path)
        assert status == code and headers["server"] == "nginx" and headers["content-type"] == "text/html"
        assert ("<title>%s</title>" % title).encode() in body
        assert not [h for h in headers if h.startswith("ratelimit") or h == "x-request-id"]
    assert log_lines(sim) == before  # the app wrote nothing
    sim.clear()
    assert call(sim, "/health")[0] == 200


def test_malformed_json_cuts_answers(sim_factory):
    sim = quiet(sim_factory)
    sim.fault(malformed_json=True)
    status, _, body = call(sim, "/api/errors/stats")
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_latency_delays_app_answers_not_control_routes(sim_factory):
    sim = quiet(sim_factory)
    # 3 s: far above what a busy machine adds to a control route's answer.
    sim.fault(latency_ms=3000)
    started = time.monotonic()
    call(sim, "/health")
    assert time.monotonic() - started >= 3.0
    started = time.monotonic()
    sim.control("GET", "/__sim/faults")
    assert time.monotonic() - started < 2.0


def test_refuse_closes_the_port_for_a_while(sim_factory):
    sim = quiet(sim_factory)
    sim.fault(refuse_s=2)
    deadline = time.time() + 1.5  # the listeners close within one poll interval
    while True:
        try:
            socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()
        except ConnectionRefusedError:
            break
        except ConnectionResetError:  # queued on a listener that was closing
            pass
        assert time.time() < deadline, "the port still accepts connections"
        time.sleep(0.05)
    refused_at = time.time()
    deadline = refused_at + 5
    while time.time() < deadline:
        try:
            assert call(sim, "/health")[0] == 200
            break
        except (ConnectionRefusedError, ConnectionResetError):
            time.sleep(0.1)
    else:
        pytest.fail("the simulator did not listen again")
    assert time.time() - refused_at > 1.0  # refused for about the asked 2 s
    assert "refuse_s" not in sim.control("GET", "/__sim/faults")["faults"]


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


def test_memory_fault_grows_the_process(sim_factory):
    sim = quiet(sim_factory)
    before = rss_mb(sim.proc.pid)
    sim.fault(memory_mb=64)
    assert rss_mb(sim.proc.pid) - before > 50
    sim.fault(memory_mb=0)
    assert "memory_mb" not in sim.control("GET", "/__sim/faults")["faults"]


@pytest.mark.parametrize("body", [
    {"nonsense": 1}, {"error_spike": "NOPE"}, {"error_spike": "GEMINI:0"}, {"error_spike": "GEMINI:150"},
    {"latency_ms": -1}, {"status_5xx": 404}, {"status_5xx": "x"}, {"memory_mb": "lots"}, ["health_down"],
])
def test_bad_faults_are_refused(sim, body):
    status, _, payload = call(sim, "/__sim/faults", "POST", body)
    assert status == 400, body
    assert json.loads(payload)["error"]["code"] == "INVALID_FAULTS"
    assert sim.control("GET", "/__sim/faults")["faults"] == {}


def test_bad_command_lines_are_refused(tmp_path):
    import subprocess  # pylint: disable=import-outside-toplevel

    script = os.path.join(REPO, "sandbox", "bemore_sim.py")
    for argv, words in ((["--fault", "error_spike=NOPE"], "NOPE"), (["--ports", "9-2"], "--ports"),
                        (["--commit-file", str(tmp_path / "missing")], "commit")):
        proc = subprocess.run([sys.executable, script, "--port", "1"] + argv, capture_output=True, text=True,
                              timeout=20, check=False)
        assert proc.returncode != 0 and words in proc.stderr, argv


# --------------------------------------------------------------- many ports

def free_block(size, low=20000, high=32000):
    """``size`` consecutive free ports below the kernel's ephemeral range, where
    outgoing connections (ours or other processes') never take a port."""
    rng = random.Random()
    for _ in range(50):
        first = rng.randrange(low, high - size)
        probes = []
        try:
            for port in range(first, first + size):
                sock = socket.socket()
                probes.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in probes:
                sock.close()
    raise RuntimeError("no %d free consecutive ports between %d and %d" % (size, low, high))


def test_many_ports_answer_concurrently_with_their_own_buckets(sim_factory):
    first = free_block(99)
    ports = list(range(first, first + 99))
    sim = quiet(sim_factory, extra=["--rate-limit", "3", "--ports", "%d-%d" % (first, first + 98)])
    all_ports = [sim.port] + ports
    assert sim.control("GET", "/__sim/state")["ports"] == all_ports
    for _ in range(3):
        call(sim, "/health", port=ports[0])
    assert call(sim, "/health", port=ports[0])[0] == 429
    assert call(sim, "/health", port=ports[1])[1]["ratelimit-remaining"] == "2"
    sim.control("DELETE", "/__sim/rate-window")
    sim.fault(latency_ms=500)
    results = {}

    def one(port):
        started = time.monotonic()
        results[port] = (call(sim, "/health", port=port)[0], time.monotonic() - started)

    threads = [threading.Thread(target=one, args=(port,)) for port in all_ports]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    wall = time.monotonic() - started
    assert {status for status, _ in results.values()} == {200} and len(results) == 100
    assert min(took for _, took in results.values()) >= 0.5
    # One after another they would take 50 s; a busy machine adds seconds, not tens of them.
    assert wall < 10.0, "100 requests on 100 ports took %.2f s" % wall


# --------------------------------------------------------------- helpers

@pytest.mark.parametrize("kind", sorted(bemore_sim.FAILURES))
def test_synthetic_failures_classify_as_their_type(kind):
    for template in bemore_sim.FAILURES[kind]:
        got = bemore_sim.classify(template["message"], template.get("code"), template.get("name"),
                                  template.get("syscall"))
        assert got[0] == kind, template


# Messages of Node 20's JSON.parse / body-parser 2.2 (strict), taken from a run of both.
@pytest.mark.parametrize("body, message", [
    ("{bad", "Expected property name or '}' in JSON at position 1"),
    ('{"a":1,}', "Expected double-quoted property name in JSON at position 7"),
    ("[1,2", "Expected ',' or ']' after array element in JSON at position 4"),
    ('{"a":1} x', "Unexpected non-whitespace character after JSON at position 8"),
    ('{"a":"b', "Unterminated string in JSON at position 7"),
    ('{"a":tru}', 'Unexpected token \'}\', "{"a":tru}" is not valid JSON'),
    ('{"a":NaN}', 'Unexpected token \'N\', "{"a":NaN}" is not valid JSON'),
    ("unauthorized", 'Unexpected token \'u\', "unauthorized" is not valid JSON'),
    ("x" * 43, 'Unexpected token \'x\', "xxxxxxxxxx"... is not valid JSON'),
    ("[" + "1," * 12 + "z]", 'Unexpected token \'z\', ..."1,1,1,1,1,z]" is not valid JSON'),
    ("   ", "Unexpected end of JSON input"),
    ("null", 'Unexpected token \'n\', "null" is not valid JSON'),
])
def test_json_errors_read_like_nodes(body, message):
    with pytest.raises(ValueError) as exc:
        bemore_sim.strict_json(body.encode())
    assert str(exc.value) == message


@pytest.mark.parametrize("text, value", [
    ("20", 20), (" 7 ", 7), ("-3", -3), ("+4", 4), ("5abc", 5), ("2.9", 2), ("0x1F", 31), ("abc", None),
    ("", None), ("1e3", 1),
])
def test_js_parse_int(text, value):
    assert bemore_sim.js_parse_int(text) == value


def test_route_parameters_are_percent_decoded(sim_factory):
    sim = quiet(sim_factory)
    status, _, body = get_json(sim, "/api/monitoring/errors/%4Eetwork")
    assert status == 200 and body["data"]["category"] == "NETWORK"


# --------------------------------------------------------------- sandbox seeding

def test_seed_app_writes_the_backends_settings_and_log_formats(tmp_path):
    app = sandboxctl.seed_app(str(tmp_path / "app"))
    env = bemore_sim.parse_dotenv(os.path.join(app, ".env"))
    assert env["FRONTEND_URLS"] == "http://localhost:5173" and env["PORT"] == "3000"
    assert env["NODE_ENV"] == "development"
    assert {k: env[k] for k in env if k.startswith("TEMP_")} == {
        "TEMP_FILE_MAX_AGE_DAYS": "7", "TEMP_FILE_MAX_SIZE_MB": "2", "TEMP_CLEANUP_INTERVAL_MIN": "60"}
    with open(os.path.join(app, "config", "config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["development"]["dialect"] == "mysql"
    with open(os.path.join(app, "logs", "app.log"), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    access = [m.groups() for m in map(ACCESS.match, lines) if m]
    errors = [(i, m.groups()) for i, m in ((i, ERROR_LINE.match(line)) for i, line in enumerate(lines)) if m]
    assert len(access) >= 8 and {a[2] for a in access} >= {"200", "201", "400", "500"}
    assert [e[1][1] for e in errors] == ["WARN", "ERROR", "ERROR", "CRITICAL", "ERROR"]
    for i, groups in errors:  # every error line is followed by its request's access line (or a stack)
        following = lines[i + 1]
        if groups[1] == "CRITICAL":
            assert following == "\x1b[90mStack Trace:\x1b[0m" and lines[i + 3].startswith("    at ")
        else:
            assert ACCESS.match(following) and int(ACCESS.match(following).group(3)) >= 400
    for _, groups in errors:  # the types are the ones the backend's rules give those messages
        assert bemore_sim.classify(groups[5])[0] == groups[4]


def test_seed_app_replaces_a_log_in_the_old_invented_format(tmp_path):
    log = tmp_path / "app" / "logs" / "app.log"
    log.parent.mkdir(parents=True)
    log.write_text("2026-01-01T00:00:00.000Z ERROR [GEMINI] request to Gemini API timed out\n")
    sandboxctl.seed_app(str(tmp_path / "app"))
    assert "\x1b[" in log.read_text(encoding="utf-8")
    kept = "GET /health 200 107 - 1.000 ms reqId=x\n"
    log.write_text(kept)
    sandboxctl.seed_app(str(tmp_path / "app"))
    assert log.read_text() == kept  # a log in the backend's format is the operator's, kept


def _db():
    pymysql = pytest.importorskip("pymysql")
    try:
        return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3,
                               autocommit=True)
    except pymysql.MySQLError as exc:
        require(False, "MariaDB on 127.0.0.1:3306", "%s; apt-get install -y mariadb-server" % exc)


def test_seed_db_creates_the_backends_tables_concurrently_and_fragments_sessions():
    conn = _db()
    results = []
    threads = [threading.Thread(target=lambda: results.append(sandboxctl.seed_db())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 2 and all(r.startswith("seeded bemore schema") for r in results), results
    with conn.cursor() as cur:
        cur.execute("SELECT table_name, engine, table_collation, data_free FROM information_schema.tables "
                    "WHERE table_schema = 'bemore'")
        tables = {row[0]: row[1:] for row in cur.fetchall()}
        assert set(sandboxctl.SEED_TABLES) <= set(tables)
        assert "User" not in tables and "Session" not in tables
        for name in sandboxctl.SEED_TABLES:
            assert tables[name][0] == "InnoDB" and tables[name][1].startswith("utf8"), name
        assert tables["sessions"][2] > 0  # something for OPTIMIZE to reclaim
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'bemore' "
                    "AND table_name = 'sessions' ORDER BY ordinal_position")
        assert [r[0] for r in cur.fetchall()] == ["id", "sessionId", "userId", "counselorId", "status", "startedAt",
                                                  "endedAt", "duration", "counters", "emotionsData", "createdAt",
                                                  "updatedAt"]
        counts = {}
        for name in sandboxctl.SEED_TABLES:
            cur.execute("SELECT COUNT(*) FROM `bemore`.`%s`" % name)
            counts[name] = cur.fetchone()[0]
        assert all(count >= 3 for count in counts.values()), counts
        assert counts["sessions"] < 50  # the filler rows are gone
    again = sandboxctl.seed_db()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM `bemore`.`counselings`")
        assert cur.fetchone()[0] == counts["counselings"] and again.startswith("seeded")
    conn.close()


def test_now_starts_the_simulators_clock_at_the_tests_time(sim_factory):
    sim = sim_factory(extra=["--now", "2030-01-01T00:00:00Z", "--background-rps", "0"])
    start = 1893456000  # 2030-01-01T00:00:00Z
    health = get_json(sim, "/health")[2]
    assert health["timestamp"].startswith("2030-01-01T00:0")
    monitoring = get_json(sim, "/api/monitoring/health")[2]["data"]
    assert start * 1000 <= monitoring["timestamp"] < (start + 600) * 1000
    # Uptime is a duration: the moved clock does not stretch it.
    assert 0 < health["uptime"] < 600


def test_a_bad_now_is_refused_by_name():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "sandbox", "bemore_sim.py"), "--port", str(free_port()),
                           "--now", "next tuesday"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--now must be epoch seconds or an ISO-8601 UTC time, got 'next tuesday'" in proc.stderr
