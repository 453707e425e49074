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
    playbook and start time. It is created atomically (C(O_EXCL)); a lock
    older than I(stale_after_s) is taken over (its holder is reported), so a
    run killed without releasing it blocks nobody for long.
  - A run that finds the lock held waits up to I(wait_s), then fails with a
    message naming the holder.
  - Release removes the lock only when it belongs to I(run_id); another run's
    lock is never removed.
version_added: "1.0.0"
options:
  lock_file:
    description: Path of the lock file on the managed host. Its folder is created when missing.
    type: path
    required: true
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
attributes:
  check_mode:
    support: full
    description:
      - Reports whether the lock is free (or stale) and who holds it, without
        creating, waiting for or removing it.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Take the maintenance lock, waiting up to 5 minutes
  maintenance_lock:
    lock_file: /run/lock/bemore-runbooks/api1.lock
    run_id: "{{ maintenance_lock_run_id }}"
    owner: "awx job 4711"
    playbook: weekly.yml
    wait_s: 300

- name: Release it
  maintenance_lock:
    lock_file: /run/lock/bemore-runbooks/api1.lock
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
  description: The stale lock record that was replaced, if any.
  returned: always
  type: dict
waited_s:
  description: Seconds spent waiting for the lock.
  returned: always
  type: float
"""

import contextlib
import errno
import fcntl
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule


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


def make_record(run_id, owner, playbook, now):
    return {"run_id": run_id, "owner": owner, "playbook": playbook, "started": round(now, 3),
            "started_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "pid": os.getpid()}


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


def try_acquire(lock_file, record, stale_after_s, now):
    """One attempt. Return (created, took_over, holder); raise LockHeld for a live lock of another run.

    ``created`` is False when the lock already belonged to this run.
    """
    with guarded(lock_file):
        return _try_acquire(lock_file, record, stale_after_s, now)


def _try_acquire(lock_file, record, stale_after_s, now):
    payload = json.dumps(record).encode()
    took_over = {}
    for _attempt in range(3):
        try:
            fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            holder = read_lock(lock_file)
            if holder.get("run_id") == record["run_id"]:
                return False, took_over, holder  # already ours (a re-run of the same task)
            if not holder:
                continue  # released between our open and read
            if lock_age(holder, lock_file, now) < stale_after_s:
                raise LockHeld(holder)
            # Stale: move it aside (under the guard, so the file renamed is
            # the one just judged), then create ours with O_EXCL.
            aside = "%s.stale.%s" % (lock_file, record["run_id"])
            try:
                os.rename(lock_file, aside)
            except FileNotFoundError:
                continue
            took_over = read_lock(aside) or holder
            try:
                os.unlink(aside)
            except OSError:
                pass
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        return True, took_over, record
    raise LockHeld(read_lock(lock_file))


def describe(holder):
    if holder.get("unreadable"):
        return "an unreadable lock record"
    return "%s (%s, run %s) since %s" % (holder.get("playbook", "?"), holder.get("owner", "?"),
                                         holder.get("run_id", "?"), holder.get("started_iso", "?"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            lock_file=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            run_id=dict(type="str", required=True),
            owner=dict(type="str", default="unknown"),
            playbook=dict(type="str", default="unknown"),
            wait_s=dict(type="float", default=0.0),
            poll_s=dict(type="float", default=2.0),
            stale_after_s=dict(type="float", default=14400.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    lock_file = p["lock_file"]
    if not os.path.isabs(lock_file):
        module.fail_json(msg="lock_file must be an absolute path, got %r" % lock_file)
    if not p["run_id"].strip():
        module.fail_json(msg="run_id must not be empty")
    if p["wait_s"] < 0 or p["poll_s"] <= 0 or p["stale_after_s"] <= 0:
        module.fail_json(msg="wait_s must be >= 0, poll_s and stale_after_s > 0")
    result = dict(changed=False, acquired=False, holder={}, took_over={}, waited_s=0.0)

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
        free = not holder or holder.get("run_id") == p["run_id"] or \
            lock_age(holder, lock_file, time.time()) >= p["stale_after_s"]
        if not free:
            module.warn("the maintenance lock is held by %s; a real run would wait %ss for it"
                        % (describe(holder), p["wait_s"]))
        module.exit_json(changed=free and holder.get("run_id") != p["run_id"], acquired=free, holder=holder,
                         took_over={}, waited_s=0.0)
    try:
        os.makedirs(lock_dir, mode=0o755, exist_ok=True)
    except OSError as exc:
        module.fail_json(msg="cannot create the lock folder %s: %s" % (lock_dir, exc.strerror))

    start = time.monotonic()
    while True:
        now = time.time()
        try:
            created, took_over, holder = try_acquire(
                lock_file, make_record(p["run_id"], p["owner"], p["playbook"], now), p["stale_after_s"], now)
        except LockHeld as held:
            waited = time.monotonic() - start
            if waited + p["poll_s"] > p["wait_s"]:
                module.fail_json(
                    msg="another runbook holds the maintenance lock %s: %s. Waited %.0fs of %.0fs. "
                        "Run again when it has finished; a lock older than %.0fs is taken over."
                        % (lock_file, describe(held.holder), waited, p["wait_s"], p["stale_after_s"]),
                    acquired=False, holder=held.holder, took_over={}, waited_s=round(waited, 1))
            time.sleep(p["poll_s"])
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                module.fail_json(msg="lock_file %s is a symbolic link; refusing to use it" % lock_file)
            module.fail_json(msg="cannot take the lock %s: %s" % (lock_file, exc.strerror or exc))
        if took_over:
            module.warn("took over a stale maintenance lock: %s" % describe(took_over))
        module.exit_json(changed=created, acquired=True, holder=holder,
                         took_over=took_over, waited_s=round(time.monotonic() - start, 1))


if __name__ == "__main__":
    main()
