# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run's report and its files: the report dict built from each host's
steps, its verdict when the run selected nothing, its Markdown, its
Prometheus text file and its one-line summary, and the files written under
the report folder (exclusive create, ``latest.*`` links, pruning).

Every report path builds and writes through here - the report step, the
callback's interrupted and stopped reports, the recovery of a killed run,
the watch - so every report of a schedule looks alike and sorts by run id.
The HTML page is rendered elsewhere (report_html) and only written here.
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.bemore_steps import worst_severity, worst_status
from ansible.module_utils.runbook_common import SEVERITIES, STATUS_RANK
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_files import (
    REPORT_FILE_MODE, ensure_dir, iso, safe_component, write_atomic, write_exclusive,
)


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
