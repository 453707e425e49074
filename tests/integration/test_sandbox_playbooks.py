"""The schedule playbooks end to end against the sandbox simulator."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import REPO


def play(playbook, env, *args):
    proc = subprocess.run(["ansible-playbook", os.path.join(REPO, "playbooks", playbook)] + list(args),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc


def latest(env, schedule):
    with open(os.path.join(env["BEMORE_REPORT_DIR"], schedule, "latest.json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_weekly_is_green_against_a_healthy_sandbox(sim, ansible_env):
    ansible_env["BEMORE_SANDBOX_PORT"] = str(sim.port)
    proc = play("weekly.yml", ansible_env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = latest(ansible_env, "weekly")
    assert report["worst_status"] == "ok"
    assert report["hosts"]["sandbox"]["steps"][0]["figures"]["commit"] == "abc1234def567"


def test_weekly_fails_and_still_reports_when_the_service_is_down(sim, ansible_env):
    ansible_env["BEMORE_SANDBOX_PORT"] = str(sim.port)
    sim.fault(health_down=True)
    proc = play("weekly.yml", ansible_env, "-e", "health_check_retries=0")
    assert proc.returncode != 0
    report = latest(ansible_env, "weekly")
    assert report["worst_status"] == "critical" and report["worst_severity"] == "critical"
    assert "HTTP 503" in report["hosts"]["sandbox"]["steps"][0]["summary"]
