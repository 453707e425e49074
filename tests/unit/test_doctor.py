"""The first-run check (runbook_doctor, module_utils/bemore_doctor.py): the
decision at each threshold, and each probe against the real thing here
(folders, MariaDB on 127.0.0.1:3306, the simulator and an HTTP server over
loopback, ssh -G with a known_hosts file). Over SSH: tests/integration/test_ssh.py."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading

import pytest

from tests.conftest import VENV_BIN, free_port
from tests.helpers import REPO, register_module_utils, require

register_module_utils()
from ansible.module_utils import bemore_doctor as doctor  # noqa: E402  pylint: disable=wrong-import-position

NOW = 1796200000.0


def host_probe(**items):
    return {"changed": False, "items": [doctor.item(name, status, "detail of " + name, "fix " + name)
                                        for name, status in items.items()], "time": NOW}


def controller_probe(**items):
    return {"items": [doctor.item(name, status, "detail of " + name, "fix " + name) for name, status in items.items()],
            "time": NOW - 1}


# ----------------------------------------------------------------- decide

def test_all_ok_is_ok_and_counts_what_was_checked():
    step = doctor.decide(controller_probe(ssh_host_key="ok", notification="skipped"), host_probe(python="ok", npm="ok"), 30, NOW + 1)
    assert step["step"] == "doctor" and step["status"] == "ok" and step["severity"] == "none"
    assert step["problems"] == []
    # connection, key, python, npm, clock; the skipped notification is not counted as passed.
    assert step["summary"] == "5 of 5 checks passed"
    assert [i["name"] for i in step["figures"]["items"]] == ["connection", "ssh_host_key", "notification", "python", "npm", "clock"]


def test_one_failure_fails_the_step_at_medium_and_names_its_fix():
    step = doctor.decide(controller_probe(state_dir="ok"), host_probe(npm="failed", temp_dir="warning"), 30, NOW + 1)
    assert step["status"] == "failed" and step["severity"] == "medium"
    assert step["problems"] == ["npm: detail of npm; fix: fix npm", "temp_dir: detail of temp_dir; fix: fix temp_dir"]
    assert step["summary"].endswith("to fix: npm, temp_dir")


def test_a_warning_alone_is_a_low_warning():
    step = doctor.decide(controller_probe(), host_probe(become="warning"), 30, NOW + 1)
    assert (step["status"], step["severity"]) == ("warning", "low")


@pytest.mark.parametrize("host_time,status", [
    (NOW - 1 - 30, "ok"),       # 30 s before the control node's first reading: at the limit
    (NOW - 1 - 30.01, "failed"),
    (NOW + 1 + 30, "ok"),       # 30 s after its last reading
    (NOW + 1 + 30.01, "failed"),
    (NOW, "ok"),                # inside the reading interval: no skew measurable
])
def test_clock_skew_at_the_threshold(host_time, status):
    probe = host_probe(python="ok")
    probe["time"] = host_time
    step = doctor.decide(controller_probe(), probe, 30, NOW + 1)
    clock = step["figures"]["items"][-1]
    assert clock["name"] == "clock" and clock["status"] == status
    if status == "failed":
        assert "timedatectl set-ntp true" in clock["fix"] and "more than the 30 s allowed" in clock["detail"]


def test_zero_skew_allowed_still_passes_a_clock_read_inside_the_interval():
    step = doctor.decide(controller_probe(), host_probe(), 0, NOW + 1)
    assert step["figures"]["items"][-1]["status"] == "ok"
    assert "+0.0 s" in step["figures"]["items"][-1]["detail"]


@pytest.mark.parametrize("message,detail,fix", [
    ("Failed to connect to the host via ssh: Host key verification failed.", "not in known_hosts", "ssh-keyscan"),
    ("Failed to connect to the host via ssh: root@127.0.0.1: Permission denied (publickey).", "refused the login", "ssh-copy-id"),
    ("ssh: connect to host 127.0.0.1 port 1: Connection refused", "nothing listens", "start sshd"),
    ("something else entirely", "unreachable: something else entirely", "ssh -v"),
])
def test_an_unreachable_host_is_named_with_its_fix(message, detail, fix):
    step = doctor.decide(controller_probe(ssh_host_key="ok"), {"unreachable": True, "msg": message, "changed": False}, 30, NOW)
    connection = step["figures"]["items"][0]
    assert connection["status"] == "failed" and detail in connection["detail"] and fix in connection["fix"]
    assert step["status"] == "failed"
    # Nothing of the host is claimed: no python, no clock.
    assert [i["name"] for i in step["figures"]["items"]] == ["connection", "ssh_host_key"]


def test_a_python_that_did_not_run_is_named():
    result = {"failed": False, "msg": "MODULE FAILURE", "module_stderr": "/bin/sh: 1: /usr/bin/python3: not found\n", "rc": 127}
    step = doctor.decide(controller_probe(), result, 30, NOW)
    assert step["figures"]["items"][-1]["name"] == "python" and step["figures"]["items"][-1]["status"] == "failed"
    assert "ansible_python_interpreter" in step["figures"]["items"][-1]["fix"]


def test_an_api_only_host_skips_the_host_checks():
    step = doctor.decide(controller_probe(api="ok"), {"skipped": True, "skip_reason": "Conditional result was False"}, 30, NOW)
    assert step["status"] == "ok" and step["figures"]["items"][0]["status"] == "skipped"


# --------------------------------------------------------------- the probes

def test_folders_writable_creatable_and_not(tmp_path):
    assert doctor.folder_item("state_dir", str(tmp_path), "bemore_state_dir")["status"] == "ok"
    created = doctor.folder_item("state_dir", str(tmp_path / "a" / "b"), "bemore_state_dir")
    assert created["status"] == "ok" and "creates it" in created["detail"]
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    assert doctor.folder_item("report_dir", str(tmp_path / "file"), "bemore_report_dir")["status"] == "failed"
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o500)
        assert doctor.folder_item("report_dir", str(tmp_path / "ro"), "bemore_report_dir")["status"] == "failed"


def test_temp_folder_missing_and_log_file_unreadable(tmp_path):
    missing = doctor.dir_item("temp_dir", str(tmp_path / "tmp"), "tmp_cleanup_path", write=True)
    assert missing["status"] == "failed" and "does not exist" in missing["detail"] and "tmp_cleanup_path" in missing["fix"]
    log = tmp_path / "app.log"
    bad = doctor.log_item("file", [str(log)], "")
    assert bad["status"] == "failed" and str(log) in bad["detail"]
    log.write_text("GET /health 200 2 - 1.0 ms\n")
    assert doctor.log_item("file", [str(log)], "")["status"] == "ok"
    assert doctor.log_item("file", [], "")["status"] == "failed"
    assert "bemore_service_name" in doctor.log_item("journal", [], "")["fix"]


def test_env_file_written_by_the_weekly_must_be_writable(tmp_path):
    env = tmp_path / ".env"
    assert doctor.env_item(str(env), True)["status"] == "failed"
    assert doctor.env_item(str(env), False)["status"] == "warning"
    env.write_text("TEMP_MAX_AGE_DAYS=7\n")
    assert doctor.env_item(str(env), True)["status"] == "ok"
    if os.geteuid() != 0:
        env.chmod(0o400)
        assert doctor.env_item(str(env), True)["status"] == "failed"
        assert doctor.env_item(str(env), False)["status"] == "ok"


def test_a_tool_missing_from_the_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    npm = doctor.tool_item("npm", True, "apt-get install npm", "doctor_check_npm")
    assert npm["status"] == "failed" and "not on the PATH" in npm["detail"] and "apt-get install npm" in npm["fix"]
    assert doctor.tool_item("npm", False, "x", "doctor_check_npm") == doctor.item("npm", "skipped", "not needed (doctor_check_npm: false)")


def test_npm_here_is_found():
    assert doctor.tool_item("npm", True, "apt-get install npm", "doctor_check_npm")["status"] == "ok"


DB = {"check_database": True, "db_host": "127.0.0.1", "db_port": 3306, "db_user": "root", "db_password": "", "db_schema": ""}


def _mariadb_answers():
    try:
        import pymysql  # pylint: disable=import-outside-toplevel
        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3).close()
        return True
    except Exception:  # pylint: disable=broad-except
        return False


def test_the_database_with_right_and_wrong_password():
    require(_mariadb_answers(), "MariaDB on 127.0.0.1:3306")
    assert doctor.database_item(DB)["status"] == "ok"
    wrong = doctor.database_item(dict(DB, db_password="not-the-password-8c1f"))
    assert wrong["status"] == "failed" and "bemore_db_password" in wrong["fix"]
    assert "not-the-password-8c1f" not in json.dumps(wrong)


class _TokenServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  the name BaseHTTPRequestHandler calls
        ok = self.headers.get("Authorization") == "Bearer right-token"
        body = b'{"status":"healthy"}' if ok else b'{"error":"unauthorized"}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_api_token_refused_and_accepted():
    server = http.server.HTTPServer(("127.0.0.1", 0), _TokenServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        refused = doctor.api_item(url, "wrong-token-5d2", 5, True, "controller")
        accepted = doctor.api_item(url, "right-token", 5, True, "controller")
    finally:
        server.shutdown()
    assert refused["status"] == "failed" and "HTTP 401" in refused["detail"] and "bemore_api_token" in refused["fix"]
    assert "wrong-token-5d2" not in json.dumps(refused)
    assert accepted["status"] == "ok"


def test_the_api_that_does_not_answer_suggests_reading_it_from_the_host():
    unreachable = doctor.api_item("http://127.0.0.1:%d" % free_port(), "", 2, True, "controller")
    assert unreachable["status"] == "failed" and "bemore_api_from: host" in unreachable["fix"]


def test_a_tls_file_that_cannot_be_used_is_named_with_its_option():
    tls = {"ca_path": "/nonexistent/ca.pem", "client_cert": None, "client_key": None}
    bad = doctor.api_item("https://127.0.0.1:%d" % free_port(), "", 2, True, "controller", tls)
    assert bad["status"] == "failed" and "ca_path '/nonexistent/ca.pem' is not a file" in bad["detail"]
    assert "bemore_api_ca_path" in bad["detail"] and "bemore_base_url" not in bad["detail"]


def test_the_simulator_answers_without_a_token(sim):
    answered = doctor.api_item(sim.url, "", 5, True, "host")
    assert answered["status"] == "ok" and "without a token" in answered["detail"]


def test_the_host_key_in_known_hosts(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    pub = (tmp_path / "key.pub").read_text().split()
    known = tmp_path / "known_hosts"
    conn = {"connection": "ssh", "host": "127.0.0.1", "port": 2222, "user": "root", "host_key_checking": True,
            "args": "-o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null" % known}
    unknown = doctor.host_key_item(conn)
    assert unknown["status"] == "failed" and "ssh-keyscan -p 2222 127.0.0.1 >> %s" % known in unknown["fix"]
    known.write_text("[127.0.0.1]:2222 %s %s\n" % (pub[0], pub[1]))
    assert doctor.host_key_item(conn)["status"] == "ok"
    assert doctor.host_key_item(dict(conn, port=22))["status"] == "failed"
    assert doctor.host_key_item(dict(conn, connection="local"))["status"] == "skipped"
    assert doctor.host_key_item(dict(conn, host_key_checking=False))["status"] == "warning"


def test_the_module_refuses_a_negative_skew_and_a_missing_url(run_module):
    result = run_module("runbook_doctor", {"probe": "decide", "controller": {}, "host_result": {}, "max_clock_skew_s": -1})
    assert result["failed"] and "max_clock_skew_s must be 0 or more" in result["msg"]
    result = run_module("runbook_doctor", {"probe": "controller", "connection": {"connection": "local"},
                                           "state_dir": "/tmp", "report_dir": "/tmp"})
    assert result["failed"] and "base_url is required" in result["msg"]


# ----------------------------------------------------- the playbook, locally

def test_doctor_playbook_on_the_sandbox_reports_every_item(sandbox, ansible_env, tmp_path):
    env = dict(ansible_env, ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "plugins", "callback"))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/doctor.yml", "-e", "bemore_db_schema=bemore"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    reports = tmp_path / "reports" / "doctor"
    files = sorted(reports.glob("*.json")) if reports.is_dir() else []
    assert files, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(files[-1].read_text())
    step = report["hosts"]["sandbox"]["steps"][0]
    items = dict((i["name"], i) for i in step["figures"]["items"])
    assert items["connection"]["status"] == "ok"
    assert items["ssh_host_key"]["status"] == "skipped"  # ansible_connection: local
    for name in ("state_dir", "report_dir", "api", "python", "app_dir", "env_file", "temp_dir", "npm", "log_source", "clock"):
        assert items[name]["status"] == "ok", items[name]
    # No mysqldump on this machine is a finding, never hidden.
    if not __import__("shutil").which("mysqldump"):
        assert items["mysqldump"]["status"] == "failed"
    assert items["notification"]["status"] == "skipped"
    assert proc.returncode == (2 if step["status"] == "failed" else 0), proc.stdout[-2000:]


def test_a_become_that_asks_for_a_password_is_named():
    result = {"failed": False, "msg": "Missing sudo password", "changed": False}
    step = doctor.decide(controller_probe(), result, 30, NOW)
    become = step["figures"]["items"][-1]
    assert become["name"] == "become" and become["status"] == "failed" and "NOPASSWD" in become["fix"]


@pytest.mark.parametrize("ci,outcome", [("true", "1 error"), ("", "skipped")])
def test_the_ssh_tests_fail_in_ci_without_podman(ci, outcome):
    # Only the virtualenv on the PATH: no podman.
    env = dict(os.environ, CI=ci, PATH=VENV_BIN)
    proc = subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           "tests/integration/test_ssh.py", "-k", "daily"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert outcome in proc.stdout, proc.stdout[-2000:]
    assert "podman (apt-get install -y podman runc)" in proc.stdout
