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


def _wait_for(predicate, timeout=10.0):
    import time  # pylint: disable=import-outside-toplevel
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in %s s" % timeout
        time.sleep(0.05)


def test_the_simulators_log_of_own_requests_and_the_probe_is_left_out(sim):
    import urllib.error  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    from tests.helpers import register_module_utils  # pylint: disable=import-outside-toplevel
    register_module_utils()
    from ansible.module_utils import bemore_api, bemore_checks, bemore_logs  # pylint: disable=import-outside-toplevel

    before = bemore_logs.scan_files([sim.log_file], {}, now=0)
    for n in range(3):
        req = urllib.request.Request(sim.url + "/health", headers={"X-Request-Id": "%s%d" % (bemore_api.RUNBOOK_REQUEST_ID_PREFIX, n)})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["X-Request-Id"] == "%s%d" % (bemore_api.RUNBOOK_REQUEST_ID_PREFIX, n)
    probe = urllib.request.Request(sim.url + "/api/session/start", method="OPTIONS", headers={
        "Origin": bemore_checks.DEFAULT_PROBE_ORIGIN, "Access-Control-Request-Method": "POST",
        "X-Request-Id": bemore_api.RUNBOOK_REQUEST_ID_PREFIX + "cors"})
    try:
        urllib.request.urlopen(probe, timeout=5).close()
    except urllib.error.HTTPError as exc:
        assert exc.code == 400

    def scanned():
        return bemore_logs.scan_files([sim.log_file], before["position"], now=0)
    _wait_for(lambda: scanned()["own_requests"] >= 4)
    after = scanned()
    assert after["own_requests"] == 4 and after["own_errors"] == 1
    # Whatever other traffic the simulator logged, the probe's refusal is not among the errors.
    assert not any("CORS policy" in g["signature"] for g in after["signatures"])


def test_predeploy_checks_then_an_incident_run_find_no_incident_on_a_healthy_sandbox(sandbox, ansible_env):
    # The real-backend page: predeploy --tags health,errors,api, then incident.yml with nothing confirmed.
    # A minimum sample of 1 error and 1 request: the probe's one CORS error would be judged (100 % of a
    # handful), so the run can only find no incident because the runbook's own requests are left out.
    sample = ("-e", "error_monitoring_min_errors=1", "-e", "error_monitoring_min_requests=1")
    assert play("predeploy.yml", ansible_env, "--tags", "health,errors,api", *sample).returncode == 0
    proc = play("incident.yml", ansible_env, *sample)
    report = latest(ansible_env, "incident")
    by_step = steps(report)
    assert by_step["incident_response"]["figures"]["classification"] == [], json.dumps(by_step, indent=1)[:4000]
    assert report["worst_severity"] not in ("high", "critical") and proc.returncode == 0, proc.stdout[-3000:]
