"""The decision tables (module_utils/bemore_steps.py): readings in, report steps out."""

from __future__ import annotations

import pytest

from tests.helpers import register_module_utils

register_module_utils()

from ansible.module_utils import bemore_steps as steps  # noqa: E402  pylint: disable=wrong-import-position

RATES = {"target_rate": 0.1, "warning_rate": 1.0, "critical_rate": 5.0}
NOW = 1_800_000_000.0


# --- error rate ------------------------------------------------------------------------

@pytest.mark.parametrize("rate, status, severity, alert", [
    (None, "ok", "none", False),
    (0.0, "ok", "none", False),
    (0.1, "ok", "none", False),
    (0.11, "ok", "low", False),
    (1.0, "ok", "low", False),
    (1.01, "warning", "medium", True),
    (5.0, "warning", "medium", True),
    (5.01, "critical", "high", True),
    (20.0, "critical", "high", True),
])
def test_the_guides_error_rate_thresholds(rate, status, severity, alert):
    assert steps.classify_rate(rate, RATES) == (status, severity, alert)


@pytest.mark.parametrize("window, rate, errors", [
    ({"requests": 1000, "errors": 3, "status": {"5xx": 0}}, 0.3, 3),
    ({"requests": 1000, "errors": 0, "status": {"5xx": 7}}, 0.7, 7),      # no error lines: the 5xx lines
    ({"requests": 1000, "errors": 2, "status": {"5xx": 9}}, 0.2, 2),      # error lines win when present
    ({"requests": 0, "errors": 0, "status": {}}, None, 0),
])
def test_the_log_window_rate_counts_errors_per_request(window, rate, errors):
    got_rate, got_errors, _requests = steps.log_error_rate(window)
    assert got_rate == rate and got_errors == errors


STATS = {"total": 40, "by_type": {"NETWORK": 30, "DATABASE": 10}, "by_code": {}, "by_module": {},
         "recent": [{"type": "NETWORK", "message": "old", "level": "ERROR"},
                    {"type": "DATABASE", "message": "newest", "level": "CRITICAL"}]}


def test_a_spike_right_after_clean_runs_is_judged_on_its_own_window():
    previous = {"samples": [{"ts": NOW - 600, "rate": 0.01}, {"ts": NOW - 300, "rate": 0.02}],
                "total": 10, "ts": NOW - 300}
    window = {"requests": 1000, "errors": 70, "status": {}, "label": "the last 5 min of the journal"}
    stp, state = steps.error_step(STATS, None, window, RATES, previous, NOW)
    assert stp["status"] == "critical" and stp["severity"] == "high" and stp["alert"] is True
    assert stp["figures"]["error_rate_percent"] == 7.0
    assert stp["figures"]["rate_change_since_last_run"] == pytest.approx(6.98)
    assert len(state["samples"]) == 3


def test_the_newest_errors_come_from_the_end_of_recent_and_types_map_to_the_guides_categories():
    stp, _state = steps.error_step(STATS, None, {"requests": 100, "errors": 0}, RATES, {}, NOW)
    assert stp["figures"]["latest_error"] == "newest"
    assert stp["figures"]["by_category"]["DATABASE"] == 10 and stp["figures"]["by_category"]["GEMINI"] == 0
    assert stp["figures"]["by_type"] == {"NETWORK": 30, "DATABASE": 10}


def test_without_a_log_the_step_reports_errors_per_minute_and_says_the_rate_needs_the_log():
    previous = {"total": 10, "ts": NOW - 600}
    stp, state = steps.error_step(STATS, None, None, RATES, previous, NOW)
    assert stp["figures"]["errors_per_minute"] == 3.0
    assert stp["figures"]["error_rate_percent"] is None
    assert "needs the backend's log" in stp["figures"]["note"]
    assert stp["status"] == "ok" and state["total"] == 40


def test_a_restart_resets_the_counters_and_gives_no_negative_rate():
    previous = {"total": 500, "ts": NOW - 600}
    stp, _state = steps.error_step(STATS, None, None, RATES, previous, NOW, restarted=True)
    assert stp["figures"]["errors_per_minute"] is None


def test_an_unhealthy_verdict_without_a_log_is_a_warning():
    monitoring = {"status": "unhealthy", "error_rate_per_s": 1.5}
    stp, _state = steps.error_step(STATS, None, None, RATES, {}, NOW, monitoring=monitoring)
    assert stp["status"] == "warning" and stp["severity"] == "medium"


def test_unreadable_stats_are_a_warning_that_says_why():
    stp, state = steps.error_step(None, "/api/errors/stats: HTTP 500", {"requests": 100, "errors": 0}, RATES, {}, NOW)
    assert stp["status"] == "warning" and "HTTP 500" in stp["problems"][0]
    assert "total" not in state


def test_a_first_run_is_judged_like_any_other():
    window = {"requests": 200, "errors": 20, "status": {}, "label": "the whole log, first review"}
    stp, _state = steps.error_step(STATS, None, window, RATES, {}, NOW)
    assert stp["status"] == "critical"


# --- health ------------------------------------------------------------------------------

HEALTH = {"status": "ok", "timestamp": "2027-01-15T08:00:00.000Z", "uptime_s": 500.5, "version": "1.0.0",
          "commit": None}


def reading(**health):
    return {"health": dict(HEALTH, **health), "error": None, "response_ms": 3.0}


def test_a_null_commit_is_unknown_not_a_problem():
    stp, state = steps.health_step(reading(), {}, {}, NOW)
    assert stp["status"] == "ok" and stp["severity"] == "none" and stp["problems"] == []
    assert "commit unknown" in stp["summary"] and stp["figures"]["commit"] is None
    assert state["uptime_s"] == 500.5


def test_an_expected_commit_with_none_reported_says_how_to_fix_it():
    stp, _state = steps.health_step(reading(), {"expected_commit": "abc1234"}, {}, NOW)
    assert stp["status"] == "warning" and "GIT_COMMIT" in stp["problems"][0]


@pytest.mark.parametrize("expected, actual, matches", [
    ("abc1234", "abc1234def567", True), ("abc1234def567", "abc1234", True), ("abc1234", "abd1234def", False),
    ("abc", "abc", True), ("abc", "abcd", False), ("", "abc1234", False),
])
def test_commit_prefixes_of_seven_or_more_match(expected, actual, matches):
    assert steps.commits_match(expected, actual) is matches


def test_a_wrong_commit_is_critical():
    stp, _state = steps.health_step(reading(commit="0000000dead"), {"expected_commit": "abc1234"}, {}, NOW)
    assert stp["status"] == "critical" and stp["figures"]["commit_matches"] is False


def test_an_unreachable_service_is_critical_service_down():
    down = {"health": None, "error": {"endpoint": "/health", "reason": "cannot connect", "kind": "connect"}}
    stp, state = steps.health_step(down, {}, {}, NOW)
    assert stp["status"] == "critical" and stp["severity"] == "critical" and "service down" in stp["summary"]
    assert state is None


def test_a_service_that_went_down_during_the_run_is_critical():
    recheck = {"health": None, "error": {"endpoint": "/health", "reason": "cannot connect", "kind": "connect"}}
    stp, _state = steps.health_step(reading(), {}, {}, NOW, rechecked=recheck)
    assert stp["status"] == "critical" and "went down during the run" in stp["summary"]


@pytest.mark.parametrize("uptime, previous, restarted", [
    (30.0, {"uptime_s": 5000.0, "checked_at": NOW - 3600}, True),
    (8600.0, {"uptime_s": 5000.0, "checked_at": NOW - 3600}, False),
    (8600.0, {}, False),
    # A restart of a young process, well inside the tolerance: uptime fell.
    (5.0, {"uptime_s": 40.0, "checked_at": NOW - 10}, True),
    (45.0, {"uptime_s": 40.0, "checked_at": NOW - 10}, False),
    # Two runs seconds apart on a process started after the last one, with
    # more uptime than the last reading: found by the time that passed.
    (50.0, {"uptime_s": 40.0, "checked_at": NOW - 3600}, True),
])
def test_a_restart_since_the_last_run_is_medium(uptime, previous, restarted):
    health = dict(HEALTH, uptime_s=uptime, timestamp=None)
    stp, _state = steps.health_step({"health": health, "error": None}, {"restart_tolerance": 60}, previous, NOW)
    assert stp["figures"]["restarted"] is restarted
    assert stp["severity"] == ("medium" if restarted else "none")


def test_the_backends_own_unhealthy_verdict_is_shown_and_a_warning():
    stp, _state = steps.health_step(dict(reading(), monitoring={"status": "unhealthy", "error_rate_per_s": 2.0}),
                                    {}, {}, NOW)
    assert stp["status"] == "warning" and "unhealthy" in stp["summary"]


# --- log review -----------------------------------------------------------------------

SCAN = {"lines": 400, "errors": 3, "levels": {"WARN": 2, "ERROR": 2, "CRITICAL": 1}, "requests": 390,
        "signatures": [{"signature": "ERROR [express] (UNKNOWN) Validation failed", "count": 2},
                       {"signature": "CRITICAL [db] (DATABASE) connect ECONNREFUSED <ip>", "count": 1}],
        "position": {"files": {"/x": {"offset": 100}}}, "problems": [], "rotations": [], "backlog": {"bytes": 0}}


def test_the_first_review_is_a_baseline_for_signatures_but_judges_the_counts():
    cfg = {"errors_warning": 2, "errors_critical": 100}
    stp, state = steps.log_step(SCAN, cfg, {}, NOW)
    assert stp["figures"]["first_review"] is True and stp["figures"]["new_signatures"] == []
    assert stp["status"] == "warning" and "3 error lines" in stp["problems"][0]
    assert set(state["signatures"]) == {s["signature"] for s in SCAN["signatures"]}


def test_later_reviews_flag_new_signatures_only():
    cfg = {"errors_warning": 10, "errors_critical": 100}
    previous = {"position": {"files": {}}, "signatures": {"ERROR [express] (UNKNOWN) Validation failed": "x"}}
    stp, _state = steps.log_step(SCAN, cfg, previous, NOW)
    assert stp["figures"]["new_signatures"] == ["CRITICAL [db] (DATABASE) connect ECONNREFUSED <ip>"]
    assert stp["status"] == "warning"


def test_a_growing_backlog_is_a_warning_and_says_how_far_behind():
    cfg = {"errors_warning": 10, "errors_critical": 100}
    scan = dict(SCAN, errors=0, signatures=[], backlog={"bytes": 50 * 1048576, "seconds_behind": 5400})
    previous = {"position": {"files": {}}, "signatures": {}, "backlog_bytes": 10 * 1048576}
    stp, state = steps.log_step(scan, cfg, previous, NOW)
    assert stp["status"] == "warning" and stp["figures"]["backlog_growing"] is True
    assert "50.0 MB" in stp["problems"][0] and "90 min behind" in stp["problems"][0]
    assert state["backlog_bytes"] == 50 * 1048576


# --- disk -----------------------------------------------------------------------------------

DISK_CFG = {"warning_percent": 80, "critical_percent": 90, "days_warning": 14, "days_critical": 3,
            "folder_limit_mb": 500, "folder_warning_ratio": 0.8, "min_span_h": 12, "history_days": 30}


def disk(used_percent, folder_mb=10.0, avail=50 * 1024 ** 3, used=50 * 1024 ** 3):
    return {"filesystem": {"mount": "/", "used_percent": used_percent, "avail_bytes": avail, "used_bytes": used},
            "folder": {"files": 3, "bytes": int(folder_mb * 1048576), "largest": []}}


@pytest.mark.parametrize("used, folder, status, severity", [
    (50, 10, "ok", "none"), (80, 10, "warning", "medium"), (90, 10, "critical", "high"),
    (50, 401, "warning", "medium"), (50, 501, "critical", "high"),
])
def test_disk_thresholds(used, folder, status, severity):
    stp, _state = steps.disk_step(disk(used, folder), DISK_CFG, {}, NOW)
    assert (stp["status"], stp["severity"]) == (status, severity)


def test_days_until_full_from_the_growth_of_earlier_runs():
    previous = {"samples": [{"ts": NOW - 86400 * 2, "used_bytes": 50 * 1024 ** 3 - 2 * 10 * 1024 ** 3}]}
    stp, state = steps.disk_step(disk(50), DISK_CFG, previous, NOW)
    assert stp["figures"]["days_until_full"] == pytest.approx(5.0, abs=0.1)
    assert stp["status"] == "warning" and len(state["samples"]) == 2


# --- temp cleanup ------------------------------------------------------------------------

CLEAN_CFG = {"interval_min": 60, "max_size_mb": 500, "check_service": True}


@pytest.mark.parametrize("last, uptime, problem", [
    (None, 600, None),                              # the service has not checked yet, but the app just started
    (None, 3 * 3600, "has not run once"),
    ("2027-01-15T07:50:00.000Z", 3 * 3600, None),
    ("2027-01-15T05:00:00.000Z", 5 * 3600, "last ran"),
])
def test_the_cleanup_services_last_check(last, uptime, problem):
    now = 1_800_000_000.0
    from ansible.module_utils.bemore_api import parse_time  # pylint: disable=import-outside-toplevel
    now = parse_time("2027-01-15T08:00:00.000Z")
    service = {"files_deleted": 0, "bytes_freed": 0, "checks_run": 1, "last_check_time": last, "errors": 0}
    stp = steps.tmp_cleanup_step(CLEAN_CFG, service, None, None, None, uptime, now)
    if problem is None:
        assert stp["status"] == "ok", stp
    else:
        assert stp["status"] == "warning" and problem in stp["problems"][0]


def test_a_cleanup_run_is_folded_in_and_check_mode_says_would():
    cleanup = {"files_deleted": 4, "bytes_freed": 4 * 1048576, "files_remaining": 2, "bytes_remaining": 1048576,
               "deleted_by": {"age": 3, "size_cap": 1}, "errors": [], "over_cap": False}
    stp = steps.tmp_cleanup_step(CLEAN_CFG, None, "no answer", None, cleanup, None, NOW, check_mode=True)
    assert stp["summary"].startswith("would delete 4 files")
    assert stp["figures"]["folder_mb"] == 1.0 and stp["figures"]["cap_mb"] == 500.0
    assert stp["status"] == "warning"  # the service could not be read


# --- performance and API security -------------------------------------------------------------

PERF_CFG = {"api_target_ms": 200, "slowness_factor": 2.5, "memory_target_mb": 500, "cpu_target_percent": 30}


@pytest.mark.parametrize("times, status", [
    ([10] * 20, "ok"), ([10] * 18 + [300] * 2, "warning"), ([600] * 20, "critical"),
])
def test_latency_against_the_target(times, status):
    stp = steps.performance_step({"times_ms": times, "failed": 0}, None, PERF_CFG)
    assert stp["status"] == status
    assert stp["figures"]["target_ms"] == 200.0


def test_memory_above_the_target_is_a_problem():
    stp = steps.performance_step({"times_ms": [5], "failed": 0}, {"found": True, "rss_mb": 800.0, "cpu_percent": 3.0},
                                 PERF_CFG)
    assert stp["status"] == "warning" and stp["problems"][0].startswith("memory 800.0 MB")


@pytest.mark.parametrize("values, pct, expected", [([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 95, 4), ([], 50, None)])
def test_nearest_rank_percentiles(values, pct, expected):
    assert steps.percentile(values, pct) == expected


def test_api_security_reads_the_announced_limit_and_flags_an_open_cors():
    rate = {"limit": 600, "window_s": 600, "remaining": 590, "requests": 0}
    cors = {"frontend_allowed": True, "foreign_allowed": True, "problems": ["the API also allows the foreign origin x"]}
    stp = steps.api_security_step({}, None, cors, rate)
    assert "rate limit 600 per 600 s" in stp["summary"]
    assert stp["status"] == "warning" and stp["severity"] == "high"


def test_no_announced_limit_is_a_warning():
    stp = steps.api_security_step({}, None, None, {"limit": None, "requests": 0})
    assert stp["status"] == "warning" and "announces no limit" in stp["problems"][0]


# --- smoke test -------------------------------------------------------------------------------

def test_a_session_that_could_not_be_ended_fails_the_smoke_test():
    stp = steps.smoke_step({"session_id": "s1", "ended": False, "error": None, "end_error": "timed out"}, 0.0, 0.0, {})
    assert stp["status"] == "critical" and "could not be ended" in stp["problems"][0]


def test_an_error_rate_above_the_baseline_fails_the_smoke_test():
    stp = steps.smoke_step({"session_id": "s1", "ended": True}, 2.0, 0.5, {"error_margin": 0.5})
    assert stp["status"] == "critical" and "above the pre-deploy baseline" in stp["problems"][0]
