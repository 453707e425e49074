#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runbook_report
short_description: Write the report of a runbook run, notify, then commit the run's state
description:
  - The last step of every BeMore runbook playbook, run once on the control
    node. It gathers each host's finished steps (those the API sweep decided
    and those the other roles published as C(<role>_result)), works out the
    worst status and severity (the guide's escalation levels) and writes one
    JSON, one Markdown and one self-contained HTML report, created
    exclusively (two runs never share a file) and readable by their owner
    only.
  - It notifies the on-call webhook of a critical or high result, an alert
    (error rate above 1 %) or an interrupted run whether or not the report
    could be written, and returns the summary lines for the console. A
    report that cannot be written is itself a finding (RV(write_error)).
  - "A host that left the play is named by the failure the C(runbook_journal) callback journaled for it (its task,
    message and exit code; a module killed by a signal says so), and its journaled changes (a temp cleanup's
    deletions) are listed as steps named C(changed: <task>). A host that could not be reached is critical, a host that
    failed part-way high. A run whose hosts all finished without a single step selected none and fails (I(run_tags))."
  - Only after the report is written does it commit the state the run
    prepared (log positions, samples, uptime), for all hosts at once, so a
    run that dies before its report marks nothing as seen.
version_added: "1.0.0"
options:
  run:
    description: The run as C(runbook_preflight) registered it.
    type: dict
    required: true
  roles:
    description: The roles of the play in order; the report lists the steps in this order.
    type: list
    elements: str
    required: true
  hosts:
    description: Every host of the play (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  completed:
    description: The hosts still in the play (C(ansible_play_hosts)); the others failed or were unreachable.
    type: list
    elements: str
    required: true
  sweep:
    description: The registered result of C(bemore_checks), empty when the run ran no checks.
    type: dict
    default: {}
  results:
    description: "C({host: {role: <role>_result}}), the steps the other roles published."
    type: dict
    default: {}
  locks:
    description: "C({host: registered maintenance_lock result}), to record locks taken over or broken."
    type: dict
    default: {}
  report_dir:
    description: Reports folder on the control node; reports go to I(report_dir)/<schedule>/.
    type: path
    required: true
  keep:
    description: Reports of this schedule to keep; older ones are removed. 0 keeps all.
    type: int
    default: 200
  file_mode:
    description: Mode of the report files, C(0600) (owner only) or C(0640) (and the owner's group); never world-readable.
    type: str
    choices: ["0600", "0640"]
    default: "0600"
  prometheus_file:
    description: Also write C(bemore_runbook_*) metrics to this file (node_exporter textfile collector).
    type: path
  url_base:
    description: URL under which the report folder is published; the notification links to the run's HTML page.
    type: str
  webhook_url:
    description: Slack-compatible webhook for notifications. It is the credential, so it is never shown.
    type: str
  notify_severities:
    description: Severities notified at once; alerts and interrupted runs are always notified.
    type: list
    elements: str
    default: [critical, high]
  webhook_timeout:
    description: Seconds per webhook attempt.
    type: float
    default: 10
  webhook_retries:
    description: Extra webhook attempts. A webhook that still fails is reported; it never fails the run.
    type: int
    default: 2
  commit_state:
    description: Commit the state the run prepared once its report is written (false in check mode).
    type: bool
    default: true
  fail_on:
    description: The worst status that fails the run (RV(gate_failed)).
    type: str
    choices: [warning, critical, failed, never]
    default: critical
  gate_steps:
    description: Steps the gate looks at; empty means all of them.
    type: list
    elements: str
    default: []
  run_tags:
    description:
      - The tags the run was started with (C(ansible_run_tags)). A run whose hosts all finished without a single
        step selected none (a typo such as C(--tags helth)); it fails and names the playbook's step tags.
    type: list
    elements: str
    default: []
  skip_tags:
    description: The tags the run skipped (C(ansible_skip_tags)), named when the run selected no step.
    type: list
    elements: str
    default: []
  playbook:
    description: The playbook file, whose task tags are named when the run selected no step.
    type: path
  html_template:
    description:
      - The text of the HTML page's Jinja2 template. The module's action plugin passes the report role's
        C(templates/report.html.j2), read on the controller; without it no HTML page is written and
        RV(html_error) says why.
    type: str
extends_documentation_fragment:
  - bemore_attributes.controller
notes:
  - The report is the record of the run, check-mode runs included, so it is written in check mode too;
    the state is then not committed.
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Write the report, notify, then commit the state
  runbook_report:
    run: "{{ __runbook_run.run }}"
    roles: "{{ ansible_play_role_names }}"
    hosts: "{{ ansible_play_hosts_all }}"
    completed: "{{ ansible_play_hosts }}"
    sweep: "{{ __runbook_checks | default({}) }}"
    report_dir: /var/lib/bemore-runbooks/reports
    webhook_url: "{{ bemore_webhook_url }}"
  run_once: true
  delegate_to: localhost
  register: __runbook_report
"""

RETURN = r"""
report:
  description: The report as written.
  returned: always
  type: dict
paths:
  description: The files written, by kind (json, markdown, html); empty when writing failed.
  returned: always
  type: dict
  sample: {"json": "/var/lib/bemore-runbooks/reports/daily/20261202T114512.123456Z-production-a1b2c3.json"}
write_error:
  description: Why the report could not be written; null when it was.
  returned: always
  type: str
html_error:
  description: Why the HTML page was not written beside the JSON and Markdown report; null when it was.
  returned: always
  type: str
summary_lines:
  description: One line per host and step, for the console.
  returned: always
  type: list
  elements: str
worst_status:
  description: Worst step status over all hosts (ok, warning, critical, failed).
  returned: always
  type: str
worst_severity:
  description: Worst severity over all hosts (none, low, medium, high, critical).
  returned: always
  type: str
notification:
  description: C(not needed), C(not configured), C(sent (HTTP 200)) or why it failed; never the URL.
  returned: always
  type: str
state_committed:
  description: Whether the run's state was committed.
  returned: always
  type: bool
gate_failed:
  description: Whether the run must fail (its worst result reached I(fail_on), or the report could not be written).
  returned: always
  type: bool
gate_message:
  description: Why the gate failed, or what it checked.
  returned: always
  type: str
"""

import math
import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_steps import STEP_OF_ROLE, worst_status
from ansible.module_utils.bemore_watch import watch_lines, watch_stale, watch_view
from ansible.module_utils.report_files import (
    build_report, mark_failed, no_step_problem, playbook_step_tags, report_paths, summary_lines, write_report,
)
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_common import STATUS_RANK
from ansible.module_utils.runbook_notify import notify, page_url
from ansible.module_utils.runbook_runs import failure_text, finish_run, journal_failures, journal_read, journal_steps
from ansible.module_utils.runbook_statefile import commit_state, load_state

try:
    from ansible.module_utils.report_history import scan_history
    from ansible.module_utils.report_html import render_html
    HAS_HTML = True
except ImportError:  # the HTML page is optional; the JSON and Markdown report are not
    HAS_HTML = False


def published_step(result):
    """The step a role published: a step dict, or a module result holding one under ``step``."""
    if not isinstance(result, dict) or result.get("skipped"):
        return None
    if isinstance(result.get("step"), dict):
        return result["step"]
    if isinstance(result.get("step"), str) and "status" in result:
        return result
    return None


def host_steps(host, roles, sweep, results):
    """The host's steps in the play's role order; a role's own published step wins over the sweep's."""
    by_step = {}
    for stp in ((sweep.get("hosts") or {}).get(host) or {}).get("steps") or []:
        by_step[stp["step"]] = stp
    for role, result in (results.get(host) or {}).items():
        stp = published_step(result)
        if stp is not None:
            by_step[stp["step"]] = stp
    ordered = []
    for role in roles:
        name = STEP_OF_ROLE.get(role, role)
        if name in by_step:
            ordered.append(by_step.pop(name))
    return ordered + [by_step[k] for k in sorted(by_step)]


def lock_note(result):
    if not isinstance(result, dict):
        return None
    if result.get("broken"):
        return "broke the lock of run %s (maintenance_lock_break)" % result["broken"].get("run_id")
    if result.get("took_over"):
        return "took over the lock of run %s (%s)" % (result["took_over"].get("run_id"), result.get("took_over_reason"))
    return None


def gate(report, fail_on, gate_steps):
    if fail_on == "never":
        return False, "the gate is off (report_fail_on: never)"
    status = "ok"
    for host, data in report["hosts"].items():
        if not data["completed"]:
            status = worst_status([status, "failed"])
        for stp in data["steps"]:
            if not gate_steps or stp["step"] in gate_steps:
                status = worst_status([status, stp["status"]])
    failed = STATUS_RANK[status] >= STATUS_RANK[fail_on] and STATUS_RANK[status] > 0
    return failed, "the %s run ended %s (the gate fails at %s)" % (report["schedule"], status, fail_on)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run=dict(type="dict", required=True),
            roles=dict(type="list", elements="str", required=True),
            hosts=dict(type="list", elements="str", required=True),
            completed=dict(type="list", elements="str", required=True),
            sweep=dict(type="dict", default={}),
            results=dict(type="dict", default={}),
            locks=dict(type="dict", default={}),
            report_dir=dict(type="path", required=True),
            keep=dict(type="int", default=200),
            file_mode=dict(type="str", choices=["0600", "0640"], default="0600"),
            prometheus_file=dict(type="path"),
            url_base=dict(type="str"),
            webhook_url=dict(type="str", no_log=True),
            notify_severities=dict(type="list", elements="str", default=["critical", "high"]),
            webhook_timeout=dict(type="float", default=10.0),
            webhook_retries=dict(type="int", default=2),
            commit_state=dict(type="bool", default=True),
            fail_on=dict(type="str", choices=["warning", "critical", "failed", "never"], default="critical"),
            gate_steps=dict(type="list", elements="str", default=[]),
            run_tags=dict(type="list", elements="str", default=[]),
            skip_tags=dict(type="list", elements="str", default=[]),
            playbook=dict(type="path"),
            html_template=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    run = p["run"]
    for key in ("id", "schedule", "environment"):
        if not run.get(key):
            module.fail_json(msg="run lacks %r: pass the run that runbook_preflight registered" % key)
    if not math.isfinite(p["webhook_timeout"]) or p["webhook_timeout"] <= 0:
        module.fail_json(msg="webhook_timeout must be a finite number of seconds > 0, got %s" % p["webhook_timeout"])
    # The run's journal: why each host that left the play left it, and what it changed before.
    entries = journal_read(run["journal"]) if run.get("journal") else []
    failures, journaled = journal_failures(entries), journal_steps(entries)
    hosts = {}
    for host in p["hosts"]:
        entry = {"completed": host in p["completed"], "steps": host_steps(host, p["roles"], p["sweep"], p["results"])}
        note = lock_note(p["locks"].get(host))
        if note:
            entry["lock"] = note
        if not entry["completed"]:
            failure = failures.get(host)
            entry["reason"] = failure_text(failure) if failure else \
                "the host failed or was unreachable part-way; see the task output"
            entry["unreachable"] = bool(failure) and failure.get("kind") == "unreachable"
            have = set(stp.get("step") for stp in entry["steps"])
            entry["steps"] += [stp for stp in journaled.get(host, []) if stp.get("step") not in have]
        hosts[host] = entry
    report = build_report(run, hosts)
    selection = no_step_problem(report, p["run_tags"], p["skip_tags"],
                                playbook_step_tags(p["playbook"]) if p["playbook"] else None)
    if selection:
        mark_failed(report, selection)
    # The watch (its dead-man's switch and open incidents): an open incident is named, not paged a second time.
    covered = False
    if run.get("state_dir") and run["schedule"] != "watch":
        topics = dict((h, t.get("watch")) for h, t in load_state(run["state_dir"], None, False).items()
                      if isinstance(t, dict) and t.get("watch"))
        if topics:
            report["watch"], covered = watch_view(report, topics, clock_now())
            stale = watch_stale(report["watch"])
            if stale:
                report.setdefault("warnings", []).append(stale)
    lines = summary_lines(report) + (watch_lines(report["watch"]) if report.get("watch") else [])
    html, html_error = None, None
    if not p["html_template"]:
        html_error = "no HTML page: no page template was passed (the runbook_report action plugin passes it)"
        module.warn(html_error)
    elif HAS_HTML:
        try:
            scan = scan_history(p["report_dir"], run["schedule"], run["environment"])
            base = run["id"]
            links = [("JSON report", base + ".json"), ("Markdown report", base + ".md")]
            html = render_html(report, scan.reports, {"unreadable_reports": scan.unreadable, "links": links},
                               p["html_template"])
        except Exception as exc:  # pylint: disable=broad-except
            html_error = "the HTML page could not be rendered: %s" % exc
            module.warn(html_error + "\n" + traceback.format_exc(limit=3))
    paths, write_error = {}, None
    try:
        paths = write_report(report, p["report_dir"], html, p["keep"], p["prometheus_file"], int(p["file_mode"], 8))
    except OSError as exc:
        directory = report_paths(p["report_dir"], run["schedule"], run["id"])[0]
        write_error = "the report could not be written under %s: %s" % (directory, exc.strerror or exc)
    if covered and not write_error:
        notification = "not sent: the watch already paged %s" % ", ".join(sorted(
            {v["incident_id"] for v in report["watch"].values() if v["incident_id"]}))
    else:
        notification = notify(report, lines, p, p["webhook_url"],
                              page_url(p["url_base"], report) if paths.get("html") else None, write_error)
    committed = False
    if not write_error and p["commit_state"] and not run.get("check_mode"):
        updates = dict((host, data.get("state") or {}) for host, data in (p["sweep"].get("hosts") or {}).items())
        damaged = []
        try:
            state_dir = run.get("state_dir") or os.path.dirname(run.get("journal", ""))
            committed = bool(commit_state(state_dir, updates, damaged))
            for warning in damaged:
                module.warn(warning)
        except OSError as exc:
            write_error = "the report was written but the state could not be committed: %s" % exc
    if run.get("state_dir"):
        try:
            finish_run(run["state_dir"], run["id"], "finished" if not write_error else "unreported", paths.get("json"))
        except OSError:
            pass
    failed, message = gate(report, p["fail_on"], p["gate_steps"])
    if selection:
        failed, message = True, selection
    if write_error:
        failed, message = True, write_error
    module.exit_json(changed=bool(paths), report=report, paths=paths, write_error=write_error, html_error=html_error,
                     summary_lines=lines, worst_status=report["worst_status"], worst_severity=report["worst_severity"],
                     notification=notification, state_committed=committed, gate_failed=failed, gate_message=message)


if __name__ == "__main__":
    main()
