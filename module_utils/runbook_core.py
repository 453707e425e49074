# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a runbook run keeps on the control node: its identity, its journal,
its report, and the state it commits for the next run.

The order of these is the point. A run registers itself (its id and the
``ansible-playbook`` process that owns it), journals each finished step,
writes its report, and only then commits the state that marks findings as
seen (log positions, samples, uptime). A run that is killed leaves its
journal and its registration behind; the next run sees that the owner is
gone, writes the interrupted run's report from the journal, and takes over
its locks at once. No state of the killed run was committed, so the next
run reads the same log lines again: a finding is never lost.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import random
import re
import socket
import threading
import time
import urllib.error

from ansible.module_utils.bemore_steps import worst_severity, worst_status
from ansible.module_utils.runbook_common import SEVERITIES, STATUS_RANK
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.urls import open_url

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
REPORT_FILE_MODE = 0o600
STATE_FILE = "state.json"


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


def write_atomic(path, text, mode=0o600):
    directory = os.path.dirname(path)
    ensure_dir(directory)
    tmp = "%s.tmp-%d-%06x" % (path, os.getpid(), random.getrandbits(24))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
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
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
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


def damaged_warning(path, reason, kept, what):
    if kept:
        return ("the state file %s %s; it was kept as %s and this run started from empty state (%s)"
                % (path, reason, kept, what))
    return "the state file %s %s; it was left in place (check mode) and this run read no state from it (%s)" % (
        path, reason, what)


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


# --- state -------------------------------------------------------------------------

STATE_LOST = ("every log review is a first review, and the disk samples, error signatures and uptime of "
              "earlier runs start again")


def _state_hosts(path):
    data = read_json_checked(path, {}, dict)
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise Damaged("has no host table ('hosts' is a JSON %s)" % type(hosts).__name__)
    return hosts


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
        return _state_hosts(path)
    except Damaged as exc:
        kept = None
        if set_damaged_aside:
            with Flock(os.path.join(state_dir, ".state.lock")):
                try:
                    return _state_hosts(path)  # another run's commit mended it meanwhile
                except Damaged:
                    kept = set_aside(path, now)
        if warnings is not None:
            warnings.append(damaged_warning(path, exc, kept, STATE_LOST))
        return {}


def commit_state(state_dir, updates, warnings=None):
    """Merge ``updates`` ({host: {topic: value}}) into the state file, atomically, for all hosts at once.

    Runs over other hosts (another --limit) may commit between our read and
    write, so the file is re-read under a lock and only our topics change.
    A file damaged since the run read it is set aside (and named in
    ``warnings``), never overwritten.
    """
    if not updates:
        return False
    path = os.path.join(state_dir, STATE_FILE)
    with Flock(os.path.join(state_dir, ".state.lock")):
        try:
            hosts = _state_hosts(path)
        except Damaged as exc:
            kept = set_aside(path)
            hosts = {}
            if warnings is not None:
                warnings.append(damaged_warning(path, exc, kept, "the other hosts' state in it starts again"))
        for host, topics in updates.items():
            entry = hosts.setdefault(host, {})
            for topic, value in (topics or {}).items():
                if value is None:
                    continue
                entry[topic] = value
        write_atomic(path, json.dumps({"version": 1, "committed_at": iso(), "hosts": hosts}, sort_keys=True,
                                      default=str) + "\n")
    return True


# --- the run registry and journal --------------------------------------------------

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


# --- the report --------------------------------------------------------------------

def normalise_step(stp):
    """A step with every field present; unknown values become explicit problems."""
    out = {
        "step": str(stp.get("step", "unnamed")),
        "status": stp.get("status", "failed"),
        "severity": stp.get("severity", "none"),
        "summary": str(stp.get("summary", "")).strip(),
        "figures": stp.get("figures") or {},
        "problems": [str(p) for p in (stp.get("problems") or [])],
    }
    if stp.get("alert"):
        out["alert"] = True
    if out["status"] not in STATUS_RANK:
        out["problems"].append("unknown status %r" % (out["status"],))
        out["status"] = "failed"
    if out["severity"] not in SEVERITIES:
        out["problems"].append("unknown severity %r" % (out["severity"],))
        out["severity"] = "high"
    return out


def build_report(run, hosts, interrupted=None, extra=None, now=None):
    """The report dict. ``hosts``: {host: {"completed": bool, "steps": [...]}}."""
    now = now if now is not None else clock_now()
    report = {"schedule": run["schedule"], "environment": run["environment"], "run_id": run["id"],
              "started_at": run.get("started_at"), "generated_at": iso(now),
              "check_mode": bool(run.get("check_mode")), "interrupted": bool(interrupted),
              "interruption": interrupted or None, "hosts": {}}
    report.update(extra or {})
    if run.get("warnings"):
        # What the run could not use (a damaged state file): said in every report of the run.
        report["warnings"] = [str(w) for w in run["warnings"]]
    statuses, severities = [], []
    for name in sorted(hosts):
        entry = hosts[name]
        steps = [normalise_step(s) for s in entry.get("steps") or [] if isinstance(s, dict)]
        completed = bool(entry.get("completed")) and not interrupted
        host_statuses = [s["status"] for s in steps] or ["ok"]
        host_severities = [s["severity"] for s in steps] or ["none"]
        if not completed:
            # Failed or interrupted part-way: its finished steps do not make it fine. A host that cannot be
            # reached over its connection is down as far as the run can tell: the guide's service down.
            host_statuses.append("failed")
            host_severities.append("critical" if entry.get("unreachable") else "high")
        host = {"completed": completed, "worst_status": worst_status(host_statuses),
                "worst_severity": worst_severity(host_severities), "steps": steps}
        if entry.get("unreachable") and not completed:
            host["unreachable"] = True
        for key in ("lock", "reason"):
            if entry.get(key):
                host[key] = entry[key]
        report["hosts"][name] = host
        statuses.append(host["worst_status"])
        severities.append(host["worst_severity"])
    report["worst_status"] = worst_status(statuses) if statuses else ("failed" if interrupted else "ok")
    report["worst_severity"] = worst_severity(severities)
    report["alerts"] = sorted({"%s/%s" % (h, s["step"]) for h, d in report["hosts"].items()
                               for s in d["steps"] if s.get("alert")})
    report["counts"] = dict((status, sum(1 for h in report["hosts"].values() for s in h["steps"]
                                         if s["status"] == status)) for status in STATUS_RANK)
    return report


# --- what the run selected ----------------------------------------------------------------

RESERVED_TAGS = ("always", "never", "all", "tagged", "untagged")
TEST_SKIP_TAGS = ("molecule-notest", "notest", "molecule-idempotence-notest")


def playbook_step_tags(path):
    """The tags of a playbook's tasks (its steps' tags), sorted; None when the file cannot be read."""
    try:
        import yaml  # pylint: disable=import-outside-toplevel
        with open(path, encoding="utf-8") as handle:
            plays = yaml.safe_load(handle)
    except Exception:  # pylint: disable=broad-except
        return None
    found = set()

    def walk(tasks):
        for task in tasks if isinstance(tasks, list) else []:
            if not isinstance(task, dict):
                continue
            tags = task.get("tags") or []
            found.update(str(t) for t in (tags if isinstance(tags, list) else [tags]))
            for key in ("block", "rescue", "always"):
                walk(task.get(key))

    for play in plays if isinstance(plays, list) else []:
        if isinstance(play, dict):
            for key in ("pre_tasks", "tasks", "post_tasks"):
                walk(play.get(key))
    return sorted(t for t in found if t not in RESERVED_TAGS)


def no_step_problem(report, run_tags=None, skip_tags=None, known_tags=None):
    """Why the run is a failure because it selected no step (a typo in --tags), or None.

    A run whose hosts all finished without a single step did nothing it was
    asked for: "OK" would be a false all-clear. A host that failed or was
    unreachable is a failure of its own, so this rule is about completed runs.
    """
    if not report["hosts"] or any(h["steps"] or not h["completed"] for h in report["hosts"].values()):
        return None
    if report.get("interrupted"):
        return None
    asked = [t for t in run_tags or [] if t != "all"]
    # Molecule skips these tags in every run it makes; they select nothing.
    skip_tags = [t for t in skip_tags or [] if t not in TEST_SKIP_TAGS]
    if not asked and not skip_tags and not known_tags:
        # Nothing was selected, and the playbook has no step to select (the
        # schedules' installation): not a selection that missed.
        return None
    text = "the run selected no step"
    if asked:
        text += ": --tags %s" % ",".join(asked)
        unknown = [t for t in asked if known_tags is not None and t not in known_tags and t not in RESERVED_TAGS]
        if unknown:
            text += " (%s %s not a tag of this playbook)" % (", ".join(unknown), "is" if len(unknown) == 1 else "are")
    if skip_tags:
        text += "%s --skip-tags %s" % (" with" if asked else ":", ",".join(skip_tags))
    if known_tags:
        text += "; the %s playbook's step tags are: %s" % (report["schedule"], ", ".join(known_tags))
    elif known_tags is None:
        text += "; this playbook's step tags could not be read"
    return text


def mark_failed(report, problem):
    """The run itself failed (not one of its hosts' steps): its verdict is failed, and it says why."""
    report["problems"] = list(report.get("problems") or []) + [problem]
    report["worst_status"] = "failed"
    return report


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(report):
    verdict = report["worst_status"].upper() + (" (INTERRUPTED)" if report.get("interrupted") else "")
    lines = ["# BeMore %s run: %s" % (report["schedule"], verdict), "",
             "- Environment: %s" % report["environment"],
             "- Run: %s (started %s, reported %s)%s" % (report["run_id"], report.get("started_at") or "unknown",
                                                        report["generated_at"],
                                                        ", check mode: nothing was changed" if report["check_mode"] else ""),
             "- Worst severity: %s" % report["worst_severity"]]
    if report.get("interrupted"):
        lines.append("- Interrupted: %s; the steps below are those finished before it, and this run committed "
                     "no state" % (report.get("interruption") or {}).get("reason", "yes"))
    for problem in report.get("problems") or []:
        lines.append("- Problem: %s" % problem)
    for warning in report.get("warnings") or []:
        lines.append("- Warning: %s" % warning)
    for note in report.get("notes") or []:
        lines.append("- %s" % note)
    lines.append("")
    for host, data in sorted(report["hosts"].items()):
        lines += ["## %s: %s%s" % (host, data["worst_status"],
                                   "" if data["completed"] else " (run did not complete on this host)"), ""]
        if data.get("lock"):
            lines += ["Lock: %s" % _cell(data["lock"]), ""]
        lines += ["| step | status | severity | summary |", "|---|---|---|---|"]
        for stp in data["steps"]:
            lines.append("| %s | %s | %s | %s |" % (_cell(stp["step"]), stp["status"], stp["severity"],
                                                    _cell(stp["summary"])))
        lines.append("")
        for stp in data["steps"]:
            if stp["problems"]:
                lines.append("### %s problems" % stp["step"])
                lines += ["- %s" % _cell(p) for p in stp["problems"]]
                lines.append("")
            if stp["figures"]:
                lines.append("<details><summary>%s figures</summary>" % stp["step"])
                lines += ["", "```json", json.dumps(stp["figures"], indent=1, sort_keys=True, default=str),
                          "```", "", "</details>", ""]
    return "\n".join(lines) + "\n"


def _label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_prometheus(report, timestamp):
    base = 'schedule="%s",environment="%s"' % (_label(report["schedule"]), _label(report["environment"]))
    out = ["# HELP bemore_runbook_last_run_timestamp_seconds When the runbook last ran.",
           "# TYPE bemore_runbook_last_run_timestamp_seconds gauge",
           "bemore_runbook_last_run_timestamp_seconds{%s} %d" % (base, timestamp),
           "# HELP bemore_runbook_worst_status Worst step status (0 ok, 1 warning, 2 critical, 3 failed).",
           "# TYPE bemore_runbook_worst_status gauge",
           "bemore_runbook_worst_status{%s} %d" % (base, STATUS_RANK[report["worst_status"]]),
           "# HELP bemore_runbook_worst_severity Worst severity (0 none .. 4 critical).",
           "# TYPE bemore_runbook_worst_severity gauge",
           "bemore_runbook_worst_severity{%s} %d" % (base, SEVERITIES.index(report["worst_severity"])),
           "# HELP bemore_runbook_step_status Status of one step on one host (0 ok .. 3 failed).",
           "# TYPE bemore_runbook_step_status gauge"]
    for host, data in sorted(report["hosts"].items()):
        for stp in data["steps"]:
            out.append('bemore_runbook_step_status{%s,host="%s",step="%s"} %d'
                       % (base, _label(host), _label(stp["step"]), STATUS_RANK[stp["status"]]))
    return "\n".join(out) + "\n"


def summary_lines(report):
    out = ["FAILED: %s" % p for p in report.get("problems") or []] + ["WARNING: %s" % w for w in report.get("warnings") or []]
    for host, data in sorted(report["hosts"].items()):
        for stp in data["steps"]:
            out.append("%s %-18s %-14s %s" % (host, stp["step"], stp["status"].upper(), stp["summary"]))
        if not data["completed"]:
            out.append("%s %-18s %-14s %s" % (
                host, "(run)", "INTERRUPTED" if report.get("interrupted") else "FAILED",
                data.get("reason") or "the run did not complete on this host"))
    return out


def report_paths(report_dir, schedule, run_id):
    directory = os.path.join(report_dir, safe_component(schedule))
    base = os.path.join(directory, run_id)
    return directory, {"json": base + ".json", "markdown": base + ".md", "html": base + ".html"}


def write_report(report, report_dir, html=None, keep=200, prometheus_file=None, file_mode=REPORT_FILE_MODE):
    """Write the report's files with exclusive create; return their paths. OSError on failure."""
    directory, paths = report_paths(report_dir, report["schedule"], report["run_id"])
    ensure_dir(report_dir, 0o700 if file_mode == 0o600 else 0o750)
    ensure_dir(directory, 0o700 if file_mode == 0o600 else 0o750)
    if html is None:
        paths.pop("html")
    texts = {"json": lambda: json.dumps(report, indent=2, sort_keys=True, default=str) + "\n",
             "markdown": lambda: render_markdown(report), "html": lambda: html}
    written = []
    try:
        for kind in ("json", "markdown", "html"):
            if kind in paths:
                write_exclusive(paths[kind], texts[kind](), file_mode)
                written.append(paths[kind])
    except BaseException:
        # A run whose report is "NOT WRITTEN" leaves no part of it that looks complete.
        for path in written:
            os.unlink(path)
        raise
    for kind, link in (("json", "latest.json"), ("markdown", "latest.md"), ("html", "latest.html")):
        if kind not in paths:
            continue
        link_path = os.path.join(directory, link)
        tmp_link = "%s.new-%d" % (link_path, os.getpid())
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(os.path.basename(paths[kind]), tmp_link)
        os.replace(tmp_link, link_path)
    prune(directory, keep)
    if prometheus_file:
        # node_exporter's textfile collector reads it: world-readable, and it holds no secret.
        write_atomic(prometheus_file, render_prometheus(report, int(clock_now())), 0o644)
    return paths


def prune(directory, keep):
    if keep <= 0:
        return []
    runs = sorted({name.rsplit(".", 1)[0] for name in os.listdir(directory)
                   if name.endswith((".json", ".md", ".html")) and not name.startswith(("latest", "."))})
    removed = []
    for run in runs[:-keep]:
        for ext in (".json", ".md", ".html"):
            victim = os.path.join(directory, run + ext)
            if os.path.isfile(victim) and not os.path.islink(victim):
                os.unlink(victim)
                removed.append(victim)
    return removed


# --- notification ----------------------------------------------------------------------

RESPONSE = {"critical": "respond within 15 minutes", "high": "respond within 1 hour",
            "medium": "respond within 4 hours", "low": "respond within 24 hours"}


def should_notify(report, severities):
    return report["worst_severity"] in severities or bool(report.get("alerts")) or bool(report.get("interrupted"))


def webhook_payload(report, lines, page_url=None):
    """Slack-compatible JSON: text plus one attachment."""
    severity = report["worst_severity"]
    text = "[%s] BeMore %s run on %s ended %s%s" % (
        severity.upper(), report["schedule"], report["environment"], report["worst_status"],
        "; " + RESPONSE[severity] if severity in RESPONSE else "")
    if report.get("interrupted"):
        text += " (interrupted: %s)" % (report.get("interruption") or {}).get("reason", "")
    if report.get("alerts"):
        text += "; alert: %s" % ", ".join(report["alerts"][:10])
    fields = [{"title": "Severity", "value": severity, "short": True},
              {"title": "Run", "value": report["run_id"], "short": True}]
    if page_url:
        fields.append({"title": "Report", "value": page_url, "short": False})
    return {"text": text, "attachments": [{
        "color": {"critical": "#b00020", "high": "#e65100", "medium": "#f9a825"}.get(severity, "#607d8b"),
        "title": "%s / %s: %s" % (report["schedule"], report["environment"], report["worst_status"]),
        "text": "\n".join(lines[:40]), "fields": fields}]}


def _post_once(url, data, timeout):
    """(HTTP status or None, outcome) of one POST, answered within ``timeout`` seconds in all.

    open_url's timeout is per socket operation, so a receiver that answers a
    byte at a time would hold the run for as long as it likes. The POST runs
    in a daemon thread, left behind (and ended with the process) when the
    deadline passes.
    """
    box = {}

    def send():
        try:
            resp = open_url(url, data=data, method="POST", headers={"Content-Type": "application/json"},
                            timeout=timeout, validate_certs=True, follow_redirects="none")
            box["status"] = resp.getcode()
            resp.close()
        except urllib.error.HTTPError as exc:
            box["status"] = exc.code
        except (urllib.error.URLError, OSError, ValueError) as exc:
            box["error"] = "no answer (%s)" % type(getattr(exc, "reason", exc)).__name__

    worker = threading.Thread(target=send, name="webhook", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None, "no answer within the %.1fs deadline" % timeout
    if "status" in box:
        return box["status"], "HTTP %d" % box["status"]
    return None, box.get("error", "no answer")


def post_webhook(url, payload, timeout=10.0, retries=2, delay=2.0):
    """(ok, outcome). Never raises and never names the URL (it is the credential).

    Takes at most ``timeout * (retries + 1) + delay * retries`` seconds.
    """
    data = json.dumps(payload).encode("utf-8")
    outcome = "not sent"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(delay)
        status, outcome = _post_once(url, data, timeout)
        if status is not None and 200 <= status < 300:
            return True, "sent (HTTP %d)" % status
        if status is not None and 400 <= status < 500 and status != 429:
            break
    return False, "failed after %d attempt(s): %s" % (attempt + 1, outcome)


def notify(report, lines, settings, url, page=None, write_error=None):
    """Notify the webhook of a report when it needs it; return what happened (never the URL).

    The one notification of every report path - the report step, the
    callback's stopped and interrupted reports, the recovery of a killed
    run - so each pages alike. ``settings``: notify_severities,
    webhook_timeout, webhook_retries (the report role's options).
    """
    settings = settings or {}
    if not url:
        return "not configured"
    severities = settings.get("notify_severities")
    # An empty list is a choice (alerts and interruptions only), not a missing setting.
    if not should_notify(report, ["critical", "high"] if severities is None else severities) and not write_error:
        return "not needed"
    if report.get("check_mode"):
        return "not sent (check mode)"
    payload = webhook_payload(report, list(lines) + ([write_error] if write_error else []), page)
    timeout = settings.get("webhook_timeout")
    retries = settings.get("webhook_retries")
    return post_webhook(url, payload, 10.0 if timeout is None else float(timeout),
                        2 if retries is None else int(retries))[1]


def page_url(base, report):
    if not base:
        return None
    return "%s/%s/%s.html" % (base.rstrip("/"), safe_component(report["schedule"]), report["run_id"])


def is_enoent(exc):
    return getattr(exc, "errno", None) == errno.ENOENT
