# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run registry and journal on the control node (``runs/`` in the state
folder): who owns each run, and the steps it finished.

The order of a run's records is the point. A run registers itself (its id
and the ``ansible-playbook`` process that owns it), journals each finished
step, writes its report (report_files), and only then commits the state
that marks findings as seen (runbook_statefile). A run that is killed
leaves its journal and its registration behind; the next run sees that
the owner is gone, writes the interrupted run's report from the journal,
and takes over its locks at once. No state of the killed run was
committed, so the next run reads the same log lines again: a finding is
never lost.
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_files import ensure_dir, iso, owner_alive, read_json, write_atomic


def runs_dir(state_dir):
    return os.path.join(state_dir, "runs")


def register_run(state_dir, record):
    """Register the run (its record names its journal); return the journal's path."""
    directory = ensure_dir(runs_dir(state_dir))
    record["journal"] = os.path.join(directory, record["id"] + ".journal")
    write_atomic(os.path.join(directory, record["id"] + ".json"), json.dumps(record, sort_keys=True) + "\n")
    return record["journal"]


def journal_append(path, entry):
    """One line per finished step; appended, so a killed run leaves every line written before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (json.dumps(entry, sort_keys=True, default=str) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def journal_read(path):
    entries = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by the kill
    except OSError:
        pass
    return entries


def journal_failures(entries):
    """{host: failure} from journal entries: the last failure of each host (the one that stopped it).

    A failure is ``{"kind": "failed"|"unreachable", "task": ..., "reason": ..., "rc": ...}``.
    """
    failures = {}
    for entry in entries:
        if entry.get("host") and isinstance(entry.get("failure"), dict):
            failures[entry["host"]] = entry["failure"]
    return failures


def change_step(task, figures):
    """The report step of a task that changed something on a host, journaled as soon as it finished.

    A run that dies after it (SIGTERM, SIGKILL, a host lost) still reports what it changed.
    """
    shown = ", ".join("%s %s" % (k, figures[k]) for k in sorted(figures)[:8])
    return {"step": "changed: %s" % task, "status": "ok", "severity": "none",
            "summary": "%s changed this host%s" % (task, (": " + shown) if shown else ""),
            "figures": dict(figures), "problems": []}


def change_figures(result):
    """The numbers of a changed task's result (files deleted, bytes freed, ...), without its internals."""
    return dict((k, v) for k, v in result.items() if not k.startswith("_") and not isinstance(v, bool)
                and isinstance(v, (int, float)) and k not in ("rc",))


def killed_text(rc):
    """'rc 137: killed by signal 9 (SIGKILL)' for a process killed by a signal (shell 128+n, or -n), else None."""
    if not isinstance(rc, int) or isinstance(rc, bool):
        return None
    signum = -rc if rc < 0 else rc - 128 if 128 < rc < 160 else None
    if not signum:
        return None
    try:
        import signal  # pylint: disable=import-outside-toplevel
        name = signal.Signals(signum).name
    except ValueError:
        name = "signal %d" % signum
    return "rc %d: killed by signal %d (%s)" % (rc, signum, name)


def failure_text(failure):
    """One line for a host's journaled failure."""
    text = "%s at task '%s'" % (failure.get("kind", "failed"), failure.get("task") or "unnamed")
    killed = killed_text(failure.get("rc"))
    if killed:
        text += " (%s)" % killed
    if failure.get("reason"):
        text += ": %s" % failure["reason"]
    return text


def journal_steps(entries):
    """{host: [steps]} from journal entries; a later step of the same name replaces the earlier one."""
    hosts = {}
    for entry in entries:
        host, stp = entry.get("host"), entry.get("step")
        if not host or not isinstance(stp, dict) or "step" not in stp:
            continue
        steps = hosts.setdefault(host, [])
        for i, old in enumerate(steps):
            if old.get("step") == stp["step"]:
                steps[i] = stp
                break
        else:
            steps.append(stp)
    return hosts


def finish_run(state_dir, run_id, outcome, report=None):
    path = os.path.join(runs_dir(state_dir), run_id + ".json")
    record = read_json(path, None)
    if record is None:
        return
    record.update(ended=outcome, ended_at=iso(), report=report)
    write_atomic(path, json.dumps(record, sort_keys=True) + "\n")
    journal = os.path.join(runs_dir(state_dir), run_id + ".journal")
    # The report holds what the journal held; an interrupted run's journal
    # stays for whoever looks into the interruption.
    if os.path.exists(journal) and outcome in ("finished", "stopped"):
        os.unlink(journal)


def dead_runs(state_dir, keep_days=7, now=None):
    """Registered runs whose owner process is gone: (unreported, all dead ids).

    ``unreported`` are the records of runs that ended without a report
    (killed); every dead run's id is returned so the locks it left can be
    taken over at once. Records older than ``keep_days`` are pruned.
    """
    now = now if now is not None else clock_now()
    directory = runs_dir(state_dir)
    unreported, ids = [], []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return unreported, ids
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        record = read_json(path, None)
        if not isinstance(record, dict) or "id" not in record:
            continue
        if record.get("ended"):
            if now - os.path.getmtime(path) > keep_days * 86400:
                for leftover in (path, path[:-5] + ".journal"):
                    if os.path.exists(leftover):
                        os.unlink(leftover)
            else:
                ids.append(record["id"])
            continue
        alive = owner_alive(record.get("owner"))
        if alive is False:
            ids.append(record["id"])
            unreported.append(record)
    return unreported, ids
