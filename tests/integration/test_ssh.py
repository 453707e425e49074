"""The schedules and the doctor over SSH, as production runs them.

ONE testbed container for the whole module (containers/build-testbed.sh:
systemd, the simulator as bemore.service, sshd with host keys generated at
its first boot, root by key only): its sshd is published on a free loopback
port, a throwaway key generated here is installed, and known_hosts gets the
container's own host key (read through podman, not scanned), so
host_key_checking stays on. The runs use ansible.cfg (pipelining on,
ansible-core's ControlMaster/ControlPersist ssh_args), the remote Python
/usr/bin/python3 and ansible_user as inventory/production declares them,
with the API read on the host (bemore_api_from: host): the simulator
listens on the container's loopback only.

With CI=true a missing podman or testbed image fails, naming what is
missing; elsewhere the module is skipped.
"""

from __future__ import annotations

import glob
import http.server
import json
import os
import secrets
import shutil
import subprocess
import threading
import time

import pytest

from tests.conftest import VENV_BIN, free_port
from tests.helpers import REPO, in_ci

IMAGE_FILE = os.path.join(REPO, ".testbed-image")
BOOT_DEADLINE_S = 180
RUN_DEADLINE_S = 300
DB_PASSWORD = "doctor-db-%s" % secrets.token_hex(6)
UNITS = ["bemore-seed.service", "bemore-npm-registry.service", "bemore.service", "mariadb.service", "ssh.service"]


def _image():
    try:
        with open(IMAGE_FILE, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _missing():
    missing = []
    if not shutil.which("podman"):
        missing.append("podman (apt-get install -y podman runc)")
    if not _image():
        missing.append("the testbed image (make testbed writes its name to .testbed-image)")
    elif shutil.which("podman") and subprocess.run(["podman", "image", "exists", _image()], capture_output=True,
                                                   timeout=60, check=False).returncode != 0:
        missing.append("the testbed image %s (make testbed builds it)" % _image())
    return missing


class Container(object):
    def __init__(self, tmp):
        self.tmp = tmp
        self.name = "bemore-ssh-%s" % secrets.token_hex(4)
        self.env = dict(os.environ, CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", os.path.join(REPO, "containers", "containers.conf")))
        self.port = free_port()
        self.started = False

    def podman(self, *args, timeout=120, check=True, stdin=None):
        return subprocess.run(["podman"] + list(args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=check, input=stdin)

    def sh(self, script, check=True, timeout=120):
        return self.podman("exec", "-i", self.name, "bash", "-c", script, check=check, timeout=timeout)

    def start(self):
        self.started = True
        self.podman("run", "-d", "--name", self.name, "--systemd=always", "--publish", "127.0.0.1:%d:22" % self.port,
                    _image(), "/sbin/init")
        deadline = time.monotonic() + BOOT_DEADLINE_S
        # Returns once systemd has started every unit or given up on one; the units that matter are checked below.
        self.sh("timeout %d systemctl is-system-running --wait || true" % BOOT_DEADLINE_S, timeout=BOOT_DEADLINE_S + 30)
        while True:
            states = self.sh("systemctl is-active %s || true" % " ".join(UNITS)).stdout.split()
            health = self.sh("python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:3000/health', timeout=2).status)\" 2>/dev/null"
                             " || true").stdout.strip()
            if set(states) == {"active"} and health == "200" and self.sh("test -S /run/mysqld/mysqld.sock", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                journal = self.sh("journalctl --no-pager -n 60 " + " ".join("-u " + u for u in UNITS), check=False).stdout
                raise AssertionError("testbed not ready after %ds: %s %s health=%r\n%s" % (BOOT_DEADLINE_S, UNITS, states, health, journal))
            time.sleep(0.5)
        # A throwaway key of this test, and the container's own host key (generated at its first boot).
        self.key = os.path.join(self.tmp, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", self.key], check=True, timeout=30)
        with open(self.key + ".pub", encoding="utf-8") as handle:
            self.sh("install -m 0600 /dev/stdin /root/.ssh/authorized_keys <<'EOF'\n%sEOF" % handle.read())
        host_key = self.sh("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
        self.known_hosts = os.path.join(self.tmp, "known_hosts")
        with open(self.known_hosts, "w", encoding="utf-8") as handle:
            handle.write("[127.0.0.1]:%d %s %s\n" % (self.port, host_key[0], host_key[1]))
        # A remote user without root, as inventory/production's deploy: the same key, no sudoers entry.
        self.sh("useradd --create-home --shell /bin/bash deploy && install -d -m 0700 -o deploy /home/deploy/.ssh"
                " && install -m 0600 -o deploy /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys")
        # The backend's database with an account of its own, reached over TCP as production does.
        self.sh("mysql --protocol=socket -uroot <<'EOF'\nCREATE DATABASE IF NOT EXISTS bemore;\n"
                "CREATE USER 'runbook'@'localhost' IDENTIFIED BY '%s';\nCREATE USER 'runbook'@'127.0.0.1' IDENTIFIED BY '%s';\n"
                "GRANT ALL ON bemore.* TO 'runbook'@'localhost';\nGRANT ALL ON bemore.* TO 'runbook'@'127.0.0.1';\nEOF"
                % (DB_PASSWORD, DB_PASSWORD))
        # sshd answers with the key, through Ansible's own ping.
        deadline = time.monotonic() + 60
        while True:
            proc = self.ansible("-m", "ansible.builtin.ping")
            if proc.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError("sshd does not answer with the key: %s %s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
            time.sleep(0.5)

    def stop(self):
        if self.started:
            self.podman("rm", "-f", "-t", "0", self.name, check=False, timeout=120)

    def inventory(self, name, **overrides):
        """An inventory of this container, shaped as inventory/production (user and Python at host/group level)."""
        folder = os.path.join(self.tmp, "inventory-%s" % name)
        group = {
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes" % self.known_hosts,
            "ansible_ssh_private_key_file": self.key,
            "bemore_environment": "ssh-test",
            "bemore_base_url": "http://127.0.0.1:3000",
            "bemore_api_from": "host",
            "bemore_app_dir": "/srv/bemore/app",
            "bemore_service_name": "bemore",
            "bemore_log_source": "file",
            "bemore_log_files": ["/srv/bemore/app/logs/app.log"],
            "bemore_frontend_origin": "http://localhost:5173",
            "bemore_db_host": "127.0.0.1",
            "bemore_db_user": "runbook",
            "bemore_db_password": DB_PASSWORD,
            "bemore_state_dir": os.path.join(folder, "state"),
            "bemore_report_dir": os.path.join(folder, "reports"),
        }
        user = overrides.pop("ansible_user", "root")
        group.update(overrides)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "hosts.yml"), "w", encoding="utf-8") as handle:
            json.dump({"all": {"children": {"bemore": {
                "hosts": {"testbed": {"ansible_host": "127.0.0.1", "ansible_port": self.port, "ansible_user": user}},
                "vars": group}}}}, handle)
        return folder

    def run_env(self, control_dir="cp"):
        env = dict(os.environ)
        env.update({"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
                    "ANSIBLE_NOCOLOR": "1", "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(self.tmp, control_dir)})
        for name in ("BEMORE_STATE_DIR", "BEMORE_REPORT_DIR", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_ARGS"):
            env.pop(name, None)
        return env

    def ansible(self, *args):
        inv = self.inventory("ping")
        return subprocess.run([os.path.join(VENV_BIN, "ansible"), "-i", inv + "/hosts.yml", "bemore"] + list(args),
                              cwd=REPO, env=self.run_env(), capture_output=True, text=True, timeout=120, check=False)

    def playbook(self, playbook, inventory, *args, control_dir="cp"):
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory + "/hosts.yml", "playbooks/" + playbook]
                              + list(args), cwd=REPO, env=self.run_env(control_dir), capture_output=True, text=True,
                              timeout=RUN_DEADLINE_S, check=False)
        schedule = playbook[:-len(".yml")]
        reports = sorted(p for p in glob.glob(os.path.join(inventory, "reports", schedule, "*.json")) if not p.endswith("latest.json"))
        assert reports, "no %s report: rc %d\n%s\n%s" % (schedule, proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:])
        with open(reports[-1], encoding="utf-8") as handle:
            return proc, json.load(handle)


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    missing = _missing()
    if missing:
        if in_ci():
            pytest.fail("the SSH tests need %s" % " and ".join(missing))
        pytest.skip("needs %s" % " and ".join(missing))
    bed = Container(str(tmp_path_factory.mktemp("ssh")))
    try:
        bed.start()
        yield bed
    finally:
        bed.stop()


def steps_of(report):
    return dict((s["step"], s) for s in report["hosts"]["testbed"]["steps"])


# ------------------------------------------------------------- schedules

def test_daily_and_weekly_over_ssh(testbed):
    inv = testbed.inventory("schedules")
    proc, daily = testbed.playbook("daily.yml", inv)
    steps = steps_of(daily)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert daily["hosts"]["testbed"]["completed"]
    assert sorted(steps) == ["disk_usage", "error_monitoring", "health", "log_management", "tmp_cleanup"]
    assert dict((k, s["status"]) for k, s in steps.items()) == dict.fromkeys(steps, "ok"), json.dumps(steps)[:4000]
    # Read over SSH from the container (no such folder or log on this machine): its temp folder and its log.
    files = testbed.sh("find /srv/bemore/app/tmp -type f | wc -l").stdout.strip()
    assert steps["disk_usage"]["figures"]["folder_files"] == int(files) > 0, steps["disk_usage"]["figures"]
    assert steps["log_management"]["figures"]["source"] == "/srv/bemore/app/logs/app.log"
    assert steps["log_management"]["figures"]["lines"] > 0
    # The connection was the inventory's: pipelining (no temp file on the host) and a persistent master.
    assert glob.glob(os.path.join(testbed.tmp, "cp", "*")), "no ControlPersist socket"
    assert testbed.sh("ls -A /root/.ansible/tmp 2>/dev/null | wc -l").stdout.strip() == "0"

    before = testbed.sh("find /srv/bemore/app/tmp -type f | wc -l").stdout.strip()
    old = testbed.sh("find /srv/bemore/app/tmp -type f -mtime +7 | wc -l").stdout.strip()
    proc, weekly = testbed.playbook("weekly.yml", inv)
    steps = steps_of(weekly)
    after = testbed.sh("find /srv/bemore/app/tmp -type f | wc -l").stdout.strip()
    assert weekly["hosts"]["testbed"]["completed"], proc.stdout[-4000:]
    assert {"tmp_cleanup", "performance", "security_audit"} <= set(steps), sorted(steps)
    # The fixture registry's one advisory (validator, moderate), not accepted in this inventory: a warning, not a gate.
    assert dict((n, st["status"]) for n, st in steps.items()) == dict(dict.fromkeys(steps, "ok"), security_audit="warning"), \
        json.dumps(dict((n, (st["status"], st["problems"])) for n, st in steps.items()))[:3000]
    assert [p.split(":")[0] for p in steps["security_audit"]["problems"]] == ["moderate validator"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert int(old) > 0 and int(after) <= int(before) - int(old), (before, old, after)
    assert steps["tmp_cleanup"]["figures"]["files_deleted"] == int(before) - int(after), steps["tmp_cleanup"]["figures"]
    assert testbed.sh("find /srv/bemore/app/tmp -type f -mtime +7 | wc -l").stdout.strip() == "0"


# ------------------------------------------------------------------ doctor

class _Webhook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):  # noqa: N802  the name BaseHTTPRequestHandler calls
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Webhook.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = "http://127.0.0.1:%d/hooks/T0-secret-path" % server.server_address[1]
    server.received = _Webhook.received
    yield server
    server.shutdown()


def doctor_items(testbed, case, *args, control_dir="cp", **overrides):
    proc, report = testbed.playbook("doctor.yml", testbed.inventory("doctor-" + case, **overrides), *args, control_dir=control_dir)
    assert report["hosts"]["testbed"]["steps"], proc.stdout[-3000:]
    step = report["hosts"]["testbed"]["steps"][0]
    assert step["step"] == "doctor"
    # Read-only: nothing changed on the host, whatever it found.
    assert "changed=0" in proc.stdout.split("PLAY RECAP")[-1], proc.stdout[-3000:]
    return proc, step, dict((i["name"], i) for i in step["figures"]["items"])


def test_doctor_passes_on_a_ready_host_and_sends_one_test_notification(testbed, webhook):
    proc, step, items = doctor_items(testbed, "check", "--check", bemore_webhook_url=webhook.url)
    assert items["notification"]["status"] == "skipped" and webhook.received == []
    token = "tok-%s" % secrets.token_hex(8)
    proc, step, items = doctor_items(testbed, "ok", bemore_webhook_url=webhook.url, bemore_api_token=token)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert step["status"] == "ok" and step["problems"] == [], step
    assert sorted(items) == sorted(["connection", "ssh_host_key", "state_dir", "report_dir", "notification", "python", "become",
                                    "log_source", "app_dir", "env_file", "temp_dir", "npm", "mysqldump", "database", "api", "clock"])
    assert dict((n, i["status"]) for n, i in items.items()) == dict.fromkeys(items, "ok")
    assert "/usr/bin/python3" in items["python"]["detail"] and "127.0.0.1:3000" not in json.dumps(items["ssh_host_key"])
    assert len(webhook.received) == 1 and "test notification for ssh-test" in webhook.received[0]["text"]
    # The secrets never reach the report or the output.
    for path in glob.glob(os.path.join(testbed.tmp, "inventory-doctor-ok", "reports", "doctor", "*")):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        assert DB_PASSWORD not in text and "T0-secret-path" not in text and token not in text, path
    assert items["api"]["detail"].endswith("with the token")
    for secret in (DB_PASSWORD, "T0-secret-path", token):
        assert secret not in proc.stdout + proc.stderr


def _moved(testbed, path):
    class Moved(object):
        def __enter__(self):
            testbed.sh("mv %s %s.away" % (path, path))

        def __exit__(self, *exc):
            testbed.sh("mv %s.away %s" % (path, path))
    return Moved()


@pytest.mark.parametrize("case,item,detail,fix", [
    ("npm", "npm", "npm is not on the PATH", "apt-get install npm"),
    ("temp", "temp_dir", "/srv/bemore/app/tmp does not exist on the host", "tmp_cleanup_path"),
    ("db", "database", "cannot connect as runbook to 127.0.0.1:3306/bemore", "bemore_db_password"),
    ("api", "api", "/api/monitoring/health from the host: cannot connect to http://127.0.0.1:3999", "bemore_base_url"),
    ("known_hosts", "connection", "not in known_hosts", "ssh-keyscan"),
    ("clock", "clock", "more than the 30 s allowed", "timedatectl set-ntp true"),
])
def test_doctor_names_each_missing_prerequisite_with_its_fix(testbed, case, item, detail, fix):
    overrides = {}
    if case == "db":
        overrides["bemore_db_password"] = "wrong-%s" % secrets.token_hex(4)
    if case == "api":
        overrides["bemore_base_url"] = "http://127.0.0.1:3999"
    if case == "known_hosts":
        empty = os.path.join(testbed.tmp, "known_hosts.empty")
        open(empty, "w").close()
        overrides["ansible_ssh_common_args"] = "-o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes" % empty
    moved = {"npm": "/usr/bin/npm", "temp": "/srv/bemore/app/tmp"}.get(case)
    # The host's Python reads a clock two minutes ahead (every python3 started there imports the .pth).
    skew = "/usr/local/lib/python3.11/dist-packages/zz_doctor_skew.pth"
    try:
        if moved:
            testbed.sh("mv %s %s.away" % (moved, moved))
        if case == "clock":
            testbed.sh("mkdir -p %s && echo 'import time; time.time = (lambda real: lambda: real() + 120)(time.time)' > %s" % (os.path.dirname(skew), skew))
        # A master connection still open from an earlier run would skip the host key check: a fresh one.
        proc, step, items = doctor_items(testbed, case, control_dir="cp-" + case, **overrides)
    finally:
        if moved:
            testbed.sh("mv %s.away %s" % (moved, moved))
        testbed.sh("rm -f %s" % skew)
    assert item in items, json.dumps(step)[:3000]
    found = items[item]
    assert found["status"] == "failed" and detail in found["detail"] and fix in found["fix"], found
    assert step["status"] == "failed" and step["severity"] == "medium"
    assert "%s: %s" % (item, found["detail"]) in " ".join(step["problems"])
    assert proc.returncode == 2, proc.stdout[-2000:]
    # One prerequisite removed, one finding (the host key is also named on the control node's side).
    failed = sorted(n for n, i in items.items() if i["status"] == "failed")
    assert failed == (["connection", "ssh_host_key"] if case == "known_hosts" else [item]), items
    if case == "db":
        assert overrides["bemore_db_password"] not in json.dumps(step) + proc.stdout


def test_doctor_as_a_user_without_root(testbed):
    log_file = "/srv/bemore/app/logs/app.log"
    mode = testbed.sh("stat -c %%a %s" % log_file).stdout.strip()
    testbed.sh("chmod 0600 %s" % log_file)
    try:
        proc, step, items = doctor_items(testbed, "deploy", ansible_user="deploy", ansible_become=True)
        assert items["become"]["status"] == "failed" and "NOPASSWD" in items["become"]["fix"], items
        proc, step, items = doctor_items(testbed, "deploy-nobecome", ansible_user="deploy")
    finally:
        testbed.sh("chmod %s %s" % (mode, log_file))
    assert items["become"]["status"] == "warning"
    log = items["log_source"]
    assert log["status"] == "failed" and "cannot read /srv/bemore/app/logs/app.log" in log["detail"] and "deploy" in log["fix"], log
    assert items["temp_dir"]["status"] == "failed" and "cannot read and write /srv/bemore/app/tmp" in items["temp_dir"]["detail"]
