#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_watch
short_description: Watch the BeMore backend's fast signals and page once per incident
description:
  - Run on the control node for the whole play, every 5 minutes. With O(phase=begin) it takes the watch's
    own lock (never a host's maintenance lock; an overlapping watch is skipped at once and the skip recorded)
    and returns each host's watch state, whose log position the host module reads from.
  - With O(phase=finish) it reads every host's API at once (health, the backend's own verdict, the error
    counters), combines that with the host readings (the log since the previous watch), decides each host's
    steps with the daily run's decision tables, groups the results into incidents (open, remind at the guide's
    response times, resolve after clean runs in a row, relapse), writes a full report only when an incident
    changed (otherwise one line of a bounded summary), commits the watch's own state topic with the messages
    owed, sends them and marks them sent, then pings the optional heartbeat.
  - With O(phase=silence) it opens (or with O(silence_close=true) ends) a silence on O(hosts) for
    O(silence_minutes); meanwhile incidents still open and close, and their messages are held.
version_added: "2.1.0"
options:
  phase:
    description: Which part of the watch run.
    type: str
    choices: [begin, finish, silence]
    required: true
  state_dir:
    description: The runbook state folder on the control node.
    type: path
    required: true
  report_dir:
    description: The report folder on the control node (finish).
    type: path
  environment:
    description: The environment named in messages and incident ids.
    type: str
    default: unknown
  inputs:
    description: "C({host: {role: {option: value}}}) of every host, as the runbook frame gathers them (finish)."
    type: dict
    default: {}
  selected:
    description: "C({host: [check roles]}) (finish): health_check, error_monitoring and optionally disk_usage."
    type: dict
    default: {}
  readings:
    description: "C({host: readings}) from C(bemore_host_checks) (finish)."
    type: dict
    default: {}
  tokens:
    description: "C({host: API bearer token})."
    type: dict
    default: {}
  webhook_url:
    description: Where messages go (Slack-compatible JSON with C(incident_id) and C(message_id)).
    type: str
    default: ""
  webhook_timeout:
    description: Seconds each delivery attempt may take in all.
    type: float
    default: 10.0
  webhook_retries:
    description: Attempts after the first.
    type: int
    default: 2
  heartbeat_url:
    description: Pinged (POST) after each successful watch run, so an outside service notices a watch that stopped.
    type: str
    default: ""
  clean_runs:
    description: Clean runs in a row that resolve an incident.
    type: int
    default: 2
  relapse_minutes:
    description: A failure within this many minutes of a resolution continues the same incident.
    type: int
    default: 30
  repeat_minutes:
    description:
      - Least minutes between two reminders of one open incident (Alertmanager's C(repeat_interval)); an
        escalation, a relapse or the resolution is sent at once.
      - A reminder waits for the longer of this and the guide's response time of the incident's severity
        (critical 15, high 60, medium 240 minutes), so it never comes sooner than the guide asks for a response.
    type: int
    default: 60
  errors_per_minute_medium:
    description: Errors per minute from the backend's counters above which a host without a readable log is medium.
    type: float
    default: 10.0
  errors_per_minute_high:
    description: Errors per minute from the backend's counters above which a host without a readable log is high.
    type: float
    default: 60.0
  summary_lines:
    description: Lines the bounded summary keeps (288 runs a day).
    type: int
    default: 2016
  report_url:
    description: Base URL of the published reports, linked from messages.
    type: str
    default: ""
  hosts:
    description: The hosts a silence covers (silence).
    type: list
    elements: str
    default: []
  silence_minutes:
    description: How long the silence lasts (silence).
    type: int
    default: 60
  silence_reason:
    description: Why (silence); a deploy or a confirmed mitigation.
    type: str
    default: maintenance
  silence_close:
    description: End the silences of O(silence_reason) on O(hosts), O(silence_grace_minutes) from now.
    type: bool
    default: false
  silence_grace_minutes:
    description: With O(silence_close), minutes the silence still lasts (the next watch still sees the restart).
    type: int
    default: 0
  workers:
    description: Hosts read at the same time.
    type: int
    default: 64
  start_incident:
    description:
      - On a critical incident (opened, escalated or relapsed), return it in RV(start_incident_hosts) for the role
        to start incident.yml's identify step, once per incident; later runs send a follow-up message linking
        that run's report once it exists (or saying, after 30 minutes, that there is none).
    type: bool
    default: false
  start_incident_via:
    description: How the identify step is started. V(cron) is refused with an error (no unit to start, no job API).
    type: str
    choices: [systemd, awx, cron]
    default: systemd
extends_documentation_fragment:
  - bemore_attributes.controller
notes:
  - "The return code never pages by itself: 0 means the watch ran and recorded its decisions whatever the
    backend's state; a failure (rc 2) means the watch itself could not commit its state or deliver a message
    (kept owed for the next run), and no heartbeat is sent. See runbooks/watch.md."
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Take the watch lock and read its state
  bemore_watch:
    phase: begin
    state_dir: "{{ runbook_state_dir }}"
  run_once: true
  delegate_to: localhost
  register: __watch_begin

- name: Silence the watch on the deployed hosts for the deploy
  bemore_watch:
    phase: silence
    state_dir: "{{ runbook_state_dir }}"
    hosts: "{{ ansible_play_hosts }}"
    silence_minutes: 30
    silence_reason: deploy
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
skipped_run:
  description: Whether another watch run held the lock (begin); this run then does nothing more.
  returned: always
  type: bool
state:
  description: "C({host: watch topic}) as committed by earlier watch runs (begin)."
  returned: always
  type: dict
hosts:
  description: "Per host its steps, signal and incident (finish)."
  returned: when phase is finish
  type: dict
events:
  description: "The incident events of this run: C([{host, event, incident_id}])."
  returned: when phase is finish
  type: list
messages:
  description: "Messages of this run and owed ones, each with its delivery outcome (never the URL)."
  returned: when phase is finish
  type: list
report:
  description: Paths of the full report when one was written, else the summary file.
  returned: when phase is finish
  type: dict
start_incident_hosts:
  description: Hosts whose critical incident this run starts the identify step for (finish, O(start_incident)).
  returned: when phase is finish
  type: list
  elements: str
elapsed_ms:
  description: Wall time of the finish phase.
  returned: when phase is finish
  type: float
"""

import glob
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_checks import sweep
from ansible.module_utils.bemore_steps import disk_step, error_step, health_step, name_unread
from ansible.module_utils.bemore_watch import (
    CLEAN, FAILING, exit_code, open_silence, per_minute_step, response_follow_up, response_mode, signal,
    start_response, step_incident,
)
from ansible.module_utils.bemore_watch_store import (
    TOPIC, append_summary, close_silences, commit_watch, mark_sent, open_silences, read_silences, release_lock,
    take_lock,
)
from ansible.module_utils.report_files import build_report, write_report
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_common import parse_time
from ansible.module_utils.runbook_files import iso, new_run_id, read_json
from ansible.module_utils.runbook_notify import page_url, post_webhook
from ansible.module_utils.runbook_plan import build_plan, split_inputs
from ansible.module_utils.runbook_statefile import load_state

WATCH_ROLES = ("health_check", "error_monitoring", "disk_usage")
INCIDENT_REPORTS_READ = 50


def incident_reports(report_dir, report_url):
    """The newest incident runs' reports, as response_follow_up reads them: started_at, hosts, status, link."""
    paths = sorted(p for p in glob.glob(os.path.join(report_dir, "incident", "*.json"))
                   if os.path.basename(p) != "latest.json")[-INCIDENT_REPORTS_READ:]
    out = []
    for path in paths:
        report = read_json(path, None)
        if not isinstance(report, dict) or not isinstance(report.get("hosts"), dict):
            continue
        base = path[:-len(".json")]
        local = next((base + ext for ext in (".html", ".md") if os.path.exists(base + ext)), path)
        out.append({"started_at": parse_time(report.get("started_at")), "hosts": sorted(report["hosts"]),
                    "worst_status": report.get("worst_status"),
                    "link": (page_url(report_url, report) if report.get("run_id") and report.get("schedule")
                             else None) or local})
    return out


def _api_reading(api, name):
    reading = (api or {}).get(name) or {}
    return reading.get("data"), reading.get("error")


def decide_host(plan, api, readings, previous, now, options):
    """The watch steps of one host and its next health/error state (plain bemore_steps decisions)."""
    steps, state = [], {}
    cfg = plan["cfg"]
    health_reading = (api or {}).get("health") or {"health": None, "error": {
        "endpoint": "/health", "reason": (api or {}).get("error") or "not read", "kind": "connect"}}
    monitoring, monitoring_error = _api_reading(api, "monitoring")
    restarted = False
    if "health_check" in plan["selected"]:
        stp, new = health_step(dict(health_reading, monitoring=monitoring), cfg["health_check"],
                               previous.get("health") or {}, now, rechecked=(api or {}).get("recheck"))
        restarted = bool(stp["figures"].get("restarted"))
        state["health"] = new or previous.get("health")
        steps.append(stp)
    if "error_monitoring" in plan["selected"]:
        stats, stats_error = _api_reading(api, "error_stats")
        scan = readings.get("log_errors") or readings.get("log")
        window = None
        if scan and not scan.get("error"):
            window = {"requests": scan.get("requests"), "errors": scan.get("errors"), "status": scan.get("status"),
                      "label": "the %d log lines since the previous watch" % int(scan.get("lines") or 0),
                      "own_requests": scan.get("own_requests"), "own_errors": scan.get("own_errors")}
        stp, new = error_step(stats, stats_error and "%s: %s" % (stats_error.get("endpoint"), stats_error.get("reason")),
                              window, cfg["error_monitoring"], previous.get("errors"), now, monitoring, restarted)
        new.pop("samples", None)  # the error-rate history is the daily run's
        if stats is None:
            # Counters not read (a 429, a down service the health step already names): unknown, not a page.
            stp["severity"] = stp["figures"].get("rate_severity") or "none"
            stp["status"] = "ok" if stp["severity"] in ("none", "low") else stp["status"]
            if not stp["figures"].get("rate_judged"):
                stp["figures"]["watch_state"] = "unknown"
        else:
            per_minute_step(stp, options)
        if scan and scan.get("error"):
            name_unread(stp, "the backend's log", scan["error"], "low")
        if scan and not scan.get("error"):
            state["position"] = scan.get("position") or {}
        state["errors"] = new if stats is not None else previous.get("errors")
        steps.append(stp)
    if "disk_usage" in plan["selected"] and readings.get("disk") and not readings["disk"].get("error"):
        stp, new = disk_step(readings["disk"], cfg["disk_usage"], previous.get("disk"), now)
        state["disk"] = new
        steps.append(stp)
    return steps, state


def deliver(outbox, url, timeout, retries, run_id):
    """Send each owed message; (sent ids, outcomes)."""
    sent, outcomes = [], []
    for msg in outbox:
        payload = {"text": msg["text"], "incident_id": msg["incident_id"], "message_id": msg["id"],
                   "kind": msg["kind"], "severity": msg["severity"], "host": msg["host"],
                   "attachments": [{"title": "BeMore watch: %s %s" % (msg["kind"], msg["incident_id"]),
                                    "text": msg["text"],
                                    "fields": [{"title": "Incident", "value": msg["incident_id"], "short": False},
                                               {"title": "Run", "value": run_id, "short": True}]}]}
        if msg.get("report"):
            payload["attachments"][0]["fields"].append({"title": "Report", "value": msg["report"], "short": False})
        ok, outcome = post_webhook(url, payload, timeout, retries, delay=1.0)
        outcomes.append({"id": msg["id"], "kind": msg["kind"], "incident_id": msg["incident_id"], "outcome": outcome})
        if ok:
            sent.append(msg["id"])
    return sent, outcomes


def finish(module, p):
    started = time.monotonic()
    now = clock_now()
    warnings = []
    state = load_state(p["state_dir"], warnings, now=now)
    plans, targets = {}, {}
    for host, per_role in sorted(p["inputs"].items()):
        group, per_role = split_inputs(per_role)
        selected = [r for r in p["selected"].get(host) or [] if r in WATCH_ROLES]
        try:
            plans[host] = plan = build_plan(host, group, per_role, selected)
        except ValueError as exc:
            release_lock(p["state_dir"])
            module.fail_json(msg="%s: %s" % (host, exc))
        if plan["wants"] and plan["api_from"] == "controller":
            targets[host] = {"api": plan["api"], "wants": [w for w in plan["wants"] if w != "latency"],
                             "cfg": plan["sweep_cfg"]}
    api, _elapsed = sweep(targets, p["tokens"], p["workers"])
    silences = read_silences(p["state_dir"])
    run = {"schedule": "watch", "environment": p["environment"], "id": new_run_id(p["environment"], now),
           "started_at": iso(now), "warnings": warnings, "check_mode": module.check_mode}
    hosts, topics, events, new_messages, lines = {}, {}, [], [], []
    mode = response_mode(p["start_incident"], p["start_incident_via"])
    to_start, reports = [], None
    for host, plan in plans.items():
        previous = (state.get(host) or {}).get(TOPIC) or {}
        readings = p["readings"].get(host) or {}
        if isinstance(readings, dict) and "readings" in readings:
            readings = readings["readings"]
        host_api = api.get(host)
        if plan["api_from"] == "host":
            # An API that answers only on its host's loopback: the host module run read it, as bemore_checks does.
            host_api = readings.get("api") or {"error": "the host did not read its API (bemore_api_from: host)"}
        steps, new = decide_host(plan, host_api, readings, previous, now, p)
        sig, severity, summary = signal(steps)
        silence = open_silence([s for s in silences if s.get("host") in (host, "*")], now)
        incident, messages, event = step_incident(
            previous.get("incident"), sig, severity, summary, now, host, p["environment"], p["clean_runs"],
            p["relapse_minutes"] * 60, silenced=silence, repeat_s=p["repeat_minutes"] * 60)
        # A check-mode run starts nothing, so it marks no response as started either.
        if start_response(incident, event, None if module.check_mode else mode, now):
            to_start.append(host)
        elif incident and isinstance(incident.get("response"), dict) and incident["response"].get("report") is None:
            if reports is None:
                reports = incident_reports(p["report_dir"], p["report_url"])
            follow_up = response_follow_up(incident, reports, now, host, p["environment"])
            if follow_up:
                messages.append(follow_up)
                event = event or "response"
        topic = dict(previous, **new)
        topic.update(incident=incident, last_run=round(now, 1), last_signal=sig,
                     outbox=list(previous.get("outbox") or []) + messages)
        if sig in (FAILING, CLEAN):
            topic["last_success"] = round(now, 1)
        topics[host] = topic
        if event in ("opened", "relapsed", "escalated", "reminder", "resolved", "response"):
            events.append({"host": host, "event": event, "incident_id": incident["id"],
                           "severity": incident["severity"]})
        new_messages.extend(messages)
        hosts[host] = {"completed": True, "steps": steps, "signal": sig, "incident": incident,
                       "silenced": silence}
        lines.append("%s %s %s%s" % (host, sig, severity, (" incident %s %s" % (incident["id"], event or "open"))
                                     if incident and incident.get("resolved_at") is None or event == "resolved" else ""))
    report_info = {}
    if events or warnings:
        # Something changed: a full report, written before the state that marks it as seen.
        report = build_report(run, dict((h, {"completed": True, "steps": d["steps"]}) for h, d in hosts.items()),
                              extra={"watch": {"events": events, "incidents": dict(
                                  (h, d["incident"]) for h, d in hosts.items() if d["incident"])}}, now=now)
        # A check-mode run's report is written (marked check mode) but prunes no real one.
        report_info = write_report(report, p["report_dir"], keep=0 if module.check_mode else 500)
        link = page_url(p["report_url"], report)
        for msg in new_messages:
            msg.setdefault("report", link or report_info.get("markdown"))
    summary_path = os.path.join(p["report_dir"], "watch", "summary.log")
    mark = " (check mode)" if module.check_mode else ""
    append_summary(summary_path, "%s %s%s %s" % (iso(now), run["id"], mark, " | ".join(lines) or "no host"),
                   p["summary_lines"])
    report_info.setdefault("summary", summary_path)
    if module.check_mode:
        # A check-mode run reports what it would page but changes no state: its incidents, positions and
        # outbox are not committed, so the next real run decides as if this one had not happened.
        committed = {}
    else:
        committed = commit_watch(p["state_dir"], topics, warnings)
    owed = [m for t in committed.values() for m in t.get("outbox") or []]
    outcomes, sent = [], []
    if owed and p["webhook_url"] and not module.check_mode:
        sent, outcomes = deliver(owed, p["webhook_url"], p["webhook_timeout"], p["webhook_retries"], run["id"])
        mark_sent(p["state_dir"], set(sent))
    delivery_failed = bool(p["webhook_url"]) and len(sent) < len(owed) and not module.check_mode
    rc = exit_code(delivery_failed, False)
    heartbeat = "not configured"
    if rc == 0 and p["heartbeat_url"] and not module.check_mode:
        heartbeat = post_webhook(p["heartbeat_url"], {"run_id": run["id"], "at": iso(now)}, 5.0, 1, delay=1.0)[1]
    release_lock(p["state_dir"])
    result = dict(changed=bool(sent or events), skipped_run=False, hosts=hosts, events=events, messages=outcomes
                  or [{"id": m["id"], "kind": m["kind"], "incident_id": m["incident_id"],
                       "outcome": "not sent (check mode)" if module.check_mode else "not sent"}
                      for m in (new_messages if module.check_mode else owed)],
                  report=report_info, heartbeat=heartbeat, run_id=run["id"],
                  elapsed_ms=round((time.monotonic() - started) * 1000.0, 1), rc_meaning=rc,
                  state={}, start_incident_hosts=to_start)
    if warnings:
        result["warnings"] = warnings
    if rc:
        module.fail_json(msg="the watch could not deliver %d owed message(s); they stay owed for the next run"
                         % (len(owed) - len(sent)), **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            phase=dict(type="str", choices=["begin", "finish", "silence"], required=True),
            state_dir=dict(type="path", required=True),
            report_dir=dict(type="path"),
            environment=dict(type="str", default="unknown"),
            inputs=dict(type="dict", default={}),
            selected=dict(type="dict", default={}),
            readings=dict(type="dict", default={}),
            tokens=dict(type="dict", default={}, no_log=True),
            webhook_url=dict(type="str", default="", no_log=True),
            webhook_timeout=dict(type="float", default=10.0),
            webhook_retries=dict(type="int", default=2),
            heartbeat_url=dict(type="str", default="", no_log=True),
            clean_runs=dict(type="int", default=2),
            relapse_minutes=dict(type="int", default=30),
            repeat_minutes=dict(type="int", default=60),
            errors_per_minute_medium=dict(type="float", default=10.0),
            errors_per_minute_high=dict(type="float", default=60.0),
            summary_lines=dict(type="int", default=2016),
            report_url=dict(type="str", default=""),
            hosts=dict(type="list", elements="str", default=[]),
            silence_minutes=dict(type="int", default=60),
            silence_reason=dict(type="str", default="maintenance"),
            silence_close=dict(type="bool", default=False),
            silence_grace_minutes=dict(type="int", default=0),
            workers=dict(type="int", default=64),
            start_incident=dict(type="bool", default=False),
            start_incident_via=dict(type="str", choices=["systemd", "awx", "cron"], default="systemd"),
        ),
        required_if=[("phase", "finish", ("report_dir",))],
        supports_check_mode=True,
    )
    p = module.params
    for name, low in (("clean_runs", 1), ("relapse_minutes", 0), ("repeat_minutes", 0), ("summary_lines", 1), ("silence_minutes", 1),
                      ("silence_grace_minutes", 0),
                      ("workers", 1), ("webhook_retries", 0)):
        if p[name] < low:
            module.fail_json(msg="%s must be at least %d, got %d" % (name, low, p[name]))
    if p["errors_per_minute_medium"] > p["errors_per_minute_high"]:
        module.fail_json(msg="errors_per_minute_medium (%s) must not be above errors_per_minute_high (%s)"
                         % (p["errors_per_minute_medium"], p["errors_per_minute_high"]))
    try:
        response_mode(p["start_incident"], p["start_incident_via"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    now = clock_now()
    if p["phase"] == "begin":
        took, owner = take_lock(p["state_dir"], now)
        if not took:
            # The skip is recorded where the watch's runs are: one line of the summary.
            if p["report_dir"]:
                append_summary(os.path.join(p["report_dir"], "watch", "summary.log"),
                               "%s skipped: the previous watch run (pid %s since %s) still runs" % (
                                   iso(now), owner.get("pid"), owner.get("since")), p["summary_lines"])
            module.exit_json(changed=False, skipped_run=True, state={}, owner=owner)
        state = load_state(p["state_dir"], now=now)
        module.exit_json(changed=False, skipped_run=False,
                         state=dict((h, t.get(TOPIC) or {}) for h, t in state.items()))
    if p["phase"] == "silence":
        if p["silence_close"]:
            kept = close_silences(p["state_dir"], p["hosts"], p["silence_reason"], now, 60 * p["silence_grace_minutes"])
        elif module.check_mode:
            kept = read_silences(p["state_dir"])
        else:
            kept = open_silences(p["state_dir"], p["hosts"], now, now + 60 * p["silence_minutes"], p["silence_reason"],
                                 now)
        module.exit_json(changed=not module.check_mode, skipped_run=False, state={}, silences=kept)
    finish(module, p)


if __name__ == "__main__":
    main()
