#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runbook_doctor
short_description: Check what the BeMore schedules need on the control node and on a host
description:
  - The first-run check of C(playbooks/doctor.yml), in three parts chosen by I(probe).
  - C(controller) (run on the control node, once per host) - the host's SSH key in a known_hosts file ssh reads
    (as C(host_key_checking) expects), the state and report folders writable, the API and its token (one
    authenticated request) when the control node reads the API, and a test notification to the webhook.
  - C(host) (run on the host) - its Python, non-interactive become (C(sudo -n)), the configured log source
    (the journal of the unit, or the log files), the app folder, its C(.env), the temp folder, C(npm),
    C(mysqldump), a real database connection, the API when the host reads it, and the host's clock.
  - C(decide) (run on the control node) - every item's status and the report step, from both readings and the
    host probe's registered result (an unreachable host or a Python that did not run is named with its fix).
  - Reads only; the one thing it sends is the test notification, never in check mode.
version_added: "2.1.0"
options:
  probe:
    description: Which part to run.
    type: str
    required: true
    choices: [controller, host, decide]
  connection:
    description:
      - C(controller) - how Ansible reaches the host, C({connection, host, port, user, args, host_key_checking}),
        C(args) being the inventory's ssh arguments as a list.
    type: dict
  state_dir:
    description: C(controller) - the runs' state folder on the control node.
    type: str
  report_dir:
    description: C(controller) - the report folder on the control node.
    type: str
  environment:
    description: The environment's name, in the test notification.
    type: str
    default: unknown
  api_from:
    description: Where the API is read from (C(bemore_api_from)); the API item runs in that probe.
    type: str
    choices: [controller, host]
    default: controller
  base_url:
    description: The backend's base URL.
    type: str
  api_token:
    description: The API's bearer token; the request is sent without one when empty.
    type: str
  api_timeout:
    description: Seconds the API request may take in total (no retry).
    type: float
    default: 10
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: PEM file of the certificate authorities trusted for the API instead of the system's.
    type: path
  client_cert:
    description: PEM file of the client certificate the API asks for; it may hold the key as well.
    type: path
  client_key:
    description: PEM file of the private key of O(client_cert), when that file does not hold it.
    type: path
  webhook_url:
    description: C(controller) - the notification webhook; empty sends nothing.
    type: str
  notify_test:
    description: C(controller) - send a test notification when a webhook is configured.
    type: bool
    default: true
  become_expected:
    description: C(host) - the inventory asks for become; a C(sudo -n) that fails is then a failure, otherwise a warning.
    type: bool
    default: false
  log_source:
    description: C(host) - C(journal) or C(file), as C(bemore_log_source).
    type: str
    choices: [journal, file]
    default: journal
  log_files:
    description: C(host) - the backend's log files when I(log_source=file).
    type: list
    elements: str
    default: []
  service_name:
    description: C(host) - the backend's systemd unit, whose journal is read when I(log_source=journal).
    type: str
    default: ""
  app_dir:
    description: C(host) - the app folder (read).
    type: str
  env_file:
    description: C(host) - the app's C(.env) (read; written by the weekly temp policy when I(manage_env)).
    type: str
  manage_env:
    description: C(host) - the schedules write I(env_file).
    type: bool
    default: true
  temp_dir:
    description: C(host) - the app's temp folder (read and cleaned).
    type: str
  check_npm:
    description: C(host) - the schedules run npm here (audit, outdated, test).
    type: bool
    default: true
  check_database:
    description: C(host) - the schedules run mysqldump and connect to the database from here.
    type: bool
    default: true
  db_host:
    description: C(host) - the database host.
    type: str
    default: 127.0.0.1
  db_port:
    description: C(host) - the database port.
    type: int
    default: 3306
  db_user:
    description: C(host) - the database user.
    type: str
    default: root
  db_password:
    description: C(host) - the database password.
    type: str
    default: ""
  db_schema:
    description: C(host) - the backend's schema.
    type: str
    default: bemore
  controller:
    description: C(decide) - the C(controller) probe's result.
    type: dict
  host_result:
    description: C(decide) - the C(host) probe task's registered result (unreachable, failed or skipped included).
    type: dict
  max_clock_skew_s:
    description: C(decide) - the largest difference between the host's clock and the control node's that passes.
    type: float
    default: 30
extends_documentation_fragment:
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Check the control node's side for this host
  runbook_doctor:
    probe: controller
    connection: {connection: ssh, host: api1.bemore.dev, port: 22, user: deploy, args: [], host_key_checking: true}
    state_dir: ~/.local/state/bemore-runbooks/production/state
    report_dir: ~/.local/state/bemore-runbooks/production/reports
    base_url: https://api.bemore.dev
    api_token: "{{ bemore_api_token }}"
  delegate_to: localhost
  register: doctor_controller

- name: Check the host
  runbook_doctor:
    probe: host
    app_dir: /srv/bemore/app
    env_file: /srv/bemore/app/.env
    temp_dir: /srv/bemore/app/tmp
    service_name: bemore
    db_password: "{{ bemore_db_password }}"
  register: doctor_host
  ignore_unreachable: true
  ignore_errors: true

- name: Decide every item
  runbook_doctor:
    probe: decide
    controller: "{{ doctor_controller }}"
    host_result: "{{ doctor_host }}"
  delegate_to: localhost
  register: doctor_step
"""

RETURN = r"""
items:
  description: C(controller), C(host) - each check, C({name, status, detail, fix}); status ok, warning, failed or skipped.
  returned: probe is controller or host
  type: list
  elements: dict
time:
  description: C(controller), C(host) - the machine's clock (seconds since the epoch) when it was read.
  returned: probe is controller or host
  type: float
step:
  description:
    - C(decide) - the report step C({step, status, severity, summary, figures, problems}); a failed item is
      status failed and severity medium (a setup problem, not an incident), a warning low; each problem ends
      with its fix.
  returned: probe is decide
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_doctor import decide, probe_controller, probe_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            probe=dict(type="str", required=True, choices=["controller", "host", "decide"]),
            connection=dict(type="dict"),
            state_dir=dict(type="str"),
            report_dir=dict(type="str"),
            environment=dict(type="str", default="unknown"),
            api_from=dict(type="str", choices=["controller", "host"], default="controller"),
            base_url=dict(type="str"),
            api_token=dict(type="str", no_log=True),
            api_timeout=dict(type="float", default=10),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path"),
            webhook_url=dict(type="str", no_log=True),
            notify_test=dict(type="bool", default=True),
            become_expected=dict(type="bool", default=False),
            log_source=dict(type="str", choices=["journal", "file"], default="journal"),
            log_files=dict(type="list", elements="str", default=[]),
            service_name=dict(type="str", default=""),
            app_dir=dict(type="str"),
            env_file=dict(type="str"),
            manage_env=dict(type="bool", default=True),
            temp_dir=dict(type="str"),
            check_npm=dict(type="bool", default=True),
            check_database=dict(type="bool", default=True),
            db_host=dict(type="str", default="127.0.0.1"),
            db_port=dict(type="int", default=3306),
            db_user=dict(type="str", default="root"),
            db_password=dict(type="str", default="", no_log=True),
            db_schema=dict(type="str", default="bemore"),
            controller=dict(type="dict"),
            host_result=dict(type="dict"),
            max_clock_skew_s=dict(type="float", default=30),
        ),
        required_if=[
            ("probe", "controller", ("connection", "state_dir", "report_dir")),
            ("probe", "host", ("app_dir", "env_file", "temp_dir")),
            ("probe", "decide", ("controller", "host_result")),
        ],
        supports_check_mode=True,
    )
    p = module.params
    needs_url = (p["probe"] == "controller") == (p["api_from"] == "controller") and p["probe"] != "decide"
    if needs_url and not p["base_url"]:
        module.fail_json(msg="base_url is required where the API is read (api_from=%s)" % p["api_from"])
    if p["max_clock_skew_s"] < 0:
        module.fail_json(msg="max_clock_skew_s must be 0 or more, got %s" % p["max_clock_skew_s"])
    if p["probe"] == "controller":
        module.exit_json(changed=False, **probe_controller(p, module.check_mode))
    if p["probe"] == "host":
        module.exit_json(changed=False, **probe_host(p))
    module.exit_json(changed=False, step=decide(p["controller"], p["host_result"], p["max_clock_skew_s"], time.time()))


if __name__ == "__main__":
    main()
