"""library/bemore_health.py: pure helpers and the module against the simulator."""

from __future__ import annotations

import pytest

from ansible.module_utils.bemore_api import parse_time
from tests.conftest import free_port, load_module

health = load_module("bemore_health")


@pytest.mark.parametrize("expected, actual, match", [
    ("abc1234", "abc1234def567", True),
    ("abc1234def567", "abc1234", True),
    ("ABC1234DEF567", "abc1234def567", True),
    ("abc123", "abc1234def567", False),  # too short to be a safe prefix
    ("abc1235", "abc1234def567", False),
    ("abc1234", "", False),
])
def test_commits_match(expected, actual, match):
    assert health.commits_match(expected, actual) is match


@pytest.mark.parametrize("uptime, prev_uptime, now, prev, tolerance, restarted", [
    (500, 100, 1400, 1000, 60, False),   # 400 s passed, uptime grew by 400
    (50, 100, 1400, 1000, 60, True),     # smaller than before
    (300, 100, 1400, 1000, 60, True),    # grew, but less than the 400 s that passed
    (300, 100, None, None, 60, False),   # without time stamps only "smaller" counts
    (90, 100, None, None, 60, True),
    (100, None, 1400, 1000, 60, False),  # nothing to compare with
])
def test_restarted_since(uptime, prev_uptime, now, prev, tolerance, restarted):
    assert health.restarted_since(uptime, prev_uptime, now, prev, tolerance) is restarted


def test_parse_time_accepts_the_guides_format_and_refuses_junk():
    assert parse_time("2025-10-24T17:45:00.000Z") == 1761327900.0
    assert parse_time("2025-10-24T19:45:00+0200") == 1761327900.0
    assert parse_time("yesterday") is None


def test_healthy_service(run_module, sim):
    result = run_module("bemore_health", {"base_url": sim.url})
    assert result["healthy"] is True and result["changed"] is False
    assert result["health"]["commit"] == "abc1234def567"
    assert result["response_time_ms"] > 0


def test_expected_commit_mismatch_is_unhealthy(run_module, sim):
    result = run_module("bemore_health", {"base_url": sim.url, "expected_commit": "fffffff"})
    assert result["healthy"] is False and result["commit_matches"] is False
    assert "expected 'fffffff'" in result["problems"][0]


def test_down_service_is_reported_not_raised(run_module, sim):
    sim.fault(health_down=True)
    result = run_module("bemore_health", {"base_url": sim.url, "retries": 0})
    assert result.get("failed") is None
    assert result["healthy"] is False
    assert result["problems"] == ["/health: server error HTTP 503"]


def test_refused_connection_is_reported(run_module):
    result = run_module("bemore_health", {"base_url": "http://127.0.0.1:%d" % free_port(), "retries": 0})
    assert result["healthy"] is False and "cannot connect" in result["problems"][0]


def test_bad_input_fails_clearly(run_module):
    result = run_module("bemore_health", {"base_url": "api.bemore.dev"})
    assert result["failed"] is True and "base_url must start with http" in result["msg"]
    result = run_module("bemore_health", {"base_url": "http://x", "timeout": 0})
    assert result["failed"] is True and "timeout" in result["msg"]


def test_api_token_is_never_echoed(run_module, sim):
    result = run_module("bemore_health", {"base_url": sim.url, "api_token": "s3cr3t-token-value"})
    assert "s3cr3t-token-value" not in repr(result)
