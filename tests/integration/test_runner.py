"""The repository as an ansible-runner project, as CI runs it: the Python API
(status, stats, events, the set_stats artifact) and the documented CLI."""

from __future__ import annotations

import json
import os
import subprocess

import ansible_runner

from tests.conftest import REPO, VENV_BIN

PASS_ENV = ("BEMORE_STATE_DIR", "BEMORE_REPORT_DIR", "BEMORE_SANDBOX_DIR", "BEMORE_SANDBOX_PORT", "PATH",
            "ANSIBLE_CONFIG", "ANSIBLE_NOCOLOR")


def run(tmp_path, ansible_env, playbook, **kwargs):
    private = tmp_path / ("runner-" + playbook.replace("/", "-"))  # a fresh dir per run: env/ files would stick
    private.mkdir()
    return ansible_runner.run(
        private_data_dir=str(private),
        project_dir=REPO,
        playbook=playbook,
        inventory=os.path.join(REPO, "inventory", "sandbox"),
        envvars={k: ansible_env[k] for k in PASS_ENV},
        quiet=True,
        **kwargs)


def stats_event(runner):
    (event,) = [e for e in runner.events if e["event"] == "playbook_on_stats"]
    return event["event_data"]


def test_weekly_through_the_runner_api(sandbox, ansible_env, tmp_path):
    runner = run(tmp_path, ansible_env, "playbooks/weekly.yml")
    assert runner.status == "successful" and runner.rc == 0
    assert runner.stats["failures"] == {} and runner.stats["dark"] == {}
    assert runner.stats["ok"]["sandbox"] > 10
    report = stats_event(runner)["artifact_data"]["bemore_report"]
    assert report["schedule"] == "weekly" and report["worst_status"] == "ok" and report["notification"] == "not configured"
    assert json.load(open(report["reports"]["json"]))["worst_status"] == "ok"
    tasks = {e["event_data"].get("task") for e in runner.events if e["event"] == "runner_on_ok"}
    assert {"Run the selected checks of every host at once", "Clean the temp folder"} <= tasks


def test_the_run_journal_loads_under_the_runner_from_next_to_the_playbooks(sandbox, ansible_env, tmp_path):
    # ansible-runner sets its own callback folder; the journal still loads from playbooks/callback_plugins.
    runner = run(tmp_path, ansible_env, "playbooks/daily.yml", tags="health", verbosity=4)
    assert runner.rc == 0
    assert "runbook_journal: journaling run" in runner.stdout.read()


def test_a_failing_run_is_failed_for_the_runner(sandbox, ansible_env, tmp_path):
    sandbox.fault(health_down=True)
    runner = run(tmp_path, ansible_env, "playbooks/daily.yml", extravars={"bemore_api_retries": 0},
                 tags="health")
    assert runner.status == "failed" and runner.rc == 2
    assert runner.stats["failures"] == {"sandbox": 1}
    report = stats_event(runner)["artifact_data"]["bemore_report"]
    assert report["worst_status"] == "critical" and report["worst_severity"] == "critical"


def test_the_documented_cli_command(sandbox, ansible_env, tmp_path):
    private = tmp_path / "cli"
    env = dict(ansible_env)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-runner"), "run", str(private), "--project-dir", REPO,
                           "-p", "playbooks/daily.yml", "--inventory", os.path.join(REPO, "inventory", "sandbox"),
                           "--cmdline", "--tags health,errors"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (artifact,) = os.listdir(private / "artifacts")
    assert (private / "artifacts" / artifact / "rc").read_text() == "0"
    assert (private / "artifacts" / artifact / "status").read_text() == "successful"
