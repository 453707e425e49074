"""Zero is a value (issue 24, item 4): a 0 % baseline or rate is compared,
never dropped as "not given"."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO


@pytest.fixture
def sim(sim_factory):
    # The real backend takes ~30 s to end a session; the simulator may take 1.
    return sim_factory(extra=["--session-end-wait", "1"])

PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    runbook_state_dir: %(state)s
    bemore_base_url: %(url)s
    runbook_checked: {error_monitoring: {figures: %(figures)s}}
  tasks:
    - name: Record a rollback point with its baseline
      runbook_state: {dir: %(state)s, host: localhost, topic: release, action: set, data: [{error_rate_baseline: %(baseline)s, baseline_note: %(note)s}]}
    - name: Run the smoke test
      ansible.builtin.import_role: {name: smoke_test}
    - name: Show the step
      ansible.builtin.copy: {content: "{{ smoke_test_result.step | to_json }}", dest: %(out)s, mode: "0600"}
"""


def smoke(tmp_path, ansible_env, sim, figures, baseline, note=None):
    out = tmp_path / "step.json"
    play = tmp_path / "play.yml"
    play.write_text(PLAY % {"state": tmp_path / "state", "url": sim.url, "figures": json.dumps(figures),
                            "baseline": json.dumps(baseline), "note": json.dumps(note), "out": out})
    proc = subprocess.run(["ansible-playbook", str(play)], cwd=REPO, env=ansible_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_a_zero_baseline_still_judges_the_post_deploy_rate(tmp_path, ansible_env, sim):
    stp = smoke(tmp_path, ansible_env, sim, {"error_rate_percent": 3.717, "rate_judged": True}, 0.0)
    assert stp["figures"]["baseline_percent"] == 0.0
    assert stp["status"] == "critical" and "above the pre-deploy baseline of 0 %" in stp["problems"][0]
    assert "against a baseline of 0 %" in stp["summary"]


def test_a_zero_rate_is_shown_as_zero_not_unknown(tmp_path, ansible_env, sim):
    stp = smoke(tmp_path, ansible_env, sim, {"error_rate_percent": 0.0, "rate_judged": True}, 0.0)
    assert stp["status"] == "ok" and stp["figures"]["error_rate_percent"] == 0.0
    assert "error rate 0 % against a baseline of 0 %" in stp["summary"]


def test_a_rate_that_was_not_judged_is_not_compared(tmp_path, ansible_env, sim):
    figures = {"error_rate_percent": 20.0, "rate_judged": False,
               "note": "1 error in 5 requests: too few to judge, below the minimums of 5 errors and 100 requests"}
    stp = smoke(tmp_path, ansible_env, sim, figures, 0.0)
    assert stp["status"] == "ok" and "not compared: 1 error in 5 requests" in stp["summary"]



def test_a_baseline_that_was_not_judged_is_no_baseline_and_says_so(tmp_path, ansible_env, sim):
    note = "1 error in 5 requests: too few to judge, below the minimums of 5 errors and 100 requests"
    stp = smoke(tmp_path, ansible_env, sim, {"error_rate_percent": 3.717, "rate_judged": True}, None, note)
    assert stp["status"] == "ok" and stp["figures"]["baseline_percent"] is None
    assert "against no judged baseline (%s): the regression check against it cannot run" % note in stp["summary"]
