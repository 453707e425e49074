# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state file (``state.json`` in the state folder): what each host's
runs committed for the next run - log positions, samples, error
signatures, uptime - one topic per role, the watch's among them.

A run reads it when it starts (load_state) and commits its topics only
after its report is written (commit_state): a run killed in between
committed nothing, so the next run reads the same log lines again and a
finding is never lost. Runs over other hosts (another --limit) and the
watch commit to the same file, so every commit re-reads it under a lock
and changes only its own topics; a topic whose value must never move back
(the watch's log position) is merged with what is in the file then. A
damaged file is set aside and named in a warning, never read as empty
without a word, never overwritten.
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.runbook_files import Damaged, Flock, iso, read_json_checked, set_aside, write_atomic

STATE_FILE = "state.json"
STATE_LOCK = ".state.lock"
STATE_LOST = ("every log review is a first review, and the disk samples, error signatures and uptime of "
              "earlier runs start again")


def damaged_warning(path, reason, kept, what):
    if kept:
        return ("the state file %s %s; it was kept as %s and this run started from empty state (%s)"
                % (path, reason, kept, what))
    return "the state file %s %s; it was left in place (check mode) and this run read no state from it (%s)" % (
        path, reason, what)


def read_state_hosts(path):
    """The host table of the state file at ``path`` ({} when there is none); Damaged when it cannot be used."""
    data = read_json_checked(path, {}, dict)
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise Damaged("has no host table ('hosts' is a JSON %s)" % type(hosts).__name__)
    return hosts


def write_state_hosts(path, hosts):
    """Replace the state file with ``hosts``; call it under the state lock, after reading what it replaces."""
    write_atomic(path, json.dumps({"version": 1, "committed_at": iso(), "hosts": hosts}, sort_keys=True,
                                  default=str) + "\n")


def state_lock(state_dir):
    """The lock every reader that writes back, and every commit, holds between its read and its write."""
    return Flock(os.path.join(state_dir, STATE_LOCK))


def load_state(state_dir, warnings=None, set_damaged_aside=True, now=None):
    """{host: {topic: value}} of the last committed runs.

    A damaged state file is not read as an empty one without a word: it is
    renamed to ``state.json.corrupt-<time>`` (kept for whoever looks into
    it, and so the next commit does not overwrite it), and a warning naming
    both files is appended to ``warnings``. In a check-mode run
    (``set_damaged_aside=False``) it is left in place and only named.
    """
    path = os.path.join(state_dir, STATE_FILE)
    try:
        return read_state_hosts(path)
    except Damaged as exc:
        kept = None
        if set_damaged_aside:
            with state_lock(state_dir):
                try:
                    return read_state_hosts(path)  # another run's commit mended it meanwhile
                except Damaged:
                    kept = set_aside(path, now)
        if warnings is not None:
            warnings.append(damaged_warning(path, exc, kept, STATE_LOST))
        return {}


def _commit_damaged(path, reason, kept):
    return damaged_warning(path, reason, kept, "the other hosts' state in it starts again")


def commit_state(state_dir, updates, warnings=None, merge=None, damaged_text=_commit_damaged):
    """Merge ``updates`` ({host: {topic: value}}) into the state file, atomically, for all hosts at once.

    Runs over other hosts (another --limit) may commit between our read and
    write, so the file is re-read under a lock and only our topics change
    (a topic of None is left as it is). ``merge`` ({topic: function}) is
    for a topic that must not simply be replaced: the function is called
    under the lock with (the value in the file now, or None; our value),
    and what it returns is stored. A file damaged since the run read it is
    set aside (and named in ``warnings``, in the words of
    ``damaged_text(path, reason, kept)``), never overwritten.

    Returns {host: {topic: value}} as committed ({} when there was nothing to commit).
    """
    if not updates:
        return {}
    merge = merge or {}
    path = os.path.join(state_dir, STATE_FILE)
    committed = {}
    with state_lock(state_dir):
        try:
            hosts = read_state_hosts(path)
        except Damaged as exc:
            kept = set_aside(path)
            hosts = {}
            if warnings is not None:
                warnings.append(damaged_text(path, exc, kept))
        for host, topics in updates.items():
            entry = hosts.setdefault(host, {})
            done = committed.setdefault(host, {})
            for topic, value in (topics or {}).items():
                if value is None:
                    continue
                if topic in merge:
                    value = merge[topic](entry.get(topic), value)
                entry[topic] = done[topic] = value
        write_state_hosts(path, hosts)
    return committed
