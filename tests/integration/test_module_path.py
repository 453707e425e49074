"""Every module runs through ansible-core's own module path, so a task's
environment, a `~` in a path option, and a module killed on one host behave
as Ansible documents them."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import REPO, VENV_BIN
from tests.helpers import require
from tests.integration.test_sandbox_playbooks import latest, play


def run_playbook(path, env, *args):
    return subprocess.run(["ansible-playbook", str(path)] + list(args), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


class Proxy(object):
    """An HTTP proxy on loopback that answers every request itself and records it."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                seen.append(self.path)
                body = json.dumps({"status": "ok", "uptime": 5.5, "version": "1.0.0", "commit": None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_tasks_environment_and_a_tilde_reach_the_module_on_the_target(ansible_env, tmp_path):
    proxy = Proxy()
    home = tmp_path / "home"
    home.mkdir()
    playbook = tmp_path / "env.yml"
    playbook.write_text("""---
- name: Use the project's modules with a task environment
  hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Read /health through the proxy the task names
      bemore_api:
        base_url: http://bemore.invalid
        endpoint: health
        retries: 0
      environment:
        http_proxy: %s
        no_proxy: ""
      register: health

    - name: Take a lock in a folder under the target's home
      maintenance_lock:
        lock_dir: ~/locks
        name: localhost
        run_id: env-test
      environment:
        HOME: %s
      register: lock

    - name: Show both
      ansible.builtin.debug:
        msg: "{{ {'status': health.data.status, 'lock_file': lock.lock_file} | to_json }}"
""" % (proxy.url, home))
    try:
        proc = run_playbook(playbook, ansible_env)
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proxy.seen == ["http://bemore.invalid/health"]
    assert (home / "locks" / "localhost.lock").exists()


def test_a_module_killed_on_one_host_fails_that_host_and_the_run_finishes(sandbox, ansible_env, tmp_path):
    hosts = ["api%d" % i for i in range(4)]
    inventory = tmp_path / "hosts.yml"
    lines = ["all:", "  children:", "    bemore:", "      hosts:"]
    for host in hosts:
        lines += ["        %s:" % host,
                  "          ansible_connection: local",
                  "          ansible_python_interpreter: '{{ ansible_playbook_python }}'",
                  "          performance_check_cpu_sample_s: %s" % ("20" if host == "api2" else "0.2")]
    inventory.write_text("\n".join(lines) + "\n")
    group_vars = os.path.join(REPO, "inventory", "sandbox")
    env = dict(ansible_env, ANSIBLE_FORKS="2")
    stop = threading.Event()
    killed = []

    def parent_of(pid):
        with open("/proc/%s/stat" % pid, "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[1].decode()

    def module_processes(root):
        """This run's module runs under way: with pipelining (ansible.cfg) each is a bare
        `python` reading its module on stdin, started by `sh -c '<python> && sleep 0'`,
        below the run's ansible-playbook (``root``) - never another test's."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    args = handle.read().split(b"\0")[:-1]
                ppid = parent_of(entry)
                with open("/proc/%s/cmdline" % ppid, "rb") as handle:
                    parent = handle.read()
                if not (len(args) == 1 and os.path.basename(args[0]).startswith(b"python") and b"&& sleep 0" in parent):
                    continue
                ancestor = ppid
                while ancestor not in ("0", "1", str(root)):
                    ancestor = parent_of(ancestor)
            except (OSError, IndexError):
                continue
            if ancestor == str(root):
                found.append(entry)
        return found

    def killer(root):
        # The one module run that outlives the others is api2's (its CPU sample takes 20 s).
        first_seen = {}
        while not stop.is_set():
            for pid in module_processes(root):
                seen = first_seen.setdefault(pid, time.monotonic())
                if time.monotonic() - seen > 8 and pid not in killed:
                    try:
                        os.kill(int(pid), 9)
                    except OSError:
                        continue
                    killed.append(pid)
            time.sleep(0.2)

    proc = subprocess.Popen(["ansible-playbook", "-i", group_vars, "-i", str(inventory),
                             os.path.join(REPO, "playbooks", "weekly.yml"), "--tags", "health,performance",
                             "--limit", ",".join(hosts)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    thread = threading.Thread(target=killer, args=(proc.pid,), daemon=True)
    thread.start()
    try:
        proc.communicate(timeout=240)
    finally:
        stop.set()
        thread.join(5)
        if proc.poll() is None:
            proc.kill()
    assert killed, "the module was never killed"
    assert proc.returncode != 0
    report = latest(ansible_env, "weekly")
    assert report["hosts"]["api2"]["completed"] is False
    assert all(report["hosts"][h]["completed"] for h in hosts if h != "api2")
    assert all(any(s["step"] == "performance" for s in report["hosts"][h]["steps"]) for h in hosts if h != "api2")


def test_the_schedules_run_on_ansible_core_2_20(sandbox, ansible_env):
    venv = os.path.join(REPO, ".venv-core-2.20", "bin")
    if not os.path.exists(os.path.join(venv, "ansible-playbook")):
        import pytest  # pylint: disable=import-outside-toplevel
        # The same interpreters `make venv-core-2.20` looks for: where one exists, CI must have made the venv.
        pythons = glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[23]*/bin/python3.1[23]"))
        pythons += [p for p in ("/usr/bin/python3.12", "/usr/bin/python3.13", "/usr/local/bin/python3.12",
                                "/usr/local/bin/python3.13") if os.path.exists(p)]
        if not pythons:
            pytest.skip("ansible-core 2.20 smoke run skipped: no Python 3.12 or 3.13 on this machine (2.20 needs one)")
        require(False, "the ansible-core 2.20 virtualenv (with %s here)" % pythons[0], "make venv-core-2.20")
    env = dict(ansible_env, PATH=venv + os.pathsep + ansible_env["PATH"].replace(VENV_BIN + os.pathsep, ""))
    version = subprocess.run([os.path.join(venv, "ansible"), "--version"], capture_output=True, text=True).stdout
    assert "core 2.20." in version
    for playbook in ("daily.yml", "weekly.yml"):
        proc = play(playbook, env, "--skip-tags", "security")
        assert proc.returncode == 0, (playbook, proc.stdout[-3000:])
        assert latest(ansible_env, playbook[:-4])["worst_status"] in ("ok", "warning")
