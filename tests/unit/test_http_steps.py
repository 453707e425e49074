"""The health step's decision for each way /health can fail to give the health
JSON (bemore_steps.health_step), and the other readings' 429s."""

from __future__ import annotations

from ansible.module_utils.bemore_steps import health_step, performance_step

CFG = {"expected_commit": "", "restart_tolerance": 60}
NOW = 1796659200.0  # 2026-12-07T16:00:00Z, passed in: the decision never reads the clock


def unread(kind, reason, **extra):
    return {"health": None, "error": dict({"endpoint": "/health", "reason": reason, "status": None, "kind": kind},
                                          **extra), "response_ms": None}


def test_a_429_on_health_is_a_warning_with_its_reset_never_a_page():
    stp, state = health_step(unread("rate_limited", "rate limited (HTTP 429, resets in 42 s)", reset_s=42), CFG, now=NOW)
    assert (stp["status"], stp["severity"]) == ("warning", "medium")
    assert stp["summary"].startswith("rate limited (HTTP 429, resets in 42 s)")
    assert "service down" not in stp["summary"]
    assert stp["figures"]["reachable"] is True and stp["figures"]["state"] == "unknown"
    assert stp["figures"]["reset_s"] == 42
    assert state is None  # nothing learned: the uptime of the last run stays the reference


def test_a_429_without_a_reset_says_so():
    stp, _state = health_step(unread("rate_limited", "rate limited (HTTP 429, no reset time announced)", reset_s=None),
                              CFG, now=NOW)
    assert (stp["status"], stp["severity"]) == ("warning", "medium")
    assert "no reset time announced" in stp["summary"]


def test_a_429_with_a_reset_of_zero_says_zero():
    stp, _state = health_step(unread("rate_limited", "rate limited (HTTP 429, resets in 0 s)", reset_s=0), CFG, now=NOW)
    assert "resets in 0 s" in stp["summary"] and stp["figures"]["reset_s"] == 0


def test_a_non_json_200_on_health_answers_but_not_with_the_health_json():
    stp, _state = health_step(unread("json", "the answer is not JSON (HTTP 200, text/html, 512 bytes)", status=200),
                              CFG, now=NOW)
    assert stp["status"] == "critical"
    assert stp["summary"].startswith("/health answers, but not with the health JSON")
    assert "text/html" in stp["summary"] and "service down" not in stp["summary"]
    assert stp["figures"]["reachable"] is True


def test_a_json_health_answer_without_status_answers_but_not_with_the_health_json():
    stp, _state = health_step(unread("contract", "field 'status' is missing or not a string"), CFG, now=NOW)
    assert stp["status"] == "critical"
    assert stp["summary"].startswith("/health answers, but not with the health JSON")


def test_a_redirect_to_another_origin_is_named_and_high():
    reason = "redirected to https://elsewhere.example (HTTP 302); not followed: the token is sent only to http://api"
    stp, _state = health_step(unread("redirect", reason, status=302), CFG, now=NOW)
    assert (stp["status"], stp["severity"]) == ("critical", "high")
    assert "redirected to https://elsewhere.example" in stp["summary"] and "not followed" in stp["summary"]


def test_a_refused_connection_is_still_service_down_critical():
    stp, _state = health_step(unread("connect", "cannot connect to http://api: refused"), CFG, now=NOW)
    assert (stp["status"], stp["severity"]) == ("critical", "critical")
    assert stp["summary"].startswith("service down")
    assert stp["figures"]["reachable"] is False


def test_a_timed_out_health_is_still_service_down_critical():
    stp, _state = health_step(unread("timeout", "timed out: no complete answer within the 5.0s deadline"), CFG, now=NOW)
    assert (stp["status"], stp["severity"]) == ("critical", "critical")


def test_rate_limited_latency_samples_are_named_not_read_not_failed():
    latency = {"times_ms": [12.0, 14.0], "failed": 0, "failures": [], "endpoints": {},
               "rate_limited": {"endpoint": "/health", "reason": "rate limited (HTTP 429, resets in 9 s)",
                                "kind": "rate_limited", "status": 429, "reset_s": 9}}
    stp = performance_step(latency, None, {"api_target_ms": 200})
    assert (stp["status"], stp["severity"]) == ("warning", "medium")
    assert "latency samples not read after 2: rate limited (HTTP 429, resets in 9 s)" in stp["problems"]
    assert not any("failed" in p for p in stp["problems"])


def test_all_latency_samples_rate_limited_is_not_no_request_succeeded():
    latency = {"times_ms": [], "failed": 0, "failures": [], "endpoints": {},
               "rate_limited": {"endpoint": "/health", "reason": "rate limited (HTTP 429, resets in 9 s)",
                                "kind": "rate_limited", "status": 429, "reset_s": 9}}
    stp = performance_step(latency, None, {"api_target_ms": 200})
    assert stp["severity"] == "medium"
    assert "no timed request succeeded" not in stp["problems"]


def test_latency_not_read_because_health_did_not_answer_says_so():
    latency = {"times_ms": [], "failed": 0, "failures": [], "endpoints": {}, "rate_limited": None,
               "not_read": {"endpoint": "/health", "kind": "not_read",
                            "reason": "not read: /health did not answer (timed out)"}}
    stp = performance_step(latency, None, {"api_target_ms": 200})
    assert "latency samples not read: /health did not answer (timed out)" in stp["problems"]
    assert "no timed request succeeded" not in stp["problems"]
