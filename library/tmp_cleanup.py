#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tmp_cleanup
short_description: Delete old temporary files, then the oldest ones above a size cap, safely
description:
  - Applies the BeMore temp-file policy to one directory tree. First the age
    rule deletes files older than I(max_age_days); then, if the tree still
    holds more than I(max_size_mb), the size cap deletes the oldest remaining
    files until it does not.
  - Safe on trees that other users can write to. It resolves I(path) once and
    then works only through directory descriptors opened with C(O_NOFOLLOW),
    so it never follows a symlink and never leaves I(path), even when a
    directory is swapped for a symlink during the walk; it removes links,
    never what they point to; with I(one_file_system) it never crosses a mount
    point; with I(skip_open_files) it never deletes a file that a process
    holds open or mapped (a recording in progress).
  - Refuses a relative, missing or symlinked I(path), C(/), a top-level
    system directory and anything under the system trees, with a clear
    message and without touching anything.
  - Runs on the same path are serialised with a lock, so two runs at once
    neither crash nor count the same file twice.
  - The walk decides and a forked helper process unlinks, in batches handed
    over with the open directory descriptor, so the kernel's unlink work
    overlaps the walk; on a large tree this is faster than C(find -delete).
    The helper too unlinks only relative to the directory the walk checked.
    If it cannot start or dies, the walk unlinks the rest itself and reports it.
  - Memory stays small on huge trees. The age rule deletes during the walk.
    For the size cap only a time stamp and a size are kept per young file
    (16 bytes each), and a second walk evicts the oldest of them.
version_added: "1.0.0"
options:
  path:
    description: Absolute path of the temp folder to clean.
    type: str
    required: true
  max_age_days:
    description: Files older than this many days are deleted; 0 means every file (emergency cleanup).
    type: float
    default: 7
  max_size_mb:
    description: After the age rule, the oldest files are deleted until the tree holds at most this many MB (MiB); 0 disables the cap.
    type: float
    default: 500
  patterns:
    description: Shell globs of file names to consider; files that match none are never deleted but count toward the size.
    type: list
    elements: str
    default: ['*']
  excludes:
    description:
      - Shell globs of names or paths relative to I(path) that are never
        touched. Excluded files still count toward the size; excluded
        directories are never entered, so their content does not.
    type: list
    elements: str
    default: []
  age_stamp:
    description: Which time stamp gives a file's age.
    type: str
    choices: [mtime, atime, ctime]
    default: mtime
  skip_open_files:
    description: Never delete a file that a process holds open or mapped (read from /proc; complete only as root).
    type: bool
    default: true
  one_file_system:
    description: Never descend into a directory on another file system.
    type: bool
    default: true
  remove_empty_dirs:
    description: Remove directories below I(path) that are empty after the cleanup.
    type: bool
    default: false
  max_runtime_s:
    description: Stop cleanly after this many seconds and report what was done; 0 means no limit.
    type: float
    default: 0
  lock_timeout:
    description: Seconds to wait for another run on the same path to finish before failing.
    type: float
    default: 60
  deleted_limit:
    description: Most entries listed in C(deleted); the counts always cover every file.
    type: int
    default: 100
  refuse_markers:
    description:
      - Refuse a I(path) that directly holds an app's own files (C(package.json), C(.env), C(.git),
        C(node_modules)); the app folder given instead of its C(tmp/) would lose its sources.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports what would be deleted and deletes nothing.
  diff_mode:
    support: full
    description: The diff lists the files that are (or would be) deleted.
  platform:
    description: Targets where the module runs.
    support: full
    platforms: posix
notes:
  - Open files are found by scanning C(/proc/*/fd) and C(/proc/*/maps). It is
    a snapshot of this PID namespace and complete only when run as root; it
    guards the age rule, it does not replace it.
  - Sizes are apparent sizes (C(st_size)). A hard-linked file frees no space
    until its last link is gone.
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Apply the guide's policy to the app's temp folder
  tmp_cleanup:
    path: /srv/bemore/app/tmp
    max_age_days: 7
    max_size_mb: 500

- name: Emergency cleanup during an incident (still never touches open files)
  tmp_cleanup:
    path: /srv/bemore/app/tmp
    max_age_days: 0
    max_size_mb: 0
    remove_empty_dirs: true
"""

RETURN = r"""
root:
  description: The resolved path that was cleaned.
  returned: always
  type: str
files_deleted:
  description: Files (and links) deleted, or that would be in check mode.
  returned: always
  type: int
bytes_freed:
  description: Bytes of the deleted files.
  returned: always
  type: int
files_remaining:
  description: Regular files left in the tree (excluded files included, the content of excluded directories not).
  returned: always
  type: int
bytes_remaining:
  description: Bytes of the regular files left in the tree.
  returned: always
  type: int
deleted_by:
  description: Deleted files by the rule that deleted them.
  returned: always
  type: dict
  sample: {age: 12, size_cap: 3}
skipped_by:
  description:
    - Entries left alone, by reason. (Not named C(skipped), which Ansible
      reserves; a true C(skipped) in a result marks the task as skipped.)
  returned: always
  type: dict
  sample: {open: 1, symlink: 2, other_filesystem: 0, excluded: 4, vanished: 0, permission: 0, special: 0, too_deep: 0}
deleted:
  description: Deleted files (path, size, age in days, reason), at most I(deleted_limit) of them.
  returned: always
  type: list
  elements: dict
deleted_truncated:
  description: True when C(deleted) lists fewer files than were deleted.
  returned: always
  type: bool
dirs_removed:
  description: Empty directories removed (with I(remove_empty_dirs)).
  returned: always
  type: int
errors:
  description: Messages for entries that could not be handled (bounded).
  returned: always
  type: list
  elements: str
interrupted:
  description: True when I(max_runtime_s) stopped the run early.
  returned: always
  type: bool
over_cap:
  description: True when the tree is still above I(max_size_mb) because only protected files remain.
  returned: always
  type: bool
"""

import gc
import math
import os
import time
from array import array

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.safe_tree import Rule, UnsafeRoot, Walker, check_root, compile_globs, open_files
from ansible.module_utils.runbook_clock import now as clock_now

DAY = 86400.0
MB = 1024 * 1024
_STAMP = {"mtime": "st_mtime", "atime": "st_atime", "ctime": "st_ctime"}


def eviction_threshold(stamps, sizes, excess):
    """Return (T, budget): evict every file older than T, and files stamped
    exactly T while ``budget`` bytes remain. None when ``excess`` <= 0.

    Works in a fixed number of buckets plus a sort of one bucket, so it never
    sorts the whole candidate list.
    """
    if excess <= 0 or not stamps:
        return None
    low, high = min(stamps), max(stamps)
    nbuckets = 4096
    width = (high - low) / nbuckets or 1.0
    totals = array("q", bytes(8 * (nbuckets + 1)))
    for ts, size in zip(stamps, sizes):
        totals[min(int((ts - low) / width), nbuckets)] += size
    if sum(sizes) < excess:
        # Everything together does not cover the excess: evict all candidates.
        return high + 1.0, 0
    covered = 0
    boundary = nbuckets
    for index, total in enumerate(totals):
        if covered + total >= excess:
            boundary = index
            break
        covered += total
    members = sorted((ts, size) for ts, size in zip(stamps, sizes)
                     if min(int((ts - low) / width), nbuckets) == boundary)
    before_bucket = covered
    for ts, size in members:
        if covered + size >= excess:
            older = before_bucket + sum(s for t, s in members if t < ts)
            return ts, excess - older
        covered += size
    # Everything together does not cover the excess: evict all candidates.
    return high + 1.0, 0


class Cleanup(object):
    """The cleanup core: plain Python, callable without Ansible."""

    def __init__(self, root, max_age_days=7.0, max_size_mb=500.0, patterns=None, excludes=None,
                 age_stamp="mtime", skip_open_files=True, one_file_system=True, remove_empty_dirs=False,
                 max_runtime_s=0.0, check_mode=False, deleted_limit=100, now=None, background_unlink=True):
        self.root = root
        self.background_unlink = background_unlink
        self.max_age = max_age_days * DAY
        self.cap = int(max_size_mb * MB)
        self.patterns = None if not patterns or patterns == ["*"] else compile_globs(patterns)
        self.stamp_attr = _STAMP[age_stamp]
        self.skip_open_files = skip_open_files
        self.check_mode = check_mode
        self.deleted_limit = deleted_limit
        self.now = clock_now() if now is None else now
        deadline = time.monotonic() + max_runtime_s if max_runtime_s and max_runtime_s > 0 else None
        self.walker = Walker(root, one_file_system=one_file_system, excludes=excludes,
                             remove_empty_dirs=remove_empty_dirs, check_mode=check_mode, deadline=deadline)
        self.held = set()
        self.files_deleted = 0
        self.bytes_freed = 0
        self.deleted_by = {"age": 0, "size_cap": 0}
        self.deleted = []
        self.files_remaining = 0
        self.bytes_remaining = 0
        self.over_cap = False

    # -- the two sweeps --------------------------------------------------------
    def _tally(self, rule, reason):
        self.files_deleted += rule.removed
        self.deleted_by[reason] += rule.removed
        self.bytes_freed += rule.removed_bytes
        room = self.deleted_limit - len(self.deleted)
        for relpath, size, stamp in rule.listed[:max(room, 0)]:
            self.deleted.append({"path": os.path.join(self.root, relpath), "size": size,
                                 "age_days": round((self.now - stamp) / DAY, 2), "reason": reason})

    def _rule(self, **kwargs):
        return Rule(attr=self.stamp_attr, patterns=self.patterns, held=self.held if self.skip_open_files else None,
                    list_limit=self.deleted_limit, **kwargs)

    def _age_pass(self):
        """Remove what is older than max_age; collect the rest's stamps and sizes for the cap."""
        rule = self._rule(hi=self.now - self.max_age, collect=bool(self.cap))
        complete = self.walker.sweep(rule, self.background_unlink)
        self._tally(rule, "age")
        self.files_remaining, self.bytes_remaining = rule.kept, rule.kept_bytes
        return complete, rule.stamps, rule.sizes

    def _cap_pass(self, threshold, budget):
        """Evict regular files from the max_age cutoff up to ``threshold`` (ties while ``budget`` lasts).

        Files older than the cutoff that are still there were left by the age
        pass on purpose (open, or check mode): the lower bound keeps them out.
        """
        rule = self._rule(lo=self.now - self.max_age, hi=threshold, tie_budget=budget, regular_only=True)
        complete = self.walker.sweep(rule, self.background_unlink)
        self._tally(rule, "size_cap")
        self.files_remaining -= rule.removed
        self.bytes_remaining -= rule.removed_bytes
        return complete

    def run(self, lock_timeout=60.0):
        walker = self.walker
        walker.open_root()
        # The walk allocates two short-lived objects per entry and creates no
        # reference cycles; pausing the cyclic collector saves its repeated
        # generation-0 scans on trees with millions of entries.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if not walker.lock(lock_timeout):
                raise RuntimeError("another cleanup of %s is still running (waited %ss for its lock)"
                                   % (self.root, lock_timeout))
            if self.skip_open_files:
                self.held = open_files(walker.root_dev)
            complete, stamps, sizes = self._age_pass()
            if complete and self.cap and self.bytes_remaining > self.cap:
                found = eviction_threshold(stamps, sizes, self.bytes_remaining - self.cap)
                del stamps, sizes
                if found is not None:
                    self._cap_pass(*found)
            self.over_cap = bool(self.cap) and self.bytes_remaining > self.cap
        finally:
            walker.close()
            if gc_was_enabled:
                gc.enable()
        return self.result()

    def result(self):
        walker = self.walker
        return {
            "root": self.root, "files_deleted": self.files_deleted, "bytes_freed": self.bytes_freed,
            "files_remaining": self.files_remaining, "bytes_remaining": self.bytes_remaining,
            "deleted_by": dict(self.deleted_by), "skipped_by": dict(walker.skipped), "deleted": self.deleted,
            "deleted_truncated": self.files_deleted > len(self.deleted), "dirs_removed": walker.dirs_removed,
            "errors": list(walker.errors), "interrupted": walker.interrupted, "over_cap": self.over_cap,
        }


APP_MARKERS = ("package.json", ".env", ".git", "node_modules")


def app_markers(root):
    """The app's own files directly in ``root`` (lstat: a link named like one counts too)."""
    found = []
    for name in APP_MARKERS:
        try:
            os.lstat(os.path.join(root, name))
        except OSError:
            continue
        found.append(name)
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            max_age_days=dict(type="float", default=7.0),
            max_size_mb=dict(type="float", default=500.0),
            patterns=dict(type="list", elements="str", default=["*"]),
            excludes=dict(type="list", elements="str", default=[]),
            age_stamp=dict(type="str", default="mtime", choices=["mtime", "atime", "ctime"]),
            skip_open_files=dict(type="bool", default=True),
            one_file_system=dict(type="bool", default=True),
            remove_empty_dirs=dict(type="bool", default=False),
            max_runtime_s=dict(type="float", default=0.0),
            lock_timeout=dict(type="float", default=60.0),
            deleted_limit=dict(type="int", default=100),
            refuse_markers=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for name in ("max_age_days", "max_size_mb", "max_runtime_s", "lock_timeout"):
        # nan passes a "< 0" test and inf overflows the size cap: refuse both before anything is deleted.
        if not math.isfinite(p[name]):
            module.fail_json(msg="%s must be a finite number, got %s; nothing was deleted" % (name, p[name]))
        if p[name] < 0:
            module.fail_json(msg="%s must not be negative, got %s" % (name, p[name]))
    if p["deleted_limit"] < 0:
        module.fail_json(msg="deleted_limit must not be negative")
    try:
        root = check_root(p["path"])
    except UnsafeRoot as exc:
        module.fail_json(msg="tmp_cleanup: %s" % exc, path_refused=p["path"])
    markers = app_markers(root) if p["refuse_markers"] else []
    if markers:
        module.fail_json(msg="tmp_cleanup: %s holds %s: it looks like the app folder itself, not its temp folder "
                             "(<app>/tmp); nothing was deleted" % (root, ", ".join(markers)), path_refused=p["path"])
    cleanup = Cleanup(root, p["max_age_days"], p["max_size_mb"], p["patterns"], p["excludes"], p["age_stamp"],
                      p["skip_open_files"], p["one_file_system"], p["remove_empty_dirs"], p["max_runtime_s"],
                      module.check_mode, p["deleted_limit"])
    try:
        result = cleanup.run(p["lock_timeout"])
    except RuntimeError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="tmp_cleanup: cannot clean %s: %s" % (root, exc.strerror or exc))
    if result["interrupted"]:
        module.warn("stopped after max_runtime_s=%s; the counts cover only the part walked" % p["max_runtime_s"])
    if module._diff:
        listed = [d["path"] for d in result["deleted"]]
        result["diff"] = {"before": "\n".join(listed) + ("\n" if listed else ""), "after": "",
                          "before_header": "%s (files deleted)" % root, "after_header": root}
    module.exit_json(changed=result["files_deleted"] > 0 or result["dirs_removed"] > 0, **result)


if __name__ == "__main__":
    main()
