# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The low-level helpers every record of a run on the control node is made
with: safe names and run ids, the processes that own a run or a lock, and
files written whole or not at all.

- A name (host, schedule, environment) becomes part of a file name, so it
  is checked (check_name) or made safe (safe_component) first.
- An owner is a control node, a pid and that process's start time (with
  the boot id): a pid the kernel reused is not mistaken for the owner, so a
  killed run's locks and journal are taken over at once.
- A file is written to a temporary name and renamed (write_atomic) or
  linked (write_exclusive) when complete: a full disk or a kill never
  leaves a cut file that looks whole. A damaged JSON file is told from a
  missing one (read_json_checked) and set aside, never overwritten.

The state file, the run registry, the report files and the watch's store
are all built on these; nothing here knows what those files hold.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import random
import re
import socket

from ansible.module_utils.runbook_clock import now as clock_now

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
REPORT_FILE_MODE = 0o600


# --- names -------------------------------------------------------------------

def safe_component(value):
    """``value`` as one file-name component: never a path, never hidden, never empty."""
    text = _SAFE.sub("_", str(value)).strip("._") or "unnamed"
    return text[:64]


def check_name(kind, value):
    """ValueError unless ``value`` is safe in a file name (host, schedule, environment)."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or ".." in value:
        raise ValueError("%s %r may only hold letters, digits, '.', '_', '@' and '-' (no '/', no '..', at most "
                         "128 characters): it is used in file names on the control node and the hosts"
                         % (kind, value))
    return value


def new_run_id(environment, now=None):
    """Time with microseconds, the environment and a random suffix: ids never collide and sort by time."""
    now = now if now is not None else clock_now()
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return "%s-%s-%012x" % (stamp, safe_component(environment).lower(), random.SystemRandom().getrandbits(48))


def iso(ts=None):
    ts = ts if ts is not None else clock_now()
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- processes ---------------------------------------------------------------

def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def process_start(pid):
    """The start time of ``pid`` in clock ticks since boot (with the boot id: a pid that was reused differs)."""
    try:
        with open("/proc/%d/stat" % int(pid), encoding="ascii", errors="replace") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return []


def _parent(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _is_playbook(args):
    return any(os.path.basename(a) in ("ansible-playbook", "molecule", "ansible-runner") for a in args[:3])


def playbook_process(start=None):
    """The pid of the ``ansible-playbook`` process this process runs under, or None.

    A module runs as playbook -> forked worker -> shell -> python; the
    worker has the playbook's command line too, so the owner is the top of
    that unbroken run of ansible-playbook processes.
    """
    pid = start or os.getpid()
    found = None
    seen = 0
    while pid and pid > 1 and seen < 64:
        seen += 1
        args = _cmdline(pid)
        if _is_playbook(args) and any(os.path.basename(a) == "ansible-playbook" for a in args[:3]):
            found = pid
            parent = _parent(pid)
            while parent and parent > 1 and any(os.path.basename(a) == "ansible-playbook" for a in _cmdline(parent)[:3]):
                found, parent = parent, _parent(parent)
            return found
        pid = _parent(pid)
    return found


def controller_identity(pid=None):
    pid = pid if pid is not None else playbook_process()
    return {"controller": socket.gethostname(), "pid": pid, "pid_start": process_start(pid) if pid else None,
            "boot_id": boot_id()}


def owner_alive(owner):
    """True/False when this machine can tell whether the owner process lives; None when it cannot."""
    if not owner or not owner.get("pid") or owner.get("controller") != socket.gethostname():
        return None
    if owner.get("boot_id") and owner["boot_id"] != boot_id():
        return False  # rebooted since: every process of then is gone
    start = process_start(owner["pid"])
    if start is None:
        return False
    return owner.get("pid_start") is None or start == owner["pid_start"]


# --- files ---------------------------------------------------------------------

def ensure_dir(path, mode=0o700):
    os.makedirs(path, mode=mode, exist_ok=True)
    return path


def _fill(fd, text):
    """Write ``text`` to the new file ``fd`` and make it durable before it gets its real name."""
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path, text, mode=0o600):
    directory = os.path.dirname(path)
    ensure_dir(directory)
    tmp = "%s.tmp-%d-%06x" % (path, os.getpid(), random.getrandbits(24))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        _fill(fd, text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_exclusive(path, text, mode=REPORT_FILE_MODE):
    """Create ``path`` with ``text``; FileExistsError if it exists (two runs never share a report).

    The text goes to a hidden temporary name in the same folder first and is
    linked to ``path`` only when complete: a full disk never leaves a cut
    file that looks like a report. ``link`` fails on an existing name, so
    the create stays exclusive.
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".%s.tmp-%d-%06x" % (name, os.getpid(), random.getrandbits(24)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        _fill(fd, text)
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except (OSError, ValueError):
        return default


class Damaged(ValueError):
    """A state file that exists but cannot be used: what is wrong with it."""


def read_json_checked(path, default=None, shape=None):
    """The JSON in ``path``; ``default`` when it does not exist; Damaged when it cannot be read as JSON
    (or is not of the type ``shape``). Unlike read_json, a damaged file is never mistaken for an empty one."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise Damaged("cannot be read: %s" % (exc.strerror or exc))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Damaged("is not valid JSON (%d bytes): %s" % (len(raw), exc))
    if shape is not None and not isinstance(data, shape):
        raise Damaged("holds a JSON %s, not the expected %s" % (type(data).__name__, shape.__name__))
    return data


def set_aside(path, now=None):
    """Rename the damaged ``path`` to ``<path>.corrupt-<UTC time>`` (never over another); return the new name."""
    stamp = datetime.datetime.fromtimestamp(clock_now() if now is None else now,
                                            datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = "%s.corrupt-%s" % (path, stamp)
    n = 1
    while os.path.lexists(target):
        n += 1
        target = "%s.corrupt-%s-%d" % (path, stamp, n)
    os.rename(path, target)
    return target


class Flock(object):
    """An exclusive flock on ``path`` (created 0600), held for a few milliseconds."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        ensure_dir(os.path.dirname(self.path))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
