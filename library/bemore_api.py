#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_api
short_description: Call one endpoint of the BeMore API and validate its answer against the contract
description:
  - Calls one endpoint of the BeMore API contract (module_utils/bemore_api.py)
    with bounded retries and returns the validated payload (the C(data) of
    enveloped answers).
  - Unlike M(ansible.builtin.uri), a malformed or incomplete answer is a
    failure that names the endpoint and the field, never silently accepted.
version_added: "1.0.0"
options:
  endpoint:
    description: Endpoint of the contract.
    type: str
    required: true
    choices: [health, error_stats, recent_errors, errors_by_category, temp_cleanup_stats, session_start]
  category:
    description: Error category, for C(errors_by_category).
    type: str
    choices: [WEBSOCKET, SESSION, STT, VAD, GEMINI, CBT, DATABASE, NETWORK]
  limit:
    description: Number of errors, for C(recent_errors) (1-100).
    type: int
    default: 20
  body:
    description: JSON body, for C(session_start).
    type: dict
extends_documentation_fragment:
  - bemore_api
  - bemore_api.retries
attributes:
  check_mode:
    support: partial
    description: GET endpoints are read in check mode; C(session_start) creates a session and is skipped in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Read the app's temp cleanup statistics
  bemore_api:
    base_url: https://api.bemore.dev
    endpoint: temp_cleanup_stats
  register: cleanup_stats

- name: Start a test session after a deployment
  bemore_api:
    base_url: https://api.bemore.dev
    endpoint: session_start
    body: {userId: test, counselorId: test}
"""

RETURN = r"""
data:
  description: The validated payload.
  returned: success
  type: dict
status:
  description: HTTP status of the answer.
  returned: success
  type: int
response_time_ms:
  description: Time of the successful attempt in milliseconds.
  returned: success
  type: float
last_check_age_s:
  description: For C(temp_cleanup_stats), seconds since the app's cleanup service last ran (by this host's clock); null when it never ran.
  returned: when endpoint is temp_cleanup_stats
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_api import (CATEGORIES, ENDPOINTS, RECENT_LIMIT_MAX, ApiError,
                                             _error_message, client_argument_spec, client_from_module, parse_time,
                                             validate)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(),
            endpoint=dict(type="str", required=True, choices=sorted(ENDPOINTS)),
            category=dict(type="str", choices=list(CATEGORIES)),
            limit=dict(type="int", default=20),
            body=dict(type="dict"),
        ),
        required_if=[("endpoint", "errors_by_category", ["category"]), ("endpoint", "session_start", ["body"])],
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["limit"] <= RECENT_LIMIT_MAX:
        module.fail_json(msg="limit must be between 1 and %d, got %d" % (RECENT_LIMIT_MAX, p["limit"]))
    kind = p["endpoint"]
    post = kind == "session_start"
    if post and module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: no session started")
    client = client_from_module(module)
    if post:
        client.retries = 0  # a session start is not idempotent: never repeat it
    path = ENDPOINTS[kind].format(category=p["category"])
    if kind == "recent_errors":
        path += "?limit=%d" % p["limit"]
    try:
        status, _headers, parsed, elapsed = client.request("POST" if post else "GET", path,
                                                           body=p["body"] if post else None)
        if status >= 400:
            raise ApiError(path, "HTTP %d: %s" % (status, _error_message(parsed)), status)
        data = validate(kind, parsed, path)
    except ApiError as exc:
        module.fail_json(msg="BeMore API %s%s" % (p["base_url"].rstrip("/"), exc), endpoint=exc.endpoint,
                         status=exc.status)
    extra = {}
    if kind == "temp_cleanup_stats":
        last = parse_time(data.get("lastCheckTime"))
        extra["last_check_age_s"] = None if last is None else round(time.time() - last, 1)
    module.exit_json(changed=post, data=data, status=status, response_time_ms=round(elapsed * 1000.0, 1), **extra)


if __name__ == "__main__":
    main()
