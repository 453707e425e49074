#!/usr/bin/env python3
"""Benchmark: the tmp_cleanup core against `find PATH -type f -mtime +7 -delete`.

Builds the same tree twice (N files in 100 directories, half of them 30 days
old; on tmpfs unless BENCH_DIR says otherwise), times both side by side in
one run, five rounds in alternating order, and prints the median ratio
(goal <= 1.25). Then runs the core on a tree of M files in a child process
and prints its peak RSS, and that of its unlink helper process (goal <= 64
MB each). BENCH_FILES, BENCH_RSS_FILES and BENCH_ROUNDS change N, M and the
rounds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
from tests.helpers import load_module  # noqa: E402

N = int(os.environ.get("BENCH_FILES", "200000"))
M = int(os.environ.get("BENCH_RSS_FILES", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
OLD = time.time() - 30 * 86400


def build(root, count, size=0):
    for d in range(100):
        os.makedirs(os.path.join(root, "d%02d" % d))
    for i in range(count):
        path = os.path.join(root, "d%02d" % (i % 100), "f%07d.wav" % i)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        if size:
            os.ftruncate(fd, size)  # sparse: a real apparent size without the disk writes
        os.close(fd)
        if i % 2:
            os.utime(path, (OLD, OLD))


def drop_caches_hint():
    os.sync()


def main():
    # tmpfs by default: on these machines the root file system is mounted with
    # "discard", whose device-side cost makes file-churn timings noisy. Both
    # tools run on the same file system either way; BENCH_DIR moves it.
    default_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else "/var/tmp"
    base = tempfile.mkdtemp(prefix="bench-tmp-cleanup-", dir=os.environ.get("BENCH_DIR", default_dir))
    try:
        tc = load_module("tmp_cleanup")
        ratios = []
        print("tmp_cleanup vs find -delete on %d files (%d deleted), %d rounds, order alternating:"
              % (N, N // 2, ROUNDS))
        for round_no in range(ROUNDS):
            a, b = os.path.join(base, "find%d" % round_no), os.path.join(base, "module%d" % round_no)
            build(a, N)
            build(b, N)
            drop_caches_hint()
            timings = {}
            order = ["find", "module"] if round_no % 2 == 0 else ["module", "find"]
            for which in order:
                started = time.perf_counter()
                if which == "find":
                    subprocess.run(["find", a, "-type", "f", "-mtime", "+7", "-delete"], check=True)
                else:
                    result = tc.Cleanup(b, max_age_days=7, max_size_mb=500, skip_open_files=True).run()
                timings[which] = time.perf_counter() - started
            left_a = sum(len(files) for _, _, files in os.walk(a))
            left_b = sum(len(files) for _, _, files in os.walk(b))
            assert left_a == left_b == N - N // 2, (left_a, left_b)
            assert result["files_deleted"] == N // 2
            ratios.append(timings["module"] / timings["find"])
            print("  round %d: find %.3f s, tmp_cleanup core %.3f s, ratio %.2fx"
                  % (round_no + 1, timings["find"], timings["module"], ratios[-1]))
            shutil.rmtree(a)
            shutil.rmtree(b)
        print("  median ratio module/find: %.2fx  (goal <= 1.25x)" % sorted(ratios)[len(ratios) // 2])

        c = os.path.join(base, "rss")
        build(c, M, size=1000)
        code = ("import sys, resource; sys.path.insert(0, %r); from tests.helpers import load_module; "
                "tc = load_module('tmp_cleanup'); r = tc.Cleanup(%r, max_age_days=7, max_size_mb=100).run(); "
                "print(r['files_deleted'], r['deleted_by']['size_cap'], "
                "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)") % (REPO, c)
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
        print("peak RSS of the core on %d files (age rule + size cap evicting the rest): %.1f MB, "
              "of its unlink helper %.1f MB  (goal <= 64 MB)" % (M, int(out[2]) / 1024.0, int(out[3]) / 1024.0))
        print("  deleted %s files, %s of them by the size cap" % (out[0], out[1]))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
