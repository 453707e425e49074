"""Issue 24's rate rules: the runbook's own requests never count (item 1),
a rate from a handful of requests is not evidence (item 2)."""

from __future__ import annotations

import pytest

from tests.helpers import register_module_utils, load_module

register_module_utils()

from ansible.module_utils import bemore_api  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_checks  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_log_lines  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_logs  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_steps as steps  # noqa: E402  pylint: disable=wrong-import-position

RATES = {"target_rate": 0.1, "warning_rate": 1.0, "critical_rate": 5.0}
NOW = 1_800_000_000.0


def error_line(message, level="ERROR", kind="UNKNOWN", module="express"):
    return ("\x1b[31m[%s]\x1b[0m \x1b[90m2026-12-02T09:46:05.110Z\x1b[0m \x1b[34m[%s]\x1b[0m \x1b[33m(%s)\x1b[0m %s"
            % (level, module, kind, message)).encode()


OWN = bemore_api.RUNBOOK_REQUEST_ID_PREFIX


# --- item 1: the log core leaves the runbook's own traffic out ------------------------

def test_the_log_core_knows_the_clients_request_id_prefix_and_probe_origin():
    assert bemore_log_lines.OWN_REQUEST_ID.decode() == bemore_api.RUNBOOK_REQUEST_ID_PREFIX
    assert bemore_log_lines.OWN_PROBE_ORIGIN.decode() in bemore_checks.DEFAULT_PROBE_ORIGIN


def test_own_access_lines_and_the_probes_cors_error_are_left_out_and_counted_apart():
    lines = [
        b"GET /health 200 95 - 1.2 ms reqId=" + OWN.encode() + b"1",
        b"GET /api/errors/stats 503 20 - 1.2 ms reqId=" + OWN.encode() + b"2",
        b"OPTIONS /api/session/start - - - - ms reqId=" + OWN.encode() + b"3",
        b"OPTIONS /api/session/start 400 180 - 0.9 ms reqId=" + OWN.encode() + b"4",
        b"GET /api/x 500 20 - 3.0 ms reqId=5c1a0d62-0b3e-4b8e-9d0c-6f1e2b3a4c5d",
        b"GET /api/y 200 20 - 3.0 ms reqId=5c1a0d62-0b3e-4b8e-9d0c-6f1e2b3a4c5e",
        b"GET /api/z 404 20 - 3.0 ms reqId=5c1a0d62-0b3e-4b8e-9d0c-6f1e2b3a4c5f",
        "\u274c CORS: Blocked origin: https://bemore-runbook-probe.invalid".encode(),
        error_line("CORS policy: Origin https://bemore-runbook-probe.invalid is not allowed"),
        error_line("CORS policy: Origin https://attacker.example is not allowed"),
        # Not the probe: a host that only contains the name.
        error_line("CORS policy: Origin https://evil.example/bemore-runbook-probe is not allowed"),
        error_line("Validation failed"),
    ]
    tally = bemore_log_lines.Tally()
    tally.feed(b"\n".join(lines) + b"\n")
    window = tally.window()
    # The runbook's own 503 counts: a 5xx is a backend failure whoever asked.
    assert window["requests"] == 4 and window["own_requests"] == 3
    assert window["status"] == {"2xx": 1, "3xx": 0, "4xx": 1, "5xx": 2}
    assert window["errors"] == 3 and window["own_errors"] == 1
    result = tally.result(10)
    assert result["own_requests"] == 3 and result["own_errors"] == 1
    assert result["status_other"] == 0 and result["levels"]["ERROR"] == 3


def test_a_log_file_scan_reports_what_it_left_out(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"GET /health 200 95 - 1.2 ms reqId=" + OWN.encode() + b"a\n"
                    + error_line("CORS policy: Origin https://bemore-runbook-probe.invalid is not allowed") + b"\n"
                    + b"GET /health 200 95 - 1.2 ms reqId=abc\n")
    result = bemore_logs.scan_files([str(log)], {}, now=NOW)
    assert (result["requests"], result["errors"], result["own_requests"], result["own_errors"]) == (1, 0, 1, 1)


def test_the_window_and_the_summary_name_what_was_left_out():
    window = {"requests": 100, "errors": 0, "status": {}, "label": "the whole log, first review",
              "own_requests": 31, "own_errors": 1}
    stp, _state = steps.error_step(None, "x", window, RATES, {}, NOW)
    assert stp["figures"]["window_own_requests"] == 31 and stp["figures"]["window_own_errors"] == 1
    assert "left out: 31 of the runbook's own requests, 1 error line of its CORS probe" in stp["summary"]


STATS = {"total": 41, "by_type": {"UNKNOWN": 11, "NETWORK": 30}, "by_code": {}, "by_module": {}, "recent": []}


def test_the_probes_known_errors_are_subtracted_from_the_counters_change():
    previous = {"total": 40, "by_type": {"UNKNOWN": 10, "NETWORK": 30}, "ts": NOW - 60}
    stp, _state = steps.error_step(STATS, None, None, RATES, previous, NOW, own_caused={"UNKNOWN": 1})
    assert stp["figures"]["errors_per_minute"] == 0.0 and stp["figures"]["own_errors_subtracted"] == 1
    assert stp["figures"]["new_by_type"] == {}
    assert "1 error its own CORS probe added to the backend's counters" in stp["summary"]
    stp, _state = steps.error_step(STATS, None, None, RATES, previous, NOW)
    assert stp["figures"]["errors_per_minute"] == 1.0 and stp["figures"]["new_by_type"] == {"UNKNOWN": 1}


def test_a_refused_probe_waits_in_the_state_until_a_reading_of_the_counters_subtracts_it():
    module = load_module("bemore_checks")
    cors = {"foreign_status": 400, "foreign_allowed": False, "foreign_refused_by_backend": True}
    caused, pending, mine = module.own_errors_caused({}, cors, NOW)
    assert caused == {} and pending == [] and mine["count"] == 1 and mine["type"] == "UNKNOWN"
    caused, pending, _mine = module.own_errors_caused({"own_errors": [mine]}, None, NOW + 60)
    assert caused == {"UNKNOWN": 1} and pending == [mine]
    # An origin the API allowed made no error.
    assert module.own_errors_caused({}, {"foreign_status": 204, "foreign_allowed": True}, NOW)[2] is None


# --- item 2: the minimum sample ------------------------------------------------------------

@pytest.mark.parametrize("errors, requests, status, severity, judged", [
    (1, 5, "ok", "none", False),         # the 1 in 5: 20 %, not evidence
    (5, 5, "critical", "high", True),    # a dead database at night: enough failures whatever the traffic
    (15, 15, "critical", "high", True),
    (4, 99, "ok", "none", False),        # just under both minimums
    (4, 100, "warning", "medium", True),  # at the minimum of requests: 4 % is medium
    (2, 100, "warning", "medium", True),  # at the minimum of requests: 2 % is medium
    (2, 101, "warning", "medium", True),  # just over it
    (4, 20, "ok", "none", False),        # 20 %, under both minimums (the old rule's 20 requests: no longer enough)
    (5, 99, "critical", "high", True),   # at the minimum of errors
    (6, 99, "critical", "high", True),   # just over it
    (20, 104, "critical", "high", True),  # a real burst stays high
    (0, 5, "ok", "none", False),
    (0, 99, "ok", "none", False),
    (0, 100, "ok", "none", True),        # zero errors in enough requests is a judged 0 %
    (0, 1000, "ok", "none", True),
])
def test_the_minimum_sample_boundaries(errors, requests, status, severity, judged):
    rate = round(100.0 * errors / requests, 4)
    got_status, got_severity, alert, note = steps.judge_rate(rate, errors, requests, RATES)
    assert (got_status, got_severity) == (status, severity)
    assert alert is (severity in ("high", "medium"))
    assert (note is None) is judged


def test_the_minimums_are_options():
    cfg = dict(RATES, min_requests=5, min_errors=2)
    assert steps.judge_rate(20.0, 1, 5, cfg)[:2] == ("critical", "high")
    assert steps.judge_rate(20.0, 1, 5, dict(cfg, min_requests=6))[:2] == ("ok", "none")
    assert steps.judge_rate(40.0, 2, 5, dict(cfg, min_requests=6))[:2] == ("critical", "high")


def test_a_handful_of_requests_is_reported_with_its_counts_and_raises_nothing():
    window = {"requests": 5, "errors": 1, "status": {}, "label": "the last 5 min of the journal"}
    stp, state = steps.error_step(STATS, None, window, RATES, {}, NOW)
    assert stp["status"] == "ok" and stp["severity"] == "none" and not stp.get("alert")
    assert "1 error in 5 requests: too few to judge, below the minimums of 5 errors and 100 requests" in stp["summary"]
    assert stp["figures"]["rate_judged"] is False and stp["figures"]["error_rate_percent"] == 20.0
    assert state["samples"][-1] == {"ts": NOW, "rate": 20.0, "errors": 1, "requests": 5}


def test_a_burst_of_20_in_104_requests_stays_high():
    window = {"requests": 104, "errors": 20, "status": {}, "label": "the last 5 min of the journal"}
    stp, _state = steps.error_step(STATS, None, window, RATES, {}, NOW)
    assert stp["status"] == "critical" and stp["severity"] == "high" and stp["alert"] is True
    assert stp["figures"]["rate_judged"] is True


# --- item 14: a temp folder over its cap in the daily check --------------------------------

CLEAN_CFG = {"interval_min": 60, "max_size_mb": 2, "check_service": True}
SERVICE = {"files_deleted": 0, "bytes_freed": 0, "checks_run": 3, "last_check_time": "2027-01-15T07:40:00.000Z", "errors": 0}


def _now():
    from ansible.module_utils.bemore_api import parse_time  # pylint: disable=import-outside-toplevel
    return parse_time("2027-01-15T08:00:00.000Z")


@pytest.mark.parametrize("folder_bytes, status", [
    (2 * 1048576, "ok"),          # at the cap
    (2 * 1048576 + 1, "warning"),  # just over
    (int(3.86 * 1048576), "warning"),
])
def test_a_temp_folder_over_its_cap_is_a_warning_in_the_status_check(folder_bytes, status):
    folder = {"bytes": folder_bytes, "files": 25}
    stp = steps.tmp_cleanup_step(CLEAN_CFG, SERVICE, None, folder, None, 3600, _now())
    assert stp["status"] == status, stp
    if status == "warning":
        assert stp["severity"] == "medium"
        assert "over the 2 MB cap by" in stp["problems"][0]
        assert "last checked at 2027-01-15T07:40:00.000Z, 20 min ago" in stp["problems"][0]
        assert stp["figures"]["over_cap_bytes"] == folder_bytes - 2 * 1048576
    else:
        assert stp["figures"]["over_cap_bytes"] == 0


def test_over_the_cap_says_by_how_much_and_that_the_service_has_not_checked_yet():
    stp = steps.tmp_cleanup_step(CLEAN_CFG, dict(SERVICE, last_check_time=None), None,
                                 {"bytes": int(3.86 * 1048576), "files": 25}, None, 60, _now())
    assert stp["status"] == "warning"
    assert "temp folder 3.86 MB (25 files) is over the 2 MB cap by 1.86 MB; the app's cleanup service has not checked it yet" \
        == stp["problems"][0]


# --- item 6: a reading asked for and not usable is named --------------------------------

def _decide(api, roles=("health_check", "error_monitoring"), readings=None):
    from ansible.module_utils.runbook_plan import build_plan  # pylint: disable=import-outside-toplevel
    module = load_module("bemore_checks")
    inputs = {"bemore_base_url": "http://127.0.0.1:9", "bemore_log_source": "none"}
    roles_cfg = {"health_check": {"health_check_expected_commit": ""},
                 "error_monitoring": dict(("error_monitoring_" + k, v) for k, v in RATES.items())}
    plan = build_plan("api1", inputs, roles_cfg, list(roles))
    found, _state = module.decide(plan, api, readings or {}, {}, {}, NOW)
    return dict((s["step"], s) for s in found)


HEALTH = {"health": {"status": "ok", "timestamp": None, "uptime_s": 100.0, "version": "1.0.0", "commit": None},
          "error": None, "response_ms": 2.0, "rate": None}
BAD_MONITORING = {"data": None, "rate": None, "error": {
    "endpoint": "/api/monitoring/health", "reason": "the answer is not JSON", "kind": "http", "status": 200}}
GOOD_STATS = {"data": {"total": 0, "by_type": {}, "by_code": {}, "by_module": {}, "recent": []}, "error": None, "rate": None}


def test_a_malformed_monitoring_verdict_is_named_in_health_and_error_monitoring():
    found = _decide({"health": HEALTH, "monitoring": BAD_MONITORING, "error_stats": GOOD_STATS})
    for name in ("health", "error_monitoring"):
        stp = found[name]
        assert stp["status"] == "warning" and stp["severity"] == "low", stp
        assert stp["figures"]["unread"] == {"the backend's own verdict": "/api/monitoring/health: the answer is not JSON"}
        assert "could not use the backend's own verdict: /api/monitoring/health: the answer is not JSON" in stp["summary"]


def test_an_unreadable_log_window_is_named_not_just_listed():
    from ansible.module_utils.runbook_plan import build_plan  # pylint: disable=import-outside-toplevel
    module = load_module("bemore_checks")
    inputs = {"bemore_base_url": "http://127.0.0.1:9", "bemore_log_source": "file", "bemore_log_files": ["/nonexistent.log"]}
    plan = build_plan("api1", inputs, {"error_monitoring": {}}, ["error_monitoring"])
    api = {"health": HEALTH, "monitoring": {"data": {"status": "healthy", "error_rate_per_s": 0.0}, "error": None, "rate": None},
           "error_stats": GOOD_STATS}
    found, _state = module.decide(plan, api, {"log": {"error": "cannot read the log: no such file"}}, {}, {}, NOW)
    stp = found[0]
    assert stp["status"] == "warning" and stp["figures"]["unread"] == {"the backend's log": "cannot read the log: no such file"}


def test_a_usable_verdict_adds_nothing():
    good = {"data": {"status": "healthy", "error_rate_per_s": 0.0}, "error": None, "rate": None}
    found = _decide({"health": HEALTH, "monitoring": good, "error_stats": GOOD_STATS})
    assert found["health"]["status"] == "ok" and "unread" not in found["health"]["figures"]


# --- the incident's classification: the escalation table in Python ------------------------

def _errors_step(window):
    stp, _state = steps.error_step(STATS, None, window, RATES, {}, NOW)
    return stp


@pytest.mark.parametrize("window, expected", [
    # The real-backend page: 1 error in 5 requests is 20 %, and no incident.
    ({"requests": 5, "errors": 1, "status": {}, "label": "w"}, []),
    ({"requests": 104, "errors": 20, "status": {}, "label": "w"}, [("high_error_rate", "high")]),
    ({"requests": 400, "errors": 5, "status": {}, "label": "w"}, [("high_error_rate", "medium")]),   # 1.25 %
    ({"requests": 500, "errors": 5, "status": {}, "label": "w"}, []),                                # 1 %: not above
])
def test_the_incident_is_classified_from_the_steps_decided_rate(window, expected):
    findings, severity = steps.classify_incident({"error_monitoring": _errors_step(window)})
    assert [(f["type"], f["severity"]) for f in findings] == expected
    assert severity == (expected[0][1] if expected else "none")


def test_unreadable_statistics_are_no_error_rate_incident():
    stp, _state = steps.error_step(None, "/api/errors/stats: HTTP 500", None, RATES, {}, NOW)
    assert stp["severity"] == "medium"
    assert steps.classify_incident({"error_monitoring": stp}) == ([], "none")


def test_the_escalation_table():
    checked = {
        "health": {"status": "critical", "severity": "critical", "summary": "service down: /health: connection refused"},
        "error_monitoring": {"figures": {"rate_severity": "none", "monitoring_status": "unhealthy"}, "summary": "s"},
        "disk_usage": {"status": "warning", "summary": "d"},
        "performance": {"problems": ["memory 1500 MB is above the 1024 MB target", "CPU 50 % is above"]},
    }
    findings, severity = steps.classify_incident(checked)
    assert [(f["type"], f["severity"]) for f in findings] == [
        ("service_down", "critical"), ("high_error_rate", "medium"), ("disk", "medium"), ("memory", "high")]
    assert severity == "critical"
    checked["disk_usage"]["status"] = "critical"
    assert steps.classify_incident(checked)[0][2]["severity"] == "high"
    assert steps.classify_incident({}) == ([], "none")


@pytest.mark.parametrize("window, verdict, judged, resolved", [
    ({"requests": 3, "errors": 0, "status": {}}, "healthy", False, True),     # too few requests: the verdict decides
    ({"requests": 3, "errors": 0, "status": {}}, "unhealthy", False, False),
    ({"requests": 3, "errors": 0, "status": {}}, None, False, False),         # nothing usable: not resolved
    ({"requests": 19, "errors": 2, "status": {}}, "healthy", False, False),   # errors go on, too few to judge: not resolved
    ({"requests": 19, "errors": 0, "status": {"5xx": 1}}, "healthy", False, False),  # a 5xx counts when no error line
    ({"requests": 500, "errors": 5, "status": {}}, "unhealthy", True, True),  # 1 %: at the alert threshold
    ({"requests": 495, "errors": 5, "status": {}}, "healthy", True, False),   # just above it
    (None, "healthy", False, True),
    # Too few errors but enough requests: the thresholds decide, no need for zero errors.
    ({"requests": 1000, "errors": 2, "status": {}}, "healthy", True, True),
    ({"requests": 100, "errors": 1, "status": {}}, "healthy", True, True),    # at the minimum of requests: 1 %
    ({"requests": 100, "errors": 2, "status": {}}, "healthy", True, False),   # 2 %: above the alert threshold
    ({"requests": 99, "errors": 1, "status": {}}, "healthy", False, False),   # under both: zero errors needed
    ({"requests": 99, "errors": 0, "status": {}}, "healthy", False, True),
])
def test_the_error_rate_after_a_mitigation_is_judged_like_the_step(window, verdict, judged, resolved):
    got = steps.recheck_errors(window, verdict, RATES)
    assert got["judged"] is judged and got["errors_resolved"] is resolved


def test_the_incident_module_warns_on_the_old_thresholds(run_module):
    window = {"requests": 5, "errors": 1, "status": {}, "label": "w"}
    result = run_module("bemore_incident", {"checked": {"error_monitoring": _errors_step(window)}, "error_high": 5.0})
    assert result["findings"] == [] and result["severity"] == "none"
    assert "incident_response_error_high is ignored" in str(result["deprecations"])
    result = run_module("bemore_incident", {"recheck": {"log": {"requests": 200, "errors": 30, "status": {}, "window": None},
                                                        "verdict": "healthy"}})
    assert result["recheck"]["judged"] is True and result["recheck"]["errors_resolved"] is False


# --- item 4: zero (and empty) is a value, never "not given" --------------------------------

def _problems(role, cfg):
    from ansible.module_utils import runbook_plan as plan  # pylint: disable=import-outside-toplevel
    found = plan.Problems()
    plan.validate_host("h1", {"bemore_base_url": "http://127.0.0.1:3000"}, {role: cfg}, found)
    return found.lines


def test_an_empty_list_of_paths_to_time_is_refused_not_replaced_by_health():
    assert _problems("performance_check", {"performance_check_paths": []}) == [
        "h1: performance_check_paths: must list at least one API path to time, got []"]
    assert _problems("performance_check", {"performance_check_paths": ["/health"]}) == []


@pytest.mark.parametrize("name, value, ok", [
    ("api_security_cors_path", "", False),
    ("api_security_cors_path", "/api/session/start", True),
    ("api_security_rate_limit_path", "", False),
    ("api_security_foreign_origin", "", False),
    ("api_security_foreign_origin", "https://bemore-runbook-probe.invalid", True),
    ("api_security_foreign_origin", "https://bemore-runbook-probe.invalid/path", False),
])
def test_an_empty_api_security_path_or_origin_is_refused(name, value, ok):
    assert (_problems("api_security", {name: value}) == []) is ok


def test_a_zero_timeout_is_refused_and_a_given_timeout_is_used():
    from ansible.module_utils import runbook_plan as plan  # pylint: disable=import-outside-toplevel
    found = plan.Problems()
    plan.validate_host("h1", {"bemore_base_url": "http://127.0.0.1:3000", "bemore_api_timeout": 0}, {}, found)
    assert any("bemore_api_timeout" in line for line in found.lines)
    built = plan.build_plan("h1", {"bemore_base_url": "http://127.0.0.1:3000", "bemore_api_timeout": 2.5}, {}, [])
    assert built["api"]["timeout"] == 2.5


def test_an_announced_limit_of_zero_is_a_limit_not_no_limit():
    stp = steps.api_security_step({}, rate={"limit": 0, "remaining": 0, "window_s": 600, "requests": 0})
    assert "announces no limit" not in stp["summary"] and "rate limit 0 per 600 s" in stp["summary"]


def test_a_zero_rate_and_zero_counts_are_values_in_the_error_step():
    window = {"requests": 500, "errors": 0, "status": {"5xx": 0}, "label": "w", "own_requests": 0, "own_errors": 0}
    stp, state = steps.error_step(STATS, None, window, RATES, {}, NOW)
    assert stp["figures"]["error_rate_percent"] == 0.0 and stp["figures"]["rate_judged"] is True
    assert stp["summary"].startswith("error rate 0 % (0 of 500 requests") and state["samples"][-1]["rate"] == 0.0


def test_readings_the_api_never_returned_are_named_not_judged_as_nothing():
    from ansible.module_utils.runbook_plan import build_plan  # pylint: disable=import-outside-toplevel
    module = load_module("bemore_checks")
    inputs = {"bemore_base_url": "https://api.example:8443", "bemore_log_source": "none", "bemore_host_access": "api_only"}
    plan = build_plan("api1", inputs, {"performance_check": {}, "api_security": {}}, ["performance_check", "api_security"])
    found, _state = module.decide(plan, {"error": "cannot build a client: bad URL"}, {}, {}, {}, NOW)
    by = dict((s["step"], s) for s in found)
    assert by["performance"]["status"] == "warning"
    assert by["performance"]["figures"]["unread"] == {"the API latency samples": "cannot build a client: bad URL"}
    assert set(by["api_security"]["figures"]["unread"]) == {"the TLS certificate", "the CORS preflights", "the announced rate limit"}
    assert by["api_security"]["status"] == "warning" and by["api_security"]["severity"] == "medium"


def test_the_log_review_says_what_of_the_runbooks_own_it_left_out():
    scan = {"lines": 40, "errors": 0, "levels": {}, "signatures": [], "own_requests": 12, "own_errors": 1,
            "position": {}}
    stp, _state = steps.log_step(scan, {}, {"position": {"files": {}}}, NOW, "app.log")
    assert "left out: 12 of the runbook's own requests, 1 error line(s) of its CORS probe" in stp["summary"]
    assert (stp["figures"]["own_requests"], stp["figures"]["own_errors"]) == (12, 1)


# --- fix item 2: the pre-deploy baseline is recorded only from a judged rate ----------------

@pytest.mark.parametrize("window, baseline", [
    ({"requests": 5, "errors": 1, "status": {}, "label": "w"}, None),          # 20 %, not judged: no baseline
    ({"requests": 104, "errors": 20, "status": {}, "label": "w"}, 19.2308),
    ({"requests": 500, "errors": 0, "status": {}, "label": "w"}, 0.0),        # 0 % judged is a baseline
])
def test_the_step_names_the_rate_a_release_may_record_as_its_baseline(window, baseline):
    figures = _errors_step(window)["figures"]
    assert figures["judged_rate_percent"] == baseline


def test_the_release_records_the_judged_rate_with_its_counts():
    import yaml  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel
    from tests.helpers import REPO  # pylint: disable=import-outside-toplevel
    with open(os.path.join(REPO, "roles", "release", "tasks", "main.yml"), encoding="utf-8") as handle:
        data = yaml.safe_load(handle)[0]["runbook_state"]["data"]
    assert "judged_rate_percent" in data["error_rate_baseline"] and "error_rate_percent" not in data["error_rate_baseline"]
    assert {"baseline_judged", "baseline_errors", "baseline_requests", "baseline_note"} <= set(data)


def test_without_a_judged_baseline_the_smoke_test_says_so():
    note = "1 error in 5 requests: too few to judge, below the minimums of 5 errors and 100 requests"
    stp = steps.smoke_step({"session_id": "s1", "ended": True}, 30.0, None, {"baseline_note": note})
    assert stp["status"] == "ok"
    assert ("error rate 30 %% against no judged baseline (%s): the regression check against it cannot run; "
            "the post-deploy rate is judged on its own thresholds" % note) in stp["summary"]
    stp = steps.smoke_step({"session_id": "s1", "ended": True}, 3.0, 0.0, {})
    assert stp["status"] == "critical" and "above the pre-deploy baseline of 0 %" in stp["problems"][0]


# --- fix item 4: the incident is classified from the health step's decided severity ----------

@pytest.mark.parametrize("error, kind, severity", [
    ({"kind": "rate_limited", "endpoint": "/health", "reason": "HTTP 429", "reset_s": 42}, "health_unknown", "medium"),
    ({"kind": "redirect", "endpoint": "/health", "reason": "redirects to another origin https://elsewhere.example"},
     "health_unknown", "high"),
    ({"kind": "connection", "endpoint": "/health", "reason": "connection refused"}, "service_down", "critical"),
])
def test_a_health_step_that_answers_is_not_service_down(error, kind, severity):
    health, _state = steps.health_step({"error": error}, {})
    findings, worst = steps.classify_incident({"health": health})
    assert [(f["type"], f["severity"]) for f in findings] == [(kind, severity)] and worst == severity
    assert (findings[0]["suggested"] == "restart") is (kind == "service_down")


def test_a_commit_mismatch_is_high_not_service_down():
    reading = {"health": {"status": "ok", "timestamp": None, "uptime_s": 100.0, "version": "1", "commit": "abc1234"},
               "error": None, "response_ms": 2.0}
    health, _state = steps.health_step(reading, {"expected_commit": "def5678"})
    assert health["status"] == "critical" and health["severity"] == "high"
    assert steps.classify_incident({"health": health}) == ([], "none")


# --- fix item 5: a rate-limited session start tested nothing; it did not fail -------------

def test_a_rate_limited_session_start_is_not_tested_not_failed(sim_factory):
    from tests.unit.test_http_client import spend_quota  # pylint: disable=import-outside-toplevel
    sim = sim_factory(extra=["--rate-limit", "3", "--rate-window", "600"])
    spend_quota(sim, 3)
    session = bemore_checks.run_session(bemore_api.Client(sim.url, timeout=3, retries=0), {"userId": "t", "counselorId": "t"}, 5)
    assert session["error"] is None and session["session_id"] is None
    reset = session["rate_limited"]["reset_s"]
    assert 500 < reset <= 600
    stp = steps.smoke_step(session, 0.0, 0.0, {})
    assert (stp["status"], stp["severity"]) == ("warning", "medium"), stp
    assert stp["problems"] == ["session start not tested: rate limited (HTTP 429, resets in %d s)" % reset]
    assert stp["summary"].startswith("session start not tested: rate limited (HTTP 429, resets in %d s), end skipped" % reset)
    assert "FAILED" not in stp["summary"]


def test_a_rate_limited_start_with_a_regression_is_still_critical():
    session = {"session_id": None, "ended": False, "error": None, "end_error": None, "rate_limited": {"reset_s": 30}}
    stp = steps.smoke_step(session, 3.0, 0.0, {})
    assert (stp["status"], stp["severity"]) == ("critical", "high")
    assert stp["problems"][1].startswith("error rate 3 % is above the pre-deploy baseline")


class _Refused:
    base_url, headers, validate_certs = "http://127.0.0.1:9", {}, True

    def __init__(self, kind):
        self.kind = kind

    def post_json(self, path, body):
        raise bemore_api.ApiError(path, "HTTP 429" if self.kind == "rate_limited" else "HTTP 500", 429, self.kind, 12)


def test_only_a_429_is_rate_limited_at_unit_level():
    assert bemore_checks.run_session(_Refused("rate_limited"), {})["rate_limited"] == {"reset_s": 12, "reason": "HTTP 429"}
    failed = bemore_checks.run_session(_Refused("http"), {})
    assert failed["error"] and "rate_limited" not in failed
    assert steps.smoke_step(failed, 0.0, 0.0, {})["status"] == "critical"


# --- fix item 6: a cap of 0 disables the cap ----------------------------------------------

def test_a_cap_of_zero_disables_the_over_cap_check():
    folder = {"bytes": int(3.86 * 1048576), "files": 25}
    stp = steps.tmp_cleanup_step(dict(CLEAN_CFG, max_size_mb=0), SERVICE, None, folder, None, 3600, _now())
    assert stp["status"] == "ok" and stp["figures"]["over_cap_bytes"] == 0, stp
    assert not any("cap" in p for p in stp["problems"])
    stp = steps.tmp_cleanup_step(dict(CLEAN_CFG, max_size_mb=1), SERVICE, None, folder, None, 3600, _now())
    assert stp["status"] == "warning" and "over the 1 MB cap" in stp["problems"][0]


# --- fix item 7: a temp folder that could not be read is named -----------------------------

def test_an_unreadable_temp_folder_is_named_at_medium():
    from ansible.module_utils.runbook_plan import build_plan  # pylint: disable=import-outside-toplevel
    module = load_module("bemore_checks")
    inputs = {"bemore_base_url": "http://127.0.0.1:9", "bemore_log_source": "none"}
    plan = build_plan("api1", inputs, {"tmp_cleanup": {}}, ["tmp_cleanup"])
    api = {"health": HEALTH, "cleanup": {"data": SERVICE, "error": None, "rate": None}}
    reason = "cannot read /srv/app/tmp: permission denied"
    found, _state = module.decide(plan, api, {"tmp_folder": {"error": reason}}, {}, {}, NOW)
    stp = found[0]
    assert stp["step"] == "tmp_cleanup" and stp["figures"]["unread"] == {"the temp folder": reason}, stp
    assert stp["status"] == "warning" and stp["severity"] == "medium"
    assert "could not use the temp folder: " + reason in stp["summary"]


# --- fix item 8: the probe's error line is matched by its exact, configured origin ----------

def test_a_look_alike_probe_origin_is_counted():
    lines = [error_line("CORS policy: Origin https://bemore-runbook-probe.invalid is not allowed"),
             error_line("CORS policy: Origin https://bemore-runbook-probe.evil.com is not allowed"),
             error_line("CORS policy: Origin https://bemore-runbook-probe.invalid.evil.com is not allowed"),
             error_line("CORS policy: Origin http://bemore-runbook-probe.invalid is not allowed")]
    tally = bemore_log_lines.Tally()
    tally.feed(b"\n".join(lines) + b"\n")
    assert (tally.errors, tally.own_errors) == (3, 1)


def test_the_configured_probe_origin_is_the_one_left_out(tmp_path):
    mine = "https://be-more-frontend-evil.vercel.app"
    log = tmp_path / "app.log"
    log.write_bytes(error_line("CORS policy: Origin %s is not allowed" % mine) + b"\n"
                    + error_line("CORS policy: Origin https://bemore-runbook-probe.invalid is not allowed") + b"\n"
                    + error_line("CORS policy: Origin %s.evil.com is not allowed" % mine) + b"\n")
    result = bemore_logs.scan_files([str(log)], {}, now=NOW, probe_origin=mine)
    assert (result["errors"], result["own_errors"]) == (2, 1)


def test_the_plan_passes_the_probe_origin_to_the_log_reading():
    from ansible.module_utils.runbook_plan import build_plan  # pylint: disable=import-outside-toplevel
    inputs = {"bemore_base_url": "http://127.0.0.1:9", "bemore_log_source": "file", "bemore_log_files": ["/var/log/app.log"]}
    roles_cfg = {"error_monitoring": {}, "api_security": {"api_security_foreign_origin": "https://probe.example"}}
    plan = build_plan("api1", inputs, roles_cfg, ["error_monitoring", "api_security"])
    assert plan["host_plan"]["log"]["probe_origin"] == "https://probe.example"
    plan = build_plan("api1", inputs, {"error_monitoring": {}}, ["error_monitoring"])
    assert plan["host_plan"]["log"]["probe_origin"] is None


# --- fix item 9: a spoofed runbook prefix does not hide a 5xx storm --------------------------

def test_a_5xx_storm_with_a_spoofed_prefix_counts_in_the_5xx_fallback():
    lines = [b"GET /api/x 500 20 - 3.0 ms reqId=" + OWN.encode() + b"spoof%d" % i for i in range(30)]
    lines += [b"GET /api/y 200 20 - 3.0 ms reqId=5c1a0d62-0b3e-4b8e-9d0c-6f1e2b3a4c%02d" % i for i in range(70)]
    lines += [b"GET /health 200 95 - 1.2 ms reqId=" + OWN.encode() + b"own%d" % i for i in range(5)]
    tally = bemore_log_lines.Tally()
    tally.feed(b"\n".join(lines) + b"\n")
    window = dict(tally.window(), label="w")
    assert window["requests"] == 100 and window["own_requests"] == 5 and window["errors"] == 0
    assert window["status"]["5xx"] == 30 and window["status"]["2xx"] == 70
    assert steps.log_error_rate(window) == (30.0, 30, 100)
    stp, _state = steps.error_step(STATS, None, window, RATES, {}, NOW)
    assert stp["severity"] == "high" and stp["figures"]["window_own_requests"] == 5


# --- fix item 10: only the backend's own refusal of the probe is subtracted -----------------

class _Answer:
    def __init__(self, status, raw, headers=None):
        self.status, self.raw, self.headers = status, raw, headers or {}

    def header(self, name):
        return self.headers.get(name)


class _Preflight:
    def __init__(self, foreign):
        self.foreign = foreign

    def request(self, method, path, extra_headers=None, **_kw):
        if extra_headers["Origin"] == "https://app.example":
            return _Answer(204, b"", {"Access-Control-Allow-Origin": "https://app.example"})
        return self.foreign


BACKEND_REFUSAL = (b'{"success":false,"error":{"type":"UNKNOWN","message":"CORS policy: Origin '
                   b'https://bemore-runbook-probe.invalid is not allowed","code":"UNKNOWN"}}')


@pytest.mark.parametrize("answer, subtracted", [
    (_Answer(400, BACKEND_REFUSAL), True),                      # the backend's own refusal: one error in its counters
    (_Answer(403, b"<html>Forbidden by the WAF</html>"), False),  # a proxy/WAF: the backend logged nothing
    (_Answer(400, b"Bad Request"), False),                      # a 400 that is not the backend's JSON error body
    (_Answer(403, BACKEND_REFUSAL), False),
])
def test_only_the_backends_own_refusal_of_the_probe_is_subtracted(answer, subtracted):
    module = load_module("bemore_checks")
    cors = bemore_checks.read_cors(_Preflight(answer), "/api/session/start", "https://app.example",
                                   "https://bemore-runbook-probe.invalid")
    assert cors["foreign_allowed"] is False and cors["foreign_refused_by_backend"] is subtracted
    mine = module.own_errors_caused({}, cors, NOW)[2]
    assert (mine is not None) is subtracted


# --- fix item 12: the incident's status and "resolved" are decided in Python ----------------

FOUND_HIGH = [{"type": "high_error_rate", "severity": "high", "evidence": "e", "suggested": "s"}]
DONE_OK = {"action": "restart", "done": True, "healthy_after": True, "errors_resolved": True}


@pytest.mark.parametrize("findings, severity, actions, check_mode, status, resolved", [
    ([], "none", [], False, "ok", False),
    (FOUND_HIGH, "high", [], False, "critical", False),
    (FOUND_HIGH, "medium", [], False, "warning", False),
    (FOUND_HIGH, "low", [], False, "warning", False),
    (FOUND_HIGH, "critical", [DONE_OK], False, "warning", True),                  # mitigated: the follow-up stays open
    (FOUND_HIGH, "critical", [DONE_OK], True, "critical", False),                 # check mode: nothing was done
    (FOUND_HIGH, "high", [dict(DONE_OK, errors_resolved=False)], False, "critical", False),
    (FOUND_HIGH, "high", [dict(DONE_OK, healthy_after=False)], False, "critical", False),
    (FOUND_HIGH, "high", [dict(DONE_OK, healthy_after=False), DONE_OK], False, "warning", True),  # the last one counts
    (FOUND_HIGH, "high", [DONE_OK, dict(DONE_OK, errors_resolved=False)], False, "critical", False),
])
def test_the_incidents_outcome(findings, severity, actions, check_mode, status, resolved):
    assert steps.incident_outcome(findings, severity, actions, check_mode) == (status, resolved)


def test_the_incident_module_returns_the_outcome(run_module):
    result = run_module("bemore_incident", {"outcome": {"findings": FOUND_HIGH, "severity": "high",
                                                        "actions": [dict(DONE_OK, healthy_after="True")], "check_mode": "False"}})
    assert result["outcome"] == {"status": "warning", "resolved": True}
    result = run_module("bemore_incident", {"outcome": {"findings": [], "severity": "none", "actions": [], "check_mode": False}})
    assert result["outcome"] == {"status": "ok", "resolved": False}


def test_the_record_only_passes_the_decision():
    import os  # pylint: disable=import-outside-toplevel
    from tests.helpers import REPO  # pylint: disable=import-outside-toplevel
    with open(os.path.join(REPO, "roles", "incident_response", "tasks", "record.yml"), encoding="utf-8") as handle:
        text = handle.read()
    assert "__incident_response_outcome.outcome.status" in text and "__incident_response_outcome.outcome.resolved" in text
    assert "'critical'" not in text and "'warning'" not in text
