"""The run's identity, journal, report and state on the control node
(module_utils/runbook_files.py, runbook_runs.py, report_files.py,
runbook_notify.py, runbook_statefile.py), and the input rules every run
applies first (module_utils/runbook_plan.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from tests.helpers import register_module_utils

register_module_utils()

from ansible.module_utils import report_files  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_files  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_notify  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_runs  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_statefile  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_plan as plan  # noqa: E402  pylint: disable=wrong-import-position

RUN = {"id": "20270101T000000.000000Z-test-abcdef", "schedule": "daily", "environment": "test",
       "started_at": "2027-01-01T00:00:00Z", "check_mode": False}
STEP = {"step": "health", "status": "ok", "severity": "none", "summary": "healthy", "figures": {}, "problems": []}


# --- ids and names -------------------------------------------------------------------

def test_run_ids_never_collide_within_the_same_microsecond_and_sort_by_time():
    ids = {runbook_files.new_run_id("production", now=1_800_000_000.123456) for _ in range(2000)}
    assert len(ids) == 2000
    assert all(i.startswith("20270115T080000.123456Z-production-") for i in ids)
    assert runbook_files.new_run_id("a", now=1) < runbook_files.new_run_id("a", now=2)


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "", ".hidden", "x" * 200, "a b", "ok\n"])
def test_names_used_in_file_names_are_refused(name):
    with pytest.raises(ValueError) as err:
        runbook_files.check_name("inventory host name", name)
    assert "file names" in str(err.value)


@pytest.mark.parametrize("name", ["api1.bemore.dev", "sandbox", "host_2", "user@host", "a-b"])
def test_ordinary_names_pass(name):
    assert runbook_files.check_name("host", name) == name


# --- reports ---------------------------------------------------------------------------------

def test_reports_are_written_exclusively_and_readable_by_their_owner_only(tmp_path):
    report = report_files.build_report(RUN, {"h": {"completed": True, "steps": [STEP]}})
    paths = report_files.write_report(report, str(tmp_path / "reports"), "<html/>")
    for path in paths.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "reports").st_mode) == 0o700
    with pytest.raises(FileExistsError):
        report_files.write_report(report, str(tmp_path / "reports"), "<html/>")
    assert os.readlink(tmp_path / "reports" / "daily" / "latest.json") == os.path.basename(paths["json"])


def test_group_readable_reports_when_asked(tmp_path):
    report = report_files.build_report(RUN, {"h": {"completed": True, "steps": [STEP]}})
    paths = report_files.write_report(report, str(tmp_path), None, file_mode=0o640)
    assert stat.S_IMODE(os.stat(paths["json"]).st_mode) == 0o640 and "html" not in paths


def test_a_host_that_did_not_complete_fails_the_report_whatever_its_steps_said():
    report = report_files.build_report(RUN, {"a": {"completed": True, "steps": [STEP]},
                                             "b": {"completed": False, "steps": [STEP]}})
    assert report["hosts"]["b"]["worst_status"] == "failed" and report["worst_status"] == "failed"


def test_an_interrupted_report_marks_every_host_unfinished():
    report = report_files.build_report(RUN, {"a": {"completed": True, "steps": [STEP]}},
                                       interrupted={"reason": "SIGTERM"})
    assert report["interrupted"] and not report["hosts"]["a"]["completed"]
    assert "INTERRUPTED" in report_files.render_markdown(report)


def test_unknown_status_and_severity_become_problems():
    report = report_files.build_report(RUN, {"a": {"completed": True,
                                                   "steps": [dict(STEP, status="grand", severity="huge")]}})
    got = report["hosts"]["a"]["steps"][0]
    assert got["status"] == "failed" and got["severity"] == "high" and len(got["problems"]) == 2


def test_alerts_are_listed_so_a_medium_error_rate_is_notified():
    alert = dict(STEP, step="error_monitoring", status="warning", severity="medium", alert=True)
    report = report_files.build_report(RUN, {"a": {"completed": True, "steps": [alert]}})
    assert report["alerts"] == ["a/error_monitoring"]
    assert runbook_notify.should_notify(report, ["critical", "high"])


def test_the_webhook_payload_links_the_page_and_never_carries_the_webhook(tmp_path):
    report = report_files.build_report(RUN, {"a": {"completed": True,
                                                   "steps": [dict(STEP, status="critical", severity="critical")]}})
    page = runbook_notify.page_url("https://reports.example/", report)
    payload = runbook_notify.webhook_payload(report, ["line"], page)
    assert payload["text"].startswith("[CRITICAL]") and "15 minutes" in payload["text"]
    assert payload["attachments"][0]["fields"][-1]["value"] == "https://reports.example/daily/%s.html" % RUN["id"]


def test_a_failing_webhook_is_reported_without_its_url():
    ok, outcome = runbook_notify.post_webhook("http://127.0.0.1:9/secret-token-xyz", {"text": "x"}, timeout=1,
                                              retries=1, delay=0)
    assert not ok and "secret-token-xyz" not in outcome and "2 attempt" in outcome


# --- state ---------------------------------------------------------------------------------

def test_state_commits_merge_other_runs_hosts_and_topics(tmp_path):
    runbook_statefile.commit_state(str(tmp_path), {"a": {"health": {"uptime_s": 1}},
                                                   "b": {"disk_usage": {"samples": []}}})
    runbook_statefile.commit_state(str(tmp_path), {"a": {"log_management": {"position": {"x": 1}}, "health": None}})
    state = runbook_statefile.load_state(str(tmp_path))
    assert state["a"] == {"health": {"uptime_s": 1}, "log_management": {"position": {"x": 1}}}
    assert state["b"] == {"disk_usage": {"samples": []}}
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o600


def test_concurrent_commits_for_different_hosts_lose_nothing(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); from tests.helpers import register_module_utils; "
            "register_module_utils(); from ansible.module_utils import runbook_statefile as c; "
            "[c.commit_state(%r, {sys.argv[1]: {'t': {'n': i}}}) for i in range(40)]"
            % (os.getcwd(), str(tmp_path)))
    procs = [subprocess.Popen([sys.executable, "-c", code, "h%d" % i]) for i in range(6)]
    assert all(p.wait(60) == 0 for p in procs)
    state = runbook_statefile.load_state(str(tmp_path))
    assert sorted(state) == ["h%d" % i for i in range(6)] and all(state[h]["t"]["n"] == 39 for h in state)


def test_a_damaged_state_file_reads_as_empty(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    assert runbook_statefile.load_state(str(tmp_path)) == {}


def test_a_merged_topic_is_decided_under_the_lock_from_the_value_in_the_file(tmp_path):
    runbook_statefile.commit_state(str(tmp_path), {"a": {"t": [1], "u": 1}})
    seen = []

    def merge(stored, new):
        seen.append((stored, new))
        return (stored or []) + new

    committed = runbook_statefile.commit_state(str(tmp_path), {"a": {"t": [2], "u": 2}, "b": {"t": [3]}},
                                               merge={"t": merge})
    assert seen == [([1], [2]), (None, [3])]
    assert committed == {"a": {"t": [1, 2], "u": 2}, "b": {"t": [3]}}
    assert runbook_statefile.load_state(str(tmp_path)) == committed


# --- the run registry and journal ---------------------------------------------------------

def test_a_run_whose_process_is_gone_is_found_and_its_journal_read(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = dict(RUN, owner=runbook_files.controller_identity(dead.pid), hosts=["a", "b"])
    journal = runbook_runs.register_run(str(tmp_path), record)
    runbook_runs.journal_append(journal, {"host": "a", "step": STEP})
    runbook_runs.journal_append(journal, {"host": "a", "step": dict(STEP, status="warning")})
    with open(journal, "a") as handle:
        handle.write('{"host": "b", "step": {"st')  # the line the kill cut
    live = dict(RUN, id="live", owner=runbook_files.controller_identity(os.getpid()))
    runbook_runs.register_run(str(tmp_path), live)
    unreported, ids = runbook_runs.dead_runs(str(tmp_path))
    assert [r["id"] for r in unreported] == [RUN["id"]] and ids == [RUN["id"]]
    steps = runbook_runs.journal_steps(runbook_runs.journal_read(journal))
    assert steps == {"a": [dict(STEP, status="warning")]}


def test_the_playbook_process_is_found_above_a_module(tmp_path):
    child = tmp_path / "module.py"
    child.write_text("import sys\nsys.path.insert(0, %r)\nfrom tests.helpers import register_module_utils\n"
                     "register_module_utils()\nfrom ansible.module_utils import runbook_files as c\n"
                     "print(c.playbook_process())\n" % os.getcwd())
    script = tmp_path / "ansible-playbook"
    # The shape of a real run: ansible-playbook -> a shell -> python running the module.
    script.write_text("#!%s\nimport os, subprocess\nprint(os.getpid())\n"
                      "print(subprocess.run(['/bin/sh', '-c', '%s %s'], capture_output=True, text=True).stdout.strip())\n"
                      % (sys.executable, sys.executable, child))
    script.chmod(0o755)
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1]
    # pytest itself runs under no ansible-playbook.
    assert runbook_files.playbook_process() is None


def test_owner_alive_tells_a_reused_pid_from_the_owner():
    me = runbook_files.controller_identity(os.getpid())
    assert runbook_files.owner_alive(me) is True
    assert runbook_files.owner_alive(dict(me, pid_start=me["pid_start"] + 1)) is False
    assert runbook_files.owner_alive(dict(me, boot_id="another-boot")) is False
    assert runbook_files.owner_alive(dict(me, controller="elsewhere")) is None


# --- input rules ------------------------------------------------------------------------------

def problems_of(role, cfg, inputs=None):
    found = plan.Problems()
    plan.check_ranges(role, cfg, "h1", found, inputs or {"bemore_app_dir": "/srv/bemore/app"})
    return found.lines


@pytest.mark.parametrize("role, cfg, fragment", [
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": -1, "tmp_cleanup_path": "/srv/bemore/app/tmp"}, "must be >= 0"),
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": 0, "tmp_cleanup_path": "/srv/bemore/app/tmp"}, "emergency"),
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": 0.5, "tmp_cleanup_path": "/srv/bemore/app/tmp",
                     "tmp_cleanup_emergency": True}, "emergency"),
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": 7, "tmp_cleanup_path": "/srv/bemore/app"}, "is the app folder"),
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": 7, "tmp_cleanup_path": "/srv/bemore/app/"}, "is the app folder"),
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": 7, "tmp_cleanup_path": "/srv"}, "is the app folder"),
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": 7, "tmp_cleanup_path": "tmp"}, "absolute"),
    ("tmp_cleanup", {"tmp_cleanup_max_age_days": 7, "tmp_cleanup_path": "/"}, "root folder"),
    ("error_monitoring", {"error_monitoring_target_rate": 2, "error_monitoring_warning_rate": 1,
                          "error_monitoring_critical_rate": 5}, "target_rate <= warning_rate"),
    ("disk_usage", {"disk_usage_warning_percent": 95, "disk_usage_critical_percent": 90,
                    "disk_usage_filesystem_of": "/"}, "must not be above"),
    ("log_management", {"log_management_source": "syslog"}, "journal, file, none"),
    ("log_management", {"log_management_source": "file", "log_management_files": ["app.log"]}, "absolute"),
    ("performance_check", {"performance_check_samples": 0}, ">= 1"),
    ("maintenance_lock", {"maintenance_lock_poll_s": 0}, "> 0"),
])
def test_inputs_out_of_range_are_refused_with_the_option_named(role, cfg, fragment):
    lines = problems_of(role, cfg)
    assert any(fragment in line for line in lines), lines
    assert all(line.startswith("h1: ") for line in lines)


def test_a_confirmed_emergency_below_one_day_passes():
    assert problems_of("tmp_cleanup", {"tmp_cleanup_max_age_days": 0, "tmp_cleanup_path": "/srv/bemore/app/tmp",
                                       "tmp_cleanup_emergency": True, "tmp_cleanup_emergency_confirm": True}) == []


@pytest.mark.parametrize("inputs, fragment", [
    ({"bemore_base_url": "http://u:secret@h"}, "credentials"),
    ({"bemore_base_url": "http://h:1/../../"}, "path"),
    ({"bemore_base_url": "http://h", "bemore_host_access": "root"}, "full or api_only"),
    ({"bemore_base_url": "http://h", "bemore_host_access": "api_only", "bemore_api_from": "host"}, "no shell"),
    ({"bemore_base_url": "http://h", "bemore_app_dir": "/"}, "below /"),
])
def test_group_inputs_are_checked(inputs, fragment):
    found = plan.Problems()
    plan.validate_host("h1", inputs, {}, found)
    assert any(fragment in line for line in found.lines), found.lines
    assert not any("secret" in line for line in found.lines)


def test_an_api_only_host_gets_no_host_readings_and_says_why():
    got = plan.build_plan("h", {"bemore_base_url": "https://api.example", "bemore_host_access": "api_only"},
                          {"disk_usage": {"disk_usage_filesystem_of": "/"}, "log_management": {}},
                          ["health_check", "disk_usage", "log_management"])
    assert got["host_plan"] == {} and set(got["not_applicable"]) == {"disk_usage", "log_management"}
    assert "api_only" in got["not_applicable"]["disk_usage"]


@pytest.mark.parametrize("given, retries, timeout", [
    ({}, 2, 10.0),  # the documented defaults (roles/runbook/meta/argument_specs.yml)
    ({"bemore_api_retries": 0, "bemore_api_timeout": 3}, 0, 3.0),
    ({"bemore_api_retries": 5}, 5, 10.0),
])
def test_the_api_retries_and_timeout_default_as_documented(given, retries, timeout):
    got = plan.build_plan("h", dict({"bemore_base_url": "https://api.example"}, **given), {}, ["health_check"])
    assert (got["api"]["retries"], got["api"]["timeout"]) == (retries, timeout)


def test_the_log_source_defaults_to_the_journal_when_a_unit_is_named():
    assert plan.log_source({"bemore_service_name": "bemore"}, {})[0] == "journal"
    assert plan.log_source({}, {})[0] == "none"
    assert plan.log_source({"bemore_log_source": "file", "bemore_log_files": ["/a"]}, {"source": "files"})[:2] == (
        "file", ["/a"])


def test_a_loopback_api_read_from_the_control_node_of_a_remote_host_is_refused():
    found = plan.Problems()
    plan.validate_host("api1", {"bemore_base_url": "http://127.0.0.1:3000"}, {}, found, {"connection": "ssh"})
    assert any("bemore_api_from: host" in line for line in found.lines)
    for info, inputs in (({"connection": "local"}, {}), ({"connection": "ssh"}, {"bemore_api_from": "host"})):
        found = plan.Problems()
        plan.validate_host("api1", dict({"bemore_base_url": "http://127.0.0.1:3000"}, **inputs), {}, found, info)
        assert not any("bemore_api_from" in line for line in found.lines)
