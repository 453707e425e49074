"""predeploy.yml, postdeploy.yml and quarterly.yml against the sandbox."""

from __future__ import annotations

import json
import os

from tests.integration.test_sandbox_playbooks import latest, play, steps


def test_predeploy_gates_then_postdeploy_verifies_the_new_commit(sandbox, ansible_env):
    sandbox.control("POST", "/__sim/commit", {"commit": "abc1234def567"})  # the backend's GIT_COMMIT
    proc = play("predeploy.yml", ansible_env, "-e", "bemore_deploy_commit=def4567")
    assert proc.returncode == 0, proc.stdout[-4000:]
    report = latest(ansible_env, "predeploy")
    by_step = steps(report)
    assert set(by_step) == {"health", "error_monitoring", "security_audit", "app_checks", "db_maintenance",
                            "api_security", "release"}
    assert by_step["app_checks"]["figures"]["tests_passed"] is True
    assert by_step["app_checks"]["figures"]["missing_env"] == []
    assert by_step["api_security"]["figures"]["rate_limit"]["limit"] == 600
    assert by_step["api_security"]["figures"]["cors"]["allowed_origin"] == "http://localhost:5173"
    point = by_step["release"]["figures"]
    assert point["deployed_commit"] == "abc1234def567" and point["target_commit"] == "def4567"
    assert point["backup_file"].endswith(".sql.gz") and os.path.exists(point["backup_file"])
    assert "sandbox-not-a-secret" not in open(os.path.join(ansible_env["BEMORE_REPORT_DIR"], "predeploy",
                                                           "latest.json")).read()

    # Postdeploy before the new commit is live fails on the commit...
    proc = play("postdeploy.yml", ansible_env, "-e", "bemore_deploy_commit=def4567")
    assert proc.returncode != 0
    assert "commit is abc1234def567, expected def4567" in steps(latest(ansible_env, "postdeploy"))["health"]["summary"]
    # ...and passes once the service reports it.
    sandbox.control("POST", "/__sim/commit", {"commit": "def4567aaaaa"})
    proc = play("postdeploy.yml", ansible_env, "-e", "bemore_deploy_commit=def4567")
    assert proc.returncode == 0, proc.stdout[-4000:]
    by_step = steps(latest(ansible_env, "postdeploy"))
    smoke = by_step["smoke_test"]["figures"]
    assert smoke["session_id"].startswith("sess_") and smoke["ended"] is True
    assert smoke["baseline_percent"] is not None
    assert sandbox.control("GET", "/__sim/state")["sessions"]["open"] == 0  # the test session was ended


def test_predeploy_fails_on_a_missing_variable_and_an_inactive_rate_limit(sandbox, ansible_env):
    sandbox.fault(no_rate_limit=True)
    proc = play("predeploy.yml", ansible_env, "--tags", "app,api", "-e", '{"bemore_required_env": ["NODE_ENV", "SENTRY_DSN"]}',
                "-e", "api_security_rate_limit_probe=true", "-e", "api_security_rate_limit_probe_max=40")
    assert proc.returncode != 0
    by_step = steps(latest(ansible_env, "predeploy"))
    assert by_step["app_checks"]["figures"]["missing_env"] == ["SENTRY_DSN"]
    assert by_step["api_security"]["status"] == "critical"
    assert "no 429 after 40 requests" in " ".join(by_step["api_security"]["problems"])
    assert by_step["api_security"]["figures"]["rate_limit"]["requests"] == 40


def test_postdeploy_error_rate_above_the_baseline_is_critical(sandbox, ansible_env):
    proc = play("predeploy.yml", ansible_env, "--tags", "errors,rollback")
    assert proc.returncode == 0, proc.stdout[-3000:]
    sandbox.fault(error_spike="SESSION:4")
    proc = play("postdeploy.yml", ansible_env, "--tags", "smoke")
    assert proc.returncode != 0
    smoke = steps(latest(ansible_env, "postdeploy"))["smoke_test"]
    assert "above the pre-deploy baseline" in smoke["problems"][0]


def test_quarterly_reviews_security_trend_and_docs(sandbox, ansible_env):
    for _ in range(3):
        assert play("weekly.yml", ansible_env, "--tags", "performance,errors").returncode == 0
    sandbox.control("DELETE", "/__sim/rate-window")
    proc = play("quarterly.yml", ansible_env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    by_step = steps(latest(ansible_env, "quarterly"))
    assert by_step["performance_trend"]["figures"]["reports_read"] == 3
    assert by_step["performance_trend"]["figures"]["trends"]["p95_ms"]["points"] == 3
    assert by_step["docs_review"]["status"] == "ok"
    # The sandbox's accepted risk expires in 90 days: inside the quarter, so flagged.
    assert by_step["security_audit"]["figures"]["expiring_acceptances"] == ["validator"]
    checklist = by_step["docs_review"]["figures"]["training_checklist"]
    text = open(checklist).read()
    assert "Ran `ansible-playbook playbooks/incident.yml --tags respond --check --limit staging`" in text


def test_check_mode_of_every_schedule_changes_nothing_on_the_app(sandbox, ansible_env):
    app = sandbox.app_dir

    def snapshot():
        out = {}
        for d, _, files in os.walk(app):
            if "node_modules" in d:
                continue
            for f in files:
                p = os.path.join(d, f)
                if p.endswith("app.log"):
                    continue
                out[p] = (os.path.getsize(p), os.path.getmtime(p))
        return out

    before = snapshot()
    for playbook in ("daily.yml", "weekly.yml", "monthly.yml"):
        proc = play(playbook, ansible_env, "--check")
        assert proc.returncode == 0, (playbook, proc.stdout[-3000:])
        assert json.load(open(os.path.join(ansible_env["BEMORE_REPORT_DIR"], playbook[:-4], "latest.json")))["check_mode"]
    assert snapshot() == before
