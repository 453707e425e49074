#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runbook_preflight
short_description: Check every input of a runbook run, then register the run
description:
  - The first step of every BeMore runbook playbook, run once on the control
    node for all hosts of the play. It checks the inputs of every role in
    the play on every host against the role's argument spec and the range
    rules the specs cannot express (a maximum age below one day, warning
    above critical thresholds, a base URL with a path or credentials, a temp
    folder that is the app folder), and stops the run with one message
    listing every problem before anything on a host changes.
  - It then registers the run on the control node (its id and the
    C(ansible-playbook) process that owns it) and opens its journal. It
    finds earlier runs whose process is gone (killed), writes the report of
    each from its journal, marked interrupted, and returns their ids so the
    locks they left are taken over at once.
  - It reads the state the previous runs committed, once for all hosts. A
    damaged state file is never read as an empty one without a word - it is
    kept as C(state.json.corrupt-<time>) (left in place in check mode), and
    the run's C(warnings) name it, so every report of the run says so.
version_added: "2.0.0"
options:
  schedule:
    description: Name of the run (daily, weekly, incident, ...); letters, digits, C(_) and C(-).
    type: str
    required: true
  environment:
    description: Environment of the inventory (production, staging, sandbox).
    type: str
    required: true
  report_dir:
    description: Reports folder on the control node.
    type: path
    required: true
  state_dir:
    description: State folder on the control node (state of the checks, the run registry and journals).
    type: path
    required: true
  roles:
    description: The roles of the play, in order (C(ansible_play_role_names)).
    type: list
    elements: str
    required: true
  specs:
    description:
      - "The options of each role's argument spec, C({role: options}), as in its C(meta/argument_specs.yml)
        (the C(start) entry point for the C(runbook) role, C(main) for the others)."
    type: dict
    required: true
  inputs:
    description:
      - "C({host: {role: {option: value}}}) for every host of the play, gathered in each host's context."
      - Options marked C(no_log) are left out (secrets never travel this way). The value
        C(__runbook_undefined__) stands for an undefined variable.
    type: dict
    required: true
  check_mode_run:
    description: Whether the playbook runs in check mode (recorded in the run and its report).
    type: bool
    default: false
  keep_runs_days:
    description: Days the registry keeps the records of finished runs.
    type: int
    default: 7
  report_file_mode:
    description:
      - Mode of the report files (the report role's C(report_file_mode)), kept in the run's record so that a
        report written for this run by someone else (its interruption, a later run after a kill) gets it too.
    type: str
    choices: ["0600", "0640"]
    default: "0600"
  webhook_url:
    description:
      - The report role's webhook (C(report_webhook_url)). The report of a killed run, written here, notifies it as the
        run's own report would have. It is the credential, so it is never shown and never kept in the run's record.
    type: str
extends_documentation_fragment:
  - bemore_attributes.controller
notes:
  - The module writes only on the control node (its registry and the reports of killed runs); it changes
    no managed host, so it runs the same in check mode.
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Check the inputs of the run and register it
  runbook_preflight:
    schedule: daily
    environment: production
    report_dir: /var/lib/bemore-runbooks/reports
    state_dir: /var/lib/bemore-runbooks/state
    roles: "{{ ansible_play_role_names }}"
    specs: "{{ __runbook_specs }}"
    inputs: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, '__runbook_inputs'))) }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
run:
  description: The run as registered; the journal callback and the report read it.
  returned: success
  type: dict
  sample: {"id": "20261202T114512.123456Z-production-a1b2c3", "schedule": "daily", "environment": "production",
           "owner": {"controller": "ops1", "pid": 4242, "pid_start": 123456, "boot_id": "..."},
           "journal": "/var/lib/bemore-runbooks/state/runs/20261202T114512.123456Z-production-a1b2c3.journal"}
state:
  description: "The committed state of every host of the play, C({host: {topic: value}})."
  returned: success
  type: dict
dead_runs:
  description: Ids of registered runs whose process is gone; their locks may be taken over at once.
  returned: success
  type: list
  elements: str
recovered:
  description: Reports written for runs that were killed before they could write their own.
  returned: success
  type: list
  elements: str
notifications:
  description: What the notification of each recovered report did (C(not needed), C(sent (HTTP 200)), ...).
  returned: success
  type: list
  elements: str
"""

import math
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.report_files import build_report, summary_lines, write_report
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_files import check_name, controller_identity, iso, new_run_id
from ansible.module_utils.runbook_notify import notify
from ansible.module_utils.runbook_plan import Problems, defined, validate_host
from ansible.module_utils.runbook_runs import (
    dead_runs, failure_text, finish_run, journal_failures, journal_read, journal_steps, register_run,
)
from ansible.module_utils.runbook_statefile import load_state

GROUP_ROLE = "runbook"


def spec_problems(host, role, spec, values, problems):
    """Type, choice and required checks of one role's options, as ansible-core's role validation does."""
    options = dict((name, dict(opt)) for name, opt in (spec or {}).items() if not opt.get("no_log"))
    for opt in options.values():
        opt.pop("description", None)
        opt.pop("version_added", None)
    result = ArgumentSpecValidator(options).validate(defined(values))
    for message in result.error_messages:
        problems.lines.append("%s: %s: %s" % (host, role, message))
    validated = result.validated_parameters
    for name, opt in sorted(options.items()):
        value = validated.get(name)
        # The spec's float type takes 'nan' and 'inf' (and 1e400 as inf); no option means either.
        if opt.get("type") == "float" and isinstance(value, float) and not math.isfinite(value):
            problems.lines.append("%s: %s: %s must be a finite number, got %s" % (host, role, name, (values or {}).get(name)))
    return validated


def check_inputs(roles, specs, inputs, problems):
    """Validate every host; return {host: {"inputs": group inputs, "roles": {role: values}}}."""
    checked = {}
    for host in sorted(inputs):
        try:
            check_name("inventory host name", host)
        except ValueError as exc:
            problems.lines.append(str(exc))
            continue
        per_role = inputs[host] or {}
        group, roles_cfg = {}, {}
        for role in roles:
            if role not in specs:
                continue
            values = spec_problems(host, role, specs[role], per_role.get(role), problems)
            if role == GROUP_ROLE:
                group = values
            else:
                roles_cfg[role] = values
        validate_host(host, group, roles_cfg, problems, per_role.get("__host") or {})
        checked[host] = {"inputs": group, "roles": roles_cfg}
    return checked


NOTIFY_OPTIONS = ("notify_severities", "webhook_timeout", "webhook_retries", "url_base")


def notify_settings(checked):
    """The report role's notification options (none of them secret), as the run's record keeps them."""
    for host in sorted(checked):
        cfg = checked[host]["roles"].get("report")
        if cfg:
            return dict((name, cfg.get("report_" + name)) for name in NOTIFY_OPTIONS
                        if cfg.get("report_" + name) is not None)
    return {}


def recover(state_dir, report_dir, records, webhook_url=None, notifications=None):
    """Write the report of each killed run from its journal, and notify it as the run would have; return the paths."""
    written = []
    for record in records:
        entries = journal_read(record.get("journal") or os.path.join(state_dir, "runs", record["id"] + ".journal"))
        steps = journal_steps(entries)
        failures = journal_failures(entries)
        hosts = dict((h, {"completed": False, "steps": steps.get(h, []),
                          "unreachable": (failures.get(h) or {}).get("kind") == "unreachable",
                          "reason": failure_text(failures[h]) if h in failures else
                          "the run was killed before it finished this host"})
                     for h in record.get("hosts") or sorted(steps))
        owner = record.get("owner") or {}
        reason = ("its process (pid %s on %s) ended without finishing, most likely killed (SIGKILL); found by the "
                  "next run at %s" % (owner.get("pid"), owner.get("controller"), iso()))
        report = build_report(record, hosts, interrupted={"reason": reason, "signal": "KILL", "found_by": "next run"})
        report["notes"] = ["This report was written by a later run from the journal the killed run left; "
                           "the killed run committed no state, so the next run reviews the same log lines again."]
        try:
            # keep=0: the next report of the schedule prunes with its own setting.
            paths = write_report(report, record.get("report_dir") or report_dir, keep=0,
                                 file_mode=int(record.get("report_file_mode") or "0600", 8))
        except FileExistsError:
            paths = {"json": "already written"}
        except OSError:
            continue
        finish_run(state_dir, record["id"], "interrupted", paths.get("json"))
        written.append(paths.get("json"))
        if notifications is not None:
            notifications.append(notify(report, summary_lines(report), record.get("notify"), webhook_url))
    return written


def main():
    module = AnsibleModule(
        argument_spec=dict(
            schedule=dict(type="str", required=True),
            environment=dict(type="str", required=True),
            report_dir=dict(type="path", required=True),
            state_dir=dict(type="path", required=True),
            roles=dict(type="list", elements="str", required=True),
            specs=dict(type="dict", required=True),
            inputs=dict(type="dict", required=True),
            check_mode_run=dict(type="bool", default=False),
            keep_runs_days=dict(type="int", default=7),
            report_file_mode=dict(type="str", choices=["0600", "0640"], default="0600"),
            webhook_url=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = Problems()
    for kind, value in (("schedule", p["schedule"]), ("environment", p["environment"])):
        try:
            check_name(kind, value)
        except ValueError as exc:
            problems.lines.append(str(exc))
    for kind in ("report_dir", "state_dir"):
        if not os.path.isabs(p[kind]):
            problems.lines.append("%s must be an absolute path on the control node, got %r" % (kind, p[kind]))
    checked = check_inputs(p["roles"], p["specs"], p["inputs"], problems)
    for host, values in sorted(checked.items()):
        if (values["roles"].get("maintenance_lock") or {}).get("maintenance_lock_break") and p["schedule"] != "incident":
            problems.lines.append("%s: maintenance_lock_break: only incident.yml may break another run's lock; "
                                  "this is the %s run" % (host, p["schedule"]))
    if problems.lines:
        module.fail_json(msg="The inputs of this run are not valid; nothing was changed:\n- " + "\n- ".join(problems.lines),
                         problems=problems.lines)
    now = clock_now()
    try:
        unreported, dead = dead_runs(p["state_dir"], p["keep_runs_days"], now)
        notifications = []
        recovered = recover(p["state_dir"], p["report_dir"], unreported, p["webhook_url"], notifications)
        run = {"id": new_run_id(p["environment"], now), "schedule": p["schedule"], "environment": p["environment"],
               "started_at": iso(now), "check_mode": p["check_mode_run"], "owner": controller_identity(),
               "hosts": sorted(p["inputs"]), "report_dir": p["report_dir"], "state_dir": p["state_dir"],
               "report_file_mode": p["report_file_mode"], "notify": notify_settings(checked)}
        warnings = []
        state = load_state(p["state_dir"], warnings, set_damaged_aside=not p["check_mode_run"], now=now)
        if warnings:
            run["warnings"] = warnings
        run["journal"] = register_run(p["state_dir"], run)
        for warning in warnings:
            module.warn(warning)
    except OSError as exc:
        module.fail_json(msg="cannot register the run under %s: %s" % (p["state_dir"], exc))
    module.exit_json(changed=False, run=run, dead_runs=dead, recovered=recovered, notifications=notifications,
                     state=dict((h, state.get(h, {})) for h in p["inputs"]))


if __name__ == "__main__":
    main()
