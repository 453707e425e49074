#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_incident
short_description: Classify a BeMore incident by the escalation table, or judge the error rate after a mitigation
description:
  - "Classifies an incident from the report steps the identification ran
    (health, error monitoring, disk usage, performance) by the guide's
    escalation table, decided in C(module_utils/bemore_steps.py)
    (C(classify_incident)). The error rate counts through the error-monitoring
    step's own decided severity, so its minimum sample and the exclusion of
    the runbook's own requests apply."
  - "With I(recheck), judges the error rate the backend logged since a
    mitigation by the same rule (C(recheck_errors)): a rate from fewer
    requests or errors than the minimum sample is not judged, and the
    errors then count as resolved only when none was logged since the
    mitigation and the backend's own verdict is not unhealthy."
version_added: "2.0.0"
options:
  checked:
    description: "C({step name: report step}) of the identification steps, the run's C(runbook_checked)."
    type: dict
    default: {}
  recheck:
    description:
      - "Judge a re-check instead of classifying: C({log: log_scan result or null, verdict: the backend's status or null})."
    type: dict
  outcome:
    description:
      - "Decide the incident's status and whether it is resolved instead of classifying (C(incident_outcome)):
        C({findings: the classification, severity: its worst severity, actions: the mitigations with their re-checks,
        check_mode: whether the run is in check mode})."
    type: dict
  error_monitoring:
    description:
      - "The error-monitoring options the rate is judged with, without their prefix (C(warning_rate), C(critical_rate),
        C(target_rate), C(min_requests), C(min_errors)); the role's defaults where missing."
    type: dict
    default: {}
  error_high:
    description:
      - Deprecated (was C(incident_response_error_high)); ignored. The incident is classified from the error-monitoring
        step's severity; set C(error_monitoring_critical_rate) instead.
    type: float
  error_medium:
    description:
      - Deprecated (was C(incident_response_error_medium)); ignored. Set C(error_monitoring_warning_rate) instead.
    type: float
extends_documentation_fragment:
  - bemore_attributes.controller
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Classify the incident
  bemore_incident:
    checked: "{{ runbook_checked }}"
  delegate_to: localhost
  register: classified

- name: Judge the error rate since the restart
  bemore_incident:
    recheck:
      log: "{{ log_after }}"
      verdict: "{{ verdict_after.data.status | default(None) }}"
  delegate_to: localhost
  register: judged
"""

RETURN = r"""
findings:
  description: The incident's findings, each with its type, severity, evidence and suggested action (classification only).
  returned: when I(recheck) is not given
  type: list
  elements: dict
  sample: [{"type": "high_error_rate", "severity": "high", "evidence": "error rate 19.2 % (20 of 104 requests, ...)",
            "suggested": "review recent errors; restart or disable the failing feature"}]
severity:
  description: The worst severity of the findings; C(none) without findings (classification only).
  returned: when I(recheck) is not given
  type: str
  sample: high
outcome:
  description: The incident's status and whether it is resolved (with I(outcome)).
  returned: when I(outcome) is given
  type: dict
  sample: {"status": "warning", "resolved": true}
recheck:
  description: The error rate after a mitigation, whether it was judged (and why not), and whether the errors are resolved.
  returned: when I(recheck) is given
  type: dict
  sample: {"error_rate_after": 0.0, "errors": 0, "requests": 3, "judged": false,
           "note": "0 errors in 3 requests: too few to judge, below the minimums of 5 errors and 100 requests", "errors_resolved": true}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_steps import classify_incident, incident_outcome, recheck_errors
from ansible.module_utils.parsing.convert_bool import boolean


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checked=dict(type="dict", default={}),
            recheck=dict(type="dict"),
            outcome=dict(type="dict"),
            error_monitoring=dict(type="dict", default={}),
            error_high=dict(type="float"),
            error_medium=dict(type="float"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for old, new in (("error_high", "error_monitoring_critical_rate"), ("error_medium", "error_monitoring_warning_rate")):
        if p[old] is not None:
            module.deprecate("incident_response_%s is ignored: the incident is classified from the error-monitoring step's "
                             "decided severity; set %s instead" % (old, new), version="3.0.0")
    cfg = dict((k, v) for k, v in p["error_monitoring"].items() if v is not None)
    if p["outcome"] is not None:
        out = p["outcome"]
        actions = []
        for action in out.get("actions") or []:
            if isinstance(action, dict):
                action = dict(action)
                for key in ("healthy_after", "errors_resolved"):
                    action[key] = boolean(action.get(key), strict=False)
                actions.append(action)
        status, resolved = incident_outcome(out.get("findings") or [], out.get("severity") or "none", actions,
                                            boolean(out.get("check_mode"), strict=False))
        module.exit_json(changed=False, outcome={"status": status, "resolved": resolved})
    if p["recheck"] is not None:
        log = p["recheck"].get("log")
        window = None
        if isinstance(log, dict) and not log.get("skipped") and not log.get("failed") and "requests" in log:
            window = log.get("window") or log
        module.exit_json(changed=False, recheck=recheck_errors(window, p["recheck"].get("verdict"), cfg))
    findings, severity = classify_incident(p["checked"])
    module.exit_json(changed=False, findings=findings, severity=severity)


if __name__ == "__main__":
    main()
