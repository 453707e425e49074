"""The API contract and the shared HTTP client, against the real simulator."""

from __future__ import annotations

import time

import pytest

from ansible.module_utils.bemore_api import CATEGORIES, ApiError, Client, validate

GOOD_HEALTH = {"status": "ok", "timestamp": "2025-10-24T17:45:00.000Z", "uptime": 123456,
               "version": "1.0.0", "commit": "abc1234def567"}
GOOD_CLEANUP = {"success": True, "data": {"filesDeleted": 42, "bytesFreed": "5.23", "checksRun": 8,
                                          "lastCheckTime": "2025-10-24T17:30:00.000Z", "errors": 0}}


def test_the_guides_documented_examples_are_valid():
    assert validate("health", GOOD_HEALTH) == GOOD_HEALTH
    assert validate("temp_cleanup_stats", GOOD_CLEANUP)["filesDeleted"] == 42


@pytest.mark.parametrize("kind, body, reason", [
    ("health", [], "expected a JSON object"),
    ("health", dict(GOOD_HEALTH, uptime="12"), "field 'uptime' should be"),
    ("health", {k: v for k, v in GOOD_HEALTH.items() if k != "commit"}, "missing field 'commit'"),
    ("temp_cleanup_stats", {"success": False, "error": "x"}, "success=False"),
    ("temp_cleanup_stats", {"success": True}, "no 'data' object"),
    ("temp_cleanup_stats", {"success": True, "data": dict(GOOD_CLEANUP["data"], errors=True)}, "'errors'"),
    ("recent_errors", {"success": True, "data": {"errors": [{"id": "1"}], "count": 1, "limit": 5}},
     "errors[0] lacks a valid"),
])
def test_contract_violations_name_the_endpoint_and_field(kind, body, reason):
    with pytest.raises(ApiError) as exc:
        validate(kind, body, "/the/endpoint")
    assert reason in str(exc.value)
    assert exc.value.endpoint == "/the/endpoint"


@pytest.mark.parametrize("url", ["", "ftp://x", "api.bemore.dev", "http://"])
def test_client_refuses_bad_base_urls(url):
    with pytest.raises(ValueError, match="base_url"):
        Client(url)


def test_every_simulator_endpoint_honours_the_contract(sim):
    client = Client(sim.url, retries=0)
    client.get_json("health")
    stats, _ = client.get_json("error_stats")
    assert set(stats["byCategory"]) == set(CATEGORIES)
    recent, _ = client.get_json("recent_errors", query={"limit": 5})
    assert recent["count"] == len(recent["errors"]) <= 5
    for cat in CATEGORIES:
        data, _ = client.get_json("errors_by_category", "/api/monitoring/errors/" + cat)
        assert data["category"] == cat
    client.get_json("temp_cleanup_stats")


def test_a_4xx_is_not_retried_and_carries_the_servers_message(sim):
    client = Client(sim.url, retries=3, backoff=1)
    started = time.monotonic()
    with pytest.raises(ApiError) as exc:
        client.get_json("errors_by_category", "/api/monitoring/errors/NOPE")
    assert exc.value.status == 404
    assert "unknown error category" in exc.value.reason
    assert time.monotonic() - started < 1


def test_a_5xx_is_retried_then_reported(sim):
    sim.fault(status_5xx=503)
    with pytest.raises(ApiError, match="server error HTTP 503"):
        Client(sim.url, retries=1, backoff=0.01).get_json("health")


def test_malformed_json_is_a_clear_error(sim):
    sim.fault(malformed_json=True)
    with pytest.raises(ApiError, match="malformed JSON"):
        Client(sim.url, retries=0).get_json("error_stats")


def test_a_refused_connection_is_a_clear_error():
    from tests.conftest import free_port
    with pytest.raises(ApiError, match="cannot connect"):
        Client("http://127.0.0.1:%d" % free_port(), retries=0).get_json("health")


def test_a_slow_server_never_holds_the_client_past_its_bound(sim):
    sim.fault(latency_ms=3000)
    client = Client(sim.url, timeout=0.3, retries=1, backoff=0.1)
    started = time.monotonic()
    with pytest.raises(ApiError, match="timed out"):
        client.get_json("health")
    assert time.monotonic() - started < client.max_wall_time() + 0.5


def test_fetch_many_runs_concurrently(sim):
    sim.fault(latency_ms=300)
    client = Client(sim.url, retries=0)
    jobs = {cat: ("errors_by_category", "/api/monitoring/errors/" + cat, None) for cat in CATEGORIES}
    jobs["bad"] = ("errors_by_category", "/api/monitoring/errors/BAD", None)
    started = time.monotonic()
    results, failures = client.fetch_many(jobs)
    elapsed = time.monotonic() - started
    assert set(results) == set(CATEGORIES)
    assert list(failures) == ["bad"]
    # Nine requests of 300 ms each: sequentially 2.7 s; concurrently one round-trip.
    assert elapsed < 1.5
