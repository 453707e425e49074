"""The sandbox simulator: routes, bad input, fault injection, CORS, rate limit."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest


def call(sim, path, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=-5"])
def test_bad_limits_get_a_400(sim, query):
    status, _, body = call(sim, "/api/monitoring/recent-errors?" + query)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "INVALID_LIMIT"


def test_unknown_category_and_route_get_a_404(sim):
    assert call(sim, "/api/monitoring/errors/websocket")[0] == 404  # categories are upper case
    assert call(sim, "/api/nothing")[0] == 404


def test_session_start_validates_its_body(sim):
    status, _, body = call(sim, "/api/session/start", "POST", {"userId": "test", "counselorId": "test"})
    assert status == 201 and json.loads(body)["data"]["status"] == "active"
    status, _, body = call(sim, "/api/session/start", "POST", {"userId": "test"})
    assert status == 400 and "counselorId" in json.loads(body)["error"]["message"]


def test_error_spike_raises_the_rate_of_that_category(sim):
    sim.fault(error_spike="GEMINI:7")
    data = json.loads(call(sim, "/api/errors/stats")[2])["data"]
    assert data["byCategory"]["GEMINI"] / data["totalRequests"] == pytest.approx(0.07, abs=0.005)
    assert data["byCategory"]["WEBSOCKET"] == 0
    with open(sim.log_file, encoding="utf-8") as handle:
        assert "ERROR [GEMINI]" in handle.read()


def test_bad_faults_are_refused(sim):
    for body in ({"nonsense": 1}, {"error_spike": "NOPE"}, {"latency_ms": -1}):
        status, _, payload = call(sim, "/__sim/faults", "POST", body)
        assert status == 400, body
        assert json.loads(payload)["error"]["code"] == "INVALID_FAULTS"


def test_cors_preflight_answers_only_the_allowed_origin(sim):
    _, headers, _ = call(sim, "/api/session/start", "OPTIONS", headers={
        "Origin": "https://app.bemore.dev", "Access-Control-Request-Method": "POST"})
    assert headers.get("Access-Control-Allow-Origin") == "https://app.bemore.dev"
    _, headers, _ = call(sim, "/api/session/start", "OPTIONS", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers


def test_rate_limit_answers_429_past_the_limit(sim_factory):
    sim = sim_factory(extra=["--rate-limit", "5"])
    statuses = [call(sim, "/api/errors/stats")[0] for _ in range(7)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429, 429]


def test_cleanup_stall_makes_the_last_check_old(sim):
    fresh = json.loads(call(sim, "/api/system/temp-cleanup-stats")[2])["data"]
    sim.fault(cleanup_stalled=True, cleanup_errors=2)
    stalled = json.loads(call(sim, "/api/system/temp-cleanup-stats")[2])["data"]
    assert stalled["lastCheckTime"] < fresh["lastCheckTime"]
    assert stalled["errors"] == 2
