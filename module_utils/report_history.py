# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The earlier reports a run is compared with: when each ran, which of them
to read from the report folder, and safe access to their hosts and steps.

A report on disk may be from an older version, damaged or planted: a file
that cannot be read is named (never an error), a symlink is never followed,
and every accessor here returns an empty value rather than raising on a
field that is missing or of the wrong type.

Only the standard library is used, and the code stays importable on Python
3.8 (module_utils must import on targets too).
"""

from __future__ import annotations

import collections
import datetime
import errno
import json
import os
import re
import stat

from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_common import UTC, parse_iso

MAX_REPORT_BYTES = 8 * 1024 * 1024  # a report is a few kB; anything this big is not one
REPORT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# --- times -----------------------------------------------------------------

# parse_time here is the one ISO 8601 reader (an aware datetime); a run id's compact time is the report's own.
parse_time = parse_iso
_RUN_ID_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d+))?Z")


def _to_datetime(parts):
    year, month, day, hour, minute, second, fraction = parts
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)


def report_time(report):
    """When the run happened: its start, else the time in its run id, else when it was written; or None."""
    when = parse_time(report.get("started_at"))
    if when is None:
        match = _RUN_ID_TIME.match(str(report.get("run_id") or ""))
        if match:
            try:
                when = _to_datetime(match.groups())
            except ValueError:
                when = None
    return when or parse_time(report.get("generated_at"))


def run_key(report):
    when = report_time(report)
    return (when.timestamp() if when else float("-inf"), str(report.get("run_id") or ""))


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day(when):
    return "%s %d" % (MONTHS[when.month - 1], when.day)


def stamp(when):
    return "%04d-%02d-%02d %02d:%02d UTC" % (when.year, when.month, when.day, when.hour, when.minute)


# --- history ---------------------------------------------------------------

HistoryScan = collections.namedtuple("HistoryScan", "reports unreadable")
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_FILE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR, getattr(errno, "EMLINK", errno.ELOOP))


def is_report(data):
    return isinstance(data, dict) and isinstance(data.get("hosts"), dict) and "run_id" in data


def _read_dir(dir_fd, label, unreadable):
    """The reports in one open schedule directory.

    Files are opened relative to the directory's descriptor with O_NOFOLLOW,
    so a symlink (``latest.json`` or one planted to point out of the report
    root) is never read; report files are written as regular files.
    """
    found = []
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError:
        unreadable.append(label + "/")
        return found
    for name in names:
        if not name.endswith(".json") or name.startswith((".", "latest")):
            continue
        try:
            fd = os.open(name, _O_FILE, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in _LINK_ERRORS:
                unreadable.append("%s/%s" % (label, name))
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                continue
            if info.st_size > MAX_REPORT_BYTES:
                unreadable.append("%s/%s" % (label, name))
                continue
            with os.fdopen(fd, "rb") as handle:
                fd = None
                raw = handle.read(MAX_REPORT_BYTES + 1)
            data = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            unreadable.append("%s/%s" % (label, name))
            continue
        finally:
            if fd is not None:
                os.close(fd)
        if is_report(data):
            found.append(data)
    return found


def scan_history(report_root, schedule, environment=None, now=None, quarter_days=92, last_runs=30):
    """The earlier reports to chart with a run, and the files that could not be read.

    For ``quarterly``, every report of any schedule under ``report_root``
    that ran within the last ``quarter_days`` days before ``now`` (every run
    of every host in the quarter); for any other schedule, the newest
    ``last_runs`` reports of that schedule. ``environment``, when given,
    keeps only the reports of that environment. Reports come oldest first.

    Returns ``HistoryScan(reports, unreadable)``; ``unreadable`` names the
    ``.json`` files (relative to ``report_root``) that could not be read or
    parsed. Symbolic links are never followed below ``report_root``;
    ``latest.*`` links, dot files and JSON that is not a report are ignored.
    A missing ``report_root`` is an empty history (the first run).
    """
    if not isinstance(schedule, str) or not REPORT_NAME.match(schedule):
        raise ValueError("schedule %r may only contain letters, digits, '_' and '-'" % (schedule,))
    if now is None:
        now = datetime.datetime.fromtimestamp(clock_now(), UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    unreadable = []
    try:
        root_fd = os.open(report_root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return HistoryScan([], [])
        raise ValueError("report_root %r cannot be opened as a directory: %s" % (report_root, exc.strerror))
    try:
        quarterly = schedule == "quarterly"
        if quarterly:
            subdirs = sorted(n for n in os.listdir(root_fd) if REPORT_NAME.match(n))
        else:
            subdirs = [schedule]
        reports = []
        for subdir in subdirs:
            try:
                dir_fd = os.open(subdir, _O_DIR, dir_fd=root_fd)
            except OSError:
                continue  # not there yet, not a directory, or a symlink
            try:
                reports.extend(_read_dir(dir_fd, subdir, unreadable))
            finally:
                os.close(dir_fd)
    finally:
        os.close(root_fd)
    if environment is not None:
        reports = [r for r in reports if r.get("environment") == environment]
    reports.sort(key=run_key)
    if quarterly:
        since = now - datetime.timedelta(days=quarter_days)
        reports = [r for r in reports if report_time(r) is not None and report_time(r) >= since]
    elif last_runs > 0:
        reports = reports[-last_runs:]
    return HistoryScan(reports, unreadable)


def load_history(report_root, schedule, environment=None, now=None, quarter_days=92, last_runs=30):
    """The earlier report dicts to chart, oldest first; see scan_history (which also names unreadable files)."""
    return scan_history(report_root, schedule, environment, now, quarter_days, last_runs).reports


# --- reading a report ------------------------------------------------------

def hosts_of(report):
    hosts = report.get("hosts")
    return hosts if isinstance(hosts, dict) else {}


def steps_of(host):
    steps = host.get("steps") if isinstance(host, dict) else None
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def find_step(host, name):
    for step in steps_of(host):
        if step.get("step") == name:
            return step
    return None


def figures_of(step):
    figures = step.get("figures") if step else None
    return figures if isinstance(figures, dict) else {}
