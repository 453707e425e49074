"""The run's first and last steps as modules: runbook_preflight (every input,
then the run registered; killed runs reported) and runbook_report (the
report, the notification, then the state)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import yaml

from tests.helpers import REPO, register_module_utils

register_module_utils()

from ansible.module_utils import runbook_files  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_runs  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_statefile  # noqa: E402  pylint: disable=wrong-import-position

STEP = {"step": "health", "status": "ok", "severity": "none", "summary": "healthy", "figures": {}, "problems": []}


def specs(*roles):
    out = {}
    for role in roles:
        with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
            entry = yaml.safe_load(handle)["argument_specs"]["start" if role == "runbook" else "main"]
        out[role] = entry.get("options") or {}
    return out


def preflight(run_module, tmp_path, inputs, roles=("runbook", "tmp_cleanup"), schedule="weekly"):
    return run_module("runbook_preflight", {
        "schedule": schedule, "environment": "test", "report_dir": str(tmp_path / "reports"),
        "state_dir": str(tmp_path / "state"), "roles": list(roles), "specs": specs(*roles), "inputs": inputs})


GROUP = {"bemore_environment": "test", "bemore_base_url": "http://127.0.0.1:3000", "bemore_app_dir": "/srv/bemore/app"}
CLEAN = {"tmp_cleanup_path": "/srv/bemore/app/tmp", "tmp_cleanup_max_age_days": 7, "tmp_cleanup_max_size_mb": 500,
         "tmp_cleanup_interval_min": 60}


def test_good_inputs_register_the_run(run_module, tmp_path):
    result = preflight(run_module, tmp_path, {"api1": {"runbook": GROUP, "tmp_cleanup": CLEAN}})
    run = result["run"]
    assert run["schedule"] == "weekly" and "-test-" in run["id"] and run["hosts"] == ["api1"]
    record = json.load(open(tmp_path / "state" / "runs" / (run["id"] + ".json")))
    assert record["owner"]["controller"] and record["journal"] == run["journal"]
    assert result["state"] == {"api1": {}} and result["dead_runs"] == [] and not result["changed"]


def test_every_problem_of_every_host_is_listed_at_once_and_nothing_is_registered(run_module, tmp_path):
    result = preflight(run_module, tmp_path, {
        "api1": {"runbook": dict(GROUP, bemore_base_url="http://a:b@h"), "tmp_cleanup": dict(CLEAN, tmp_cleanup_max_age_days=-1)},
        "api2": {"runbook": GROUP, "tmp_cleanup": dict(CLEAN, tmp_cleanup_max_size_mb="lots")},
    })
    assert result["failed"] and "nothing was changed" in result["msg"]
    joined = "\n".join(result["problems"])
    assert "api1: bemore_base_url" in joined and "credentials" in joined
    assert "api1: tmp_cleanup_max_age_days: must be >= 0" in joined
    assert "api2: tmp_cleanup:" in joined and "tmp_cleanup_max_size_mb" in joined
    assert ":b@" not in result["msg"]
    assert not (tmp_path / "state").exists()


def test_a_missing_required_input_is_named(run_module, tmp_path):
    group = dict(GROUP)
    del group["bemore_base_url"]
    result = preflight(run_module, tmp_path, {"api1": {"runbook": group, "tmp_cleanup": CLEAN}})
    assert result["failed"] and "bemore_base_url" in result["msg"]


def test_a_killed_runs_report_is_written_from_its_journal_by_the_next_run(run_module, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = {"id": runbook_files.new_run_id("test"), "schedule": "weekly", "environment": "test", "started_at": "x",
              "owner": runbook_files.controller_identity(dead.pid), "hosts": ["api1", "api2"],
              "report_dir": str(tmp_path / "reports"), "state_dir": str(tmp_path / "state")}
    killed["journal"] = runbook_runs.register_run(str(tmp_path / "state"), killed)
    runbook_runs.journal_append(killed["journal"], {"host": "api1", "step": STEP})
    result = preflight(run_module, tmp_path, {"api1": {"runbook": GROUP, "tmp_cleanup": CLEAN}})
    assert result["dead_runs"] == [killed["id"]]
    (path,) = result["recovered"]
    report = json.load(open(path))
    assert report["run_id"] == killed["id"] and report["interrupted"] and report["interruption"]["signal"] == "KILL"
    assert report["hosts"]["api1"]["steps"] == [STEP] and report["hosts"]["api2"]["steps"] == []
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = preflight(run_module, tmp_path, {"api1": {"runbook": GROUP, "tmp_cleanup": CLEAN}})
    assert again["recovered"] == [] and again["dead_runs"] == [killed["id"]]  # reported once; still dead


def report(run_module, tmp_path, sweep, **extra):
    run = {"id": runbook_files.new_run_id("test"), "schedule": "daily", "environment": "test", "started_at": "x",
           "state_dir": str(tmp_path / "state")}
    args = {"run": run, "roles": ["runbook", "health_check"], "hosts": ["api1"], "completed": ["api1"],
            "sweep": sweep, "report_dir": str(tmp_path / "reports")}
    args.update(extra)
    return run_module("runbook_report", args)


SWEEP = {"hosts": {"api1": {"steps": [STEP], "state": {"health": {"uptime_s": 5}}}}}


def test_the_state_is_committed_only_after_the_report(run_module, tmp_path):
    result = report(run_module, tmp_path, SWEEP)
    assert result["state_committed"] and result["paths"]["json"] and not result["gate_failed"]
    assert runbook_statefile.load_state(str(tmp_path / "state")) == {"api1": {"health": {"uptime_s": 5}}}


def test_an_unwritable_report_commits_nothing_fails_the_gate_and_still_returns_the_summary(run_module, tmp_path):
    (tmp_path / "file").write_text("x")
    result = report(run_module, tmp_path, SWEEP, report_dir=str(tmp_path / "file" / "reports"))
    assert result["write_error"].startswith("the report could not be written")
    assert result["gate_failed"] and result["gate_message"] == result["write_error"]
    assert result["summary_lines"] and not result["state_committed"]
    assert runbook_statefile.load_state(str(tmp_path / "state")) == {}


def test_check_mode_runs_commit_no_state(run_module, tmp_path):
    run = {"id": runbook_files.new_run_id("test"), "schedule": "daily", "environment": "test", "check_mode": True,
           "state_dir": str(tmp_path / "state")}
    result = run_module("runbook_report", {"run": run, "roles": ["health_check"], "hosts": ["api1"],
                                           "completed": ["api1"], "sweep": SWEEP, "report_dir": str(tmp_path / "r")})
    assert result["paths"]["json"] and not result["state_committed"]


def test_a_published_step_wins_over_the_sweeps_and_roles_keep_their_order(run_module, tmp_path):
    mine = dict(STEP, step="tmp_cleanup", summary="deleted 3 files")
    sweep = {"hosts": {"api1": {"steps": [dict(STEP, step="tmp_cleanup", summary="status only"), STEP]}}}
    result = report(run_module, tmp_path, sweep, roles=["health_check", "tmp_cleanup", "security_audit"],
                    results={"api1": {"tmp_cleanup": {"changed": True, "step": mine},
                                      "security_audit": dict(STEP, step="security_audit")}})
    got = result["report"]["hosts"]["api1"]["steps"]
    assert [s["step"] for s in got] == ["health", "tmp_cleanup", "security_audit"]
    assert got[1]["summary"] == "deleted 3 files"


def test_the_gate(run_module, tmp_path):
    critical = {"hosts": {"api1": {"steps": [dict(STEP, status="critical", severity="critical")]}}}
    assert report(run_module, tmp_path, critical)["gate_failed"]
    assert not report(run_module, tmp_path, critical, fail_on="never")["gate_failed"]
    assert not report(run_module, tmp_path, critical, gate_steps=["incident_response"])["gate_failed"]
    assert report(run_module, tmp_path, SWEEP, completed=[])["gate_failed"]  # a host that did not finish


def test_the_html_page_is_rendered_from_the_template_passed_in_and_its_absence_is_named(run_module, tmp_path):
    with open(os.path.join(REPO, "roles", "report", "templates", "report.html.j2"), encoding="utf-8") as handle:
        template = handle.read()
    result = report(run_module, tmp_path, SWEEP, html_template=template)
    assert result["html_error"] is None
    with open(result["paths"]["html"], encoding="utf-8") as handle:
        page = handle.read()
    assert page.startswith("<!DOCTYPE html>") and "Verdict: OK" in page and result["report"]["run_id"] in page
    # Run without its action plugin (no template): the JSON and Markdown report are written, the page's absence named.
    bare = report(run_module, tmp_path / "bare", SWEEP)
    assert bare["paths"]["json"] and "html" not in bare["paths"] and not bare["gate_failed"]
    assert "no page template" in bare["html_error"]
