"""The run's lifecycle against the sandbox (issue 24): bad numbers stop it
before anything changes, a run that selects no step fails, a damaged state
file is kept and reported, a step that changed something survives the run's
death, an unreachable host pages."""

from __future__ import annotations

import pytest

from tests.integration.test_bad_input import snapshot
from tests.integration.test_sandbox_playbooks import play


@pytest.mark.parametrize("option, value", [("tmp_cleanup_max_age_days", "nan"), ("tmp_cleanup_max_size_mb", "1e400")])
def test_a_number_that_is_not_finite_stops_the_weekly_run_before_the_env_file_changes(sandbox, ansible_env, option, value):
    before = snapshot(sandbox, ansible_env)
    proc = play("weekly.yml", ansible_env, "-e", "%s=%s" % (option, value))
    assert proc.returncode != 0
    assert "%s must be a finite number" % option in proc.stdout, proc.stdout[-3000:]
    assert "nothing was changed" in proc.stdout
    assert snapshot(sandbox, ansible_env) == before
