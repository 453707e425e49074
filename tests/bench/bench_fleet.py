#!/usr/bin/env python3
"""Benchmark: playbooks/daily.yml on a fleet, the standard way.

Prints, in one run (every module through ansible-core's own module path):

1. the tasks per host of daily.yml, as ansible-core counts them (its PLAY
   RECAP: ok + changed + skipped + failed; the run's argument checking
   included) - goal <= 20;
2. the module runs on the target per host (AnsiballZ executions on that
   host, from -vvv; the control node's run_once modules are not the
   host's) - goal <= 3: lock, host readings, release;
3. daily.yml on 1 host and on N hosts (default 20), side by side with the
   no-op floor: playbooks of the same number of set_fact tasks on the same
   hosts, the least any playbook of that many tasks can take here - goal:
   N hosts <= 1.2x that floor;
4. a 100-host run: its time and the control node's peak RSS;
5. the API sweep alone over 100 simulated hosts, each answering with 100 ms
   latency (one simulator process serving 100 ports) - goal < 3 s.

One simulator serves every host's base URL (a port each, so each host has
its own rate-limit bucket); the hosts share one app folder and log.

    python tests/bench/bench_fleet.py      # BENCH_HOSTS=20 BENCH_BIG=100 BENCH_ROUNDS=2
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "sandbox"))
from tests.conftest import VENV_BIN  # noqa: E402
from tests.helpers import register_module_utils  # noqa: E402
import sandboxctl  # noqa: E402

register_module_utils()
from ansible.module_utils import bemore_checks  # noqa: E402


def free_ports(count):
    """``count`` consecutive free loopback ports."""
    for start in range(20000, 60000, count + 7):
        ok = True
        for port in range(start, start + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return start
    raise SystemExit("no %d free consecutive ports" % count)


class FleetSim(object):
    """One simulator process answering on ``count`` ports."""

    def __init__(self, work, count, app, faults=()):
        self.first = free_ports(count)
        self.ports = list(range(self.first, self.first + count))
        cmd = [sys.executable, os.path.join(REPO, "sandbox", "bemore_sim.py"), "--port", str(self.first),
               "--ports", "%d-%d" % (self.first, self.first + count - 1), "--background-rps", "5",
               "--env-file", os.path.join(app, ".env"), "--log-file", os.path.join(app, "logs", "app.log"),
               "--pid-file", os.path.join(work, "sim.pid")]
        for fault in faults:
            cmd += ["--fault", fault]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        for port in self.ports:
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if self.proc.poll() is not None or time.time() > deadline:
                        raise SystemExit("simulator did not start: %s" % self.proc.stderr.read().decode()[-2000:])
                    time.sleep(0.05)

    def url(self, i):
        return "http://127.0.0.1:%d" % self.ports[i]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def inventory(path, sim, count, app, work):
    lines = ["all:", "  children:", "    bemore:", "      hosts:"]
    for i in range(count):
        lines += ["        api%03d:" % i, "          bemore_base_url: %s" % sim.url(i)]
    lines += ["      vars:",
              "        ansible_connection: local",
              "        ansible_python_interpreter: \"{{ ansible_playbook_python }}\"",
              "        bemore_environment: bench",
              "        bemore_app_dir: %s" % app,
              "        bemore_service_name: \"\"",
              "        bemore_log_source: file",
              "        bemore_log_files: [%s]" % os.path.join(app, "logs", "app.log"),
              "        disk_usage_folder_limit_mb: 8",
              "        maintenance_lock_dir: %s" % os.path.join(work, "locks")]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def run(inv, work, forks, playbook=None, verbose=False):
    """(seconds, output, peak RSS in MB of the largest process of the run: ansible-playbook or a worker)."""
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "PATH": VENV_BIN + os.pathsep + env["PATH"],
                "BEMORE_STATE_DIR": os.path.join(work, "state"), "BEMORE_REPORT_DIR": os.path.join(work, "reports"),
                "ANSIBLE_FORKS": str(forks), "ANSIBLE_NOCOLOR": "1"})
    cmd = ["ansible-playbook", "-i", inv, playbook or os.path.join(REPO, "playbooks", "daily.yml")]
    if verbose:
        cmd.append("-vvv")
    # A wrapper process of its own, so the peak RSS it reports is this run's alone.
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "sys.stderr.write('RSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", wrapper] + cmd, env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit("%s failed (rc %d):\n%s" % (playbook or "daily.yml", proc.returncode, proc.stdout[-3000:]))
    rss = int(re.search(r"RSS (\d+)", proc.stderr).group(1)) / 1024.0
    return elapsed, proc.stdout, rss


def tasks_per_host(recap, host):
    match = re.search(r"^%s\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)"
                      % re.escape(host), recap, re.M)
    if not match:
        sys.exit("no recap line for %s" % host)
    return sum(int(x) for x in match.groups())


def module_runs(verbose_out, host):
    """Module executions on ``host``: its own EXEC lines that start Python (pipelined or not);
    delegated runs show the control node's name instead."""
    return len(re.findall(r"^<%s> EXEC .*python" % re.escape(host), verbose_out, re.M))


def noop_playbook(path, count):
    lines = ["---", "- name: Run no-op tasks", "  hosts: bemore", "  gather_facts: false", "  tasks:"]
    for i in range(count):
        lines += ["    - name: Set constant %d" % i, "      ansible.builtin.set_fact:", "        bench_noop_%d: true" % i]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def sweep_100(work, app):
    """The API sweep alone over 100 hosts with 100 ms latency each."""
    sim = FleetSim(os.path.join(work, "sweep"), 100, app, faults=["latency_ms=100"])
    try:
        targets = dict(("h%03d" % i, {"api": {"base_url": sim.url(i), "retries": 0, "timeout": 10},
                                      "wants": ["health", "error_stats", "monitoring", "cleanup", "rate"],
                                      "cfg": {}}) for i in range(100))
        times = []
        for _ in range(3):
            started = time.monotonic()
            results, _ms = bemore_checks.sweep(targets, workers=128)
            times.append(time.monotonic() - started)
            bad = [h for h, r in results.items() if (r.get("health") or {}).get("error")]
            if bad:
                sys.exit("sweep: %d hosts failed, e.g. %s" % (len(bad), results[bad[0]]))
        return times
    finally:
        sim.stop()


def main():
    count = int(os.environ.get("BENCH_HOSTS", "20"))
    big = int(os.environ.get("BENCH_BIG", "100"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
    work = tempfile.mkdtemp(prefix="bench-fleet-")
    os.makedirs(os.path.join(work, "sweep"))
    app = sandboxctl.seed_app(os.path.join(work, "app"))
    sim = FleetSim(work, max(count, big), app)
    try:
        one, fleet, huge = (os.path.join(work, n) for n in ("one.yml", "fleet.yml", "huge.yml"))
        inventory(one, sim, 1, app, work)
        inventory(fleet, sim, count, app, work)
        inventory(huge, sim, big, app, work)
        run(one, os.path.join(work, "warm"), 1)  # the first review of the log, the module zips
        _s, verbose, _r = run(fleet, os.path.join(work, "warm"), count, verbose=True)
        per_host = max(tasks_per_host(verbose, "api%03d" % i) for i in range(count))
        runs = max(module_runs(verbose, "api%03d" % i) for i in range(count))
        print("daily.yml: %d tasks per host (ansible-core's count, argument checking included; goal <= 20)" % per_host)
        print("daily.yml: %d module runs on the target per host (goal <= 3: lock, host readings, release)" % runs)

        noop = os.path.join(work, "noop.yml")
        noop_playbook(noop, per_host)
        forks = max(count, 20)
        t1, tn, f1, fn = [], [], [], []
        for _ in range(rounds):
            t1.append(run(one, os.path.join(work, "run"), forks)[0])
            f1.append(run(one, os.path.join(work, "run"), forks, noop)[0])
            tn.append(run(fleet, os.path.join(work, "run"), forks)[0])
            fn.append(run(fleet, os.path.join(work, "run"), forks, noop)[0])
        a, b = statistics.median(t1), statistics.median(tn)
        fa, fb = statistics.median(f1), statistics.median(fn)
        print("| | 1 host | %d hosts | ratio |" % count)
        print("|---|---|---|---|")
        print("| daily.yml | %.1f s | %.1f s | %.2fx |" % (a, b, b / a))
        print("| %d no-op tasks (floor) | %.1f s | %.1f s | %.2fx |" % (per_host, fa, fb, fb / fa))
        print("daily.yml on %d hosts is %.2fx the floor of the same task count (goal <= 1.2x); on 1 host %.2fx;"
              " %d CPU(s), forks %d" % (count, b / fb, a / fa, os.cpu_count() or 1, forks))

        elapsed, _out, rss = run(huge, os.path.join(work, "run"), 100)
        print("daily.yml on %d hosts (forks 100): %.1f s, control node peak RSS %.0f MB" % (big, elapsed, rss))

        times = sweep_100(work, app)
        print("API sweep alone, 100 hosts at 100 ms latency: %s s (median %.2f s; goal < 3 s)"
              % (", ".join("%.2f" % t for t in times), statistics.median(times)))
    finally:
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
