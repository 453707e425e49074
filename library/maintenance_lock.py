#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: maintenance_lock
short_description: Take or release the per-host maintenance lock of the BeMore runbooks
description:
  - Makes sure no two runbooks (schedules, deployment, incident response) work
    on the same host at once, whichever way they were started (cron, AWX, CI,
    a person). AWX can keep one job template from running twice, but not two
    different templates against the same host.
  - The lock is a file on the managed host holding its owner, run id,
    playbook, start time and the C(ansible-playbook) process that owns the
    run (I(process)). It is created atomically (C(O_EXCL)).
  - A lock whose run is gone is taken over at once, and the takeover is
    reported - when its run is listed in I(dead_runs) (the control node
    found its process gone), or when the owner process lived on this very
    host and is gone (also after a reboot). A lock older than
    I(stale_after_s) is taken over too; that covers runs from another
    control node that died.
  - A run that finds the lock held by a live run waits up to I(wait_s), then
    fails with a message naming the holder and saying how to clear the lock.
  - I(break_lock) takes the lock from a live holder too (incident response);
    RV(broken) records whose lock it was.
  - Release removes the lock only when it belongs to I(run_id); another run's
    lock is never removed.
version_added: "1.0.0"
options:
  lock_dir:
    description: Folder of the lock files on the managed host; created (mode 0755) when missing.
    type: path
  name:
    description:
      - Name of the lock within I(lock_dir), usually the inventory host name. Characters other than letters,
        digits, C(.), C(_) and C(-) are percent-encoded, so a name never leaves I(lock_dir).
    type: str
  lock_file:
    description: Path of the lock file, instead of I(lock_dir) and I(name); its folder must not contain C(..).
    type: path
  state:
    description: C(acquired) takes the lock (waiting if needed), C(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  run_id:
    description: Identifier of this run; the same value must be given to release the lock.
    type: str
    required: true
  owner:
    description: Who runs it (user, AWX job, CI pipeline), shown to anyone the lock blocks.
    type: str
    default: unknown
  playbook:
    description: Name of the runbook holding the lock, shown to anyone it blocks.
    type: str
    default: unknown
  wait_s:
    description: Seconds to wait for a held lock before failing; C(0) fails at once.
    type: float
    default: 0
  poll_s:
    description: Seconds between attempts while waiting.
    type: float
    default: 2
  stale_after_s:
    description: A lock older than this many seconds is considered abandoned and taken over.
    type: float
    default: 14400
  process:
    description:
      - The process that owns this run, C({controller, pid, pid_start, boot_id}) as C(runbook_preflight)
        found it; stored in the lock so a later run can tell whether it still lives.
    type: dict
    default: {}
  dead_runs:
    description: Run ids the control node knows are gone; their locks are taken over at once.
    type: list
    elements: str
    default: []
  break_lock:
    description: Take the lock even from a live run (incident response). The result records whose lock it was.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description:
      - Reports whether the lock is free (or could be taken over) and who holds it, without
        creating, waiting for or removing it.
  diff_mode:
    description: The lock is coordination between runs, not configuration; there is no difference to show.
    support: none
  platform:
    description: Targets where the module runs.
    support: full
    platforms: posix
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Take the maintenance lock, waiting up to 5 minutes
  maintenance_lock:
    lock_dir: /run/lock/bemore-runbooks
    name: "{{ inventory_hostname }}"
    run_id: "{{ maintenance_lock_run_id }}"
    owner: "awx job 4711"
    playbook: weekly.yml
    wait_s: 300

- name: Release it
  maintenance_lock:
    lock_dir: /run/lock/bemore-runbooks
    name: "{{ inventory_hostname }}"
    run_id: "{{ maintenance_lock_run_id }}"
    state: released
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now (in check mode, whether it could take it).
  returned: always
  type: bool
holder:
  description: The lock record now on the host (or the one that blocked the run); empty when there is none.
  returned: always
  type: dict
  sample: {"run_id": "20261129T021500-4711", "owner": "awx job 4711", "playbook": "weekly.yml",
           "started": 1795913700.0, "started_iso": "2026-11-29T02:15:00Z", "pid": 4242}
took_over:
  description: The lock record of a gone or stale run that was replaced, if any.
  returned: always
  type: dict
took_over_reason:
  description: Why the replaced lock counted as abandoned.
  returned: always
  type: str
broken:
  description: The lock record of a live run that I(break_lock) replaced, if any.
  returned: always
  type: dict
lock_file:
  description: The lock file used.
  returned: always
  type: str
waited_s:
  description: Seconds spent waiting for the lock.
  returned: always
  type: float
"""

import contextlib
import errno
import fcntl
import json
import math
import os
import socket
import time
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.runbook_clock import now as clock_now


class LockHeld(Exception):
    def __init__(self, holder):
        super().__init__("lock held")
        self.holder = holder


def read_lock(lock_file):
    """The lock record, {} when there is none, or {'unreadable': True} for a damaged file."""
    try:
        with open(lock_file) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {"unreadable": True}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"unreadable": True}


def lock_age(record, lock_file, now):
    started = record.get("started")
    if isinstance(started, (int, float)):
        return now - started
    try:  # a damaged record: judge by the file's own age
        return now - os.stat(lock_file).st_mtime
    except OSError:
        return 0.0


def make_record(run_id, owner, playbook, now, process=None):
    return {"run_id": run_id, "owner": owner, "playbook": playbook, "started": round(now, 3),
            "started_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "process": process or {}}


def lock_path(lock_dir, name):
    """The lock file of ``name`` in ``lock_dir``; the name is encoded so it can never leave the folder."""
    encoded = quote(name, safe="_-")
    encoded = encoded.replace(".", "%2E") if encoded.strip(".") == "" or encoded.startswith(".") else encoded
    return os.path.join(lock_dir, encoded + ".lock")


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _start_ticks(pid):
    try:
        with open("/proc/%d/stat" % int(pid)) as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_gone(holder, dead_runs):
    """Why the holder's run is known to be gone, or None when it may be alive."""
    if holder.get("run_id") in dead_runs:
        return "the control node found its run's process gone"
    proc = holder.get("process") or {}
    if not proc.get("pid") or proc.get("controller") != socket.gethostname():
        return None
    if proc.get("boot_id") and proc["boot_id"] != _boot_id():
        return "this host rebooted since the lock was taken"
    start = _start_ticks(proc["pid"])
    if start is None or (proc.get("pid_start") is not None and start != proc["pid_start"]):
        return "its ansible-playbook process (pid %s) is gone" % proc["pid"]
    return None


@contextlib.contextmanager
def guarded(lock_file):
    """Serialise every attempt and release on one lock folder with flock on the folder.

    O_EXCL alone makes creation atomic, but judging a lock stale and moving it
    aside is read-then-rename: without the guard a contender that read the
    stale record could rename aside a fresh lock another contender had just
    created, and both would believe they hold it. The guard is held for one
    attempt (milliseconds), never while waiting.
    """
    fd = os.open(os.path.dirname(lock_file) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def judge(holder, lock_file, now, stale_after_s, dead_runs, break_lock):
    """(reason to replace the holder's lock, broken?) or (None, False) when it must be respected."""
    gone = owner_gone(holder, dead_runs)
    if gone:
        return gone, False
    age = lock_age(holder, lock_file, now)
    if age >= stale_after_s:
        return "older than %.0f s (taken %.0f s ago)" % (stale_after_s, age), False
    if break_lock:
        return "broken on request (maintenance_lock_break)", True
    return None, False


def try_acquire(lock_file, record, stale_after_s, now, dead_runs=(), break_lock=False):
    """One attempt: (created, replaced record, reason, broken); LockHeld for a live lock of another run.

    ``created`` is False when the lock already belonged to this run.
    """
    with guarded(lock_file):
        return _try_acquire(lock_file, record, stale_after_s, now, dead_runs, break_lock)


def _try_acquire(lock_file, record, stale_after_s, now, dead_runs, break_lock):
    payload = json.dumps(record).encode()
    replaced, reason, broken = {}, None, False
    for _attempt in range(3):
        try:
            fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            holder = read_lock(lock_file)
            if holder.get("run_id") == record["run_id"]:
                return False, replaced, reason, broken  # already ours (a re-run of the same task)
            if not holder:
                continue  # released between our open and read
            why, is_break = judge(holder, lock_file, now, stale_after_s, dead_runs, break_lock)
            if why is None:
                raise LockHeld(holder)
            # Move it aside under the guard, so the file renamed is the one
            # just judged, then create ours with O_EXCL.
            aside = "%s.replaced.%s" % (lock_file, record["run_id"])
            try:
                os.rename(lock_file, aside)
            except FileNotFoundError:
                continue
            replaced, reason, broken = read_lock(aside) or holder, why, is_break
            try:
                os.unlink(aside)
            except OSError:
                pass
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        return True, replaced, reason, broken
    raise LockHeld(read_lock(lock_file))


def describe(holder):
    if holder.get("unreadable"):
        return "an unreadable lock record"
    proc = holder.get("process") or {}
    where = " by ansible-playbook pid %s on %s" % (proc["pid"], proc.get("controller")) if proc.get("pid") else ""
    return "%s (%s, run %s%s) since %s" % (holder.get("playbook", "?"), holder.get("owner", "?"),
                                           holder.get("run_id", "?"), where, holder.get("started_iso", "?"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            lock_dir=dict(type="path"),
            name=dict(type="str"),
            lock_file=dict(type="path"),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            run_id=dict(type="str", required=True),
            owner=dict(type="str", default="unknown"),
            playbook=dict(type="str", default="unknown"),
            wait_s=dict(type="float", default=0.0),
            poll_s=dict(type="float", default=2.0),
            stale_after_s=dict(type="float", default=14400.0),
            process=dict(type="dict", default={}),
            dead_runs=dict(type="list", elements="str", default=[]),
            break_lock=dict(type="bool", default=False),
        ),
        required_one_of=[("lock_file", "lock_dir")],
        mutually_exclusive=[("lock_file", "lock_dir")],
        required_together=[("lock_dir", "name")],
        supports_check_mode=True,
    )
    p = module.params
    if p["lock_dir"]:
        if not os.path.isabs(p["lock_dir"]):
            module.fail_json(msg="lock_dir must be an absolute path, got %r" % p["lock_dir"])
        if not p["name"]:
            module.fail_json(msg="name must not be empty")
        lock_file = lock_path(p["lock_dir"], p["name"])
    else:
        lock_file = p["lock_file"]
        if not os.path.isabs(lock_file) or ".." in lock_file.split("/"):
            module.fail_json(msg="lock_file must be an absolute path without '..', got %r" % lock_file)
    if not p["run_id"].strip():
        module.fail_json(msg="run_id must not be empty")
    for name in ("wait_s", "poll_s", "stale_after_s"):
        if not math.isfinite(p[name]):
            module.fail_json(msg="%s must be a finite number, got %s" % (name, p[name]))
    if p["wait_s"] < 0 or p["poll_s"] <= 0 or p["stale_after_s"] <= 0:
        module.fail_json(msg="wait_s must be >= 0, poll_s and stale_after_s > 0")
    result = dict(changed=False, acquired=False, holder={}, took_over={}, took_over_reason=None, broken={},
                  waited_s=0.0, lock_file=lock_file)

    if p["state"] == "released":
        holder = read_lock(lock_file)
        result["holder"] = holder
        if holder.get("run_id") == p["run_id"]:
            if not module.check_mode:
                try:
                    with guarded(lock_file):
                        # Re-read under the guard: only our own record is removed.
                        if read_lock(lock_file).get("run_id") == p["run_id"]:
                            os.unlink(lock_file)
                except OSError as exc:
                    module.fail_json(msg="cannot release the lock %s: %s" % (lock_file, exc.strerror or exc))
            result["changed"] = True
            result["holder"] = {}
        elif holder:
            module.warn("the maintenance lock %s belongs to %s, not to this run; left in place"
                        % (lock_file, describe(holder)))
        module.exit_json(**result)

    lock_dir = os.path.dirname(lock_file)
    if module.check_mode:
        holder = read_lock(lock_file)
        why = None
        if holder and holder.get("run_id") != p["run_id"]:
            why, _broken = judge(holder, lock_file, clock_now(), p["stale_after_s"], p["dead_runs"], p["break_lock"])
        free = not holder or holder.get("run_id") == p["run_id"] or why is not None
        if not free:
            module.warn("the maintenance lock is held by %s; a real run would wait %ss for it"
                        % (describe(holder), p["wait_s"]))
        result.update(changed=free and holder.get("run_id") != p["run_id"], acquired=free, holder=holder,
                      took_over_reason=why)
        module.exit_json(**result)
    try:
        os.makedirs(lock_dir, mode=0o755, exist_ok=True)
    except OSError as exc:
        module.fail_json(msg="cannot create the lock folder %s: %s" % (lock_dir, exc.strerror))

    start = time.monotonic()
    deadline = start + p["wait_s"]
    while True:
        now = clock_now()
        record = make_record(p["run_id"], p["owner"], p["playbook"], now, p["process"])
        try:
            created, replaced, reason, broken = try_acquire(lock_file, record, p["stale_after_s"], now,
                                                            p["dead_runs"], p["break_lock"])
        except LockHeld as held:
            waited = time.monotonic() - start
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                module.fail_json(
                    msg="another runbook holds the maintenance lock %s: %s. Waited %.0fs of %.0fs. Run again when "
                        "it has finished. If that run is gone (its process was killed on another control node), "
                        "remove %s on this host, or run incident.yml with -e maintenance_lock_break=true; a lock "
                        "older than %.0fs is taken over by itself."
                        % (lock_file, describe(held.holder), waited, p["wait_s"], lock_file, p["stale_after_s"]),
                    acquired=False, holder=held.holder, took_over={}, took_over_reason=None, broken={},
                    waited_s=round(waited, 1), lock_file=lock_file)
            # The last sleep is cut to the deadline, so the run tries once more at wait_s, not one poll early.
            time.sleep(min(p["poll_s"], remaining))
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                module.fail_json(msg="lock file %s is a symbolic link; refusing to use it" % lock_file)
            module.fail_json(msg="cannot take the lock %s: %s" % (lock_file, exc.strerror or exc))
        if replaced:
            module.warn("%s the maintenance lock of %s: %s" % (
                "broke" if broken else "took over", describe(replaced), reason))
        result.update(changed=created, acquired=True, holder=record if created else read_lock(lock_file),
                      took_over={} if broken else replaced, took_over_reason=reason,
                      broken=replaced if broken else {}, waited_s=round(time.monotonic() - start, 1))
        module.exit_json(**result)


if __name__ == "__main__":
    main()
