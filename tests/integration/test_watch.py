"""The watch against the simulator (issue 27): a 5-minute timer simulated by
consecutive runs with BEMORE_RUNBOOK_NOW moved 300 s each time, and a
loopback webhook receiver that counts the messages.

- the service killed -> a check-mode watch pages and commits nothing; the
  next watch pages critical; five more failing runs (a 30-minute outage)
  -> no new page, no reminder; the service back -> one resolved message
  with the duration (one page and one resolved message for the outage);
- a spike above 5 % -> high; 1 % to 5 % -> medium, notified once;
- a watch during a weekly run -> neither waits.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import REPO, free_port
from tests.helpers import register_module_utils
from tests.integration.test_interruption import lock_holder, start, wait_for
from tests.integration.test_sandbox_playbooks import play

register_module_utils()

from ansible.module_utils import bemore_watch_store as watch_store  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import runbook_files  # noqa: E402  pylint: disable=wrong-import-position

STEP = 300.0


class Receiver(object):
    """A webhook receiver on the loopback: every JSON body it was sent, in order."""

    def __init__(self):
        self.messages = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.messages.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


class Backend(object):
    """The simulator on a fixed port, so that it can be killed and brought back as a crashed service would."""

    def __init__(self, env, rps=40):
        self.port = free_port()
        self.rps = rps
        self.log_file = os.path.join(env["BEMORE_SANDBOX_DIR"], "app", "logs", "app.log")
        os.makedirs(os.path.dirname(self.log_file), exist_ok=True)
        env["BEMORE_SANDBOX_PORT"] = str(self.port)
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "sandbox", "bemore_sim.py"), "--port", str(self.port),
             "--log-file", self.log_file, "--background-rps", str(self.rps), "--random-seed", "7"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, 20, "the simulator to answer")

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        wait_for(lambda: not self.answers(), 20, "the port to close")

    def fault(self, **faults):
        import urllib.request  # pylint: disable=import-outside-toplevel
        req = urllib.request.Request(self.url + "/__sim/faults", data=json.dumps(faults).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def backend(ansible_env):
    server = Backend(ansible_env)
    yield server
    server.stop()


class Clock(object):
    def __init__(self, env):
        self.env = env
        self.now = float(int(time.time()))

    def watch(self, receiver, *args):
        """One watch run at the next 5-minute tick; its new messages."""
        self.now += STEP
        env = dict(self.env, BEMORE_RUNBOOK_NOW=str(self.now))
        before = len(receiver.messages)
        proc = play("watch.yml", env, "-e", "bemore_webhook_url=%s" % receiver.url, *args)
        assert proc.returncode == 0, proc.stdout[-3000:]
        return receiver.messages[before:]


def test_a_dead_service_pages_once_and_resolves_once_with_its_duration(ansible_env, backend, receiver):
    clock = Clock(ansible_env)
    assert clock.watch(receiver) == []
    killed_at = clock.now
    backend.kill()
    # A check-mode watch decides and pages nothing, and commits nothing: the next real run still opens it.
    checked = play("watch.yml", dict(ansible_env, BEMORE_RUNBOOK_NOW=str(clock.now + 60)), "--check",
                   "-e", "bemore_webhook_url=%s" % receiver.url)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert receiver.messages == []
    page = clock.watch(receiver)
    assert [(m["kind"], m["severity"]) for m in page] == [("opened", "critical")]
    # Detected by the first run after the kill: at most one interval plus one run.
    assert page[0]["text"].startswith("[CRITICAL]") and "service down" in page[0]["text"]
    incident = page[0]["incident_id"]
    # Through a 30-minute outage: no new page, and no reminder before bemore_watch_repeat_minutes (60).
    for _ in range(5):
        assert clock.watch(receiver) == []
    # The daily run finds the same dead service: it names the watch's open incident instead of paging again.
    daily = play("daily.yml", dict(ansible_env, BEMORE_RUNBOOK_NOW=str(clock.now + 60)), "--tags", "health",
                 "-e", "bemore_webhook_url=%s" % receiver.url)
    assert "service down" in daily.stdout, daily.stdout[-3000:]
    assert len(receiver.messages) == 1
    with open(os.path.join(ansible_env["BEMORE_REPORT_DIR"], "daily", "latest.json")) as handle:
        watch_view = json.load(handle)["watch"]["sandbox"]
    assert watch_view == {"incident_id": incident, "last_success_ago_s": 60.0}
    backend.start()
    back = []
    for _ in range(4):
        back += clock.watch(receiver)
    assert [m["kind"] for m in back] == ["resolved"]
    assert back[0]["incident_id"] == incident
    # From the run that found it down to the first clean run: 6 intervals, or 7 when the first run back
    # still saw the restart (medium: the incident goes on, no reminder at a medium's 4 hours).
    assert re.search(r"lasted (30|35) min 00 s", back[0]["text"]), back[0]["text"]
    # The whole 30-minute outage: one page and one resolved message.
    assert len(receiver.messages) == 2
    assert clock.now - killed_at == 10 * STEP
    # One line of the bounded summary per run (the check-mode one marked); full reports only for the two changes.
    with open(os.path.join(ansible_env["BEMORE_REPORT_DIR"], "watch", "summary.log")) as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 12
    assert [n for n, line in enumerate(lines) if "(check mode)" in line] == [1]
    reports = []
    for name in sorted(os.listdir(os.path.join(ansible_env["BEMORE_REPORT_DIR"], "watch"))):
        if name.endswith(".json") and name.startswith("2"):
            with open(os.path.join(ansible_env["BEMORE_REPORT_DIR"], "watch", name)) as handle:
                report = json.load(handle)
            reports.append((report["check_mode"], [e["event"] for e in report["watch"]["events"]]))
    # The check-mode run reported what it would page; the real runs, the two changes.
    assert reports == [(True, ["opened"]), (False, ["opened"]), (False, ["resolved"])]


def test_a_spike_above_5_percent_pages_high(ansible_env, backend, receiver):
    clock = Clock(ansible_env)
    assert clock.watch(receiver) == []
    backend.fault(error_spike="NETWORK:20")
    page = clock.watch(receiver)
    assert [(m["kind"], m["severity"]) for m in page] == [("opened", "high")], page
    assert "error rate" in page[0]["text"]


def test_a_rate_between_1_and_5_percent_is_medium_and_notified_once(ansible_env, backend, receiver):
    clock = Clock(ansible_env)
    assert clock.watch(receiver) == []
    backend.fault(error_spike="NETWORK:3")
    page = clock.watch(receiver)
    assert [(m["kind"], m["severity"]) for m in page] == [("opened", "medium")], page
    for _ in range(3):
        assert [m["kind"] for m in clock.watch(receiver) if m["kind"] != "resolved"] == []
    assert [m["kind"] for m in receiver.messages].count("opened") == 1


def test_a_watch_during_a_weekly_run_neither_waits(sandbox, ansible_env, receiver):
    # A watch is running (its lock held, as by a watch still reading its hosts) when the weekly run starts:
    # the weekly run takes the host's maintenance lock without waiting for it ...
    os.makedirs(ansible_env["BEMORE_STATE_DIR"], exist_ok=True)
    me = runbook_files.controller_identity(os.getpid())
    took, owner = watch_store.take_lock(ansible_env["BEMORE_STATE_DIR"], time.time(), me)
    assert took, owner
    # The weekly run's npm audit is held at the registry until the watch has run: the overlap is certain on a
    # fast machine or a busy one (its fetch timeout is raised so that a slow watch cannot time the audit out).
    sandbox.registry.hold_audits()
    try:
        weekly = start("weekly.yml", ansible_env, "-e", "security_audit_fetch_timeout=600")
        wait_for(lambda: lock_holder(ansible_env) is not None or weekly.poll() is not None, 300,
                 "the weekly run to hold the host's maintenance lock")
        holder = lock_holder(ansible_env)
        assert holder is not None, weekly.communicate()[0][-3000:]
    finally:
        assert watch_store.release_lock(ansible_env["BEMORE_STATE_DIR"], me)
    try:
        wait_for(lambda: sandbox.registry.audit_held.is_set() or weekly.poll() is not None, 300,
                 "the weekly run's security audit")
        assert weekly.poll() is None, weekly.communicate()[0][-3000:]
        # ... and the next watch runs to its end while the weekly run holds the host's lock.
        proc = play("watch.yml", ansible_env, "-e", "bemore_webhook_url=%s" % receiver.url)
        assert lock_holder(ansible_env) == holder
    finally:
        sandbox.registry.release_audits()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "maintenance lock" not in proc.stdout.lower()
    out = weekly.communicate(timeout=600)[0]
    assert weekly.returncode == 0, out[-3000:]
    # The weekly run never waited for a lock.
    with open(os.path.join(ansible_env["BEMORE_REPORT_DIR"], "weekly", "latest.json")) as handle:
        lock = json.load(handle)["hosts"]["sandbox"].get("lock") or {}
    assert float(lock.get("waited_s") or 0) == 0.0, lock
    assert receiver.messages == []


def test_an_incident_start_asked_under_cron_is_refused_before_the_watch_runs(ansible_env, receiver):
    env = dict(ansible_env, BEMORE_SCHEDULER="cron")
    proc = play("watch.yml", env, "-e", "bemore_webhook_url=%s" % receiver.url,
                "-e", "bemore_watch_start_incident=true")
    assert proc.returncode != 0
    assert "bemore_watch_start_incident is not offered under cron" in proc.stdout, proc.stdout[-3000:]
    # Refused before the watch's lock and state: no summary line, nothing sent.
    assert not os.path.exists(os.path.join(ansible_env["BEMORE_REPORT_DIR"], "watch", "summary.log"))
    assert receiver.messages == []
