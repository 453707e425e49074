"""The runbook's own requests never raise the error rate it judges (issue 24,
item 1): a healthy sandbox run through predeploy, then postdeploy, pages
nothing, and the report says what it left out."""

from __future__ import annotations

import json

from tests.integration.test_sandbox_playbooks import latest, play, steps


def test_predeploy_then_postdeploy_on_a_healthy_sandbox_pages_nothing(sandbox, ansible_env):
    proc = play("predeploy.yml", ansible_env, "--tags", "health,errors,api,rollback")
    assert proc.returncode == 0, proc.stdout[-3000:]
    pre = steps(latest(ansible_env, "predeploy"))
    assert pre["api_security"]["figures"]["cors"]["foreign_allowed"] is False
    proc = play("postdeploy.yml", ansible_env, "--tags", "health,errors,smoke")
    report = latest(ansible_env, "postdeploy")
    post = steps(report)
    assert report["worst_severity"] not in ("high", "critical"), json.dumps(report["hosts"], indent=1)[:4000]
    assert proc.returncode == 0, proc.stdout[-3000:]
    errors = post["error_monitoring"]["figures"]
    # The CORS probe's error line of the pre-deploy run is the runbook's own, named and left out.
    assert errors["window_own_errors"] >= 1, errors
    assert "left out" in post["error_monitoring"]["summary"]
    assert post["smoke_test"]["status"] == "ok", post["smoke_test"]
