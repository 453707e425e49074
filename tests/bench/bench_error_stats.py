#!/usr/bin/env python3
"""Benchmark: one bemore_error_stats task against the same sweep as sequential
ansible.builtin.uri tasks (stats, recent errors, eight categories), with the
simulator adding 100 ms to every request. Both run side by side in one
playbook; task wall times come from time stamps taken between the tasks.
Goal: the module is at least 8x faster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
from tests.conftest import Sim  # noqa: E402

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    base: "{{ base_url }}"
    categories: [WEBSOCKET, SESSION, STT, VAD, GEMINI, CBT, DATABASE, NETWORK]
    paths: "{{ ['/api/errors/stats', '/api/monitoring/recent-errors?limit=20']
               + categories | map('regex_replace', '^', '/api/monitoring/errors/') | list }}"
  tasks:
    - {set_fact: {t0: "{{ now().timestamp() }}"}}
    - bemore_error_stats: {base_url: "{{ base }}"}
    - {set_fact: {t1: "{{ now().timestamp() }}"}}
    - {uri: {url: "{{ base }}{{ paths[0] }}"}}
    - {uri: {url: "{{ base }}{{ paths[1] }}"}}
    - {uri: {url: "{{ base }}{{ paths[2] }}"}}
    - {uri: {url: "{{ base }}{{ paths[3] }}"}}
    - {uri: {url: "{{ base }}{{ paths[4] }}"}}
    - {uri: {url: "{{ base }}{{ paths[5] }}"}}
    - {uri: {url: "{{ base }}{{ paths[6] }}"}}
    - {uri: {url: "{{ base }}{{ paths[7] }}"}}
    - {uri: {url: "{{ base }}{{ paths[8] }}"}}
    - {uri: {url: "{{ base }}{{ paths[9] }}"}}
    - {set_fact: {t2: "{{ now().timestamp() }}"}}
    - copy:
        dest: "{{ out }}"
        content: "{{ {'module': t1 | float - t0 | float, 'uri': t2 | float - t1 | float} | to_json }}"
        mode: "0600"
"""


class _Tmp(object):
    def __init__(self, path):
        self.path = path

    def __truediv__(self, name):
        return os.path.join(self.path, name)


def main():
    work = tempfile.mkdtemp(prefix="bench-errors-")
    sim = Sim(_Tmp(work), faults=["latency_ms=100"], extra=["--rate-limit", "0"])
    try:
        book = os.path.join(work, "bench.yml")
        with open(book, "w", encoding="utf-8") as handle:
            handle.write(PLAYBOOK)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        rounds = []
        for _ in range(3):
            out = os.path.join(work, "times.json")
            subprocess.run(["ansible-playbook", book, "-e", "base_url=" + sim.url, "-e", "out=" + out],
                           check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
            with open(out, encoding="utf-8") as handle:
                rounds.append(json.load(handle))
        print("bemore_error_stats (1 task) vs 10 sequential uri tasks, 100 ms per request, 3 rounds:")
        for number, times in enumerate(rounds, 1):
            print("  round %d: module %.3f s, uri sweep %.3f s, ratio %.1fx"
                  % (number, times["module"], times["uri"], times["uri"] / times["module"]))
        ratios = sorted(t["uri"] / t["module"] for t in rounds)
        print("  median speed-up: %.1fx  (goal >= 8x)" % ratios[1])
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
