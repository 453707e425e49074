"""The run's lifecycle rules of issue 24: what a run that cannot do its work
says (no backup, no step selected, a corrupt state file, an unreachable
host), inputs that are not finite numbers, the lock's wait and the report's
files on a failed write."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from ansible.module_utils import report_files
from ansible.module_utils import runbook_notify
from ansible.module_utils import runbook_runs
from ansible.module_utils import runbook_statefile
from ansible.module_utils.runbook_plan import Problems, check_ranges
from tests.conftest import REPO, load_module
from tests.helpers import require


def _yaml(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


# --- 5. an unreachable database is no backup -------------------------------------------

def test_an_unreachable_database_is_no_backup_rated_high_by_default(run_module, tmp_path):
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", {"action": "maintain", "schema": "bemore", "login_host": "127.0.0.1",
                                              "login_port": 1, "login_user": "root", "connect_timeout": 2,
                                              "backup_dir": str(backups)})
    step = result["step"]
    assert (step["status"], step["severity"]) == ("failed", "high")
    assert step["summary"].startswith("no backup: ") and "127.0.0.1:1" in step["summary"]
    assert result["changed"] is False and not backups.exists()


def test_skipping_an_unreachable_database_is_an_inventory_choice():
    default = _yaml("roles", "db_maintenance", "defaults", "main.yml")["db_maintenance_skip_unreachable"]
    spec = _yaml("roles", "db_maintenance", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert default is False and spec["db_maintenance_skip_unreachable"]["default"] is False
    # The sandbox's database is optional; a real environment's is not.
    assert _yaml("inventory", "sandbox", "group_vars", "bemore", "app.yml")["db_maintenance_skip_unreachable"] is True
    for env in ("production", "staging"):
        for root, _dirs, files in os.walk(os.path.join(REPO, "inventory", env)):
            for name in files:
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    assert "skip_unreachable" not in handle.read(), os.path.join(root, name)


# --- 12. every number finite and in range ------------------------------------------------

def _spec_options(role):
    return _yaml("roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


@pytest.mark.parametrize("role, option", [
    ("tmp_cleanup", "tmp_cleanup_max_age_days"),      # a range rule of runbook_plan
    ("tmp_cleanup", "tmp_cleanup_max_size_mb"),
    ("maintenance_lock", "maintenance_lock_poll_s"),
    ("report", "report_webhook_timeout"),             # a float no range rule names
    ("smoke_test", "smoke_test_error_margin"),
])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", float("nan")])
def test_a_number_that_is_not_finite_is_refused_by_the_preflight(role, option, value):
    preflight = load_module("runbook_preflight")
    problems = Problems()
    preflight.check_inputs([role], {role: _spec_options(role)}, {"web1": {role: {option: value}}}, problems)
    assert any(line.startswith("web1: ") and option in line and "must be a finite number" in line
               for line in problems.lines), problems.lines


@pytest.mark.parametrize("option, value, message", [
    ("tmp_cleanup_max_age_days", "nan", "must be a finite number"),
    ("tmp_cleanup_max_size_mb", "1e400", "must be a finite number"),
    ("tmp_cleanup_max_size_mb", "1e300", "must be <= 10485760"),
    ("tmp_cleanup_max_age_days", "36500", "must be <= 3650"),
])
def test_the_range_rules_refuse_numbers_out_of_range(option, value, message):
    problems = Problems()
    check_ranges("tmp_cleanup", {option: value, "tmp_cleanup_path": "/srv/app/tmp"}, "web1", problems, {})
    assert any(option in line and message in line for line in problems.lines), problems.lines


def test_the_range_rules_keep_finite_numbers_at_the_bounds():
    problems = Problems()
    check_ranges("tmp_cleanup", {"tmp_cleanup_max_age_days": 3650, "tmp_cleanup_max_size_mb": 10485760,
                                 "tmp_cleanup_path": "/srv/app/tmp"}, "web1", problems, {})
    assert problems.lines == []


@pytest.mark.parametrize("option", ["max_age_days", "max_size_mb", "max_runtime_s", "lock_timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e400"])
def test_the_cleanup_module_refuses_a_number_that_is_not_finite_and_deletes_nothing(run_module, tmp_path, option, value):
    (tmp_path / "old.wav").write_bytes(b"x")
    os.utime(tmp_path / "old.wav", (0, 0))
    result = run_module("tmp_cleanup", {"path": str(tmp_path), option: value})
    assert result["failed"] and "%s must be a finite number" % option in result["msg"]
    assert (tmp_path / "old.wav").exists()


@pytest.mark.parametrize("option", ["wait_s", "poll_s", "stale_after_s"])
def test_the_lock_module_refuses_a_number_that_is_not_finite(run_module, tmp_path, option):
    result = run_module("maintenance_lock", {"lock_dir": str(tmp_path / "locks"), "name": "web1", "run_id": "r1",
                                             option: "nan"})
    assert result["failed"] and "%s must be a finite number" % option in result["msg"]
    assert not (tmp_path / "locks").exists()


@pytest.mark.parametrize("option", ["min_free_mb", "min_fragmentation", "disk_margin_mb"])
def test_the_database_module_refuses_a_number_that_is_not_finite(run_module, tmp_path, option):
    result = run_module("mysql_maintenance", {"action": "maintain", "schema": "bemore", "login_port": 1,
                                              "backup_dir": str(tmp_path / "b"), option: "inf"})
    assert result["failed"] and "%s must be a finite number" % option in result["msg"]
    assert not (tmp_path / "b").exists()


def test_the_state_module_refuses_a_max_age_that_is_not_finite(run_module, tmp_path):
    result = run_module("runbook_state", {"dir": str(tmp_path / "s"), "host": "web1", "topic": "t",
                                          "action": "append", "data": {"v": 1}, "max_age_s": "nan"})
    assert result["failed"] and "max_age_s must be a finite number" in result["msg"]
    assert not (tmp_path / "s").exists()


def test_the_report_module_refuses_a_webhook_timeout_that_is_not_finite(run_module, tmp_path):
    run = {"id": "20261207T000000.000000Z-test-000000000001", "schedule": "daily", "environment": "test"}
    result = run_module("runbook_report", {"run": run, "roles": [], "hosts": [], "completed": [],
                                           "report_dir": str(tmp_path / "r"), "webhook_timeout": "inf"})
    assert result["failed"] and "webhook_timeout must be a finite number" in result["msg"]
    assert not (tmp_path / "r").exists()


# --- 15. the lock's wait, the report's files -------------------------------------------------

@pytest.mark.parametrize("wait_s, poll_s", [(1.0, 1.0), (1.5, 1.0)])
def test_a_lock_wait_lasts_its_whole_time_whatever_the_poll_interval(run_module, tmp_path, wait_s, poll_s):
    path = tmp_path / "locks" / "web1.lock"
    args = {"lock_file": str(path), "owner": "pytest", "playbook": "test.yml"}
    assert run_module("maintenance_lock", dict(args, run_id="run-a"))["acquired"]
    blocked = run_module("maintenance_lock", dict(args, run_id="run-b", wait_s=wait_s, poll_s=poll_s))
    assert blocked["failed"] and not blocked["acquired"]
    assert blocked["waited_s"] >= wait_s, blocked["msg"]
    assert "Waited %.0fs of %.0fs" % (blocked["waited_s"], wait_s) in blocked["msg"]


def test_no_lock_wait_tries_once(run_module, tmp_path):
    path = tmp_path / "locks" / "web1.lock"
    args = {"lock_file": str(path), "owner": "pytest", "playbook": "test.yml"}
    run_module("maintenance_lock", dict(args, run_id="run-a"))
    blocked = run_module("maintenance_lock", dict(args, run_id="run-b", wait_s=0, poll_s=5))
    assert blocked["failed"] and blocked["waited_s"] < 1


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 64 KB tmpfs (needs root): skipped where it cannot be mounted, a failure under CI=true."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    require(proc.returncode == 0, "a mountable 64 KB tmpfs", "needs root with CAP_SYS_ADMIN: %s" % proc.stderr.strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _report():
    run = {"id": "20261207T000000.000000Z-test-000000000001", "schedule": "daily", "environment": "test"}
    return report_files.build_report(run, {"web1": {"completed": True, "steps": [
        {"step": "health", "status": "ok", "severity": "none", "summary": "up"}]}}, now=1796601600)


def test_a_report_write_that_fills_the_disk_leaves_no_report_file(small_filesystem):
    with pytest.raises(OSError) as exc:
        # The JSON and Markdown fit; the HTML page does not.
        report_files.write_report(_report(), str(small_filesystem / "reports"), html="x" * 200000, keep=0)
    assert exc.value.errno == errno.ENOSPC
    folder = small_filesystem / "reports" / "daily"
    assert sorted(os.listdir(folder)) == []


def test_a_report_that_fits_is_written_whole(small_filesystem):
    paths = report_files.write_report(_report(), str(small_filesystem / "reports"), html="<p>ok</p>", keep=0)
    assert json.load(open(paths["json"]))["run_id"] == _report()["run_id"]
    assert sorted(os.listdir(small_filesystem / "reports" / "daily")) == sorted(
        [os.path.basename(p) for p in paths.values()] + ["latest.json", "latest.md", "latest.html"])


# --- 8. a damaged state file is kept and reported ----------------------------------------------

DAMAGED = b'{"version": 1, "hosts": {"web1": {"disk_usage": {"samples": [1, 2'


@pytest.mark.parametrize("content", [DAMAGED, b"[1, 2, 3]\n", b'{"hosts": "web1"}\n', b"\xff\xfe"])
def test_a_damaged_state_file_is_set_aside_and_named(tmp_path, content):
    (tmp_path / "state.json").write_bytes(content)
    warnings = []
    assert runbook_statefile.load_state(str(tmp_path), warnings, now=1796601600) == {}
    kept = tmp_path / "state.json.corrupt-20261207T000000Z"
    assert kept.read_bytes() == content and not (tmp_path / "state.json").exists()
    assert len(warnings) == 1 and str(tmp_path / "state.json") in warnings[0] and str(kept) in warnings[0]
    assert "first review" in warnings[0]
    # The next commit writes a new file beside the kept one, never over it.
    assert runbook_statefile.commit_state(str(tmp_path), {"web1": {"disk_usage": {"samples": [3]}}})
    assert runbook_statefile.load_state(str(tmp_path)) == {"web1": {"disk_usage": {"samples": [3]}}}
    assert kept.read_bytes() == content


def test_a_check_mode_run_names_a_damaged_state_file_and_leaves_it(tmp_path):
    (tmp_path / "state.json").write_bytes(DAMAGED)
    warnings = []
    assert runbook_statefile.load_state(str(tmp_path), warnings, set_damaged_aside=False) == {}
    assert (tmp_path / "state.json").read_bytes() == DAMAGED and "left in place" in warnings[0]


def test_a_state_file_damaged_during_the_run_is_not_overwritten_by_its_commit(tmp_path):
    (tmp_path / "state.json").write_bytes(DAMAGED)
    warnings = []
    runbook_statefile.commit_state(str(tmp_path), {"web1": {"uptime": 5}}, warnings)
    kept = [n for n in os.listdir(tmp_path) if n.startswith("state.json.corrupt-")]
    assert len(kept) == 1 and (tmp_path / kept[0]).read_bytes() == DAMAGED
    assert runbook_statefile.load_state(str(tmp_path)) == {"web1": {"uptime": 5}} and kept[0] in warnings[0]


def test_a_sound_state_file_is_read_and_left_alone(tmp_path):
    runbook_statefile.commit_state(str(tmp_path), {"web1": {"uptime": 5}})
    warnings = []
    assert runbook_statefile.load_state(str(tmp_path), warnings) == {"web1": {"uptime": 5}} and warnings == []
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".")) == ["state.json"]


def test_the_report_of_a_run_says_its_state_was_damaged():
    run = {"id": "r1", "schedule": "daily", "environment": "test", "warnings": ["the state file /s/state.json is bad"]}
    report = report_files.build_report(run, {"web1": {"completed": True, "steps": []}}, now=1796601600)
    assert report["warnings"] == ["the state file /s/state.json is bad"]
    assert "- Warning: the state file /s/state.json is bad" in report_files.render_markdown(report)
    assert report_files.summary_lines(report)[0] == "WARNING: the state file /s/state.json is bad"


def test_the_state_module_keeps_a_damaged_document_and_says_so(run_module, tmp_path):
    doc = tmp_path / "web1" / "smoke.json"
    doc.parent.mkdir()
    doc.write_bytes(b'{"baseline": 0.')
    got = run_module("runbook_state", {"dir": str(tmp_path), "host": "web1", "topic": "smoke", "default": {}})
    assert got["data"] == {} and "is not valid JSON" in got["damaged"] and got["set_aside"] is None
    assert got["damaged"].startswith(str(doc)) and doc.read_bytes() == b'{"baseline": 0.'
    put = run_module("runbook_state", {"dir": str(tmp_path), "host": "web1", "topic": "smoke", "action": "set",
                                       "data": {"baseline": 0.5}})
    assert put["changed"] and put["set_aside"].startswith(str(doc) + ".corrupt-")
    assert open(put["set_aside"], "rb").read() == b'{"baseline": 0.'
    assert json.load(open(doc)) == {"baseline": 0.5}


# --- 7. a run that selected no step fails ------------------------------------------------------

def _hosts_report(**hosts):
    run = {"id": "r1", "schedule": "daily", "environment": "test"}
    return report_files.build_report(run, hosts, now=1796601600)


def test_the_daily_playbooks_step_tags_are_read_from_it():
    assert report_files.playbook_step_tags(os.path.join(REPO, "playbooks", "daily.yml")) == [
        "disk", "errors", "health", "logs", "tmp_cleanup"]
    assert report_files.playbook_step_tags(os.path.join(REPO, "playbooks", "no_such.yml")) is None


def test_a_run_that_selected_no_step_is_a_failure_naming_the_known_tags():
    report = _hosts_report(web1={"completed": True, "steps": []}, web2={"completed": True, "steps": []})
    problem = report_files.no_step_problem(report, ["helth"], [], ["disk", "errors", "health"])
    assert problem == ("the run selected no step: --tags helth (helth is not a tag of this playbook); the daily "
                       "playbook's step tags are: disk, errors, health")
    report_files.mark_failed(report, problem)
    assert report["worst_status"] == "failed" and report["worst_severity"] == "none"
    assert report_files.summary_lines(report)[0] == "FAILED: " + problem
    assert "- Problem: " + problem in report_files.render_markdown(report)


def test_skipping_every_step_is_named_too():
    report = _hosts_report(web1={"completed": True, "steps": []})
    assert report_files.no_step_problem(report, ["all"], ["health", "errors"], None) == (
        "the run selected no step: --skip-tags health,errors; this playbook's step tags could not be read")


def test_a_playbook_without_steps_run_without_a_selection_is_not_the_no_step_rule():
    """Installing the schedules has no step to select; Molecule's own skip tags select nothing."""
    report = _hosts_report(web1={"completed": True, "steps": []})
    assert report_files.no_step_problem(report, ["all"], ["molecule-notest", "notest", "molecule-idempotence-notest"], None) is None
    assert report_files.no_step_problem(report, ["all"], [], []) is None
    # A step playbook run with every step filtered out still fails, and so does a selection beside Molecule's tags.
    assert report_files.no_step_problem(report, ["all"], [], ["health"]).startswith("the run selected no step; the ")
    assert report_files.no_step_problem(report, ["all"], ["molecule-notest", "health"], None) == (
        "the run selected no step: --skip-tags health; this playbook's step tags could not be read")


def test_one_step_on_one_host_or_a_failed_host_is_not_the_no_step_rule():
    stp = {"step": "health", "status": "ok", "severity": "none", "summary": "up"}
    assert report_files.no_step_problem(_hosts_report(web1={"completed": True, "steps": []},
                                                      web2={"completed": True, "steps": [stp]}), ["health"]) is None
    assert report_files.no_step_problem(_hosts_report(web1={"completed": False, "steps": []}), ["helth"]) is None


def test_the_report_module_fails_a_run_that_selected_no_step(run_module, tmp_path):
    run = {"id": "20261207T000000.000000Z-test-000000000002", "schedule": "daily", "environment": "test"}
    result = run_module("runbook_report", {"run": run, "roles": ["runbook", "health_check"], "hosts": ["web1"],
                                           "completed": ["web1"], "report_dir": str(tmp_path / "r"),
                                           "run_tags": ["helth"], "skip_tags": [],
                                           "playbook": os.path.join(REPO, "playbooks", "daily.yml")})
    assert result["gate_failed"] and result["worst_status"] == "failed"
    assert "helth is not a tag of this playbook" in result["gate_message"]
    assert "disk, errors, health, logs, tmp_cleanup" in result["gate_message"]
    assert json.load(open(result["paths"]["json"]))["worst_status"] == "failed"


# --- 13. an unreachable host is critical, and every report path notifies ----------------------------

def test_an_unreachable_host_is_critical_and_a_failed_one_high():
    report = _hosts_report(web1={"completed": False, "steps": [], "unreachable": True, "reason": "unreachable"},
                           web2={"completed": False, "steps": [], "reason": "failed"},
                           web3={"completed": True, "steps": []})
    assert report["hosts"]["web1"]["worst_severity"] == "critical" and report["hosts"]["web1"]["unreachable"]
    assert report["hosts"]["web2"]["worst_severity"] == "high" and "unreachable" not in report["hosts"]["web2"]
    assert report["worst_severity"] == "critical" and report["worst_status"] == "failed"


def test_the_one_notification_posts_a_stopped_report_of_an_unreachable_fleet(tmp_path):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/hook" % server.server_address[1]
    try:
        report = _hosts_report(web1={"completed": False, "steps": [], "unreachable": True, "reason": "unreachable"})
        settings = {"notify_severities": ["critical", "high"], "webhook_timeout": 5, "webhook_retries": 0}
        assert runbook_notify.notify(report, report_files.summary_lines(report), settings, url) == "sent (HTTP 200)"
        assert received and received[0]["text"].startswith("[CRITICAL] BeMore daily run on test ended failed")
        quiet = _hosts_report(web1={"completed": True, "steps": []})
        assert runbook_notify.notify(quiet, [], settings, url) == "not needed" and len(received) == 1
        assert runbook_notify.notify(report, [], settings, None) == "not configured"
    finally:
        server.shutdown()
        server.server_close()


# --- 9. what a run changed and how a host was lost are journaled -----------------------------------

@pytest.mark.parametrize("rc, text", [(137, "rc 137: killed by signal 9 (SIGKILL)"),
                                      (-9, "rc -9: killed by signal 9 (SIGKILL)"),
                                      (143, "rc 143: killed by signal 15 (SIGTERM)"),
                                      (1, None), (0, None), (128, None), (None, None), (True, None)])
def test_a_killed_module_is_named_by_its_exit_code(rc, text):
    assert runbook_runs.killed_text(rc) == text


def test_the_journal_keeps_each_hosts_last_failure_and_the_changes_as_steps(tmp_path):
    journal = str(tmp_path / "run.journal")
    change = runbook_runs.change_step("Clean the temp folder", runbook_runs.change_figures(
        {"changed": True, "files_deleted": 60000, "bytes_deleted": 12345, "deleted": ["a"], "_ansible_x": 1,
         "interrupted": False}))
    runbook_runs.journal_append(journal, {"host": "web1", "step": change})
    runbook_runs.journal_append(journal, {"host": "web1", "failure": {"kind": "failed", "task": "A",
                                                                      "reason": "rescued"}})
    runbook_runs.journal_append(journal, {"host": "web1", "failure": {"kind": "failed", "task": "Read the host",
                                                                      "rc": 137, "reason": "MODULE FAILURE"}})
    entries = runbook_runs.journal_read(journal)
    (stp,) = runbook_runs.journal_steps(entries)["web1"]
    assert stp["step"] == "changed: Clean the temp folder" and stp["figures"] == {"files_deleted": 60000,
                                                                                  "bytes_deleted": 12345}
    assert "bytes_deleted 12345, files_deleted 60000" in stp["summary"]
    failure = runbook_runs.journal_failures(entries)["web1"]
    assert runbook_runs.failure_text(failure) == (
        "failed at task 'Read the host' (rc 137: killed by signal 9 (SIGKILL)): MODULE FAILURE")


def test_the_report_step_names_a_lost_host_by_its_journaled_failure_and_lists_its_changes(run_module, tmp_path):
    journal = str(tmp_path / "run.journal")
    change = runbook_runs.change_step("Clean the temp folder", {"files_deleted": 60000})
    runbook_runs.journal_append(journal, {"host": "web1", "step": change})
    runbook_runs.journal_append(journal, {"host": "web1", "failure": {"kind": "failed", "task": "Read the host",
                                                                      "rc": 137}})
    runbook_runs.journal_append(journal, {"host": "web2", "failure": {"kind": "unreachable", "task": "Take the lock",
                                                                      "reason": "Failed to connect to the host via ssh"}})
    run = {"id": "20261207T000000.000000Z-test-000000000003", "schedule": "weekly", "environment": "test",
           "journal": journal}
    result = run_module("runbook_report", {"run": run, "roles": ["runbook"], "hosts": ["web1", "web2"],
                                           "completed": [], "report_dir": str(tmp_path / "r")})
    web1, web2 = result["report"]["hosts"]["web1"], result["report"]["hosts"]["web2"]
    assert "rc 137: killed by signal 9 (SIGKILL)" in web1["reason"] and web1["worst_severity"] == "high"
    assert [s["step"] for s in web1["steps"]] == ["changed: Clean the temp folder"]
    assert web2["unreachable"] and web2["worst_severity"] == "critical" and "via ssh" in web2["reason"]


def test_an_empty_list_of_notified_severities_is_a_choice_not_a_missing_setting():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = "http://127.0.0.1:%d/hook" % sock.getsockname()[1]
    report = _hosts_report(web1={"completed": False, "steps": [], "reason": "failed"})
    settings = {"notify_severities": [], "webhook_timeout": 1, "webhook_retries": 0}
    assert runbook_notify.notify(report, [], settings, closed) == "not needed"
