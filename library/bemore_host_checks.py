#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_host_checks
short_description: Read everything the BeMore checks need from the host, in one module run
description:
  - Reads, in one run on the managed host, what the selected checks need
    from the host itself - the filesystem of the app and its temp folder,
    the app process's memory and CPU, and the backend's log since the last
    review (a file or the systemd journal, resumed where the previous run
    stopped) - and, where the API answers only on the host's own loopback
    (C(bemore_api_from=host)), the API readings too.
  - It only reads; the control node's C(bemore_checks) turns the readings
    into report steps. Every reading that fails becomes an error in its
    place; the module itself fails only on bad input.
version_added: "2.0.0"
options:
  inputs:
    description:
      - "The host's validated inputs, C({role: {option: value}}) plus the runbook's group-level inputs under
        C(runbook), as gathered by the runbook frame."
    type: dict
    required: true
  selected:
    description: The check roles this run carries out.
    type: list
    elements: str
    required: true
  position:
    description: Where the previous review of the log stopped (from the control node's state); empty the first time.
    type: dict
    default: {}
  error_position:
    description:
      - Where the previous error-rate reading of a log file stopped; its window is the lines written since.
        The same as I(position) when both steps ran last time, and then the log is read once.
    type: dict
    default: {}
  api_token:
    description: The API's bearer token, used only when the API is read from the host.
    type: str
extends_documentation_fragment:
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Read the disk, temp folder, process and log of this host
  bemore_host_checks:
    inputs: "{{ __runbook_inputs }}"
    selected: [disk_usage, log_management]
    position: "{{ __runbook_run.state[inventory_hostname].log_management.position | default({}) }}"
  register: __runbook_host
"""

RETURN = r"""
readings:
  description: What was read, by kind; a reading that failed holds an C(error) sentence instead.
  returned: always
  type: dict
  sample: {"disk": {"filesystem": {"mount": "/", "used_percent": 41.2, "avail_bytes": 52000000000},
                    "folder": {"files": 12, "bytes": 2045000}},
           "log": {"lines": 2400, "requests": 2310, "errors": 3, "position": {}}}
plan:
  description: What the module was asked to read on this host.
  returned: always
  type: dict
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_checks import sweep
from ansible.module_utils.bemore_host import read_all
from ansible.module_utils.runbook_plan import build_plan, split_inputs
from ansible.module_utils.runbook_clock import now as clock_now


def main():
    module = AnsibleModule(
        argument_spec=dict(
            inputs=dict(type="dict", required=True),
            selected=dict(type="list", elements="str", required=True),
            position=dict(type="dict", default={}),
            error_position=dict(type="dict", default={}),
            api_token=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    group, inputs = split_inputs(p["inputs"])
    try:
        plan = build_plan("this host", group, inputs, p["selected"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    host_plan = plan["host_plan"]
    now = clock_now()
    readings = read_all(host_plan, p["position"], now, p["error_position"])
    if host_plan.get("api"):
        target = dict(host_plan["api"])
        results, elapsed = sweep({"this": target}, {"this": p["api_token"]})
        readings["api"] = results["this"]
        readings["api_elapsed_ms"] = elapsed
    module.exit_json(changed=False, readings=readings, plan=host_plan)


if __name__ == "__main__":
    main()
