# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where the watch keeps what it decided: its state topic, its run lock, its silences, its summary.

- The watch's lock is an owner record (control node, pid, process start),
  never a held flock: an overlapping watch sees a live owner and is skipped
  at once; a watch killed mid-way leaves a dead owner that the next one
  takes over. It is not the hosts' maintenance lock: the changing runs
  never see it, and it never waits.
- Messages are owed before they are sent: the outbox is committed with
  the run's state, each message is sent, then marked sent. A watch killed
  between the two sends it again (same message id: at least once).
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.bemore_watch import merge_watch_state
from ansible.module_utils.runbook_files import (
    Flock, controller_identity, ensure_dir, iso, owner_alive, read_json, write_atomic,
)
from ansible.module_utils.runbook_statefile import (
    STATE_FILE, commit_state, read_state_hosts, state_lock, write_state_hosts,
)

TOPIC = "watch"
LOCK_FILE = "watch.lock"
SILENCES_FILE = "silences.json"


def take_lock(state_dir, now, identity=None):
    """(True, None) when this run holds the watch lock; (False, owner) when a live watch holds it."""
    identity = identity or controller_identity()
    path = os.path.join(state_dir, LOCK_FILE)
    with Flock(os.path.join(state_dir, ".watch.lock")):
        owner = read_json(path, None)
        if isinstance(owner, dict) and owner_alive(owner) and owner.get("pid") != identity.get("pid"):
            return False, owner
        write_atomic(path, json.dumps(dict(identity, since=iso(now))) + "\n")
    return True, None


def release_lock(state_dir, identity=None):
    identity = identity or controller_identity()
    path = os.path.join(state_dir, LOCK_FILE)
    with Flock(os.path.join(state_dir, ".watch.lock")):
        owner = read_json(path, None)
        if isinstance(owner, dict) and owner.get("pid") == identity.get("pid") and \
                owner.get("controller") == identity.get("controller"):
            os.unlink(path)
            return True
    return False


def commit_watch(state_dir, topics, warnings=None):
    """Commit each host's ``watch`` topic compare-and-set against the file as it is now.

    Only the ``watch`` topic changes (the other topics belong to the other
    schedules); see merge_watch_state for what never moves back. Returns the
    topics as committed.
    """
    committed = commit_state(state_dir, dict((host, {TOPIC: topic}) for host, topic in topics.items()), warnings,
                             merge={TOPIC: merge_watch_state}, damaged_text=_damaged_text)
    return dict((host, done[TOPIC]) for host, done in committed.items() if TOPIC in done)


def _damaged_text(path, reason, kept):
    return "state file %s was damaged (%s): kept as %s" % (path, reason, kept)


def mark_sent(state_dir, sent_ids):
    """Record the ids of messages delivered, taking them out of the hosts' outboxes."""
    if not sent_ids:
        return
    path = os.path.join(state_dir, STATE_FILE)
    with state_lock(state_dir):
        hosts = read_state_hosts(path)
        for entry in hosts.values():
            topic = entry.get(TOPIC)
            if not isinstance(topic, dict):
                continue
            mine = [m for m in topic.get("outbox") or [] if m.get("id") in sent_ids]
            if mine:
                topic["outbox"] = [m for m in topic["outbox"] if m.get("id") not in sent_ids]
                topic["sent"] = (list(topic.get("sent") or []) + [m["id"] for m in mine])[-200:]
        write_state_hosts(path, hosts)


def read_silences(state_dir):
    data = read_json(os.path.join(state_dir, SILENCES_FILE), {})
    return data.get("silences") if isinstance(data, dict) and isinstance(data.get("silences"), list) else []


def open_silences(state_dir, hosts, since, until, reason, now):
    """Open a silence on ``hosts`` from ``since`` to ``until`` (epoch s); expired ones are dropped."""
    path = os.path.join(state_dir, SILENCES_FILE)
    ensure_dir(state_dir)
    with Flock(os.path.join(state_dir, ".watch.lock")):
        kept = [s for s in read_silences(state_dir) if float(s.get("until") or 0) > now]
        for host in hosts:
            kept.append({"host": host, "since": round(since, 1), "until": round(until, 1), "reason": str(reason)[:200]})
        write_atomic(path, json.dumps({"silences": kept}, sort_keys=True) + "\n")
    return kept


def close_silences(state_dir, hosts, reason, now, grace_s=0):
    """End the silences ``reason`` opened on ``hosts`` ``grace_s`` from now (a deploy that finished early).

    The grace covers the next watch run, which still sees the restart the deploy made.
    """
    path = os.path.join(state_dir, SILENCES_FILE)
    with Flock(os.path.join(state_dir, ".watch.lock")):
        kept = []
        for s in read_silences(state_dir):
            if s.get("host") in hosts and s.get("reason") == reason and float(s.get("until") or 0) > now:
                s = dict(s, until=round(min(float(s["until"]), now + grace_s), 1))
            if float(s.get("until") or 0) > now - 86400:
                kept.append(s)
        write_atomic(path, json.dumps({"silences": kept}, sort_keys=True) + "\n")
    return kept


def append_summary(path, line, keep):
    """Append one line to the bounded summary, keeping its last ``keep`` lines."""
    ensure_dir(os.path.dirname(path))
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    lines.append(line)
    write_atomic(path, "\n".join(lines[-keep:]) + "\n", 0o640)
