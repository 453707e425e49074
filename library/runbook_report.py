#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runbook_report
short_description: Write one JSON and one Markdown report for a runbook run
description:
  - Takes the per-step results that the roles publish (C(<role>_result) facts)
    for every host of the run, works out the worst status and the worst
    severity (the guide's escalation levels), and writes a JSON report and a
    Markdown report, plus Prometheus textfile metrics when asked.
  - A host that did not complete the run (failed or unreachable) counts as
    C(failed) even when its finished steps were fine.
version_added: "1.0.0"
options:
  report_dir:
    description: Absolute directory for the reports; created when missing. Reports go to I(report_dir)/I(schedule)/.
    type: path
    required: true
  schedule:
    description: Name of the run (daily, weekly, incident, ...); letters, digits, C(_) and C(-).
    type: str
    required: true
  environment:
    description: Environment name shown in the report.
    type: str
    default: unknown
  hosts:
    description:
      - One entry per host, C({host, completed, steps}), where C(steps) is a
        list of step results C({step, status, severity, summary, figures, problems}).
    type: list
    elements: dict
    required: true
  run_id:
    description: Identifier of the run; the report file names start with it. Defaults to a UTC time stamp.
    type: str
  check_mode_run:
    description: Whether the playbook ran in check mode; shown in the report.
    type: bool
    default: false
  prometheus_file:
    description: Write C(bemore_runbook_*) metrics to this file (node_exporter textfile collector).
    type: path
  keep:
    description: Reports of this schedule to keep; older ones are removed. 0 keeps all.
    type: int
    default: 200
attributes:
  check_mode:
    support: none
    description: The report is the record of the run, check-mode runs included, so it is always written.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Write the run report
  runbook_report:
    report_dir: /var/lib/bemore-runbooks/reports
    schedule: weekly
    environment: production
    hosts:
      - host: api1
        completed: true
        steps:
          - {step: health, status: ok, severity: none, summary: healthy}
  delegate_to: localhost
"""

RETURN = r"""
json_report:
  description: Path of the JSON report.
  returned: always
  type: str
markdown_report:
  description: Path of the Markdown report.
  returned: always
  type: str
worst_status:
  description: Worst step status over all hosts (ok, warning, critical, failed).
  returned: always
  type: str
worst_severity:
  description: Worst severity over all hosts (none, low, medium, high, critical).
  returned: always
  type: str
summary_lines:
  description: One line per host and step, for printing at the end of the run.
  returned: always
  type: list
  elements: str
report:
  description: The report as written to the JSON file.
  returned: always
  type: dict
"""

import datetime
import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

STATUS_ORDER = ["ok", "skipped", "not_run", "warning", "critical", "failed"]
STATUS_RANK = {"ok": 0, "skipped": 0, "not_run": 0, "warning": 1, "critical": 2, "failed": 3}
SEVERITY_ORDER = ["none", "low", "medium", "high", "critical"]
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def worst(values, ranking):
    best_value, best_rank = None, -1
    for value in values:
        rank = ranking.index(value) if isinstance(ranking, list) else ranking[value]
        if rank > best_rank:
            best_value, best_rank = value, rank
    return best_value


def normalise_step(step):
    """Return a step result with every field present; unknown values become explicit problems."""
    out = {
        "step": str(step.get("step", "unnamed")),
        "status": step.get("status", "failed"),
        "severity": step.get("severity", "none"),
        "summary": str(step.get("summary", "")).strip(),
        "figures": step.get("figures") or {},
        "problems": [str(p) for p in (step.get("problems") or [])],
    }
    if out["status"] not in STATUS_RANK:
        out["problems"].append("unknown status %r" % out["status"])
        out["status"] = "failed"
    if out["severity"] not in SEVERITY_ORDER:
        out["problems"].append("unknown severity %r" % out["severity"])
        out["severity"] = "high"
    return out


def build_report(hosts, schedule, environment, run_id, check_mode_run, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    report = {"schedule": schedule, "environment": environment, "run_id": run_id,
              "generated_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
              "check_mode": bool(check_mode_run), "hosts": {}}
    statuses, severities = [], []
    for entry in hosts:
        name = str(entry.get("host"))
        steps = [normalise_step(s) for s in entry.get("steps") or [] if isinstance(s, dict)]
        host_statuses = [s["status"] for s in steps] or ["ok"]
        host_severities = [s["severity"] for s in steps] or ["none"]
        completed = bool(entry.get("completed"))
        if not completed:
            # Failed or unreachable part-way: its finished steps do not make it fine.
            host_statuses.append("failed")
            host_severities.append("high")
        host = {"completed": completed, "worst_status": worst(host_statuses, STATUS_RANK),
                "worst_severity": worst(host_severities, SEVERITY_ORDER), "steps": steps}
        report["hosts"][name] = host
        statuses.append(host["worst_status"])
        severities.append(host["worst_severity"])
    report["worst_status"] = worst(statuses, STATUS_RANK) or "ok"
    report["worst_severity"] = worst(severities, SEVERITY_ORDER) or "none"
    report["counts"] = {status: sum(1 for h in report["hosts"].values() for s in h["steps"]
                                    if s["status"] == status) for status in STATUS_ORDER}
    return report


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(report):
    lines = ["# BeMore %s run: %s" % (report["schedule"], report["worst_status"].upper()), "",
             "- Environment: %s" % report["environment"],
             "- Run: %s (generated %s)%s" % (report["run_id"], report["generated_at"],
                                             ", check mode: nothing was changed" if report["check_mode"] else ""),
             "- Worst severity: %s" % report["worst_severity"], ""]
    for host, data in sorted(report["hosts"].items()):
        lines += ["## %s: %s%s" % (host, data["worst_status"],
                                   "" if data["completed"] else " (run did not complete on this host)"), "",
                  "| step | status | severity | summary |", "|---|---|---|---|"]
        for step in data["steps"]:
            lines.append("| %s | %s | %s | %s |" % (_cell(step["step"]), step["status"], step["severity"],
                                                    _cell(step["summary"])))
        lines.append("")
        for step in data["steps"]:
            if step["problems"]:
                lines.append("### %s problems" % step["step"])
                lines += ["- %s" % _cell(p) for p in step["problems"]]
                lines.append("")
            if step["figures"]:
                lines.append("<details><summary>%s figures</summary>" % step["step"])
                lines += ["", "```json", json.dumps(step["figures"], indent=1, sort_keys=True, default=str),
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
           "bemore_runbook_worst_severity{%s} %d" % (base, SEVERITY_ORDER.index(report["worst_severity"])),
           "# HELP bemore_runbook_step_status Status of one step on one host (0 ok .. 3 failed).",
           "# TYPE bemore_runbook_step_status gauge"]
    for host, data in sorted(report["hosts"].items()):
        for step in data["steps"]:
            out.append('bemore_runbook_step_status{%s,host="%s",step="%s"} %d'
                       % (base, _label(host), _label(step["step"]), STATUS_RANK[step["status"]]))
    return "\n".join(out) + "\n"


def write_atomic(path, text, mode=0o644):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def prune(directory, keep):
    if keep <= 0:
        return []
    runs = sorted({name.rsplit(".", 1)[0] for name in os.listdir(directory)
                   if name.endswith((".json", ".md")) and not name.startswith("latest")})
    removed = []
    for run in runs[:-keep]:
        for ext in (".json", ".md"):
            victim = os.path.join(directory, run + ext)
            if os.path.isfile(victim) and not os.path.islink(victim):
                os.unlink(victim)
                removed.append(victim)
    return removed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            report_dir=dict(type="path", required=True),
            schedule=dict(type="str", required=True),
            environment=dict(type="str", default="unknown"),
            hosts=dict(type="list", elements="dict", required=True),
            run_id=dict(type="str"),
            check_mode_run=dict(type="bool", default=False),
            prometheus_file=dict(type="path"),
            keep=dict(type="int", default=200),
        ),
        supports_check_mode=False,
    )
    p = module.params
    if not os.path.isabs(p["report_dir"]):
        module.fail_json(msg="report_dir must be an absolute path, got %r" % p["report_dir"])
    if not _NAME.match(p["schedule"]):
        module.fail_json(msg="schedule %r may only contain letters, digits, '_' and '-'" % p["schedule"])
    now = datetime.datetime.now(datetime.timezone.utc)
    run_id = p["run_id"] or now.strftime("%Y%m%dT%H%M%SZ")
    if not _NAME.match(run_id):
        module.fail_json(msg="run_id %r may only contain letters, digits, '_' and '-'" % run_id)
    report = build_report(p["hosts"], p["schedule"], p["environment"], run_id, p["check_mode_run"], now)
    directory = os.path.join(p["report_dir"], p["schedule"])
    json_path = os.path.join(directory, "%s-%s.json" % (run_id, p["schedule"]))
    md_path = os.path.join(directory, "%s-%s.md" % (run_id, p["schedule"]))
    try:
        write_atomic(json_path, json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
        write_atomic(md_path, render_markdown(report))
        for src, link in ((json_path, "latest.json"), (md_path, "latest.md")):
            link_path = os.path.join(directory, link)
            tmp_link = link_path + ".new"
            if os.path.lexists(tmp_link):
                os.unlink(tmp_link)
            os.symlink(os.path.basename(src), tmp_link)
            os.replace(tmp_link, link_path)
        prune(directory, p["keep"])
        if p["prometheus_file"]:
            write_atomic(p["prometheus_file"], render_prometheus(report, int(now.timestamp())))
    except OSError as exc:
        module.fail_json(msg="cannot write the report under %s: %s" % (directory, exc))
    summary = []
    for host, data in sorted(report["hosts"].items()):
        for step in data["steps"]:
            summary.append("%s %-18s %-8s %s" % (host, step["step"], step["status"].upper(), step["summary"]))
        if not data["completed"]:
            summary.append("%s %-18s %-8s %s" % (host, "(run)", "FAILED",
                                                 "the run did not complete on this host; see the task output"))
    module.exit_json(changed=True, json_report=json_path, markdown_report=md_path,
                     worst_status=report["worst_status"], worst_severity=report["worst_severity"],
                     summary_lines=summary, report=report)


if __name__ == "__main__":
    main()
