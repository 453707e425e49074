"""Bad input gets a clear error before anything changes: no lock file, no
.env line, no deleted file, no password in any output."""

from __future__ import annotations

import os

import pytest

from tests.integration.test_sandbox_playbooks import files_in, play


def snapshot(sandbox, env):
    app = sandbox.app_dir
    return (files_in(os.path.join(app, "tmp")), open(os.path.join(app, ".env")).read(),
            os.path.exists(os.path.join(env["BEMORE_SANDBOX_DIR"], "locks")))


@pytest.mark.parametrize("args, message", [
    (["-e", "tmp_cleanup_max_age_days=-1"], "tmp_cleanup_max_age_days: must be >= 0"),
    (["-e", "tmp_cleanup_max_age_days=0"], "counts as an emergency cleanup"),
    (["-e", "tmp_cleanup_emergency=true"], "tmp_cleanup_emergency_confirm=true"),
    (["-e", "bemore_base_url=http://127.0.0.1:1/../../"], "must not have a path"),
    (["-e", "error_monitoring_warning_rate=9"], "target_rate <= warning_rate <= critical_rate"),
    (["-e", "maintenance_lock_break=true"], "only incident.yml may break"),
    (["-e", "log_management_source=syslog"], "must be one of journal, file, none"),
    # World-readable reports are refused with the other inputs, before the run is registered.
    (["-e", "report_file_mode=0644"], "report: value of report_file_mode must be one of: 0600, 0640, got: 0644"),
])
def test_bad_input_stops_the_run_before_anything_changes(sandbox, ansible_env, args, message):
    before = snapshot(sandbox, ansible_env)
    proc = play("weekly.yml", ansible_env, *args)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-3000:]
    assert "nothing was changed" in proc.stdout
    assert snapshot(sandbox, ansible_env) == before


def test_a_temp_path_that_is_the_app_folder_is_refused_with_the_reason(sandbox, ansible_env):
    before = snapshot(sandbox, ansible_env)
    proc = play("weekly.yml", ansible_env, "-e", "tmp_cleanup_path=" + sandbox.app_dir)
    assert proc.returncode != 0 and "is the app folder" in proc.stdout
    assert snapshot(sandbox, ansible_env) == before


@pytest.mark.parametrize("marker, is_dir", [("package.json", False), (".env", False), (".git", True),
                                             ("node_modules", True)])
def test_the_cleanup_module_refuses_a_folder_holding_the_apps_files(run_module, tmp_path, marker, is_dir):
    if is_dir:
        (tmp_path / marker).mkdir()
    else:
        (tmp_path / marker).write_text("{}")
    (tmp_path / "old.wav").write_bytes(b"x")
    os.utime(tmp_path / "old.wav", (0, 0))
    result = run_module("tmp_cleanup", {"path": str(tmp_path), "max_age_days": 7})
    assert result["failed"] and marker in result["msg"] and (tmp_path / "old.wav").exists()


def test_credentials_in_the_base_url_are_refused_and_never_shown(sandbox, ansible_env):
    url = "http://opsuser:hunter2-pw@127.0.0.1:%d" % sandbox.port
    proc = play("daily.yml", ansible_env, "-e", "bemore_base_url=" + url)
    assert proc.returncode != 0 and "must not contain credentials" in proc.stdout
    assert "hunter2-pw" not in proc.stdout + proc.stderr
    for folder in (ansible_env["BEMORE_REPORT_DIR"], ansible_env["BEMORE_STATE_DIR"]):
        for root, _dirs, names in os.walk(folder):
            for name in names:
                assert "hunter2-pw" not in open(os.path.join(root, name), errors="replace").read()


def test_host_names_that_would_leave_the_lock_folder_are_refused_before_any_file(sandbox, ansible_env, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    bemore:\n      hosts:\n        '../../escape':\n          ansible_connection: local\n"
        "          ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    env = dict(ansible_env)
    proc = play("daily.yml", env, "-i", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "inventory", "sandbox"), "-i", str(inventory), "--limit", "../../escape")
    assert proc.returncode != 0 and "file names" in proc.stdout, proc.stdout[-2000:]
    sandbox_dir = env["BEMORE_SANDBOX_DIR"]
    assert not os.path.exists(os.path.join(sandbox_dir, "escape.lock"))
    assert not os.path.exists(os.path.join(os.path.dirname(sandbox_dir), "escape.lock"))


def test_the_lock_module_encodes_a_hostile_name_inside_its_folder(run_module, tmp_path):
    locks = tmp_path / "locks"
    result = run_module("maintenance_lock", {"lock_dir": str(locks), "name": "../../x/../y", "run_id": "r1"})
    assert result["acquired"] and os.path.dirname(result["lock_file"]) == str(locks)
    assert os.listdir(str(locks)) == [os.path.basename(result["lock_file"])]


def test_the_group_api_token_never_reaches_the_output_or_the_files(sandbox, ansible_env):
    secret = "tok-Zq8-never-shown"
    proc = play("weekly.yml", ansible_env, "-v", "-e", "bemore_api_token=" + secret, "--skip-tags", "security")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert secret not in proc.stdout + proc.stderr
    for folder in (ansible_env["BEMORE_REPORT_DIR"], ansible_env["BEMORE_STATE_DIR"]):
        for root, _dirs, names in os.walk(folder):
            for name in names:
                assert secret not in open(os.path.join(root, name), errors="replace").read(), name
