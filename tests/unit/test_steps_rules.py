"""The decision tables of module_utils/bemore_steps.py, pinned at each
threshold (just under, at, just over) and branch by branch.

The guide's thresholds are read from the roles' declared defaults
(roles/<role>/defaults/main.yml), as a run gets them, not from literals
here; the tables' own fallbacks for a missing option must agree with them.
Tests of error_step and health_step whose rules other branches change carry
`error_step`/`health_step` in their names.
"""

from __future__ import annotations

import os

import pytest
import yaml

from tests.helpers import REPO, register_module_utils

register_module_utils()

from ansible.module_utils import bemore_steps as steps  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.bemore_api import parse_time  # noqa: E402  pylint: disable=wrong-import-position

NOW = 1_800_000_000.0
MB = 1048576


def role_cfg(role):
    """A role's declared defaults without its prefix, as the runbook hands them to the tables (templates left out)."""
    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml")) as fh:
        defaults = yaml.safe_load(fh) or {}
    n = len(role) + 1
    return dict((k[n:], v) for k, v in defaults.items() if k.startswith(role + "_") and "{{" not in str(v))


ERRORS = role_cfg("error_monitoring")
LOGS = role_cfg("log_management")
DISK = role_cfg("disk_usage")
PERF = role_cfg("performance_check")
API = role_cfg("api_security")
HEALTH_CFG = role_cfg("health_check")
SMOKE = role_cfg("smoke_test")
CLEANUP = role_cfg("tmp_cleanup")


def test_the_guides_thresholds_are_the_roles_declared_defaults():
    """The roles declare the guide's numbers: 0.1/1/5 % errors, 10/100 error lines, 80/90 % disk, TLS 30/7 days, 200 ms."""
    assert (ERRORS["target_rate"], ERRORS["warning_rate"], ERRORS["critical_rate"]) == (0.1, 1.0, 5.0)
    assert (LOGS["errors_warning"], LOGS["errors_critical"]) == (10, 100)
    assert (DISK["warning_percent"], DISK["critical_percent"], DISK["days_warning"], DISK["days_critical"]) == (80, 90, 14, 3)
    assert (API["tls_warning_days"], API["tls_critical_days"]) == (30, 7)
    assert PERF["api_target_ms"] == 200


# --- severities and statuses ----------------------------------------------------------------

@pytest.mark.parametrize("values, worst", [
    ([], "none"), (["low"], "low"), (["high", "low"], "high"), (["low", "high"], "high"),
    (["medium", "critical", "low"], "critical"), (["critical", "none"], "critical"), (["high", "medium"], "high"),
    (["bogus", "low"], "low"), (["none", "none"], "none")])
def test_worst_severity_takes_the_highest_in_any_order(values, worst):
    """worst_severity: the highest of none < low < medium < high < critical, wherever it comes; unknown values ignored."""
    assert steps.worst_severity(values) == worst


@pytest.mark.parametrize("values, worst", [
    ([], "ok"), (["skipped", "not_run"], "ok"), (["warning", "ok"], "warning"), (["critical", "warning"], "critical"),
    (["warning", "critical", "ok"], "critical"), (["critical", "failed"], "failed"), (["ok", "exploded"], "failed"),
    (["not_applicable"], "ok")])
def test_worst_status_takes_the_highest_and_an_unknown_status_is_a_failure(values, worst):
    """worst_status: ok < warning < critical < failed; a status it does not know counts as failed."""
    assert steps.worst_status(values) == worst


def test_a_step_carries_alert_only_when_raised():
    """step() adds alert only when true, and copies the problems it is given."""
    problems = ["p"]
    out = steps.step("x", "ok", "none", "s", None, problems)
    assert out == {"step": "x", "status": "ok", "severity": "none", "summary": "s", "figures": {}, "problems": ["p"]}
    assert out["problems"] is not problems
    assert steps.step("x", "warning", "medium", "s", alert=True)["alert"] is True


def test_not_applicable_and_unreadable_steps():
    """A step that cannot run is not_applicable and no failure; one that could not read its input is a medium warning."""
    na = steps.not_applicable("disk_usage", "no shell")
    assert (na["status"], na["severity"], na["figures"]) == ("not_applicable", "none", {"reason": "no shell"})
    bad = steps.unreadable("disk_usage", "df failed")
    assert (bad["status"], bad["severity"], bad["problems"]) == ("warning", "medium", ["df failed"])
    assert steps.unreadable("disk_usage", "df failed", "high")["severity"] == "high"


# --- health --------------------------------------------------------------------------------------

@pytest.mark.parametrize("expected, actual, matches", [
    ("abc1234", "abc1234def", True), ("ABC1234DEF", " abc1234 ", True), ("abc123", "abc1234", False),
    ("abc123", "abc123", True), ("abc1234", "abc1235", False), ("", "abc1234", False), ("abc1234", None, False),
    ("abcdefg", "abcdef", False)])
def test_commits_match_by_a_prefix_of_at_least_seven(expected, actual, matches):
    """A hash of 7 or more characters matches by prefix either way round; shorter ones must be equal."""
    assert steps.commits_match(expected, actual) is matches


@pytest.mark.parametrize("uptime, previous, now_ts, previous_ts, restarted", [
    (None, 100, NOW, NOW - 60, False),          # no reading now
    (100, None, NOW, NOW - 60, False),          # no earlier reading
    (99, 100, None, None, True),                # uptime went down: a restart
    (100, 100, None, None, False),              # no timestamps: only a smaller uptime tells
    (5000, 100, None, None, False),
    (5000, 100, NOW - 600, NOW, False),         # a clock that went back judges nothing
    (1540, 1000, NOW, NOW - 600, False),        # 1540 + 60 == 1000 + 600: within the tolerance
    (1539, 1000, NOW, NOW - 600, True),         # one second less than the time that passed allows
    (1000, 1000, NOW, NOW, False),              # same instant
])
def test_health_step_restarted_since_compares_uptime_with_the_time_that_passed(uptime, previous, now_ts, previous_ts,
                                                                               restarted):
    """restarted_since: a smaller uptime, or less uptime gained than time passed (beyond the tolerance), is a restart."""
    assert steps.restarted_since(uptime, previous, now_ts, previous_ts, 60.0) is restarted


def test_restarted_since_defaults_to_a_minute_of_tolerance():
    """Without a tolerance given, 60 s of clock skew is allowed."""
    assert steps.restarted_since(1540, 1000, NOW, NOW - 600) is False
    assert steps.restarted_since(1539, 1000, NOW, NOW - 600) is True


HEALTH = {"status": "ok", "timestamp": "2027-01-15T08:00:00.000Z", "uptime_s": 500.5, "version": "1.0.0", "commit": None}


def health_reading(**health):
    return {"health": dict(HEALTH, **health), "error": None, "response_ms": 3.04}


def test_health_step_a_healthy_backend_is_ok_with_its_figures_and_state():
    """A healthy answer is ok/none; the state keeps the uptime and the backend's own time for the next run."""
    stp, state = steps.health_step(health_reading(commit="abc1234"), HEALTH_CFG, {}, NOW)
    assert (stp["status"], stp["severity"], stp["problems"]) == ("ok", "none", [])
    assert stp["figures"]["reachable"] is True and stp["figures"]["response_time_ms"] == 3.0
    assert stp["figures"]["restarted"] is False and stp["figures"]["commit_matches"] is None
    assert state == {"uptime_s": 500.5, "checked_at": parse_time(HEALTH["timestamp"]), "commit": "abc1234",
                     "version": "1.0.0"}


def test_health_step_a_status_other_than_ok_is_critical():
    """/health answering a status other than ok is critical."""
    stp, _state = steps.health_step(health_reading(status="error"), HEALTH_CFG, {}, NOW)
    assert (stp["status"], stp["severity"]) == ("critical", "critical")
    assert stp["summary"].startswith("unhealthy: ")


@pytest.mark.parametrize("commit, status, severity, matches", [
    ("abc1234ffff", "ok", "none", True), ("0000000dead", "critical", "high", False), (None, "warning", "medium", None)])
def test_health_step_the_expected_commit(commit, status, severity, matches):
    """An expected commit that matches is ok, a wrong one critical/high, none reported a medium warning."""
    stp, _state = steps.health_step(health_reading(commit=commit), dict(HEALTH_CFG, expected_commit="abc1234"), {}, NOW)
    assert (stp["status"], stp["severity"], stp["figures"]["commit_matches"]) == (status, severity, matches)


def test_health_step_a_wrong_commit_on_a_down_status_stays_critical():
    """Status not ok and a wrong commit: critical, severity critical (the worse of the two)."""
    stp, _state = steps.health_step(health_reading(status="error", commit="0000000"), {"expected_commit": "abc1234"}, {}, NOW)
    assert (stp["status"], stp["severity"]) == ("critical", "critical")
    assert len(stp["problems"]) == 2


@pytest.mark.parametrize("gained, tolerance, restarted", [(400, 60, False), (339, 60, True), (339, None, True),
                                                          (300, 200, False)])
def test_health_step_a_restart_uses_the_configured_tolerance(gained, tolerance, restarted):
    """A restart is found by the uptime gained against the time passed, with the role's tolerance (60 s declared)."""
    cfg = dict(HEALTH_CFG)
    if tolerance is None:
        cfg.pop("restart_tolerance")
    else:
        cfg["restart_tolerance"] = tolerance
    checked = parse_time(HEALTH["timestamp"])
    previous = {"uptime_s": 500.5 - gained, "checked_at": checked - 400}
    stp, _state = steps.health_step(health_reading(), cfg, previous, NOW)
    assert stp["figures"]["restarted"] is restarted
    assert (stp["status"], stp["severity"]) == (("warning", "medium") if restarted else ("ok", "none"))


def test_health_step_without_a_backend_time_uses_the_runs_now():
    """A /health without a timestamp is dated by the run's now."""
    _stp, state = steps.health_step(health_reading(timestamp=None), HEALTH_CFG, {}, NOW)
    assert state["checked_at"] == NOW


@pytest.mark.parametrize("verdict, status, severity", [
    ("healthy", "ok", "none"), ("degraded", "ok", "low"), ("unhealthy", "warning", "medium")])
def test_health_step_the_backends_own_verdict(verdict, status, severity):
    """The backend's verdict: degraded is low, unhealthy a medium warning."""
    reading = dict(health_reading(), monitoring={"status": verdict, "error_rate_per_s": 0.5})
    stp, _state = steps.health_step(reading, HEALTH_CFG, {}, NOW)
    assert (stp["status"], stp["severity"]) == (status, severity)
    assert stp["figures"]["monitoring_status"] == verdict and stp["figures"]["monitoring_error_rate_per_s"] == 0.5


def test_health_step_a_degraded_verdict_does_not_lower_a_worse_finding():
    """degraded adds nothing to a step that is already a warning."""
    reading = dict(health_reading(commit=None), monitoring={"status": "degraded", "error_rate_per_s": 0.5})
    stp, _state = steps.health_step(reading, {"expected_commit": "abc1234"}, {}, NOW)
    assert (stp["status"], stp["severity"]) == ("warning", "medium")


def test_health_step_down_and_went_down():
    """An unreachable /health is critical with no state; one that answered and then failed is 'went down'."""
    down = {"health": None, "error": {"endpoint": "/health", "reason": "connection refused"}}
    stp, state = steps.health_step(down, HEALTH_CFG, {}, NOW)
    assert (stp["status"], stp["severity"], stp["figures"]) == ("critical", "critical", {"reachable": False})
    assert stp["problems"] == ["service down: /health: connection refused"] and state is None
    stp, state = steps.health_step(health_reading(), HEALTH_CFG, {}, NOW, rechecked={"error": {"reason": "refused"}})
    assert stp["figures"] == {"reachable": False, "went_down": True} and state is None
    stp, _state = steps.health_step(health_reading(), HEALTH_CFG, {}, NOW, rechecked={"error": None})
    assert stp["status"] == "ok"


# --- error rate --------------------------------------------------------------------------------

T, W, C = ERRORS["target_rate"], ERRORS["warning_rate"], ERRORS["critical_rate"]
EPS = 0.001


@pytest.mark.parametrize("rate, expected", [
    (None, ("ok", "none", False)), (0.0, ("ok", "none", False)),
    (T - EPS, ("ok", "none", False)), (T, ("ok", "none", False)), (T + EPS, ("ok", "low", False)),
    (W - EPS, ("ok", "low", False)), (W, ("ok", "low", False)), (W + EPS, ("warning", "medium", True)),
    (C - EPS, ("warning", "medium", True)), (C, ("warning", "medium", True)), (C + EPS, ("critical", "high", True))])
def test_classify_rate_at_the_roles_declared_thresholds(rate, expected):
    """Above target low, above the alert rate a medium alert, above the high rate high: each threshold itself is the lower class."""
    assert steps.classify_rate(rate, ERRORS) == expected


@pytest.mark.parametrize("rate", [T - EPS, T, T + EPS, W - EPS, W, W + EPS, C - EPS, C, C + EPS])
def test_classify_rate_falls_back_to_the_declared_defaults(rate):
    """An option missing from the config is judged by the role's declared default, not another number."""
    assert steps.classify_rate(rate, {}) == steps.classify_rate(rate, ERRORS)


@pytest.mark.parametrize("window, expected", [
    ({"requests": 0, "errors": 3}, (None, 3, 0)), ({}, (None, 0, 0)), ({"requests": 1000, "errors": 1}, (0.1, 1, 1000)),
    ({"requests": 3, "errors": 1}, (33.3333, 1, 3)),
    ({"requests": 200, "errors": 0, "status": {"5xx": 4}}, (2.0, 4, 200)),      # no error lines: the 5xx lines
    ({"requests": 200, "errors": 2, "status": {"5xx": 4}}, (1.0, 2, 200))])     # error lines win over 5xx
def test_the_log_window_rate(window, expected):
    """log_error_rate: errors per request in percent (4 places); no requests is unknown, not zero."""
    assert steps.log_error_rate(window) == expected


def window(errors, requests, label="last 5 min"):
    return {"requests": requests, "errors": errors, "label": label}


STATS = {"total": 40, "by_type": {"NETWORK": 30, "API": 10}, "by_code": {}, "by_module": {}, "recent": []}


@pytest.mark.parametrize("errors, status, severity, alert", [
    (1, "ok", "none", False),          # 0.1 %: at the target
    (2, "ok", "low", False),           # 0.2 %
    (10, "ok", "low", False),          # 1 %: at the alert rate
    (11, "warning", "medium", True),   # 1.1 %
    (50, "warning", "medium", True),   # 5 %: at the high rate
    (51, "critical", "high", True)])   # 5.1 %
def test_error_step_judges_the_window_at_the_declared_thresholds(errors, status, severity, alert):
    """The error step's status, severity and alert at each of the role's thresholds, from 1000 requests."""
    stp, _state = steps.error_step(STATS, None, window(errors, 1000), ERRORS, {}, NOW)
    assert (stp["status"], stp["severity"], stp.get("alert", False)) == (status, severity, alert)
    if status != "ok":
        limit = "5" if status == "critical" else "1"
        assert stp["problems"][0].startswith("error rate %s %% is above %s %% (%d of 1000 requests, last 5 min)"
                                             % (steps._fmt(errors / 10.0, 2), limit, errors))


def test_error_step_figures_and_state():
    """The step reports the rate, its counts and thresholds; the state keeps the sample, the totals and the time."""
    stp, state = steps.error_step(STATS, None, window(3, 1000), ERRORS, {}, NOW)
    f = stp["figures"]
    assert (f["error_rate_percent"], f["window_errors"], f["window_requests"], f["window"]) == (0.3, 3, 1000, "last 5 min")
    assert f["thresholds_percent"] == {"target": 0.1, "alert": 1.0, "high": 5.0}
    assert f["by_category"]["NETWORK"] == 30 and f["rate_change_since_last_run"] is None
    assert state["samples"] == [{"ts": NOW, "rate": 0.3, "errors": 3, "requests": 1000}]
    assert (state["total"], state["by_type"], state["ts"]) == (40, STATS["by_type"], NOW)


def test_error_step_errors_per_minute_and_new_types_since_the_last_run():
    """Counters that grew since the last run give errors per minute and the types that are new."""
    previous = {"total": 10, "ts": NOW - 600, "by_type": {"NETWORK": 25}, "samples": [{"ts": NOW - 600, "rate": 0.5}]}
    stp, _state = steps.error_step(STATS, None, window(3, 1000), ERRORS, previous, NOW)
    assert stp["figures"]["errors_per_minute"] == 3.0
    assert stp["figures"]["new_by_type"] == {"NETWORK": 5, "API": 10}
    assert stp["figures"]["rate_change_since_last_run"] == pytest.approx(-0.2)


@pytest.mark.parametrize("previous, restarted", [
    ({"total": 50, "ts": NOW - 600}, False),   # counters went down: the backend restarted
    ({"total": 10, "ts": NOW}, False),          # no time passed
    ({"total": 10, "ts": NOW + 5}, False),      # a clock that went back
    ({"total": 10, "ts": NOW - 600}, True)])    # a restart reported by the health step
def test_error_step_gives_no_per_minute_rate_from_counters_it_cannot_compare(previous, restarted):
    """No errors-per-minute figure across a restart, a counter reset or a clock that did not move forward."""
    stp, _state = steps.error_step(STATS, None, window(3, 1000), ERRORS, previous, NOW, restarted=restarted)
    assert stp["figures"]["errors_per_minute"] is None


def test_error_step_unreadable_stats_are_a_medium_warning_that_says_why():
    """The statistics unreadable with a clean window: a medium warning naming the cause."""
    stp, state = steps.error_step(None, "HTTP 500", window(0, 1000), ERRORS, {}, NOW)
    assert (stp["status"], stp["severity"]) == ("warning", "medium")
    assert stp["problems"] == ["cannot read the error statistics: HTTP 500"]
    assert "total" not in state


def test_error_step_no_requests_is_unknown_not_zero():
    """A window without requests has no rate; the step says so and is ok."""
    stp, _state = steps.error_step(STATS, None, window(0, 0), ERRORS, {}, NOW)
    assert stp["figures"]["error_rate_percent"] is None and stp["status"] == "ok"
    assert stp["figures"]["note"] == "no requests in the window; the rate is unknown"


@pytest.mark.parametrize("verdict, status", [("unhealthy", "warning"), ("healthy", "ok"), (None, "ok")])
def test_error_step_without_a_log_takes_the_backends_verdict(verdict, status):
    """With no log, the backend calling itself unhealthy is a medium warning."""
    monitoring = {"status": verdict, "error_rate_per_s": 1.5} if verdict else None
    stp, _state = steps.error_step(STATS, None, None, ERRORS, {}, NOW, monitoring=monitoring)
    assert stp["status"] == status
    assert "needs the backend's log" in stp["figures"]["note"]


def test_error_step_history_keeps_the_declared_days():
    """Samples older than history_days are dropped; one exactly that old is kept."""
    keep = ERRORS["history_days"] * 86400.0
    previous = {"samples": [{"ts": NOW - keep - 1, "rate": 1.0}, {"ts": NOW - keep, "rate": 2.0}]}
    _stp, state = steps.error_step(STATS, None, window(1, 1000), ERRORS, previous, NOW)
    assert [s["rate"] for s in state["samples"]] == [2.0, 0.1]


# --- log review --------------------------------------------------------------------------------

LW, LC = LOGS["errors_warning"], LOGS["errors_critical"]


@pytest.mark.parametrize("errors, status, severity", [
    (0, "ok", "none"), (LW - 1, "ok", "none"), (LW, "warning", "medium"), (LW + 1, "warning", "medium"),
    (LC - 1, "warning", "medium"), (LC, "critical", "high"), (LC + 1, "critical", "high")])
def test_log_step_error_lines_at_the_declared_thresholds(errors, status, severity):
    """Error lines since the last review: from errors_warning a medium warning, from errors_critical high."""
    previous = {"position": {"inode": 1}}
    stp, _state = steps.log_step({"errors": errors, "lines": 1000}, LOGS, previous, NOW)
    assert (stp["status"], stp["severity"]) == (status, severity)
    stp, _state = steps.log_step({"errors": errors, "lines": 1000}, {}, previous, NOW)
    assert (stp["status"], stp["severity"]) == (status, severity), "the fallback differs from the declared default"


def test_log_step_new_signatures_after_the_first_review():
    """A signature not seen before is a medium warning, except on the first review, which only records them."""
    scan = {"errors": 1, "signatures": [{"signature": "E1", "count": 1}, {"signature": "E2", "count": 1}]}
    first, state = steps.log_step(scan, LOGS, {}, NOW)
    assert first["status"] == "ok" and first["figures"]["first_review"] is True and set(state["signatures"]) == {"E1", "E2"}
    later, _state = steps.log_step(scan, LOGS, {"position": {"i": 1}, "signatures": {"E1": "x"}}, NOW)
    assert (later["status"], later["severity"], later["figures"]["new_signatures"]) == ("warning", "medium", ["E2"])


@pytest.mark.parametrize("behind, before, growing", [(100, 50, True), (100, 100, False), (100, None, False), (0, 0, False)])
def test_log_step_a_growing_backlog(behind, before, growing):
    """A backlog is a warning only when it grew since the last run."""
    previous = {"position": {"i": 1}, "backlog_bytes": before}
    stp, state = steps.log_step({"backlog": {"bytes": behind}}, LOGS, previous, NOW)
    assert stp["figures"]["backlog_growing"] is growing
    assert (stp["status"], stp["severity"]) == (("warning", "medium") if growing else ("ok", "none"))
    assert state["backlog_bytes"] == behind


def test_log_step_known_signatures_are_bounded():
    """At most known_max signatures are kept, the newest first."""
    previous = {"position": {"i": 1}, "signatures": {"old": "2020-01-01T00:00:00Z", "mid": "2021-01-01T00:00:00Z"}}
    _stp, state = steps.log_step({"signatures": [{"signature": "new", "count": 1}]}, dict(LOGS, known_max=2), previous, NOW)
    assert set(state["signatures"]) == {"new", "mid"}


@pytest.mark.parametrize("seconds, text", [(None, "unknown"), (119, "119 s"), (120, "2 min"), (7199, "119 min"),
                                           (7200, "2.0 h")])
def test_durations_are_shown_in_their_unit(seconds, text):
    """How far behind a backlog is reads in s below 2 min, in min below 2 h, then in h."""
    assert steps._duration(seconds) == text


# --- disk --------------------------------------------------------------------------------------

def disk(used_percent, folder_mb=10.0, avail=50 * 1024 ** 3, used=50 * 1024 ** 3):
    return {"filesystem": {"mount": "/", "used_percent": used_percent, "avail_bytes": avail, "used_bytes": used},
            "folder": {"files": 3, "bytes": int(round(folder_mb * MB)), "largest": []}}


DW, DC = DISK["warning_percent"], DISK["critical_percent"]


@pytest.mark.parametrize("used, status", [(DW - 0.1, "ok"), (DW, "warning"), (DC - 0.1, "warning"), (DC, "critical"),
                                          (DC + 0.1, "critical")])
def test_disk_use_at_the_declared_thresholds(used, status):
    """Disk use from warning_percent is a warning, from critical_percent critical."""
    stp, _state = steps.disk_step(disk(used), DISK, {}, NOW)
    assert stp["status"] == status


LIMIT = DISK["folder_limit_mb"]
RATIO = DISK["folder_warning_ratio"]


@pytest.mark.parametrize("folder_mb, status", [
    (LIMIT * RATIO - 0.01, "ok"), (LIMIT * RATIO, "ok"), (LIMIT * RATIO + 0.01, "warning"),
    (LIMIT, "warning"), (LIMIT + 0.01, "critical")])
def test_the_temp_folder_against_its_declared_cap(folder_mb, status):
    """The temp folder above its cap is critical; above the warning ratio of it a warning; each bound itself is not."""
    stp, _state = steps.disk_step(disk(10, folder_mb), DISK, {}, NOW)
    assert stp["status"] == status, stp["problems"]


def test_the_temp_folder_warning_ratio_falls_back_to_the_declared_default():
    """Without folder_warning_ratio the role's declared ratio applies."""
    cfg = dict(DISK)
    del cfg["folder_warning_ratio"]
    assert steps.disk_step(disk(10, LIMIT * RATIO), cfg, {}, NOW)[0]["status"] == "ok"
    assert steps.disk_step(disk(10, LIMIT * RATIO + 0.01), cfg, {}, NOW)[0]["status"] == "warning"


def growth_history(days_to_full, avail=10 * 1024 ** 3):
    """Earlier samples that make the disk full in ``days_to_full`` days at a steady growth."""
    per_day = avail / days_to_full
    return {"samples": [{"ts": NOW - 86400 * 2, "used_bytes": 50 * 1024 ** 3 - 2 * per_day}]}, avail


@pytest.mark.parametrize("days, status, severity", [
    (DISK["days_critical"], "critical", "high"), (DISK["days_critical"] + 0.5, "warning", "medium"),
    (DISK["days_warning"], "warning", "medium"), (DISK["days_warning"] + 0.5, "ok", "none")])
def test_days_until_full_at_the_declared_thresholds(days, status, severity):
    """Full within days_critical is critical, within days_warning a warning; the day counts are inclusive."""
    previous, avail = growth_history(days)
    stp, _state = steps.disk_step(disk(50, avail=avail), DISK, previous, NOW)
    assert stp["figures"]["days_until_full"] == pytest.approx(days, abs=0.05)
    assert (stp["status"], stp["severity"]) == (status, severity)


def test_days_until_full_keeps_a_worse_status():
    """A disk already critical by its use stays critical when it is also filling within the warning days."""
    previous, avail = growth_history(10)
    stp, _state = steps.disk_step(disk(DC, avail=avail), DISK, previous, NOW)
    assert stp["status"] == "critical"


@pytest.mark.parametrize("samples, span_h, growth", [
    ([], 12, None), ([{"ts": NOW, "used_bytes": 1}], 12, None),
    ([{"ts": NOW - 3600, "used_bytes": 0}, {"ts": NOW, "used_bytes": 3600}], 2, None),      # span below the minimum
    ([{"ts": NOW - 7200, "used_bytes": 0}, {"ts": NOW, "used_bytes": 7200}], 2, 86400.0),  # span at the minimum
    ([{"ts": NOW, "used_bytes": 0}, {"ts": NOW, "used_bytes": 5}], 0, None),                # no time between them
    ([{"ts": "bad"}, {"used_bytes": 3}, {"ts": NOW - 86400, "used_bytes": 0}, {"ts": NOW, "used_bytes": 100}], 12, 100.0)])
def test_growth_per_day_is_a_least_squares_slope_over_enough_time(samples, span_h, growth):
    """Bytes per day from at least two good samples spanning min_span; bad samples are skipped."""
    got = steps.growth_per_day(samples, span_h * 3600.0)
    assert got == (None if growth is None else pytest.approx(growth))


@pytest.mark.parametrize("avail, growth, days", [(100, None, None), (100, 0, None), (100, -5, None), (100, 3, 33.3)])
def test_days_until_full_needs_growth(avail, growth, days):
    """No growth (or shrinking) means no day count."""
    assert steps.days_until_full(avail, growth) == days


def test_disk_history_keeps_the_declared_days():
    """Samples older than history_days are dropped, one exactly that old is kept."""
    keep = DISK["history_days"] * 86400.0
    previous = {"samples": [{"ts": NOW - keep - 1, "used_bytes": 1}, {"ts": NOW - keep, "used_bytes": 2}]}
    _stp, state = steps.disk_step(disk(10), DISK, previous, NOW)
    assert [s["used_bytes"] for s in state["samples"]] == [2, 50 * 1024 ** 3]


# --- temp cleanup ---------------------------------------------------------------------------------

CHECKED = "2027-01-15T08:00:00.000Z"
INTERVAL = CLEANUP["interval_min"]


def service(last=CHECKED, errors=0):
    return {"files_deleted": 0, "bytes_freed": 0, "checks_run": 1, "last_check_time": last, "errors": errors}


@pytest.mark.parametrize("age_s, late", [(2 * INTERVAL * 60, False), (2 * INTERVAL * 60 + 1, True), (-30, False)])
def test_the_cleanup_service_is_late_after_twice_its_declared_interval(age_s, late):
    """The service's last check older than twice the interval is a problem; exactly twice is not."""
    stp = steps.tmp_cleanup_step(CLEANUP, service(), None, None, None, None, parse_time(CHECKED) + age_s)
    assert bool(stp["problems"]) is late
    assert (stp["status"], stp["severity"]) == (("warning", "medium") if late else ("ok", "none"))
    assert stp["figures"]["service_last_check_age_s"] == max(0.0, age_s)


@pytest.mark.parametrize("uptime, late", [(2 * INTERVAL * 60, False), (2 * INTERVAL * 60 + 1, True), (None, False)])
def test_a_cleanup_service_that_never_ran_is_late_after_twice_its_interval_of_uptime(uptime, late):
    """No check yet is a finding only after the app has been up longer than twice the interval."""
    stp = steps.tmp_cleanup_step(CLEANUP, service(last=None), None, None, None, uptime, NOW)
    assert bool(stp["problems"]) is late
    assert stp["figures"]["service_last_check_age_s"] is None


def test_the_cleanup_interval_falls_back_to_the_declared_default():
    """Without interval_min the role's declared interval applies."""
    cfg = dict(CLEANUP)
    del cfg["interval_min"]
    at = parse_time(CHECKED) + 2 * INTERVAL * 60
    assert steps.tmp_cleanup_step(cfg, service(), None, None, None, None, at)["problems"] == []
    assert steps.tmp_cleanup_step(cfg, service(), None, None, None, None, at + 1)["problems"] != []


def test_the_cleanup_service_errors_and_an_unreadable_service():
    """Errors the service reports and a service that cannot be read are problems; check_service false reads nothing."""
    stp = steps.tmp_cleanup_step(CLEANUP, service(errors=2), None, None, None, None, parse_time(CHECKED))
    assert stp["problems"] == ["the app's cleanup service reports 2 errors"]
    stp = steps.tmp_cleanup_step(CLEANUP, None, "HTTP 503", None, None, None, NOW)
    assert stp["problems"] == ["cannot read the cleanup statistics: HTTP 503"] and stp["status"] == "warning"
    stp = steps.tmp_cleanup_step(dict(CLEANUP, check_service=False), None, "HTTP 503", None, None, None, NOW)
    assert (stp["status"], stp["problems"]) == ("ok", [])
    stp = steps.tmp_cleanup_step({}, None, None, None, None, None, NOW)
    assert stp["problems"] == ["cannot read the cleanup statistics: no answer"]


def test_a_cleanup_run_is_reported_with_its_counts():
    """The run's counts, what is left and why it is still over the cap are the step's figures and problems."""
    cleanup = {"files_deleted": 4, "bytes_freed": 4 * MB, "files_remaining": 2, "bytes_remaining": 3 * MB,
               "deleted_by": {"age": 3, "size_cap": 1}, "skipped_by": {"open": 1}, "errors": ["x: busy"],
               "over_cap": True, "env_changed": ["TEMP_FILE_MAX_AGE_DAYS"], "mode": "emergency"}
    stp = steps.tmp_cleanup_step(dict(CLEANUP, check_service=False), None, None, {"bytes": 9 * MB, "files": 9}, cleanup,
                                 None, NOW)
    f = stp["figures"]
    assert (f["files_deleted"], f["folder_mb"], f["folder_files"], f["mode"]) == (4, 3.0, 2, "emergency")
    assert f["env_changed"] == ["TEMP_FILE_MAX_AGE_DAYS"] and f["deleted_by"] == {"age": 3, "size_cap": 1}
    assert stp["problems"] == ["still over the 500 MB cap: only protected (open or excluded) files remain", "cleanup: x: busy"]
    assert stp["summary"].startswith("deleted 4 files")
    plain = steps.tmp_cleanup_step(dict(CLEANUP, check_service=False), None, None, {"bytes": 9 * MB, "files": 9}, None,
                                   None, NOW)
    assert (plain["figures"]["mode"], plain["figures"]["folder_mb"], plain["status"]) == ("status", 9.0, "ok")


# --- performance -------------------------------------------------------------------------------

TARGET = PERF["api_target_ms"]
SLOW = TARGET * PERF["slowness_factor"]


@pytest.mark.parametrize("p95, status, severity", [
    (TARGET, "ok", "none"), (TARGET + 1, "warning", "medium"), (SLOW, "warning", "medium"), (SLOW + 1, "critical", "high")])
def test_api_latency_at_the_declared_target_and_slowness(p95, status, severity):
    """A p95 above the target is a medium warning, above target x slowness_factor high; each bound itself is not."""
    stp = steps.performance_step({"times_ms": [p95] * 20, "failed": 0}, None, PERF)
    assert (stp["status"], stp["severity"]) == (status, severity)
    stp = steps.performance_step({"times_ms": [p95] * 20, "failed": 0}, None, {})
    assert (stp["status"], stp["severity"]) == (status, severity), "the fallback differs from the declared default"


@pytest.mark.parametrize("rss, cpu, problems", [
    (1024, PERF["cpu_target_percent"], 0), (1024.5, 1, 1), (10, PERF["cpu_target_percent"] + 0.5, 1), (2000, 99, 2)])
def test_memory_and_cpu_at_their_targets(rss, cpu, problems):
    """Memory above its target and CPU above its target are each a problem; at the target they are not."""
    cfg = dict(PERF, memory_target_mb=1024)
    stp = steps.performance_step({"times_ms": [5], "failed": 0}, {"found": True, "rss_mb": rss, "cpu_percent": cpu}, cfg)
    assert len(stp["problems"]) == problems
    assert stp["status"] == ("warning" if problems else "ok")
    assert (stp["figures"]["rss_mb"], stp["figures"]["cpu_percent"]) == (rss, cpu)


def test_performance_failures_and_an_unmeasured_process():
    """Failed timed requests, no successful one, and a process not found are each a problem."""
    stp = steps.performance_step({"times_ms": [], "failed": 3}, {"found": False, "reason": "no pid"}, PERF)
    assert stp["problems"] == ["3 of the timed requests failed", "no timed request succeeded", "app process not measured: no pid"]
    assert stp["figures"]["samples"] == 3 and stp["figures"]["p95_ms"] is None
    assert steps.performance_step(None, None, PERF)["status"] == "ok"


@pytest.mark.parametrize("values, pct, expected", [
    ([], 50, None), ([7], 95, 7), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 51, 3), ([1, 2, 3, 4], 100, 4),
    ([4, 3, 2, 1], 0, 1), (list(range(1, 21)), 95, 19)])
def test_nearest_rank_percentile(values, pct, expected):
    """percentile: the nearest-rank value, at least the first, at most the last."""
    assert steps.percentile(values, pct) == expected


# --- API security --------------------------------------------------------------------------------

TW, TC = API["tls_warning_days"], API["tls_critical_days"]


@pytest.mark.parametrize("days, status, severity", [
    (0, "critical", "high"), (TC, "critical", "high"), (TC + 1, "warning", "medium"), (TW, "warning", "medium"),
    (TW + 1, "ok", "none"), (None, "ok", "none")])
def test_the_tls_certificate_at_the_declared_thresholds(days, status, severity):
    """A certificate expiring within tls_critical_days is critical/high, within tls_warning_days a medium warning."""
    stp = steps.api_security_step(API, {"days_left": days})
    assert (stp["status"], stp["severity"]) == (status, severity)
    stp = steps.api_security_step({}, {"days_left": days})
    assert (stp["status"], stp["severity"]) == (status, severity), "the fallback differs from the declared default"


def test_a_tls_error_is_critical():
    """A certificate that cannot be read or verified is critical/high."""
    stp = steps.api_security_step(API, {"error": "certificate verify failed"})
    assert (stp["status"], stp["severity"], stp["problems"]) == ("critical", "high", ["TLS: certificate verify failed"])


@pytest.mark.parametrize("cors, severity", [
    ({"problems": ["no Access-Control-Allow-Origin"]}, "medium"),
    ({"problems": ["allows a foreign origin"], "foreign_allowed": True}, "high"),
    ({"problems": ["allows *"], "wildcard": True}, "high"), ({"problems": []}, "none")])
def test_cors_problems(cors, severity):
    """A CORS problem is a warning; high when a foreign origin or any origin is allowed."""
    stp = steps.api_security_step(API, None, cors)
    assert stp["severity"] == severity
    assert stp["status"] == ("ok" if severity == "none" else "warning")


@pytest.mark.parametrize("rate, status, severity", [
    ({"limit": 100, "window_s": 900, "remaining": 99}, "ok", "none"),
    ({"limit": None}, "warning", "medium"),
    ({"limit": None, "probe": {"hit": False, "sent": 50}}, "critical", "high"),    # probed, never limited
    ({"limit": None, "probe": {"hit": True, "sent": 30}}, "warning", "medium"),
    ({"limit": None, "probe": {"hit": False, "error": "timeout", "sent": 3}}, "warning", "medium"),
    ({"error": "HTTP 500"}, "warning", "medium")])
def test_the_rate_limit(rate, status, severity):
    """No announced limit is a warning; a probe that never got a 429 makes it critical."""
    stp = steps.api_security_step(API, None, None, rate)
    assert (stp["status"], stp["severity"]) == (status, severity)


def test_a_worse_finding_is_not_lowered_by_a_later_milder_one():
    """TLS critical then a CORS warning: the step stays critical/high."""
    stp = steps.api_security_step(API, {"days_left": 1}, {"problems": ["missing"]}, {"limit": None})
    assert (stp["status"], stp["severity"]) == ("critical", "high") and len(stp["problems"]) == 3
    assert steps.api_security_step(API)["summary"] == "nothing checked"


# --- smoke test -----------------------------------------------------------------------------------

MARGIN = SMOKE["error_margin"]


@pytest.mark.parametrize("rate, failed", [(1.0 + MARGIN, False), (1.0 + MARGIN + 0.001, True), (None, False)])
def test_the_smoke_test_error_rate_against_the_baseline_and_the_declared_margin(rate, failed):
    """The error rate after the deploy may exceed the baseline by error_margin, not more."""
    stp = steps.smoke_step({"session_id": "s1", "ended": True}, rate, 1.0, SMOKE)
    assert (stp["status"], stp["severity"]) == (("critical", "high") if failed else ("ok", "none"))
    stp = steps.smoke_step({"session_id": "s1", "ended": True}, rate, 1.0, {})
    assert stp["status"] == ("critical" if failed else "ok"), "the fallback differs from the declared default"


def test_the_smoke_test_session():
    """A session that failed to start or to end fails the smoke test; a baseline unknown judges no rate."""
    assert steps.smoke_step({"error": "HTTP 500"}, 0.0, 0.0, SMOKE)["status"] == "critical"
    stp = steps.smoke_step({"session_id": "s1", "end_error": "timeout"}, 0.0, 0.0, SMOKE)
    assert stp["status"] == "critical" and "s1" in stp["problems"][0]
    stp = steps.smoke_step({"session_id": "s1", "ended": True}, 50.0, None, SMOKE)
    assert stp["status"] == "ok" and stp["figures"]["baseline_percent"] is None


# --- figures: the keys and values the report and the next run read -------------------------------

def test_disk_step_figures():
    """The disk step's figures, every key the report reads, with their units."""
    previous, avail = growth_history(20)
    stp, _state = steps.disk_step(disk(55.5, 12.5, avail=avail), DISK, previous, NOW)
    f = stp["figures"]
    assert f == {"mount": "/", "used_percent": 55.5, "avail_mb": round(avail / MB, 1), "used_mb": 51200.0,
                 "growth_mb_per_day": round(avail / 20 / MB, 2), "days_until_full": 20.0, "folder_mb": 12.5,
                 "folder_limit_mb": float(LIMIT), "warning_percent": float(DW), "critical_percent": float(DC),
                 "folder_files": 3, "largest_files": []}
    _stp, state = steps.disk_step(disk(10, 1), DISK, {}, NOW)
    assert state == {"samples": [{"ts": NOW, "used_bytes": 50 * 1024 ** 3, "folder_bytes": MB}]}


def test_disk_step_without_a_temp_folder():
    """No temp folder reading: no folder figures and no folder finding."""
    reading = disk(10)
    reading["folder"] = None
    stp, state = steps.disk_step(reading, DISK, {}, NOW)
    assert (stp["status"], stp["figures"]["folder_mb"], stp["figures"]["folder_files"]) == ("ok", None, None)
    assert stp["figures"]["largest_files"] == [] and state["samples"][0]["folder_bytes"] is None


def test_log_step_figures_and_state():
    """The log step's figures and the state the next review starts from."""
    scan = {"errors": 3, "lines": 40, "bytes": 4000, "levels": {"WARN": 2}, "requests": 30, "status": {"5xx": 1},
            "signatures": [{"signature": "E1", "count": 3}], "position": {"inode": 7, "offset": 4000},
            "rotations": [{"how": "renamed"}], "backlog": {"bytes": 0}}
    stp, state = steps.log_step(scan, LOGS, {"position": {"inode": 7}, "signatures": {"E1": "2027-01-01T00:00:00Z"}}, NOW,
                                "file /var/log/app.log")
    assert stp["figures"] == {
        "source": "file /var/log/app.log", "lines": 40, "bytes": 4000, "errors": 3, "warnings": 2,
        "levels": {"WARN": 2}, "requests": 30, "status_counts": {"5xx": 1}, "first_review": False, "new_signatures": [],
        "top_signatures": ["E1 x3"], "rotations": [{"how": "renamed"}], "backlog_bytes": 0, "backlog_seconds": None,
        "backlog_growing": False, "own_requests": 0, "own_errors": 0}
    assert state == {"position": {"inode": 7, "offset": 4000}, "signatures": {"E1": "2027-01-01T00:00:00Z"},
                     "backlog_bytes": 0, "reviewed": steps._iso(NOW)}
    assert stp["status"] == "ok"


def test_log_step_problems_of_the_scan_are_a_warning():
    """A problem the scan reports (an unreadable file) makes the review a medium warning."""
    stp, _state = steps.log_step({"problems": ["cannot read /var/log/app.log"]}, LOGS, {"position": {"i": 1}}, NOW)
    assert (stp["status"], stp["severity"], stp["problems"]) == ("warning", "medium", ["cannot read /var/log/app.log"])


def test_log_step_lists_at_most_twenty_new_signatures():
    """At most 20 new signatures become problems; all are in the figures."""
    sigs = [{"signature": "E%02d" % n, "count": 1} for n in range(25)]
    stp, _state = steps.log_step({"signatures": sigs}, LOGS, {"position": {"i": 1}}, NOW)
    assert len(stp["problems"]) == 20 and len(stp["figures"]["new_signatures"]) == 25


def test_performance_step_figures():
    """The performance step's figures: median and p95 rounded, the target, the sample count with failures."""
    stp = steps.performance_step({"times_ms": [10.04, 20.06, 30.0], "failed": 1, "endpoints": {"/health": 3}},
                                 {"found": True, "rss_mb": 100.0, "cpu_percent": 2.0}, PERF)
    assert stp["figures"] == {"median_ms": 20.1, "p95_ms": 30.0, "target_ms": float(TARGET), "samples": 4, "failed": 1,
                              "endpoints": {"/health": 3}, "rss_mb": 100.0, "cpu_percent": 2.0}


def test_error_step_figures_from_the_statistics():
    """The statistics give the totals, the guide's categories (0 where absent), the codes, modules and newest errors."""
    stats = {"total": 3, "by_type": {"NETWORK": 2, "CUSTOM": 1}, "by_code": {"E1": 3}, "by_module": {"api": 3},
             "recent": [{"message": "old"}, {"message": "new"}]}
    stp, _state = steps.error_step(stats, None, window(0, 100), dict(ERRORS, recent_limit=1), {}, NOW)
    f = stp["figures"]
    assert (f["total_errors"], f["by_code"], f["by_module"]) == (3, {"E1": 3}, {"api": 3})
    assert f["newest_errors"] == [{"message": "new"}] and f["latest_error"] == "new"
    assert f["by_category"]["NETWORK"] == 2 and f["by_category"]["DATABASE"] == 0 and "CUSTOM" not in f["by_category"]
    empty = dict(stats, recent=[])
    assert steps.error_step(empty, None, window(0, 100), ERRORS, {}, NOW)[0]["figures"]["latest_error"] is None


def test_error_step_the_monitoring_verdict_is_in_the_figures():
    """The backend's own verdict and rate are shown with the error step."""
    stp, _state = steps.error_step(STATS, None, window(0, 100), ERRORS, {}, NOW,
                                   monitoring={"status": "degraded", "error_rate_per_s": 0.25})
    assert (stp["figures"]["monitoring_status"], stp["figures"]["monitoring_error_rate_per_s"]) == ("degraded", 0.25)


def test_tmp_cleanup_step_figures():
    """The temp cleanup step shows the cap, the interval and the maximum age it judged with."""
    stp = steps.tmp_cleanup_step(dict(CLEANUP, check_service=False), None, None, {"bytes": 2 * MB, "files": 5}, None, None,
                                 NOW)
    f = stp["figures"]
    assert (f["cap_mb"], f["interval_min"], f["max_age_days"], f["folder_mb"], f["folder_files"]) == (
        float(CLEANUP["max_size_mb"]), float(INTERVAL), CLEANUP["max_age_days"], 2.0, 5)
    assert steps.tmp_cleanup_step({"check_service": False}, None, None, None, None, None, NOW)["figures"]["cap_mb"] == 500.0


@pytest.mark.parametrize("value, digits, text", [(None, 1, "unknown"), (2.0, 1, "2"), (2.25, 1, "2.2"), (2.5, 2, "2.5"),
                                                 (10, 0, "10"), (0.0001, 4, "0.0001"), (100.0, 1, "100")])
def test_numbers_are_shown_without_trailing_zeros(value, digits, text):
    """_fmt: a number with at most ``digits`` places, trailing zeros dropped; None is unknown."""
    assert steps._fmt(value, digits) == text


def test_rounding_keeps_unknown_unknown():
    """_round: None stays None, numbers are rounded to the places asked."""
    assert steps._round(None) is None and steps._round(2.345, 2) == 2.35 and steps._round("3.04") == 3.0


# --- each step's name, and options other than the defaults ----------------------------------------

def test_each_step_carries_its_report_name():
    """Each table names its step as the report and STEP_OF_ROLE know it."""
    reading = disk(10)
    names = [steps.health_step(health_reading(), HEALTH_CFG, {}, NOW)[0]["step"],
             steps.health_step({"health": None, "error": {"endpoint": "/health", "reason": "x"}}, {}, {}, NOW)[0]["step"],
             steps.error_step(STATS, None, window(0, 10), ERRORS, {}, NOW)[0]["step"],
             steps.log_step({}, LOGS, {}, NOW)[0]["step"],
             steps.disk_step(reading, DISK, {}, NOW)[0]["step"],
             steps.tmp_cleanup_step(CLEANUP, None, None, None, None, None, NOW)["step"],
             steps.performance_step(None, None, PERF)["step"],
             steps.api_security_step(API)["step"]]
    assert names == ["health", "health", "error_monitoring", "log_management", "disk_usage", "tmp_cleanup", "performance",
                     "api_security"]
    assert set(names) <= set(steps.STEP_OF_ROLE.values())
    assert steps.smoke_step({}, None, None, SMOKE)["step"] == "smoke_test"
    assert steps.unreadable("disk_usage", "x")["step"] == "disk_usage"
    assert steps.unreadable("disk_usage", "x")["figures"] == {}


def test_error_step_thresholds_given_are_the_ones_used():
    """Thresholds other than the defaults are the ones judged with and shown."""
    cfg = {"target_rate": 0.5, "warning_rate": 2.0, "critical_rate": 10.0}
    stp, _state = steps.error_step(STATS, None, window(30, 1000), cfg, {}, NOW)
    assert stp["figures"]["thresholds_percent"] == {"target": 0.5, "alert": 2.0, "high": 10.0}
    assert (stp["status"], stp["severity"]) == ("warning", "medium")
    assert stp["problems"][0].startswith("error rate 3 % is above 2 % ")
    stp, _state = steps.error_step(STATS, None, window(101, 1000), cfg, {}, NOW)
    assert stp["problems"][0].startswith("error rate 10.1 % is above 10 % ")
    assert steps.classify_rate(0.4, cfg) == ("ok", "none", False)
    assert steps.classify_rate(1.5, cfg) == ("ok", "low", False)


def test_options_other_than_the_defaults_are_the_ones_used():
    """min_span_h, history_days, interval_min, max_size_mb, the CPU and memory targets and the error margin are read."""
    previous = {"samples": [{"ts": NOW - 3600, "used_bytes": 0}]}
    assert steps.disk_step(disk(10), dict(DISK, min_span_h=2), previous, NOW)[0]["figures"]["growth_mb_per_day"] is None
    assert steps.disk_step(disk(10), dict(DISK, min_span_h=0.5), previous, NOW)[0]["figures"]["growth_mb_per_day"] is not None
    old = {"samples": [{"ts": NOW - 2 * 86400, "used_bytes": 1}]}
    assert len(steps.disk_step(disk(10), dict(DISK, history_days=1), old, NOW)[1]["samples"]) == 1
    assert len(steps.error_step(STATS, None, window(1, 10), dict(ERRORS, history_days=1),
                                {"samples": [{"ts": NOW - 2 * 86400, "rate": 1.0}]}, NOW)[1]["samples"]) == 1
    at = parse_time(CHECKED) + 2 * 10 * 60 + 1
    assert steps.tmp_cleanup_step(dict(CLEANUP, interval_min=10), service(), None, None, None, None, at)["problems"]
    assert steps.tmp_cleanup_step(dict(CLEANUP, max_size_mb=50), None, None, None, None, None, NOW)["figures"]["cap_mb"] == 50.0
    proc = {"found": True, "rss_mb": 600.0, "cpu_percent": 25.0}
    got = steps.performance_step({"times_ms": [5], "failed": 0}, proc, dict(PERF, memory_target_mb=500, cpu_target_percent=20))
    assert got["problems"] == ["memory 600.0 MB is above the 500 MB target", "CPU 25.0 % is above the 20 % target"]
    assert "memory 600.0 MB (target 500), CPU 25.0 % (target 20)" in got["summary"]
    assert steps.performance_step({"times_ms": [5], "failed": 0}, proc, {})["problems"] == []
    assert steps.smoke_step({"session_id": "s"}, 1.2, 1.0, {"error_margin": 0.1})["status"] == "critical"
    assert steps.smoke_step({"session_id": "s"}, 1.2, 1.0, {"error_margin": 0.3})["status"] == "ok"
    assert steps.api_security_step({"tls_critical_days": 2, "tls_warning_days": 5}, {"days_left": 3})["status"] == "warning"
    assert steps.api_security_step({"tls_critical_days": 2, "tls_warning_days": 5}, {"days_left": 6})["status"] == "ok"


# --- summaries: the one line a reader sees first ----------------------------------------------

def test_the_summaries_carry_the_figures():
    """Each summary line carries the step's key numbers (wording aside, a number missing is a wrong page)."""
    stp, _state = steps.health_step(dict(health_reading(commit="abc1234"), monitoring={"status": "healthy", "error_rate_per_s": 0.01}),
                                    HEALTH_CFG, {}, NOW)
    assert stp["summary"] == "healthy: version 1.0.0, commit abc1234, uptime 500 s; backend says healthy (0.01 errors/s)"
    stp, _state = steps.health_step(health_reading(uptime_s=5, version=None), HEALTH_CFG, {"uptime_s": 90}, NOW)
    assert stp["summary"] == "healthy: version unknown, commit unknown, uptime 5 s; restarted since the last run (uptime 5 s, was 90 s)"
    stp, _state = steps.disk_step(disk(42, 12.5), DISK, {}, NOW)
    assert stp["summary"] == "/ 42 % used, 51200 MB free, temp folder 12.5 MB of 500 MB cap (3 files)"
    stp = steps.performance_step({"times_ms": [10, 30], "failed": 0}, {"found": True, "rss_mb": 90.0, "cpu_percent": 1.5}, PERF)
    assert stp["summary"] == "API median 10 ms, p95 30 ms (target 200), memory 90.0 MB (target 1024), CPU 1.5 % (target 30)"
    stp = steps.api_security_step(API, {"days_left": 90}, {"problems": []}, {"limit": 100, "window_s": 900, "remaining": 7})
    assert stp["summary"] == "TLS 90 days left, CORS ok, rate limit 100 per 900 s (7 left)"
    stp = steps.api_security_step(API, {"error": "expired"}, {"problems": ["x"]}, {"limit": 5})
    assert stp["summary"].startswith("TLS error, CORS problems, rate limit 5 per ? s (None left); ")
    stp = steps.smoke_step({"session_id": "s", "ended": True}, 0.25, 0.125, SMOKE)
    assert stp["summary"] == "session start ok, end ok; error rate 0.25 % against a baseline of 0.125 %"
    stp = steps.smoke_step({"skipped": True}, None, None, SMOKE)
    assert stp["summary"] == ("session start skipped (check mode), end skipped; error rate unknown % against no judged baseline"
                              " (none was recorded before the deploy): the regression check against it cannot run;"
                              " the post-deploy rate is judged on its own thresholds")
    stp = steps.smoke_step({"session_id": "s", "end_error": "t"}, None, None, SMOKE)
    assert stp["summary"].startswith("session start ok, end FAILED;")
    assert steps.smoke_step({"error": "x"}, None, None, SMOKE)["summary"].startswith("session start FAILED, end skipped;")
    stp = steps.smoke_step({"session_id": "s"}, 2.0, 0.5, SMOKE)
    assert stp["problems"] == ["error rate 2 % is above the pre-deploy baseline of 0.5 %"]


def test_the_log_and_cleanup_summaries_carry_the_figures():
    """The log review and the temp cleanup summaries carry their counts."""
    scan = {"errors": 2, "lines": 50, "levels": {"WARN": 3}, "signatures": [{"signature": "E1", "count": 2}],
            "rotations": [{"how": "renamed"}, {"how": "truncated"}]}
    stp, _state = steps.log_step(scan, LOGS, {"position": {"i": 1}, "signatures": {"E1": "x"}}, NOW, "journal bemore")
    assert stp["summary"] == ("50 new line(s): 2 error(s), 3 warning(s), 0 new signature(s), top: E1 x2; "
                              "rotated: renamed, truncated (journal bemore)")
    stp, _state = steps.log_step({"errors": LC, "backlog": {"bytes": 3 * MB, "seconds_behind": 600}}, LOGS,
                                 {"position": {"i": 1}, "backlog_bytes": MB}, NOW)
    assert stp["problems"] == ["%d error lines since the last review (critical at %d)" % (LC, LC),
                               "the review stopped at its time budget: 3.0 MB (10 min behind) not read yet, "
                               "and the backlog grew since the last run"]
    cleanup = {"files_deleted": 4, "bytes_freed": 3 * MB, "files_remaining": 2, "bytes_remaining": MB // 2,
               "deleted_by": {"age": 3, "size_cap": 1}}
    stp = steps.tmp_cleanup_step(dict(CLEANUP, check_service=False), None, None, None, cleanup, None, NOW)
    assert stp["summary"] == "deleted 4 files (3 MB; age 3, cap 1), 2 files / 0.5 MB remain"
    assert stp["figures"]["bytes_freed"] == 3 * MB and stp["figures"]["folder_mb"] == 0.5
    stp = steps.tmp_cleanup_step(CLEANUP, service(), None, {"bytes": MB, "files": 4}, None, None, parse_time(CHECKED))
    assert stp["summary"] == "temp folder 1.0 MB (4 files) of the 500 MB cap; service: 1 checks, 0 files deleted"
    stp = steps.tmp_cleanup_step(CLEANUP, service(), None, None, None, None, parse_time(CHECKED) + 3 * 3600)
    assert stp["summary"] == ("cleanup service status; service: 1 checks, 0 files deleted: the app's cleanup service last ran "
                              "180 min ago, more than twice its 60 min interval")
    stp = steps.tmp_cleanup_step(CLEANUP, service(last=None), None, None, None, 3 * 3600, NOW)
    assert stp["problems"] == ["the app's cleanup service has not run once in 180 min of uptime (interval 60 min)"]


def test_error_step_summaries_carry_the_figures():
    """The error step's summary: the rate with its counts, or errors per minute, or why the rate is unknown; then the totals."""
    stp, _state = steps.error_step(STATS, None, window(3, 1000), ERRORS, {}, NOW)
    assert stp["summary"] == "error rate 0.3 % (3 of 1000 requests, last 5 min); 40 errors since start, top: NETWORK 30, API 10"
    previous = {"total": 10, "ts": NOW - 600}
    stp, _state = steps.error_step(STATS, None, None, ERRORS, previous, NOW)
    assert stp["summary"].startswith("3 errors/min since the last run; per-request rate needs the log; 40 errors since start")
    stp, _state = steps.error_step(dict(STATS, by_type={}), None, window(0, 0), ERRORS, {}, NOW)
    assert stp["summary"] == "no requests in the window (last 5 min); 40 errors since start"
    stp, _state = steps.error_step(None, "HTTP 500", None, ERRORS, {}, NOW)
    assert stp["summary"] == ("error rate unknown (no log; first reading of the counters); "
                              "cannot read the error statistics: HTTP 500")
    stp, _state = steps.error_step(None, "x", None, ERRORS, {}, NOW, monitoring={"status": "unhealthy", "error_rate_per_s": 0.125})
    assert stp["problems"][1] == "the backend calls itself unhealthy (0.125 errors/s since its start)"


# --- the last details a reader or the next run depends on -----------------------------------------

def test_a_missing_commit_never_matches():
    """No reported commit matches nothing, whatever is expected."""
    assert steps.commits_match("XXXX", None) is False and steps.commits_match(None, "XXXX") is False


def test_api_security_figures_hold_each_reading():
    """The TLS, CORS and rate limit readings are kept in the figures as read."""
    tls, cors, rate = {"days_left": 90}, {"problems": []}, {"limit": 100}
    assert steps.api_security_step(API, tls, cors, rate)["figures"] == {"tls": tls, "cors": cors, "rate_limit": rate}
    probe = {"limit": None, "probe": {"hit": False}}
    assert "no 429 after 0 requests" in steps.api_security_step(API, None, None, probe)["problems"][0]


def test_error_step_without_thresholds_shows_the_declared_defaults():
    """An error step given no thresholds judges and shows the role's declared ones."""
    stp, _state = steps.error_step(STATS, None, None, {}, {}, NOW)
    assert stp["figures"]["thresholds_percent"] == {"target": T, "alert": W, "high": C}
    assert (stp["figures"]["error_rate_percent"], stp["figures"]["window"]) == (None, None)


def test_error_step_precision_of_its_figures():
    """Errors per minute keep 3 places, the sample's time 1 place, the problem's rate 2 places."""
    previous = {"total": 35, "ts": NOW - 600}
    stp, state = steps.error_step(STATS, None, window(21, 2000), ERRORS, previous, NOW + 0.25)
    assert stp["figures"]["errors_per_minute"] == pytest.approx(0.5, abs=0.001)
    assert state["samples"][-1]["ts"] == round(NOW + 0.25, 1) and state["ts"] == round(NOW + 0.25, 1)
    assert stp["problems"][0].startswith("error rate 1.05 % is above 1 % (21 of 2000 requests")
    stp, _state = steps.error_step(STATS, None, window(52, 1000), dict(ERRORS, critical_rate=5.125), {}, NOW)
    assert stp["problems"][0].startswith("error rate 5.2 % is above 5.12 % ")


def test_disk_problems_say_what_and_how_far():
    """The disk problems name the mount, the use and the threshold, or the days until full."""
    stp, _state = steps.disk_step(disk(DW), DISK, {}, NOW)
    assert stp["problems"] == ["/ is %s %% full (warning at %s %%)" % (DW, DW)]
    previous, avail = growth_history(10)
    stp, _state = steps.disk_step(disk(10, avail=avail), DISK, previous, NOW)
    assert stp["problems"] == ["/ full in 10.0 days at the current growth"]
    previous, avail = growth_history(2)
    stp, _state = steps.disk_step(disk(10, avail=avail), DISK, previous, NOW)
    assert stp["problems"] == ["/ full in 2.0 days at the current growth"]
    stp, _state = steps.disk_step(disk(10, 450.125), DISK, {}, NOW)
    assert stp["figures"]["folder_mb"] in (450.12, 450.13)  # two places, however the float rounds
    assert stp["problems"] == ["temp folder %s MB is above 80 %% of the 500 MB cap" % stp["figures"]["folder_mb"]]
    stp, _state = steps.disk_step(disk(10, 501), DISK, {}, NOW)
    assert stp["problems"] == ["temp folder 501.0 MB is above the 500 MB cap; the cleanup is not keeping up"]


def test_health_figures_and_the_backends_own_time():
    """The health figures hold the version; the state is dated by the backend's own clock when it gives one."""
    reading = health_reading(timestamp="2027-01-15T09:00:00.000Z")
    stp, state = steps.health_step(reading, HEALTH_CFG, {}, NOW)
    assert state["checked_at"] == parse_time("2027-01-15T09:00:00.000Z") != NOW
    assert stp["figures"]["version"] == "1.0.0" and stp["figures"]["uptime_s"] == 500.5
    reading = dict(health_reading(), monitoring={"status": "unhealthy", "error_rate_per_s": 0.125})
    stp, _state = steps.health_step(reading, HEALTH_CFG, {}, NOW)
    assert stp["problems"] == ["the backend calls itself unhealthy: 0.125 errors/s since its start"]
    assert stp["summary"].endswith("; backend says unhealthy (0.125 errors/s)")


def test_log_step_shows_the_ten_most_frequent_signatures_without_a_ranking():
    """Without the scan's own ranking, the first ten signatures are the top ones shown."""
    sigs = [{"signature": "E%02d" % n, "count": 1} for n in range(12)]
    stp, _state = steps.log_step({"signatures": sigs}, LOGS, {}, NOW)
    assert len(stp["figures"]["top_signatures"]) == 10
    stp, _state = steps.log_step({"rotations": [{"how": "renamed"}, {}]}, LOGS, {}, NOW)
    assert stp["summary"].endswith("; rotated: renamed, ")


def test_smoke_step_figures():
    """The smoke test keeps the session, whether it ended, the rate and the baseline."""
    stp = steps.smoke_step({"session_id": "s1", "ended": True}, 0.5, 0.25, SMOKE)
    assert stp["figures"] == {"session_id": "s1", "ended": True, "error_rate_percent": 0.5, "baseline_percent": 0.25,
                              "rate_limited": False}


def test_cleanup_figures_keep_their_precision():
    """The folder size after a cleanup keeps 2 places; the freed size is shown with 2."""
    cleanup = {"files_deleted": 1, "bytes_freed": int(1.125 * MB), "files_remaining": 1, "bytes_remaining": int(0.125 * MB)}
    stp = steps.tmp_cleanup_step(dict(CLEANUP, check_service=False), None, None, None, cleanup, None, NOW)
    assert stp["figures"]["folder_mb"] == 0.12
    assert stp["summary"] == "deleted 1 files (1.12 MB; age 0, cap 0), 1 files / 0.12 MB remain"
    stp = steps.tmp_cleanup_step(CLEANUP, service(), None, None, None, None, parse_time(CHECKED) + 3 * 3600 + 9)
    assert "last ran 180.2 min ago" in stp["problems"][0]


def test_summaries_say_only_what_happened_with_their_precision():
    """A backlog that did not grow is not said to grow; rates and targets are shown with their places."""
    stp, _state = steps.log_step({"backlog": {"bytes": MB}}, LOGS, {"position": {"i": 1}, "backlog_bytes": 2 * MB}, NOW)
    assert stp["problems"] == ["the review stopped at its time budget: 1.0 MB not read yet"]
    stp = steps.performance_step({"times_ms": [5], "failed": 0}, {"found": True, "rss_mb": 10.0, "cpu_percent": 1.0}, {})
    assert stp["summary"].endswith("memory 10.0 MB (target 1024), CPU 1.0 % (target 30)")
    reading = dict(health_reading(), monitoring={"status": "healthy", "error_rate_per_s": 0.12345})
    assert steps.health_step(reading, HEALTH_CFG, {}, NOW)[0]["summary"].endswith("(%.4f errors/s)" % 0.12345)
    stp, _state = steps.error_step(STATS, None, None, ERRORS, {"total": 37.5, "ts": NOW - 600}, NOW)
    assert stp["summary"].startswith("0.25 errors/min since the last run")
    stp = steps.smoke_step({"session_id": "s"}, 5.0, 0.12345, SMOKE)
    assert stp["problems"][0].endswith("baseline of 0.123 %")


def test_the_last_keys_and_defaults_read():
    """critical_rate is read from the config, history_days has its default, the note and the warning ratio are exact."""
    assert steps.classify_rate(7.0, {"target_rate": 0.5, "warning_rate": 2.0, "critical_rate": 10.0}) == ("warning", "medium", True)
    cfg = dict(DISK)
    del cfg["history_days"]
    assert len(steps.disk_step(disk(10), cfg, {"samples": [{"ts": NOW - 29 * 86400, "used_bytes": 1}]}, NOW)[1]["samples"]) == 2
    stp, _state = steps.disk_step(disk(10, LIMIT * 0.555 + 1), dict(DISK, folder_warning_ratio=0.555), {}, NOW)
    assert stp["problems"][0].endswith("is above 55 % of the 500 MB cap")
    stp, _state = steps.error_step(STATS, None, None, ERRORS, {}, NOW)
    assert stp["figures"]["note"] == ("the per-request error rate needs the backend's log (bemore_log_source); "
                                      "reporting errors per minute and the backend's own verdict instead")
