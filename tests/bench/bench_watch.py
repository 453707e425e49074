#!/usr/bin/env python3
"""Benchmark: the cost of one watch run (playbooks/watch.yml), 288 times a day.

Prints, in one run, side by side:

1. wall time and control-node CPU (user + system of ansible-playbook and
   every process it started) of a watch run on 1 host and on N hosts
   (default 20), the median of BENCH_ROUNDS runs each (default 3) - goals:
   1 host <= 10 s wall and <= 5 s CPU; N hosts <= 30 s wall;
2. the same for the no-op floor: a playbook of the same number of set_fact
   tasks on the same hosts (what any playbook of that size costs here);
3. the module runs on the target per host (goal <= 1: the host readings);
4. the messages of a simulated 30-minute outage (one run every 5 minutes,
   BEMORE_RUNBOOK_NOW moved 300 s each time) on 1 host, counted by a
   loopback webhook receiver - goal: one page and one resolved message;
   and the detection delay: the watch runs between the kill and the page.

    python tests/bench/bench_watch.py      # BENCH_HOSTS=20 BENCH_ROUNDS=3
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "sandbox"))
from tests.conftest import VENV_BIN  # noqa: E402
from bench_fleet import FleetSim, inventory, module_runs, noop_playbook, tasks_per_host  # noqa: E402
import sandboxctl  # noqa: E402

WATCH = os.path.join(REPO, "playbooks", "watch.yml")


def run(inv, work, playbook=WATCH, extra=(), now=None, verbose=False):
    """(wall s, control-node CPU s, output) of one ansible-playbook run."""
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "PATH": VENV_BIN + os.pathsep + env["PATH"],
                "BEMORE_STATE_DIR": os.path.join(work, "state"), "BEMORE_REPORT_DIR": os.path.join(work, "reports"),
                "ANSIBLE_FORKS": "20", "ANSIBLE_NOCOLOR": "1"})
    if now is not None:
        env["BEMORE_RUNBOOK_NOW"] = str(now)
    cmd = ["ansible-playbook", "-i", inv, playbook] + list(extra) + (["-vvv"] if verbose else [])
    # A wrapper of its own, so that the CPU it reports is this run's alone (every process it waited for).
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "sys.stderr.write('CPU %f\\n' % (u.ru_utime + u.ru_stime)); sys.exit(rc)")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", wrapper] + cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit("%s failed (rc %d):\n%s" % (playbook, proc.returncode, proc.stdout[-3000:]))
    return wall, float(re.search(r"CPU ([0-9.]+)", proc.stderr).group(1)), proc.stdout


class Receiver(object):
    def __init__(self):
        self.messages = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.messages.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def outage(work, app):
    """Messages of a 30-minute outage on 1 host, one watch run every (simulated) 5 minutes."""
    os.makedirs(work)
    sim = FleetSim(work, 1, app)
    inv = os.path.join(work, "one.yml")
    inventory(inv, sim, 1, app, work)
    receiver = Receiver()
    extra = ["-e", "bemore_webhook_url=%s" % receiver.url]
    now = time.time()
    log = []
    try:
        run(inv, work, extra=extra, now=now)
        sim.proc.kill()
        sim.proc.wait(10)
        killed = now
        paged_after = None
        for i in range(1, 7):  # 30 minutes down
            now += 300
            run(inv, work, extra=extra, now=now)
            if receiver.messages and paged_after is None:
                paged_after = (i, now - killed)
            log.append((now - killed, len(receiver.messages)))
        sim = FleetSim(work, 1, app)
        inventory(inv, sim, 1, app, work)
        for _ in range(3):
            now += 300
            run(inv, work, extra=extra, now=now)
    finally:
        sim.stop()
        receiver.server.shutdown()
    return receiver.messages, paged_after


def main():
    count = int(os.environ.get("BENCH_HOSTS", "20"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    work = tempfile.mkdtemp(prefix="bench-watch-")
    app = sandboxctl.seed_app(os.path.join(work, "app"))
    sim = FleetSim(work, count, app)
    try:
        one, fleet = os.path.join(work, "one.yml"), os.path.join(work, "fleet.yml")
        inventory(one, sim, 1, app, work)
        inventory(fleet, sim, count, app, work)
        run(one, os.path.join(work, "warm1"))  # the first read of the log
        run(fleet, os.path.join(work, "warmN"))
        _w, _c, verbose = run(fleet, os.path.join(work, "warmN"), verbose=True)
        per_host = max(tasks_per_host(verbose, "api%03d" % i) for i in range(count))
        runs = max(module_runs(verbose, "api%03d" % i) for i in range(count))
        noop = os.path.join(work, "noop.yml")
        noop_playbook(noop, per_host)
        rows = []
        for label, inv, state in (("1 host", one, "warm1"), ("%d hosts" % count, fleet, "warmN")):
            watch = [run(inv, os.path.join(work, state))[:2] for _ in range(rounds)]
            floor = [run(inv, os.path.join(work, state), playbook=noop)[:2] for _ in range(rounds)]
            rows.append((label, statistics.median(w for w, _ in watch), statistics.median(c for _, c in watch),
                         statistics.median(w for w, _ in floor), statistics.median(c for _, c in floor)))
    finally:
        sim.stop()
    print("watch.yml: %d tasks per host, %d module run(s) on the target per host (goal <= 1)" % (per_host, runs))
    print("%-10s %12s %12s %14s %14s %8s" % ("hosts", "watch wall", "watch CPU", "no-op wall", "no-op CPU",
                                             "wall x"))
    for label, wall, cpu, fwall, fcpu in rows:
        print("%-10s %11.2fs %11.2fs %13.2fs %13.2fs %7.2fx" % (label, wall, cpu, fwall, fcpu, wall / fwall))
    print("goals: 1 host <= 10 s wall and <= 5 s CPU; %d hosts <= 30 s wall; median of %d runs each"
          % (count, rounds))
    messages, paged = outage(os.path.join(work, "outage"), app)
    print("30-minute outage, one watch every 5 simulated minutes: %d message(s): %s" % (
        len(messages), ", ".join("%s %s" % (m["kind"], m["severity"]) for m in messages)))
    if paged:
        print("detected by watch run %d after the kill (%d s of simulated time; goal <= interval + one run)"
              % paged)


if __name__ == "__main__":
    main()
