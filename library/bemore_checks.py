#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_checks
short_description: Run the BeMore checks of every host at once and decide their report steps
description:
  - Run once on the control node for the whole play. It reads every host's
    API concurrently - health, error statistics, the backend's own health
    verdict, temp-cleanup statistics, latency samples, CORS preflights, TLS
    and the rate limit the answers announce - so a fleet's API checks take
    about one round-trip of wall time per phase, not one per host.
  - It combines those readings with what C(bemore_host_checks) read on each
    host (disk, temp folder, process, log) and with the state of earlier
    runs, and returns each host's finished report steps (status, severity,
    summary, figures, problems), decided by the shared decision tables in
    C(module_utils/bemore_steps.py).
  - It returns the state the next run needs; the run's report step commits
    it, only after the report is written.
  - A host whose C(/health) answered but whose later calls could not connect
    is checked once more; a service that went down during the run is
    critical.
  - A 429 (the backend's limit of 600 requests per 10 minutes per address
    covers C(/health) too) is reported as rate limited with its reset, a
    warning, never as the service down; each other reading it refused is
    named as not read. A redirect to another origin is not followed (the
    token stays with the configured origin) and is a finding.
version_added: "2.0.0"
options:
  inputs:
    description: "C({host: {role: {option: value}}}) of every host, as the runbook frame gathered them."
    type: dict
    required: true
  selected:
    description: "C({host: [check roles]}), the checks each host runs."
    type: dict
    required: true
  readings:
    description: "C({host: readings}) from C(bemore_host_checks); a host without them gets only its API checks."
    type: dict
    default: {}
  results:
    description: "C({host: {role: result}}) of steps that ran on the host before, such as the temp cleanup run."
    type: dict
    default: {}
  state:
    description: "C({host: {topic: value}}), the state committed by earlier runs."
    type: dict
    default: {}
  tokens:
    description: "C({host: API bearer token}); hosts without one send none."
    type: dict
    default: {}
  workers:
    description: Hosts read at the same time.
    type: int
    default: 64
  check_mode_run:
    description: Whether the playbook runs in check mode (a cleanup then only says what it would delete).
    type: bool
    default: false
extends_documentation_fragment:
  - bemore_attributes.controller
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Run the selected checks of every host
  bemore_checks:
    inputs: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, '__runbook_inputs'))) }}"
    selected: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, '__runbook_selected'))) }}"
    state: "{{ __runbook_run.state }}"
  run_once: true
  delegate_to: localhost
  register: __runbook_checks
"""

RETURN = r"""
hosts:
  description: Per host, its finished report steps and the state to commit after the report.
  returned: always
  type: dict
  sample: {"api1": {"steps": [{"step": "health", "status": "ok", "severity": "none",
                               "summary": "healthy: version 1.0.0, commit unknown, uptime 1330 s",
                               "figures": {}, "problems": []}],
                    "state": {"health": {"uptime_s": 1330.2}}}}
runbook_steps:
  description: "C({host: [steps]}), the same steps as in RV(hosts), for the run journal."
  returned: always
  type: dict
api_elapsed_ms:
  description: Wall time of the API sweep over all hosts.
  returned: always
  type: float
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_checks import sweep
from ansible.module_utils.bemore_steps import (
    api_security_step, disk_step, error_step, health_step, log_step, name_unread, not_applicable, performance_step,
    tmp_cleanup_step, unreadable,
)
from ansible.module_utils.runbook_plan import build_plan, split_inputs
from ansible.module_utils.runbook_clock import now as clock_now


def _reading(api, name):
    """(data, error text) of one API reading."""
    reading = (api or {}).get(name) or {}
    err = reading.get("error")
    if err and err.get("kind") == "rate_limited":
        # Named as not read, not as a failure of the backend: it answered.
        return reading.get("data"), "%s not read: %s" % (err["endpoint"], err["reason"])
    return reading.get("data"), ("%s: %s" % (err["endpoint"], err["reason"]) if err else None)


def log_window(scan, source, first):
    """The counts the error rate is judged on, with the window named."""
    if not scan or scan.get("error"):
        return None
    if source == "journal" and scan.get("window"):
        w = scan["window"]
        return dict(w, label="the last %d min of the journal" % (int(300 if w.get("seconds") is None else w["seconds"]) // 60))
    label = ("the whole log, first review" if first else "the %d log lines since the previous run" % int(scan.get("lines") or 0))
    return {"requests": scan.get("requests"), "errors": scan.get("errors"), "status": scan.get("status"), "label": label,
            "own_requests": scan.get("own_requests"), "own_errors": scan.get("own_errors")}


# The API readings of each step that the step cannot tell from "nothing
# found" when they are missing altogether.
READINGS = {
    "performance_check": (("the API latency samples", "latency"),),
    "api_security": (("the TLS certificate", "tls"), ("the CORS preflights", "cors"), ("the announced rate limit", "rate")),
}


def _plain_http(plan):
    return not str(plan["api"].get("base_url") or "").startswith("https:")


def own_errors_caused(previous, cors, now):
    """(errors by type the runbook's probes added to the backend's counters and not yet subtracted, this run's entry).

    The CORS probe runs after the sweep read the counters, so what it adds
    shows in the next reading; it waits in the state until a reading of
    the counters subtracts it.
    """
    pending = [e for e in (previous or {}).get("own_errors") or [] if isinstance(e, dict)]
    mine = None
    if cors and cors.get("foreign_refused_by_backend") and not cors.get("foreign_allowed"):
        # The backend's error handler refused the origin (HTTP 400 with its JSON error body): one UNKNOWN error
        # in its counters. Any other refusal (a proxy's or WAF's 403) never reached the backend: nothing to subtract.
        mine = {"ts": round(now, 1), "count": 1, "type": "UNKNOWN", "what": "CORS probe from a foreign origin"}
    caused = {}
    for entry in pending:
        caused[entry.get("type") or "UNKNOWN"] = caused.get(entry.get("type") or "UNKNOWN", 0) + int(entry.get("count") or 0)
    return caused, pending, mine


def decide(plan, api, readings, previous, results, now, check_mode=False):
    """Every selected step of one host, and its state for the next run."""
    steps, state = [], {}
    previous = previous or {}
    readings = readings or {}
    cfg = plan["cfg"]
    if plan["api_from"] == "host":
        api = readings.get("api") or {"error": "the host did not read its API (bemore_api_from: host)"}
    health_reading = (api or {}).get("health") or {"health": None, "error": {
        "endpoint": "/health", "reason": (api or {}).get("error") or "not read", "kind": "connect"}}
    monitoring, monitoring_error = _reading(api, "monitoring")
    health_state = previous.get("health") or {}
    restarted = False
    uptime = (health_reading.get("health") or {}).get("uptime_s")
    log = readings.get("log")
    own_caused, own_pending, own_new = own_errors_caused(previous, (api or {}).get("cors"), now)
    for role in plan["selected"]:
        if role in plan["not_applicable"]:
            steps.append(not_applicable({"performance_check": "performance", "health_check": "health"}.get(role, role),
                                        plan["not_applicable"][role]))
            continue
        if role == "health_check":
            stp, new = health_step(dict(health_reading, monitoring=monitoring), cfg[role], health_state, now,
                                   rechecked=(api or {}).get("recheck"))
            restarted = bool(stp["figures"].get("restarted"))
            if new is not None:
                state["health"] = new
            if monitoring_error and health_reading.get("health"):
                # The backend's own verdict was asked for and could not be used.
                name_unread(stp, "the backend's own verdict", monitoring_error)
        elif role == "error_monitoring":
            stats, stats_error = _reading(api, "error_stats")
            source = (plan["host_plan"].get("log") or {}).get("source")
            scan = readings.get("log_errors") or log
            first = not (previous.get("error_monitoring") or {}).get("position") and source != "journal"
            window = log_window(scan, source, first)
            stp, new = error_step(stats, stats_error, window, cfg[role], previous.get("error_monitoring"), now,
                                  monitoring, restarted, own_caused)
            if stats is not None:
                own_pending = []  # subtracted from this reading, or gone with a restart
            if scan and scan.get("error"):
                name_unread(stp, "the backend's log", scan["error"], "medium")
            if monitoring_error and stats is not None:
                # (Unreadable statistics are a problem of their own already.)
                name_unread(stp, "the backend's own verdict", monitoring_error)
            if scan and not scan.get("error") and source == "file":
                new["position"] = scan.get("position") or {}
            state["error_monitoring"] = new
        elif role == "log_management":
            if not log or log.get("error"):
                stp, new = unreadable("log_management", (log or {}).get("error") or "the log was not read"), None
            else:
                source = plan["host_plan"]["log"]["source"]
                label = ("journal of %s" % plan["host_plan"]["log"]["unit"]) if source == "journal" else \
                    ", ".join(plan["host_plan"]["log"].get("files") or [])
                stp, new = log_step(log, cfg[role], previous.get("log_management"), now, label)
            if new:
                state["log_management"] = new
        elif role == "disk_usage":
            disk = readings.get("disk")
            if not disk or disk.get("error"):
                stp, new = unreadable("disk_usage", (disk or {}).get("error") or "the host was not read"), None
            else:
                stp, new = disk_step(disk, cfg[role], previous.get("disk_usage"), now)
                state["disk_usage"] = new
        elif role == "tmp_cleanup":
            service, service_error = _reading(api, "cleanup")
            folder = readings.get("tmp_folder")
            folder_error = None
            if folder and folder.get("error"):
                folder, folder_error = None, folder["error"]
            cleanup = (results or {}).get("tmp_cleanup")
            stp = tmp_cleanup_step(cfg[role], service, service_error, folder, cleanup, uptime, now, check_mode)
            if folder_error:
                # A temp folder that could not be read (permission denied, ...) is named, never read as nothing.
                name_unread(stp, "the temp folder", folder_error, "medium")
        elif role == "performance_check":
            latency = (api or {}).get("latency")
            process = readings.get("process")
            stp = performance_step(latency, process, cfg[role])
        elif role == "api_security":
            stp = api_security_step(cfg[role], (api or {}).get("tls"), (api or {}).get("cors"), (api or {}).get("rate"))
        else:
            continue
        for what, reading in READINGS.get(role, ()):
            # A reading the plan asked the API for that never came back (the
            # host's API was not read at all) is named, not judged as nothing.
            if reading in plan["wants"] and reading not in (api or {}) and not (reading == "tls" and _plain_http(plan)):
                name_unread(stp, what, (api or {}).get("error") or "not read", "medium")
        steps.append(stp)
    if own_new is not None or own_pending != ((previous or {}).get("own_errors") or []):
        state["own_errors"] = own_pending + ([own_new] if own_new else [])
    return steps, state


def cleanup_result(result):
    """The figures of a tmp_cleanup module result, or None when the cleanup did not run."""
    if not isinstance(result, dict) or result.get("skipped") or "files_deleted" not in result:
        return None
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            inputs=dict(type="dict", required=True),
            selected=dict(type="dict", required=True),
            readings=dict(type="dict", default={}),
            results=dict(type="dict", default={}),
            state=dict(type="dict", default={}),
            tokens=dict(type="dict", default={}, no_log=True),
            workers=dict(type="int", default=64),
            check_mode_run=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["workers"] <= 1024:
        module.fail_json(msg="workers must be between 1 and 1024, got %d" % p["workers"])
    plans, targets = {}, {}
    for host, per_role in sorted(p["inputs"].items()):
        group, per_role = split_inputs(per_role)
        try:
            plans[host] = plan = build_plan(host, group, per_role, p["selected"].get(host) or [])
        except ValueError as exc:
            module.fail_json(msg="%s: %s" % (host, exc))
        if plan["api_from"] == "controller" and plan["wants"]:
            targets[host] = {"api": plan["api"], "wants": plan["wants"], "cfg": plan["sweep_cfg"]}
    api, elapsed = sweep(targets, p["tokens"], p["workers"])
    now = clock_now()
    hosts, journal = {}, {}
    for host, plan in plans.items():
        readings = p["readings"].get(host) or {}
        if isinstance(readings, dict) and "readings" in readings:
            readings = readings["readings"]  # a registered module result
        results = dict((role, cleanup_result(r) if role == "tmp_cleanup" else r)
                       for role, r in (p["results"].get(host) or {}).items())
        steps, state = decide(plan, api.get(host), readings, p["state"].get(host), results, now, p["check_mode_run"])
        hosts[host] = {"steps": steps, "state": state}
        journal[host] = steps
    module.exit_json(changed=False, hosts=hosts, runbook_steps=journal, api_elapsed_ms=elapsed)


if __name__ == "__main__":
    main()
