#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_error_stats
short_description: Collect the BeMore error statistics, recent errors and errors by category in one sweep
description:
  - Reads C(GET /api/errors/stats), C(GET /api/monitoring/recent-errors?limit=N)
    and C(GET /api/monitoring/errors/{CATEGORY}) for every category
    concurrently, so one run costs one round-trip of wall time rather than ten.
  - Validates every answer against the API contract (module_utils/bemore_api.py),
    computes the error rate and judges it against the thresholds.
  - An endpoint that times out, answers 5xx, malformed JSON or an incomplete
    body is listed in C(failures) with a clear reason; the module never
    raises a traceback and never takes longer than
    I(timeout) * (I(retries) + 1) plus the backoff and a small margin.
version_added: "1.0.0"
options:
  categories:
    description: Error categories to read.
    type: list
    elements: str
    choices: [WEBSOCKET, SESSION, STT, VAD, GEMINI, CBT, DATABASE, NETWORK]
    default: [WEBSOCKET, SESSION, STT, VAD, GEMINI, CBT, DATABASE, NETWORK]
  recent_limit:
    description: How many recent errors to read (1-100).
    type: int
    default: 20
  target_rate:
    description: Target error rate in percent (the guide's 0.1 %); above it C(above_target) is true.
    type: float
    default: 0.1
  warning_rate:
    description: Error rate in percent above which the status is C(warning) (the guide's 1 % alert).
    type: float
    default: 1.0
  critical_rate:
    description: Error rate in percent above which the status is C(critical) (the guide's "high error rate", 5 %).
    type: float
    default: 5.0
extends_documentation_fragment:
  - bemore_api
  - bemore_api.retries
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Collect the error statistics
  bemore_error_stats:
    base_url: https://api.bemore.dev
  register: errors

- name: Read fifty recent errors during an incident
  bemore_error_stats:
    base_url: https://api.bemore.dev
    recent_limit: 50
"""

RETURN = r"""
stats:
  description: The payload of C(/api/errors/stats); empty when it could not be read.
  returned: always
  type: dict
recent_errors:
  description: The recent errors, newest first.
  returned: always
  type: list
  elements: dict
by_category:
  description: For each category read, its error count and the time of its latest error.
  returned: always
  type: dict
  sample: {GEMINI: {count: 140, latest: "2026-11-29T01:50:13.628Z"}}
error_rate:
  description: Errors per request in percent over the API's window; null when the stats could not be read.
  returned: always
  type: float
above_target:
  description: Whether the error rate is above I(target_rate).
  returned: always
  type: bool
status:
  description: C(ok), C(warning) or C(critical) against the thresholds; C(warning) when the rate is unknown or an endpoint failed.
  returned: always
  type: str
failures:
  description: Endpoints that could not be read, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{endpoint: /api/monitoring/errors/STT, reason: timed out after 10.0s, status: null}]
elapsed_ms:
  description: Wall time of the whole sweep in milliseconds.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_api import CATEGORIES, ENDPOINTS, RECENT_LIMIT_MAX, client_argument_spec, client_from_module


def error_rate(stats):
    """Errors per request in percent, or None when the stats say nothing."""
    try:
        requests, errors = int(stats["totalRequests"]), int(stats["totalErrors"])
    except (KeyError, TypeError, ValueError):
        return None
    if requests <= 0:
        return 0.0 if errors == 0 else None
    return round(100.0 * errors / requests, 4)


def classify(rate, warning_rate, critical_rate, failures=0):
    """ok / warning / critical for an error rate in percent."""
    if rate is None:
        return "warning"
    if rate > critical_rate:
        return "critical"
    if rate > warning_rate or failures:
        return "warning"
    return "ok"


def sweep(client, categories, recent_limit):
    jobs = {"stats": ("error_stats", None, None),
            "recent": ("recent_errors", None, {"limit": recent_limit})}
    for cat in categories:
        jobs["cat:" + cat] = ("errors_by_category", ENDPOINTS["errors_by_category"].format(category=cat), None)
    return client.fetch_many(jobs)


def summarise(results, failures, categories, thresholds):
    stats = results.get("stats") or {}
    by_category = {}
    for cat in categories:
        data = results.get("cat:" + cat)
        if data is not None:
            latest = max((e["timestamp"] for e in data["errors"]), default=None)
            by_category[cat] = {"count": data["count"], "latest": latest}
    rate = error_rate(stats) if stats else None
    failure_list = [failures[name].as_dict() for name in sorted(failures)]
    return {
        "stats": stats,
        "recent_errors": (results.get("recent") or {}).get("errors", []),
        "by_category": by_category,
        "error_rate": rate,
        "above_target": rate is not None and rate > thresholds["target_rate"],
        "status": classify(rate, thresholds["warning_rate"], thresholds["critical_rate"], len(failure_list)),
        "failures": failure_list,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(),
            categories=dict(type="list", elements="str", choices=list(CATEGORIES), default=list(CATEGORIES)),
            recent_limit=dict(type="int", default=20),
            target_rate=dict(type="float", default=0.1),
            warning_rate=dict(type="float", default=1.0),
            critical_rate=dict(type="float", default=5.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["recent_limit"] <= RECENT_LIMIT_MAX:
        module.fail_json(msg="recent_limit must be between 1 and %d, got %d" % (RECENT_LIMIT_MAX, p["recent_limit"]))
    if not 0 <= p["target_rate"] <= p["warning_rate"] <= p["critical_rate"]:
        module.fail_json(msg="thresholds must satisfy 0 <= target_rate <= warning_rate <= critical_rate")
    client = client_from_module(module)
    categories = list(dict.fromkeys(p["categories"]))
    started = time.monotonic()
    results, failures = sweep(client, categories, p["recent_limit"])
    result = summarise(results, failures, categories, p)
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000.0, 1)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
