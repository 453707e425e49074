#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Benchmark: the log core (module_utils/bemore_logs.py) against a shell pipeline.

Builds a log of BENCH_LINES lines (4,000,000 by default, about 300 MiB): 2 %
the backend's ANSI-coloured ErrorHandler ERROR lines with varying ids and
numbers (Korean messages among them), the rest morgan access lines. Then,
BENCH_ROUNDS times (3) in alternating order, it times

* the core's file scan (``scan_files``, in a child process, so its peak RSS
  is its own: ru_maxrss),
* ``grep -E '\\b(ERROR|FATAL|CRITICAL)\\b' | sed <colours, ids, numbers> |
  sort | uniq -c | sort -rn``, with the sed normalising the way the core
  does, so both must give the same signature counts (checked), and
* the same pipeline with only colours and numbers stripped, the cheapest
  form of it,

and prints the times, the median ratios (goal <= 3x) and the core's peak
RSS (goal <= 64 MB).

BENCH_BEFORE=1 also times the log_scan module as it was before the core
(``git show BENCH_BEFORE_REV:library/log_scan.py``; it reads the whole file
into memory: about 40 s and 1.5 GB here).

With podman and the testbed image (.testbed-image, or the newest
localhost/bemore-testbed-base), it also writes BENCH_JOURNAL_ENTRIES
(1,000,000) entries through a systemd unit into a real journald
(RateLimitBurst=0) in a container and prints the core's journal scan rate
next to journalctl's own; BENCH_JOURNAL=0 skips that part. The temp files
and the container are removed at the end.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORE = os.path.join(REPO, "module_utils", "bemore_logs.py")
LINES = os.path.join(REPO, "module_utils", "bemore_log_lines.py")

LINES = int(os.environ.get("BENCH_LINES", "4000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
JOURNAL_ENTRIES = int(os.environ.get("BENCH_JOURNAL_ENTRIES", "1000000"))
BEFORE_REV = os.environ.get("BENCH_BEFORE_REV", "9b2c333")

# Mostly health probes, as on a monitored server; the weights keep the file
# near 75 bytes a line (a uuid reqId is half of an access line).
URLS = ["GET /health"] * 60 + ["POST /api/session/start", "GET /api/errors/stats", "GET /api/session/%s",
                               "POST /api/session/%s/end", "GET /api/monitoring/health", "GET /api/session/%s/report"]
STATUSES = (200,) * 30 + (201, 304, 304, 400, 401, 404, 404, 429, 500, 503)

SED_FULL = ("s/\\x1b\\[[0-9;]*m//g; s/^\\[(ERROR|CRITICAL)\\] [^ ]+ /\\1 /; "
            "s/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g; "
            "s/sess_[0-9]+_[0-9a-f]+/<session>/g; s/[0-9]{1,3}(\\.[0-9]{1,3}){3}(:[0-9]+)?/<ip>/g; "
            "s/'[^']*'/<str>/g; s/[0-9]+(\\.[0-9]+)?/<n>/g")
SED_MIN = "s/\\x1b\\[[0-9;]*m//g; s/[0-9]+/<n>/g"
GREP = "grep -E '\\b(ERROR|FATAL|CRITICAL)\\b' \"$1\""


def shell_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def pipeline(sed):
    return "set -o pipefail; %s | sed -E %s | sort | uniq -c | sort -rn" % (GREP, shell_quote(sed))


def error_line(i, hexes):
    kind = i // 50 % 6
    if kind == 0:
        module, typ, msg = "express", "UNKNOWN", "Validation failed"
    elif kind == 1:
        module, typ, msg = "session-end", "UNKNOWN", "세션을 찾을 수 없습니다: sess_%d_%s" % (1796200000000 + i, hexes[:8])
    elif kind == 2:
        module, typ, msg = "gemini", "AI_SERVICE", "Gemini API request timed out after %dms (attempt %d)" % (
            (5000, 15000, 30000)[i % 3], 1 + i % 2)
    elif kind == 3:
        module, typ, msg = "websocket", "WEBSOCKET", "WebSocket closed by client 10.0.%d.%d:%d code %d" % (
            i % 256, 1 + i % 254, 1024 + i % 60000, (1006, 1011)[i % 2])
    elif kind == 4:
        module, typ, msg = "auth", "UNKNOWN", "user %s-%s-%s-%s-%s not found" % (
            hexes[:8], hexes[8:12], hexes[12:16], hexes[16:20], hexes[20:32])
    else:
        module, typ, msg = "stt", "FILE", "ENOENT: no such file or directory, open '/srv/bemore/app/tmp/rec_%d.webm'" % (
            i % 99991)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1796204700 + i // 100)) + ".%03dZ" % (i % 1000)
    # services/ErrorHandler.js log(): level, time, module and type each in colour.
    return "\x1b[31m[ERROR]\x1b[0m \x1b[90m%s\x1b[0m \x1b[34m[%s]\x1b[0m \x1b[33m(%s)\x1b[0m %s\n" % (stamp, module, typ, msg)


def access_line(i, url, status, hexes):
    if "%s" in url:
        url = url % ("sess_%d_%s" % (1796200000000 + i, hexes[:8]))
    # app.js: morgan(':method :url :status :res[content-length] - :response-time ms reqId=:id')
    return "%s %d %d - %d.%03d ms reqId=%s-%s-%s-%s-%s\n" % (
        url, status, 20 + i % 900, i % 40, i % 1000, hexes[:8], hexes[8:12], hexes[12:16], hexes[16:20], hexes[20:32])


def make_log(path, lines, seed=7):
    rnd = random.Random(seed)
    block = 20000
    with open(path, "w", encoding="utf-8") as handle:
        for base in range(0, lines, block):
            count = min(block, lines - base)
            hexes = rnd.randbytes(16 * count).hex()
            urls = rnd.choices(URLS, k=count)
            statuses = rnd.choices(STATUSES, k=count)
            out = []
            for j in range(count):
                i = base + j
                h = hexes[32 * j:32 * j + 32]
                out.append(error_line(i, h) if i % 50 == 49 else access_line(i, urls[j], statuses[j], h))
            handle.write("".join(out))


CHILD = r"""
import importlib.util, json, os, resource, sys, time
for name in ("bemore_log_lines", "bemore_logs"):  # as Ansible ships them: bemore_logs imports the other
    spec = importlib.util.spec_from_file_location("ansible.module_utils." + name,
                                                  os.path.join(os.path.dirname(sys.argv[1]), name + ".py"))
    core = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)
started = time.perf_counter()
result = core.scan_files([sys.argv[2]], {}, budget_s=3600)
elapsed = time.perf_counter() - started
print(json.dumps({"elapsed": elapsed, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "lines": result["lines"], "requests": result["requests"], "status": result["status"],
                  "errors": result["errors"], "complete": result["backlog"]["complete"],
                  "signatures": {s["signature"]: s["count"] for s in result["signatures"]}}))
"""

BEFORE_CHILD = r"""
import importlib.util, os, re, resource, sys, time, json
spec = importlib.util.spec_from_file_location("old_log_scan", sys.argv[1])
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
started = time.perf_counter()
lines, _, _, _ = old.scan_file(sys.argv[2], None, "start", os.path.getsize(sys.argv[2]) + 1)
result = old.review(lines, [], re.compile(r"\b(ERROR|FATAL|CRITICAL)\b"), re.compile(r"\bWARN(ING)?\b"), 10)
print(json.dumps({"elapsed": time.perf_counter() - started, "errors": result["counts"]["error"],
                  "signatures": len(result["signatures"]),
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def timed(argv, **kwargs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, check=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def parse_uniq(out):
    counts = {}
    for line in out.decode("utf-8", "replace").splitlines():
        count, _, text = line.strip().partition(" ")
        counts[text] = int(count)
    return counts


def file_bench(base):
    path = os.path.join(base, "app.log")
    started = time.perf_counter()
    make_log(path, LINES)
    size = os.path.getsize(path)
    print("log: %d lines, %.1f MiB (built in %.1f s) in %s" % (LINES, size / 1048576.0, time.perf_counter() - started, base))
    with open(path, "rb") as handle:  # both start from the page cache
        while handle.read(1 << 24):
            pass
    runs = {"core": [], "pipeline": [], "minimal": []}
    core_out = None
    for round_no in range(ROUNDS):
        order = ["core", "pipeline", "minimal"] if round_no % 2 == 0 else ["minimal", "pipeline", "core"]
        line = []
        for which in order:
            if which == "core":
                wall, cpu, out = timed([sys.executable, "-c", CHILD, CORE, path])
                core_out = json.loads(out)
            else:
                wall, cpu, out = timed(["bash", "-c", pipeline(SED_FULL if which == "pipeline" else SED_MIN), "bench", path])
                if which == "pipeline":
                    pipe_counts = parse_uniq(out)
            runs[which].append((wall, cpu))
            line.append("%s %.2f s (cpu %.2f s)" % (which, wall, cpu))
        print("  round %d: %s" % (round_no + 1, ", ".join(line)))
    if core_out["signatures"] != pipe_counts:
        raise SystemExit("signature counts differ:\n  core:     %r\n  pipeline: %r" % (core_out["signatures"], pipe_counts))
    core_wall = statistics.median(w for w, _ in runs["core"])
    pipe_wall = statistics.median(w for w, _ in runs["pipeline"])
    min_wall = statistics.median(w for w, _ in runs["minimal"])
    print("same signature counts: %d signatures, %d error lines (core: %d lines, %d requests, status %s)"
          % (len(pipe_counts), sum(pipe_counts.values()), core_out["lines"], core_out["requests"], core_out["status"]))
    print("core %.2f s (%.0f MB/s), pipeline %.2f s, minimal pipeline %.2f s (medians of %d)"
          % (core_wall, size / 1e6 / core_wall, pipe_wall, min_wall, ROUNDS))
    print("ratio core/pipeline %.2fx, core/minimal pipeline %.2fx (goal <= 3x)" % (core_wall / pipe_wall, core_wall / min_wall))
    core_cpu = statistics.median(c for _, c in runs["core"])
    print("cpu: core %.2f s, pipeline %.2f s, minimal %.2f s (all its processes): %.2fx, %.2fx"
          % (core_cpu, statistics.median(c for _, c in runs["pipeline"]), statistics.median(c for _, c in runs["minimal"]),
             core_cpu / statistics.median(c for _, c in runs["pipeline"]),
             core_cpu / statistics.median(c for _, c in runs["minimal"])))
    print("core peak RSS %.1f MB (goal <= 64 MB)" % (core_out["maxrss_kb"] / 1024.0))
    if os.environ.get("BENCH_BEFORE") == "1":
        before(path, base)
    else:
        print("before: set BENCH_BEFORE=1 to time log_scan as of %s on the same file" % BEFORE_REV)


def before(path, base):
    old = os.path.join(base, "old_log_scan.py")
    try:
        source = subprocess.run(["git", "-C", REPO, "show", "%s:library/log_scan.py" % BEFORE_REV],
                                capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print("before: cannot read library/log_scan.py at %s: %s" % (BEFORE_REV, exc))
        return
    with open(old, "wb") as handle:
        handle.write(source)
    wall, _, out = timed([sys.executable, "-c", BEFORE_CHILD, old, path])
    data = json.loads(out)
    print("before (log_scan at %s, whole file): %.2f s, peak RSS %.0f MB, %d error lines in %d signatures"
          % (BEFORE_REV, wall, data["maxrss_kb"] / 1024.0, data["errors"], data["signatures"]))


# ------------------------------------------------------------------ journal

EMITTER = r"""
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    if i % 50 == 49:
        out.write("\x1b[31m[ERROR]\x1b[0m \x1b[90m2026-12-02T09:46:05.%03dZ\x1b[0m \x1b[34m[express]\x1b[0m "
                  "\x1b[33m(UNKNOWN)\x1b[0m Validation failed for request %d\n" % (i % 1000, i))
    else:
        out.write("GET /health %d 107 - %d.%03d ms reqId=f0a53bac-7746-4a34-985e-%012d\n"
                  % ((200, 200, 200, 404, 500)[i % 5], i % 40, i % 1000, i))
"""

JOURNAL_CHILD = r"""
import importlib.util, json, resource, sys, time
for name in ("bemore_log_lines", "bemore_logs"):
    spec = importlib.util.spec_from_file_location("ansible.module_utils." + name, "/root/%s.py" % name)
    core = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)
started, cpu = time.perf_counter(), time.process_time()
result = core.scan_journal("bench-emitter", {}, budget_s=3600, window_s=300)
print(json.dumps({"elapsed": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                  "lines": result["lines"], "bytes": result["bytes"], "requests": result["requests"],
                  "errors": result["errors"], "status": result["status"],
                  "complete": result["backlog"]["complete"], "problems": result["problems"],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def testbed_image():
    try:
        with open(os.path.join(REPO, ".testbed-image")) as handle:
            name = handle.read().strip()
        if name:
            return name
    except OSError:
        pass
    out = subprocess.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/bemore-testbed-base"],
                         capture_output=True, text=True, check=False).stdout.split()
    return out[0] if out else None


def journal_bench():
    if os.environ.get("BENCH_JOURNAL") == "0":
        print("journal: skipped (BENCH_JOURNAL=0)")
        return
    if not shutil.which("podman"):
        print("journal: skipped, podman is not installed (journald does not run on this machine)")
        return
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", os.path.join(REPO, "containers", "containers.conf"))
    image = testbed_image()
    if not image or subprocess.run(["podman", "image", "exists", image], env=env, check=False).returncode:
        print("journal: skipped, no testbed image (make testbed builds it)")
        return
    name = "bench-log-scan-%d" % os.getpid()
    try:
        subprocess.run(["podman", "run", "-d", "--name", name, "--systemd=always", image, "/sbin/init"],
                       env=env, capture_output=True, check=True)

        def sh(script, check=True):
            return subprocess.run(["podman", "exec", "-i", name, "bash", "-c", script], env=env,
                                  capture_output=True, check=check)

        for _ in range(60):
            state = sh("systemctl is-system-running", check=False).stdout.decode().strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        sh("mkdir -p /etc/systemd/journald.conf.d && printf '[Journal]\\nRateLimitBurst=0\\nRateLimitIntervalSec=0\\n'"
           " > /etc/systemd/journald.conf.d/bench.conf && systemctl restart systemd-journald")
        for path in (CORE, LINES):
            subprocess.run(["podman", "cp", path, "%s:/root/%s" % (name, os.path.basename(path))], env=env, check=True)
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
            handle.write(EMITTER)
        subprocess.run(["podman", "cp", handle.name, "%s:/root/emitter.py" % name], env=env, check=True)
        os.unlink(handle.name)
        sh("printf '[Service]\\nType=oneshot\\nExecStart=/usr/bin/python3 -u /root/emitter.py %d\\n'"
           " > /etc/systemd/system/bench-emitter.service && systemctl daemon-reload" % JOURNAL_ENTRIES)
        started = time.perf_counter()
        sh("systemctl start bench-emitter && journalctl --sync")
        print("journal: %d entries written through journald in %.1f s" % (JOURNAL_ENTRIES, time.perf_counter() - started))
        raw = sh("TIMEFORMAT=%R; { time journalctl -u bench-emitter --no-pager -o export --output-fields=MESSAGE"
                 " > /dev/null; } 2>&1; { time journalctl -u bench-emitter --no-pager -o short-iso -a > /dev/null; } 2>&1")
        export_s, short_s = [float(x) for x in raw.stdout.decode().split()]
        data = json.loads(sh("python3 -c %s" % shell_quote(JOURNAL_CHILD)).stdout)
        print("journal: core read %d entries (%d requests, %d errors, complete %s) in %.1f s: %.0f entries/s, %.1f MB/s"
              " of journalctl export output; its own cpu %.1f s, peak RSS %.1f MB"
              % (data["lines"], data["requests"], data["errors"], data["complete"], data["elapsed"],
                 data["lines"] / data["elapsed"], data["bytes"] / 1e6 / data["elapsed"], data["cpu"],
                 data["maxrss_kb"] / 1024.0))
        print("journal: journalctl alone: -o export --output-fields=MESSAGE %.1f s, -o short-iso %.1f s" % (export_s, short_s))
        if data["problems"]:
            print("journal: problems: %s" % data["problems"])
    except (subprocess.CalledProcessError, ValueError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print("journal: failed: %s %s" % (exc, detail.decode("utf-8", "replace")[-500:]))
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=env, capture_output=True, check=False)


def main():
    base = tempfile.mkdtemp(prefix="bench-log-scan-", dir=os.environ.get("BENCH_DIR"))
    try:
        file_bench(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    journal_bench()


if __name__ == "__main__":
    main()
