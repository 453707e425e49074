#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_health
short_description: Read and judge the BeMore Backend health endpoint
description:
  - Reads C(GET /health) of a BeMore Backend and checks the answer against the
    documented shape (status, timestamp, uptime, version, commit).
  - Judges the service healthy only when the endpoint answers, the shape is
    valid and C(status) is C(ok); optionally also requires an expected deployed
    commit, and detects a restart by comparing the uptime with the uptime of
    the previous run.
  - Never fails for an unhealthy service; it reports C(healthy=false) and the
    reasons in C(problems), so the caller decides. It fails only on bad input.
version_added: "1.0.0"
options:
  expected_commit:
    description:
      - Commit the service must report, as after a deployment. A prefix of at
        least 7 characters matches the full hash either way round.
    type: str
  previous_uptime:
    description:
      - Uptime in seconds recorded by the previous run.
      - With I(previous_timestamp), the service counts as restarted when its
        uptime now is more than I(restart_tolerance) seconds below the previous
        uptime plus the time that passed on the server's own clock; without
        it, when the uptime is smaller than before.
    type: float
  previous_timestamp:
    description: The C(timestamp) the service reported in the previous run.
    type: str
  restart_tolerance:
    description: Seconds of slack in the restart detection.
    type: float
    default: 60
extends_documentation_fragment:
  - bemore_api
  - bemore_api.retries
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Check the API health
  bemore_health:
    base_url: https://api.bemore.dev

- name: Require the commit that was just deployed
  bemore_health:
    base_url: https://api.bemore.dev
    expected_commit: abc1234def567
"""

RETURN = r"""
healthy:
  description: True when the endpoint answered with a valid body, status C(ok) and, if asked, the expected commit.
  returned: always
  type: bool
problems:
  description: Why the service is not healthy, one sentence each.
  returned: always
  type: list
  elements: str
  sample: ["/health: status is 'error', expected 'ok'"]
health:
  description: The body of the answer, when it could be read.
  returned: always
  type: dict
  sample: {"status": "ok", "timestamp": "2025-10-24T17:45:00.000Z", "uptime": 123456,
           "version": "1.0.0", "commit": "abc1234def567"}
response_time_ms:
  description: Time of the successful attempt in milliseconds; null when none succeeded.
  returned: always
  type: float
restarted:
  description: True when I(previous_uptime) was given and the uptime shows a restart since then.
  returned: always
  type: bool
commit_matches:
  description: Whether the commit matches I(expected_commit); null when no commit was expected.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_api import ApiError, client_argument_spec, client_from_module, is_timestamp, parse_time, validate


def commits_match(expected, actual):
    """A short hash (>= 7 characters) matches the full one, either way round."""
    expected, actual = (expected or "").strip().lower(), (actual or "").strip().lower()
    if not expected or not actual:
        return False
    if len(expected) >= 7 and len(actual) >= 7:
        return expected.startswith(actual) or actual.startswith(expected)
    return expected == actual


def restarted_since(uptime, previous_uptime, now_ts=None, previous_ts=None, tolerance=60.0):
    """Whether a service with ``uptime`` now restarted since it reported ``previous_uptime``."""
    if previous_uptime is None or uptime is None:
        return False
    if now_ts is not None and previous_ts is not None and now_ts >= previous_ts:
        return uptime + tolerance < previous_uptime + (now_ts - previous_ts)
    return uptime < previous_uptime


def judge(body, expected_commit=None, previous_uptime=None, previous_timestamp=None, tolerance=60.0):
    """Return (problems, restarted, commit_matches) for a validated /health body."""
    problems = []
    if body.get("status") != "ok":
        problems.append("/health: status is %r, expected 'ok'" % body.get("status"))
    if not is_timestamp(body.get("timestamp")):
        problems.append("/health: timestamp %r is not an ISO 8601 time" % body.get("timestamp"))
    if body.get("uptime", 0) < 0:
        problems.append("/health: uptime is negative")
    matches = None
    if expected_commit:
        matches = commits_match(expected_commit, body.get("commit"))
        if not matches:
            problems.append("/health: commit is %r, expected %r" % (body.get("commit"), expected_commit))
    restarted = restarted_since(body.get("uptime"), previous_uptime, parse_time(body.get("timestamp")),
                                parse_time(previous_timestamp), tolerance)
    return problems, restarted, matches


def check(client, expected_commit=None, previous_uptime=None, previous_timestamp=None, tolerance=60.0):
    result = {"healthy": False, "problems": [], "health": {}, "response_time_ms": None,
              "restarted": False, "commit_matches": None}
    try:
        status, _headers, parsed, elapsed = client.request("GET", "/health")
        if status >= 400:
            raise ApiError("/health", "HTTP %d" % status, status)
        body = validate("health", parsed, "/health")
    except ApiError as exc:
        result["problems"].append(str(exc))
        return result
    result["health"] = body
    result["response_time_ms"] = round(elapsed * 1000.0, 1)
    problems, restarted, matches = judge(body, expected_commit, previous_uptime, previous_timestamp, tolerance)
    result.update(problems=problems, restarted=restarted, commit_matches=matches, healthy=not problems)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(),
            expected_commit=dict(type="str"),
            previous_uptime=dict(type="float"),
            previous_timestamp=dict(type="str"),
            restart_tolerance=dict(type="float", default=60.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    client = client_from_module(module)
    module.exit_json(changed=False, **check(client, p["expected_commit"], p["previous_uptime"],
                                            p["previous_timestamp"], p["restart_tolerance"]))


if __name__ == "__main__":
    main()
