"""The run's lifecycle against the sandbox (issue 24): bad numbers stop it
before anything changes, a run that selects no step fails, a damaged state
file is kept and reported, a step that changed something survives the run's
death, an unreachable host pages."""

from __future__ import annotations

import os

import pytest

from tests.integration.test_bad_input import snapshot
from tests.integration.test_sandbox_playbooks import latest, play


@pytest.mark.parametrize("option, value", [("tmp_cleanup_max_age_days", "nan"), ("tmp_cleanup_max_size_mb", "1e400")])
def test_a_number_that_is_not_finite_stops_the_weekly_run_before_the_env_file_changes(sandbox, ansible_env, option, value):
    before = snapshot(sandbox, ansible_env)
    proc = play("weekly.yml", ansible_env, "-e", "%s=%s" % (option, value))
    assert proc.returncode != 0
    assert "%s must be a finite number" % option in proc.stdout, proc.stdout[-3000:]
    assert "nothing was changed" in proc.stdout
    assert snapshot(sandbox, ansible_env) == before


def test_a_damaged_state_file_is_kept_and_the_daily_report_says_so(sandbox, ansible_env):
    state_dir = ansible_env["BEMORE_STATE_DIR"]
    os.makedirs(state_dir, exist_ok=True)
    damaged = b'{"version": 1, "hosts": {"sandbox": {"disk_usage": {"samples": [{"ts": 1'
    with open(os.path.join(state_dir, "state.json"), "wb") as handle:
        handle.write(damaged)
    proc = play("daily.yml", ansible_env, "--tags", "health,disk")
    assert proc.returncode == 0, proc.stdout[-3000:]
    kept = [n for n in os.listdir(state_dir) if n.startswith("state.json.corrupt-")]
    assert len(kept) == 1
    with open(os.path.join(state_dir, kept[0]), "rb") as handle:
        assert handle.read() == damaged
    report = latest(ansible_env, "daily")
    assert len(report["warnings"]) == 1 and os.path.join(state_dir, "state.json") in report["warnings"][0]
    assert kept[0] in report["warnings"][0] and "WARNING: the state file" in proc.stdout
    # The run committed a new state file beside the kept one.
    assert os.path.exists(os.path.join(state_dir, "state.json"))


def test_a_run_whose_tags_select_no_step_fails_and_names_the_tags(sandbox, ansible_env):
    proc = play("daily.yml", ansible_env, "--tags", "helth")
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "the run selected no step: --tags helth (helth is not a tag of this playbook)" in proc.stdout
    assert "step tags are: disk, errors, health, logs, tmp_cleanup" in proc.stdout
    assert "BeMore daily run: OK" not in proc.stdout
    report = latest(ansible_env, "daily")
    assert report["worst_status"] == "failed" and report["problems"]
