"""The error rate's minimum sample is an option of error_monitoring that
reaches the decision through the run's plan (issue 24, item 2)."""

from __future__ import annotations

from tests.integration.test_sandbox_playbooks import latest, play, steps


def test_the_minimum_sample_reaches_the_step_and_a_bad_one_is_refused(sandbox, ansible_env):
    proc = play("daily.yml", ansible_env, "--tags", "errors", "-e", "error_monitoring_min_requests=100000")
    assert proc.returncode == 0, proc.stdout[-3000:]
    errors = steps(latest(ansible_env, "daily"))["error_monitoring"]
    assert errors["figures"]["rate_judged"] is False and errors["severity"] == "none"
    assert "too few to judge, below the minimums of 5 errors and 100000 requests" in errors["summary"]
    proc = play("daily.yml", ansible_env, "--tags", "errors", "-e", "error_monitoring_min_errors=0")
    assert proc.returncode != 0 and "error_monitoring_min_errors: must be >= 1, got 0" in proc.stdout, proc.stdout[-3000:]
