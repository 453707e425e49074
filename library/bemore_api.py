#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_api
short_description: Read one endpoint of the BeMore API as the backend really answers
description:
  - Calls one endpoint of the BeMore backend with bounded retries and returns
    its answer parsed the way the backend gives it (module_utils/bemore_api.py,
    from the answers recorded from the running backend). Unknown fields are
    ignored; a field the backend may leave null is returned as null.
  - An answer that is not JSON, not 2xx, or lacks what the call needs is a
    failure that names the endpoint and the field. A 429 fails as C(error.kind=rate_limited) with the seconds
    until the limit resets (C(error.reset_s)); a redirect to another origin fails as C(error.kind=redirect),
    not followed.
  - The runbook checks read every host at once with C(bemore_checks); this
    module is for single calls (a deployment waiting for its commit, an
    incident's re-check).
version_added: "1.0.0"
options:
  endpoint:
    description: What to call.
    type: str
    required: true
    choices: [health, error_stats, monitoring_health, recent_errors, errors_by_category, temp_cleanup_stats]
  category:
    description: Error category, for C(errors_by_category) (the guide's eight).
    type: str
    choices: [WEBSOCKET, SESSION, STT, VAD, GEMINI, CBT, DATABASE, NETWORK]
  limit:
    description: Number of errors, for C(recent_errors) (1-100).
    type: int
    default: 20
  expected_commit:
    description: For C(health), the commit the service must report; RV(commit_matches) says whether it does.
    type: str
extends_documentation_fragment:
  - bemore_api
  - bemore_api.retries
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Wait until the deployed commit answers
  bemore_api:
    base_url: https://api.bemore.dev
    endpoint: health
    expected_commit: "{{ bemore_deploy_commit }}"
  register: health
  until: health.commit_matches
  retries: 30
  delay: 5
  delegate_to: localhost
"""

RETURN = r"""
data:
  description: The parsed answer.
  returned: success
  type: dict
  sample: {"status": "ok", "uptime_s": 133.2, "version": "1.0.0", "commit": null, "timestamp": "2026-12-02T09:45:51.548Z"}
status:
  description: HTTP status of the answer.
  returned: success
  type: int
response_time_ms:
  description: Time of the successful attempt in milliseconds.
  returned: success
  type: float
rate_limit:
  description: The rate limit the answer announced in its headers, or null.
  returned: success
  type: dict
  sample: {"limit": 600, "remaining": 598, "reset_s": 540, "window_s": 600, "policy": "600;w=600"}
commit_matches:
  description: For C(health) with I(expected_commit), whether the reported commit is the expected one (false when it is unknown).
  returned: when endpoint is health
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_api import (
    ApiError, CATEGORIES, ENDPOINTS, client_argument_spec, client_from_params, parse_category, parse_cleanup_stats, parse_error_stats, parse_health,
    parse_monitoring_health, parse_rate_limit, parse_recent_errors,
)
from ansible.module_utils.bemore_steps import commits_match

READERS = {
    "health": (ENDPOINTS["health"], parse_health),
    "error_stats": (ENDPOINTS["error_stats"], parse_error_stats),
    "monitoring_health": (ENDPOINTS["monitoring_health"], parse_monitoring_health),
    "recent_errors": (ENDPOINTS["recent_errors"], parse_recent_errors),
    "errors_by_category": (ENDPOINTS["errors_by_category"], parse_category),
    "temp_cleanup_stats": (ENDPOINTS["temp_cleanup_stats"], parse_cleanup_stats),
}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(),
            endpoint=dict(type="str", required=True, choices=sorted(READERS)),
            category=dict(type="str", choices=list(CATEGORIES)),
            limit=dict(type="int", default=20),
            expected_commit=dict(type="str"),
        ),
        required_if=[("endpoint", "errors_by_category", ("category",))],
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["limit"] <= 100:
        module.fail_json(msg="limit must be between 1 and 100, got %d" % p["limit"])
    try:
        client = client_from_params(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    path, parser = READERS[p["endpoint"]]
    if p["endpoint"] == "recent_errors":
        path += "?limit=%d" % p["limit"]
    elif p["endpoint"] == "errors_by_category":
        path = path.format(category=p["category"])
    try:
        resp, parsed = client.get_json(path)
        data = parser(parsed, path)
    except ApiError as exc:
        module.fail_json(msg=str(exc), error=exc.as_dict())
    result = dict(changed=False, data=data, status=resp.status, response_time_ms=round(resp.elapsed * 1000.0, 1),
                  rate_limit=parse_rate_limit(resp.headers))
    if p["endpoint"] == "health":
        result["commit_matches"] = commits_match(p["expected_commit"], data["commit"]) if p["expected_commit"] else None
    module.exit_json(**result)


if __name__ == "__main__":
    main()
