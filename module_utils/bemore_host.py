# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only readings a check needs from the host itself: the
filesystem and the temp folder, the app process's memory and CPU, and the
backend's log (file or journal). One module run collects all of them."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time

from ansible.module_utils import bemore_logs
from ansible.module_utils.runbook_clock import now as clock_now


LARGEST = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def filesystem_usage(path):
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bfree * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = total - free
    # df's Use%: used over what users can have (root's reserve excluded).
    denominator = used + avail
    return {"mount": mount_point(path), "total_bytes": total, "used_bytes": used, "avail_bytes": avail,
            "used_percent": round(used * 100.0 / denominator, 1) if denominator else 0.0}


def mount_point(path):
    path = os.path.realpath(path)
    dev = os.stat(path).st_dev
    while path != "/":
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            break
        path = parent
    return path


def folder_usage(root):
    """Files and bytes under ``root`` (lstat, one filesystem, no links followed)."""
    try:
        root_st = os.lstat(root)
    except FileNotFoundError:
        return {"files": 0, "bytes": 0, "largest": [], "missing": True}
    if not stat.S_ISDIR(root_st.st_mode):
        raise ValueError("%s is not a directory" % root)
    files = total = 0
    largest = []
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue  # vanished or unreadable: measured as far as possible
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev == root_st.st_dev:
                    stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
                largest.append((st.st_size, os.path.relpath(entry.path, root)))
                if len(largest) > 4 * LARGEST:
                    largest = sorted(largest, reverse=True)[:LARGEST]
    largest = [{"name": n, "bytes": s} for s, n in sorted(largest, reverse=True)[:LARGEST]]
    return {"files": files, "bytes": total, "largest": largest, "missing": False}


def read_rss_kb(pid):
    with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def find_by_regex(pattern):
    """The oldest process whose command line matches ``pattern`` (not this one)."""
    regex = re.compile(pattern)
    best = None
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            started = os.stat("/proc/" + entry).st_mtime
        except OSError:
            continue
        if cmdline and regex.search(cmdline) and (best is None or started < best[1]):
            best = (int(entry), started)
    return best[0] if best else None


def find_pid(cfg):
    """(pid, reason): the app process from a systemd unit, a PID file or a command-line regex."""
    if cfg.get("systemd_unit"):
        try:
            out = subprocess.run(["systemctl", "show", "--property", "MainPID", "--value", cfg["systemd_unit"]],
                                 capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            return None, "cannot ask systemctl for unit %s: %s" % (cfg["systemd_unit"], exc)
        if not out.isdigit() or int(out) == 0:
            return None, "unit %s has no running main process" % cfg["systemd_unit"]
        return int(out), None
    if cfg.get("pid_file"):
        try:
            with open(cfg["pid_file"], encoding="ascii") as handle:
                return int(handle.read().strip()), None
        except (OSError, ValueError) as exc:
            return None, "cannot read a PID from %s: %s" % (cfg["pid_file"], exc)
    if cfg.get("cmdline_regex"):
        pid = find_by_regex(cfg["cmdline_regex"])
        return (pid, None) if pid else (None, "no process matches %r" % cfg["cmdline_regex"])
    return None, "no way to find the app process is configured"


def process_figures(cfg):
    """{"found", "pid", "rss_mb", "cpu_percent"} or {"found": False, "reason"}."""
    pid, reason = find_pid(cfg)
    if reason is None and (not pid or not os.path.exists("/proc/%d" % pid)):
        reason = "process %s is not running" % pid
    if reason:
        return {"found": False, "reason": reason}
    try:
        first, started = cpu_ticks(pid), time.monotonic()
        time.sleep(float(cfg.get("sample_s", 1.0)))
        second, elapsed = cpu_ticks(pid), time.monotonic() - started
        rss_kb = read_rss_kb(pid)
    except (OSError, ValueError, IndexError) as exc:
        return {"found": False, "reason": "process %d vanished while measured: %s" % (pid, exc)}
    return {"found": True, "pid": pid, "rss_mb": round(rss_kb / 1024.0, 1),
            "cpu_percent": round(100.0 * (second - first) / CLOCK_TICKS / elapsed, 1)}


def read_log(cfg, position, now=None):
    """The backend's log since ``position``: the log core's figures, or {"error": ...}."""
    budget = float(cfg.get("budget_s", 60))
    if cfg.get("source") == "journal":
        return bemore_logs.scan_journal(cfg["unit"], position or {}, first_run=cfg.get("first_run", "start"),
                                        budget_s=budget, window_s=int(cfg.get("window_s", 300)), now=now,
                                        probe_origin=cfg.get("probe_origin"))
    return bemore_logs.scan_files(cfg.get("files") or [], position or {}, first_run=cfg.get("first_run", "start"),
                                  budget_s=budget, now=now, probe_origin=cfg.get("probe_origin"))


def read_logs(cfg, position, error_position, now):
    """(review scan, error-window scan or None): one read when both start at the same place.

    The log review and the error rate each keep their own position in a
    plain file (a run may select one without the other); the journal's rate
    window is time-based, so one read serves both there.
    """
    uses = cfg.get("uses") or ["review", "errors"]
    if cfg.get("source") == "journal" or "errors" not in uses or \
            ("review" in uses and (error_position or {}) == (position or {})):
        return read_log(cfg, position if "review" in uses else error_position, now), None
    errors = read_log(cfg, error_position, now)
    review = read_log(cfg, position, now) if "review" in uses else None
    return review, errors


def read_all(plan, position=None, now=None, error_position=None):
    """Every host reading ``plan`` asks for; each failure is a string in its place, never an exception."""
    now = now if now is not None else clock_now()
    out = {"read_at": round(now, 1)}
    disk = plan.get("disk")
    if disk:
        try:
            out["disk"] = {"filesystem": filesystem_usage(disk["filesystem_of"])}
            if disk.get("folder"):
                out["disk"]["folder"] = folder_usage(disk["folder"])
        except (OSError, ValueError) as exc:
            out["disk"] = {"error": "cannot measure %s: %s" % (disk.get("filesystem_of"), exc)}
    folder = plan.get("tmp_folder")
    if folder:
        if disk and disk.get("folder") == folder and "folder" in out.get("disk", {}):
            out["tmp_folder"] = out["disk"]["folder"]
        else:
            try:
                out["tmp_folder"] = folder_usage(folder)
            except (OSError, ValueError) as exc:
                out["tmp_folder"] = {"error": "cannot measure %s: %s" % (folder, exc)}
    if plan.get("process"):
        out["process"] = process_figures(plan["process"])
    if plan.get("log"):
        try:
            review, errors = read_logs(plan["log"], position, error_position, now)
            if review is not None:
                out["log"] = review
            if errors is not None:
                out["log_errors"] = errors
        except (OSError, ValueError) as exc:
            out["log"] = {"error": "cannot read the log: %s" % exc}
    return out
