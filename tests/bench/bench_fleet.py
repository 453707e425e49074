#!/usr/bin/env python3
"""Benchmark: playbooks/daily.yml against 1 sandbox host and against a fleet
of N (default 20) host aliases, each with its own simulator on its own port
and its own app folder, with forks >= N. Both runs happen side by side in
one invocation; the script prints both wall times and their ratio.

Goal: the 20-host run takes at most 3x the 1-host run.

It then runs both once more with bemore_light_modules=false (every module
through AnsiballZ) and prints how much the light path saves
(plugins/action/light_module.py); BENCH_COMPARE=0 skips that.

Last, the floor (BENCH_FLOOR=0 skips it): the same 1-host and N-host runs of
a playbook of K no-op tasks (set_fact of a constant: no module, no
template), for K = the number of tasks daily.yml runs per host and a few
smaller K. ansible-core forks one worker per host and task, so on a machine
with few cores this ratio is the lowest any playbook with K tasks per host
can reach; it shows how much of daily.yml's ratio is its own work.

    python tests/bench/bench_fleet.py            # BENCH_HOSTS=20 BENCH_ROUNDS=2
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "sandbox"))
from tests.conftest import VENV_BIN, Sim  # noqa: E402
import sandboxctl  # noqa: E402


def inventory(path, hosts):
    lines = ["all:", "  children:", "    bemore:", "      hosts:"]
    for name, sim, app in hosts:
        lines += ["        %s:" % name,
                  "          bemore_base_url: http://127.0.0.1:%d" % sim.port,
                  "          bemore_app_dir: %s" % app,
                  "          performance_check_pid_file: %s" % os.path.join(os.path.dirname(app), "sim.pid")]
    lines += ["      vars:",
              "        ansible_connection: local",
              "        ansible_python_interpreter: \"{{ ansible_playbook_python }}\"",
              "        bemore_environment: bench",
              "        bemore_service_name: \"\"",
              "        disk_usage_folder_limit_mb: 8",
              "        maintenance_lock_dir: %s" % os.path.join(os.path.dirname(path), "locks")]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def run(inv, work, forks, extra=(), playbook=None, output=False):
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "PATH": VENV_BIN + os.pathsep + env["PATH"],
                "BEMORE_STATE_DIR": os.path.join(work, "state"), "BEMORE_REPORT_DIR": os.path.join(work, "reports"),
                "ANSIBLE_FORKS": str(forks)})
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", inv, playbook or os.path.join(REPO, "playbooks", "daily.yml")]
                          + list(extra),
                          env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit("%s failed (rc %d):\n%s" % (playbook or "daily.yml", proc.returncode, proc.stdout[-3000:]))
    return (elapsed, proc.stdout) if output else elapsed


def tasks_per_host(recap, host):
    """ok + skipped + failed of HOST in a PLAY RECAP: the tasks it ran (run_once ones included)."""
    match = re.search(r"^%s\s*:\s*ok=(\d+).*?failed=(\d+)\s+skipped=(\d+)" % re.escape(host), recap, re.M)
    if not match:
        sys.exit("no recap line for %s" % host)
    return sum(int(x) for x in match.groups())


def noop_playbook(path, count):
    """A play of COUNT tasks that fork a worker per host and do nothing else."""
    lines = ["---", "- name: Run no-op tasks", "  hosts: bemore", "  gather_facts: false", "  tasks:"]
    for i in range(count):
        lines += ["    - name: Set constant %d" % i, "      ansible.builtin.set_fact:", "        bench_noop_%d: true" % i]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def floor(one, fleet, work, count, per_host):
    forks = max(count, 20)
    os.makedirs(work, exist_ok=True)
    for k in sorted({per_host, 16, 12, 8}, reverse=True):
        playbook = os.path.join(work, "noop%d.yml" % k)
        noop_playbook(playbook, k)
        a = statistics.median(run(one, work, forks, playbook=playbook) for _ in range(2))
        b = statistics.median(run(fleet, work, forks, playbook=playbook) for _ in range(2))
        print("floor, %2d no-op tasks per host: 1 host %.1f s, %d hosts %.1f s, ratio %.2fx%s"
              % (k, a, count, b, b / a, "  <- as many as daily.yml" if k == per_host else ""))


def main():
    count = int(os.environ.get("BENCH_HOSTS", "20"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
    work = tempfile.mkdtemp(prefix="bench-fleet-")
    sims, hosts = [], []
    try:
        for i in range(count):
            root = os.path.join(work, "h%02d" % i)
            app = sandboxctl.seed_app(os.path.join(root, "app"))
            sim = Sim(_Dir(root), extra=["--env-file", os.path.join(app, ".env"), "--log-file",
                                         os.path.join(app, "logs", "app.log"), "--pid-file",
                                         os.path.join(root, "sim.pid")])
            sims.append(sim)
            hosts.append(("api%02d" % i, sim, app))
        one, fleet = os.path.join(work, "one.yml"), os.path.join(work, "fleet.yml")
        inventory(one, hosts[:1])
        inventory(fleet, hosts)
        _, recap = run(one, os.path.join(work, "warm"), 1, output=True)  # warm caches (imports, module zips, first review)
        per_host = tasks_per_host(recap, hosts[0][0])
        run(fleet, os.path.join(work, "warm"), count)
        t1, tn = [], []
        for _ in range(rounds):
            t1.append(run(one, os.path.join(work, "run"), max(count, 20)))
            tn.append(run(fleet, os.path.join(work, "run"), max(count, 20)))
        a, b = statistics.median(t1), statistics.median(tn)
        print("daily.yml, 1 host:   %.1f s (rounds: %s)" % (a, ", ".join("%.1f" % x for x in t1)))
        print("daily.yml, %d hosts: %.1f s (rounds: %s), forks %d" % (count, b, ", ".join("%.1f" % x for x in tn),
                                                                    max(count, 20)))
        print("ratio %d hosts / 1 host: %.2fx (goal <= 3x) on %d CPU(s); %d tasks per host"
              % (count, b / a, os.cpu_count() or 1, per_host))
        if os.environ.get("BENCH_COMPARE", "1") != "0":
            off = ["-e", "bemore_light_modules=false"]
            s1 = run(one, os.path.join(work, "run"), max(count, 20), off)
            sn = run(fleet, os.path.join(work, "run"), max(count, 20), off)
            print("without the light path: 1 host %.1f s, %d hosts %.1f s (ratio %.2fx); "
                  "the light path is %.2fx faster on 1 host, %.2fx on %d"
                  % (s1, count, sn, sn / s1, s1 / a, sn / b, count))
        if os.environ.get("BENCH_FLOOR", "1") != "0":
            floor(one, fleet, os.path.join(work, "run"), count, per_host)
    finally:
        for sim in sims:
            sim.stop()
        shutil.rmtree(work, ignore_errors=True)


class _Dir(object):
    """What Sim expects of pytest's tmp_path."""

    def __init__(self, path):
        self.path = path

    def __truediv__(self, name):
        return os.path.join(self.path, name)


if __name__ == "__main__":
    main()
