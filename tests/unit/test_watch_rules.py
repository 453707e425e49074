"""The watch's incident decisions (module_utils/bemore_watch.py), pinned at
each boundary: reminders just under/at/over the guide's response times,
relapse at 29/30/31 minutes, resolution after 1/2 of 2 clean runs, unknown
keeping an incident open without reminders, errors per minute against the
watch's own thresholds, the compare-and-set of the log position and the
owed-message outbox of a killed run."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import register_module_utils, role_defaults

register_module_utils()

from ansible.module_utils import bemore_steps as steps  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_watch as watch  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_watch_store as store  # noqa: E402  pylint: disable=wrong-import-position

NOW = 1_800_000_000.0


def down():
    return [steps.step("health", "critical", "critical", "service down: /health: connection refused")]


def healthy():
    return [steps.step("health", "ok", "none", "healthy"), steps.step("error_monitoring", "ok", "none", "0.02 %")]


def run(incident, stepset, now, **kw):
    sig, severity, summary = watch.signal(stepset)
    return watch.step_incident(incident, sig, severity, summary, now, "api1", "prod", **kw)


def test_the_first_critical_result_opens_an_incident_and_notifies_once():
    incident, messages, event = run(None, down(), NOW)
    assert event == "opened" and incident["id"] == "prod-api1-20270115T080000Z"
    assert [m["kind"] for m in messages] == ["opened"] and messages[0]["id"] == incident["id"] + "/1"
    assert messages[0]["severity"] == "critical" and "[CRITICAL]" in messages[0]["text"]


@pytest.mark.parametrize("severity, interval", [("critical", 15), ("high", 60), ("medium", 240)])
# Strictly over: a 5-minute timer's third run after the page (at 15 min) is no reminder yet.
@pytest.mark.parametrize("offset, reminded", [(-1, False), (0, False), (1, True)])
def test_reminders_follow_the_guides_response_times_at_most(severity, interval, offset, reminded):
    failing = [steps.step("health", "critical", severity, "bad")]
    incident, _, _ = run(None, failing, NOW)
    incident, messages, event = run(incident, failing, NOW + interval * 60 + offset)
    assert (event == "reminder") is reminded
    assert len(messages) == (1 if reminded else 0)
    if reminded:
        # The next reminder counts from this one.
        _, again, _ = run(incident, failing, NOW + interval * 60 + offset + 60)
        assert again == []


def repeat_s():
    """bemore_watch_repeat_minutes as the role declares it, in seconds."""
    return 60 * int(role_defaults("bemore_watch")["bemore_watch_repeat_minutes"])


@pytest.mark.parametrize("repeat, severity, after", [
    (3600, "critical", 3600), (3600, "high", 3600), (3600, "medium", 4 * 3600),
    (0, "critical", 900), (900, "critical", 900), (901, "critical", 901), (7200, "high", 7200)])
def test_a_reminder_waits_for_the_longer_of_the_repeat_interval_and_the_response_time(repeat, severity, after):
    assert watch.reminder_after(severity, repeat) == after


@pytest.mark.parametrize("offset, reminded", [(-1, False), (0, False), (1, True)])
def test_the_declared_repeat_interval_reminds_of_a_critical_incident_after_an_hour(offset, reminded):
    assert repeat_s() == 3600
    incident, _, _ = run(None, down(), NOW, repeat_s=repeat_s())
    _, messages, event = run(incident, down(), NOW + 3600 + offset, repeat_s=repeat_s())
    assert (event == "reminder") is reminded and len(messages) == int(reminded)


def test_a_30_minute_outage_is_one_page_and_one_resolved_message():
    """Done-when of issue 27: a 5-minute timer through a 30-minute outage, then two clean runs."""
    incident, sent, now = None, [], NOW
    for _ in range(7):  # failing at 0, 5, ..., 30 min
        incident, messages, _ = run(incident, down(), now, repeat_s=repeat_s())
        sent += messages
        now += 300
    for _ in range(2):
        incident, messages, _ = run(incident, healthy(), now, repeat_s=repeat_s())
        sent += messages
        now += 300
    assert [m["kind"] for m in sent] == ["opened", "resolved"]
    assert "lasted 35 min 00 s" in sent[1]["text"]


def test_three_more_failing_runs_send_no_new_page():
    incident, messages, _ = run(None, down(), NOW)
    sent = list(messages)
    for i in range(1, 4):
        incident, messages, _ = run(incident, down(), NOW + 300 * i)
        sent += messages
    assert len(sent) == 1


def test_a_worse_severity_escalates_the_same_incident():
    incident, _, _ = run(None, [steps.step("error_monitoring", "warning", "medium", "2 %")], NOW)
    incident2, messages, event = run(incident, down(), NOW + 300)
    assert event == "escalated" and incident2["id"] == incident["id"] and incident2["severity"] == "critical"
    assert len(messages) == 1


@pytest.mark.parametrize("clean, resolved", [(1, False), (2, True)])
def test_an_incident_resolves_only_after_clean_runs_in_a_row(clean, resolved):
    incident, _, _ = run(None, down(), NOW)
    messages = []
    for i in range(clean):
        incident, messages, event = run(incident, healthy(), NOW + 300 * (i + 1))
    assert (incident["resolved_at"] is not None) is resolved
    if resolved:
        assert event == "resolved" and [m["kind"] for m in messages] == ["resolved"]
        # The duration counts from the opening to the first clean run: 5 minutes.
        assert incident["lasted_s"] == 300 and "lasted 5 min 00 s" in messages[0]["text"]
        assert messages[0]["incident_id"] == incident["id"]


def test_a_flap_before_the_clean_runs_continues_the_incident_silently():
    incident, _, _ = run(None, down(), NOW)
    incident, _, _ = run(incident, healthy(), NOW + 300)
    incident, messages, event = run(incident, down(), NOW + 600)
    assert messages == [] and event is None and incident["clean_runs"] == 0
    incident, _, _ = run(incident, healthy(), NOW + 900)
    assert incident["resolved_at"] is None


@pytest.mark.parametrize("minutes, same", [(29, True), (30, True), (31, False)])
def test_a_relapse_within_30_minutes_continues_the_same_incident(minutes, same):
    incident, _, _ = run(None, down(), NOW)
    incident, _, _ = run(incident, healthy(), NOW + 300)
    incident, _, _ = run(incident, healthy(), NOW + 600)
    assert incident["resolved_at"] == NOW + 600
    again, messages, event = run(incident, down(), NOW + 600 + minutes * 60)
    assert (again["id"] == incident["id"]) is same
    assert event == ("relapsed" if same else "opened")
    assert len(messages) == 1


def test_unknown_keeps_an_open_incident_open_without_reminders():
    limited = [steps._health_unread("health", {"kind": "rate_limited", "endpoint": "/health",
                                               "reason": "HTTP 429", "reset_s": 30})]
    assert watch.signal(limited)[0] == watch.UNKNOWN
    incident, _, _ = run(None, down(), NOW)
    for i in range(1, 8):  # 35 minutes of 429s: past the 15-minute reminder
        incident, messages, event = run(incident, limited, NOW + 300 * i)
        assert messages == [] and event == "unknown" and incident["resolved_at"] is None
    assert incident["clean_runs"] == 0


def test_unknown_opens_nothing():
    limited = [steps._health_unread("health", {"kind": "rate_limited", "endpoint": "/health", "reason": "HTTP 429"})]
    assert run(None, limited, NOW) == (None, [], None)


def test_low_opens_no_incident():
    assert run(None, [steps.step("error_monitoring", "ok", "low", "0.5 %")], NOW)[0] is None


def test_a_silence_holds_the_messages_but_keeps_the_incident():
    incident, messages, event = run(None, down(), NOW, silenced={"reason": "deploy", "until": NOW + 600})
    assert event == "opened" and messages == []
    assert [e["event"] for e in incident["timeline"]] == ["opened", "held"]


@pytest.mark.parametrize("per_minute, severity", [(None, "none"), (9.99, "none"), (10.0, "none"), (10.01, "medium"),
                                                  (60.0, "medium"), (60.01, "high")])
def test_errors_per_minute_are_judged_against_the_watchs_own_thresholds(per_minute, severity):
    stp = steps.step("error_monitoring", "ok", "none", "x", {"window": None, "errors_per_minute": per_minute})
    out = watch.per_minute_step(stp, {"errors_per_minute_medium": 10.0, "errors_per_minute_high": 60.0})
    assert out["severity"] == severity
    assert out["figures"]["judged_by"] == "errors per minute from the backend's counters"
    assert (out["figures"].get("watch_state") == "unknown") is (per_minute is None)


def test_a_log_window_keeps_the_guides_per_request_verdict():
    stp = steps.step("error_monitoring", "warning", "medium", "2 %", {"window": "lines", "errors_per_minute": 500})
    assert watch.per_minute_step(stp, {})["severity"] == "medium"


def pos(ino, offset):
    return {"files": {"/log": {"dev": 1, "ino": ino, "offset": offset}}}


@pytest.mark.parametrize("stored, new, kept", [
    (pos(7, 500), pos(7, 400), pos(7, 500)),   # another run read further: never back
    (pos(7, 400), pos(7, 500), pos(7, 500)),
    (pos(7, 500), pos(8, 10), pos(8, 10)),     # rotated: the new file's position
    ({}, pos(7, 10), pos(7, 10)),
])
def test_the_log_position_never_moves_back(stored, new, kept):
    assert watch.merge_watch_state({"position": stored}, {"position": new})["position"] == kept


def test_a_message_sent_by_an_overlapping_run_stays_sent():
    merged = watch.merge_watch_state({"sent": ["i/1"]}, {"outbox": [{"id": "i/1"}, {"id": "i/2"}]})
    assert [m["id"] for m in merged["outbox"]] == ["i/2"]


@pytest.mark.parametrize("delivery_failed, state_failed, rc", [(False, False, 0), (True, False, 2), (False, True, 2)])
def test_the_rc_says_whether_the_watch_did_its_job_not_the_backends_state(delivery_failed, state_failed, rc):
    assert watch.exit_code(delivery_failed, state_failed) == rc


def test_a_watch_killed_between_commit_and_send_owes_the_page(tmp_path):
    state_dir = str(tmp_path)
    incident, messages, _ = run(None, down(), NOW)
    store.commit_watch(state_dir, {"api1": {"incident": incident, "outbox": messages}})
    # ... killed here. The next run finds the page owed, with the same id.
    with open(os.path.join(state_dir, "state.json")) as handle:
        owed = json.load(handle)["hosts"]["api1"]["watch"]["outbox"]
    assert [m["id"] for m in owed] == [messages[0]["id"]]
    store.mark_sent(state_dir, {messages[0]["id"]})
    with open(os.path.join(state_dir, "state.json")) as handle:
        topic = json.load(handle)["hosts"]["api1"]["watch"]
    assert topic["outbox"] == [] and topic["sent"] == [messages[0]["id"]]


def test_the_watch_commits_only_its_own_topic(tmp_path):
    state_dir = str(tmp_path)
    with open(os.path.join(state_dir, "state.json"), "w") as handle:
        json.dump({"version": 1, "hosts": {"api1": {"error_monitoring": {"total": 5}, "health": {"uptime_s": 9}}}}, handle)
    store.commit_watch(state_dir, {"api1": {"last_run": NOW}})
    with open(os.path.join(state_dir, "state.json")) as handle:
        hosts = json.load(handle)["hosts"]
    assert hosts["api1"]["error_monitoring"] == {"total": 5} and hosts["api1"]["health"] == {"uptime_s": 9}
    assert hosts["api1"]["watch"]["last_run"] == NOW


def test_a_damaged_state_file_is_kept_aside_and_the_watch_commits_afresh(tmp_path):
    state_dir = str(tmp_path)
    with open(os.path.join(state_dir, "state.json"), "w") as handle:
        handle.write("{not json")
    warnings = []
    committed = store.commit_watch(state_dir, {"api1": {"last_run": NOW, "sent": ["i/1"]}}, warnings)
    assert committed == {"api1": {"last_run": NOW, "sent": ["i/1"], "outbox": []}}
    kept = [n for n in os.listdir(state_dir) if n.startswith("state.json.corrupt-")]
    assert len(kept) == 1 and len(warnings) == 1
    assert warnings[0].startswith("state file %s was damaged (" % os.path.join(state_dir, "state.json"))
    assert warnings[0].endswith("): kept as %s" % os.path.join(state_dir, kept[0]))
    with open(os.path.join(state_dir, "state.json")) as handle:
        assert json.load(handle)["hosts"] == {"api1": {"watch": committed["api1"]}}


def test_a_live_watch_holds_the_lock_and_a_dead_one_is_taken_over(tmp_path):
    state_dir = str(tmp_path)
    me = {"controller": os.uname()[1], "pid": os.getpid(), "pid_start": None, "boot_id": None}
    assert store.take_lock(state_dir, NOW, me) == (True, None)
    other = dict(me, pid=os.getppid())
    took, owner = store.take_lock(state_dir, NOW, other)
    assert not took and owner["pid"] == os.getpid()
    assert store.release_lock(state_dir, me)
    assert store.take_lock(state_dir, NOW, other) == (True, None)


@pytest.mark.parametrize("offset, active", [(-1, False), (0, True), (599, True), (600, False)])
def test_a_silence_is_in_force_from_its_start_until_its_end(offset, active):
    silences = [{"host": "api1", "since": NOW, "until": NOW + 600, "reason": "deploy"}]
    assert (watch.open_silence(silences, NOW + offset) is not None) is active


def test_the_module_opens_and_ends_a_silence(run_module, tmp_path):
    state_dir = str(tmp_path / "state")
    out = run_module("bemore_watch", {"phase": "silence", "state_dir": state_dir, "hosts": ["api1"],
                                      "silence_minutes": 30, "silence_reason": "deploy abc"})
    assert out["changed"] and [s["host"] for s in out["silences"]] == ["api1"]
    assert watch.open_silence(store.read_silences(state_dir), out["silences"][0]["since"] + 60) is not None
    out = run_module("bemore_watch", {"phase": "silence", "state_dir": state_dir, "hosts": ["api1"],
                                      "silence_close": True, "silence_reason": "deploy abc"})
    assert watch.open_silence(store.read_silences(state_dir), out["silences"][0]["until"] + 1) is None


def test_the_module_refuses_thresholds_in_the_wrong_order(run_module, tmp_path):
    out = run_module("bemore_watch", {"phase": "begin", "state_dir": str(tmp_path), "errors_per_minute_medium": 70.0})
    assert out["failed"] and "errors_per_minute_medium (70.0) must not be above errors_per_minute_high (60.0)" in out["msg"]


def _report(severities):
    return {"hosts": dict((h, {"worst_severity": s}) for h, s in severities.items())}


def test_a_daily_run_names_the_watchs_open_incident_instead_of_paging_again():
    incident, _, _ = run(None, down(), NOW)
    topics = {"api1": {"incident": incident, "last_success": NOW}, "api2": {"last_success": NOW - 1200}}
    view, covered = watch.watch_view(_report({"api1": "critical", "api2": "none"}), topics, NOW + 60)
    assert covered and view["api1"] == {"last_success_ago_s": 60, "incident_id": incident["id"]}
    # A host that pages without an open watch incident still pages.
    assert not watch.watch_view(_report({"api1": "critical", "api2": "high"}), topics, NOW + 60)[1]
    assert not watch.watch_view(_report({"api1": "none"}), topics, NOW + 60)[1]
    assert "api1 (watch)" in watch.watch_lines(view)[0] and incident["id"] in watch.watch_lines(view)[0]


@pytest.mark.parametrize("ago, stale", [(899, False), (900, False), (901, True)])
def test_the_daily_report_warns_when_the_watch_stopped(ago, stale):
    warning = watch.watch_stale({"api1": {"last_success_ago_s": ago, "incident_id": None}})
    assert (warning is not None) is stale


def test_a_reminder_follows_the_response_time_of_the_current_severity():
    incident, _, _ = run(None, down(), NOW)
    restarted = [steps.step("health", "warning", "medium", "restarted since the last run")]
    assert run(incident, restarted, NOW + 20 * 60)[1] == []
    assert [m["kind"] for m in run(incident, restarted, NOW + 4 * 3600 + 1)[1]] == ["reminder"]


def test_an_incident_opened_and_ended_inside_a_silence_sends_nothing():
    silence = {"reason": "deploy", "until": NOW + 900}
    incident, messages, _ = run(None, down(), NOW, silenced=silence)
    incident, m2, _ = run(incident, healthy(), NOW + 1200)
    incident, m3, event = run(incident, healthy(), NOW + 1500)
    assert event == "resolved" and messages + m2 + m3 == []


# --- from watch to response ---

@pytest.mark.parametrize("enabled, via, mode", [(False, "cron", None), (True, "systemd", "systemd"),
                                                 (True, "awx", "awx")])
def test_the_response_mode_is_validated(enabled, via, mode):
    assert watch.response_mode(enabled, via) == mode


@pytest.mark.parametrize("via, message", [("cron", "not offered under cron"), ("ssh", "must be one of systemd, awx")])
def test_the_response_mode_refuses_cron_and_unknown_ways(via, message):
    with pytest.raises(ValueError, match=message):
        watch.response_mode(True, via)


def opened(severity="critical"):
    sig, sev, summary = watch.signal([steps.step("health", "critical", severity, "service down")])
    return watch.step_incident(None, sig, sev, summary, NOW, "web1", "prod")


@pytest.mark.parametrize("severity, event, mode, started", [
    ("critical", "opened", "systemd", True), ("critical", "opened", None, False), ("high", "opened", "awx", False),
    ("critical", "reminder", "awx", False), ("critical", "escalated", "awx", True),
    ("critical", "relapsed", "systemd", True)])
def test_only_a_critical_opening_escalation_or_relapse_starts_the_identify_step(severity, event, mode, started):
    incident, _messages, _event = opened(severity)
    assert watch.start_response(incident, event, mode, NOW) is started
    assert bool(incident.get("response")) is started


def test_the_identify_step_starts_once_per_incident():
    incident, _messages, _event = opened()
    assert watch.start_response(incident, "opened", "systemd", NOW)
    assert not watch.start_response(incident, "relapsed", "systemd", NOW + 60)
    assert [e["event"] for e in incident["timeline"]] == ["opened", "response started"]


def report(offset, hosts=("web1",), status="critical"):
    return {"started_at": NOW + offset, "hosts": list(hosts), "worst_status": status, "link": "r/%d.html" % offset}


@pytest.mark.parametrize("reports, link", [
    ([], None),                                        # not yet
    ([report(-1)], None),                              # a run that started before the response
    ([report(5, hosts=("web2",))], None),              # a run of another host
    ([report(0)], "r/0.html"),                         # at the start: counts
    ([report(40), report(5)], "r/5.html"),             # the first one after the start
])
def test_the_follow_up_links_the_first_identify_report_of_the_host(reports, link):
    incident, _messages, _event = opened()
    watch.start_response(incident, "opened", "systemd", NOW)
    msg = watch.response_follow_up(incident, reports, NOW + 60, "web1", "prod")
    assert (msg and msg["report"]) == link
    if link:
        assert msg["kind"] == "response" and "identify step reported CRITICAL: " + link in msg["text"]
        # Once: the next run sends nothing more.
        assert watch.response_follow_up(incident, reports, NOW + 120, "web1", "prod") is None


@pytest.mark.parametrize("after, said", [(watch.RESPONSE_WAIT_S - 1, False), (watch.RESPONSE_WAIT_S, True)])
def test_a_missing_identify_report_is_said_once_after_the_wait(after, said):
    incident, _messages, _event = opened()
    watch.start_response(incident, "opened", "awx", NOW)
    msg = watch.response_follow_up(incident, [], NOW + after, "web1", "prod")
    assert bool(msg) is said
    if said:
        assert "wrote no report" in msg["text"] and "report" not in msg
        assert watch.response_follow_up(incident, [report(after + 1)], NOW + after + 60, "web1", "prod") is None


def test_an_incident_without_a_started_response_has_no_follow_up():
    incident, _messages, _event = opened()
    assert watch.response_follow_up(incident, [report(5)], NOW + 60, "web1") is None


@pytest.mark.parametrize("phase", ["begin", "finish"])
def test_the_module_refuses_an_incident_start_under_cron_and_changes_nothing(run_module, tmp_path, phase):
    state_dir, report_dir = tmp_path / "state", tmp_path / "reports"
    out = run_module("bemore_watch", {"phase": phase, "state_dir": str(state_dir), "report_dir": str(report_dir),
                                      "start_incident": True, "start_incident_via": "cron"})
    assert out["failed"] and "bemore_watch_start_incident is not offered under cron" in out["msg"]
    assert not state_dir.exists() and not report_dir.exists()
