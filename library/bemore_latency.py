#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_latency
short_description: Measure BeMore API response times (median, p95) against a target
description:
  - Sends I(samples) sequential GET requests to each path and reports the
    minimum, median, 95th percentile and maximum response time, and whether
    the median and p95 meet I(target_ms) (the guide's 200 ms for API endpoints).
  - Requests are sequential on purpose, to measure the latency of one request,
    not throughput. A failed request is counted, never a traceback.
version_added: "1.0.0"
options:
  paths:
    description: Paths to time (GET, no side effects).
    type: list
    elements: str
    default: [/health, /api/errors/stats]
  samples:
    description: Requests per path (1-200).
    type: int
    default: 10
  target_ms:
    description: Target response time in milliseconds.
    type: float
    default: 200
extends_documentation_fragment:
  - bemore_api
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Time the API against the 200 ms target
  bemore_latency:
    base_url: https://api.bemore.dev
    samples: 20
"""

RETURN = r"""
endpoints:
  description: Per path, C(samples), C(failed), C(min_ms), C(median_ms), C(p95_ms), C(max_ms) and C(meets_target).
  returned: always
  type: dict
median_ms:
  description: Median over every successful request.
  returned: always
  type: float
p95_ms:
  description: 95th percentile over every successful request.
  returned: always
  type: float
meets_target:
  description: True when the overall p95 is within I(target_ms) and no request failed.
  returned: always
  type: bool
failures:
  description: Failed requests, with the reason.
  returned: always
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_api import ApiError, client_argument_spec, client_from_module


def percentile(values, pct):
    """Nearest-rank percentile of a list of numbers; None for an empty list."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))  # ceil(pct/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def figures(times_ms, target_ms, failed=0):
    if not times_ms:
        return {"samples": failed, "failed": failed, "min_ms": None, "median_ms": None, "p95_ms": None,
                "max_ms": None, "meets_target": False}
    return {"samples": len(times_ms) + failed, "failed": failed, "min_ms": round(min(times_ms), 1),
            "median_ms": round(percentile(times_ms, 50), 1), "p95_ms": round(percentile(times_ms, 95), 1),
            "max_ms": round(max(times_ms), 1),
            "meets_target": failed == 0 and percentile(times_ms, 95) <= target_ms}


def measure(client, paths, samples, target_ms):
    endpoints, every, failures = {}, [], []
    for path in paths:
        times, failed = [], 0
        for _ in range(samples):
            started = time.monotonic()
            try:
                status, _headers, _body, _elapsed = client.request("GET", path)
                if status >= 400:
                    raise ApiError(path, "HTTP %d" % status, status)
            except ApiError as exc:
                failed += 1
                if len(failures) < 20:
                    failures.append(exc.as_dict())
                continue
            times.append((time.monotonic() - started) * 1000.0)
        endpoints[path] = figures(times, target_ms, failed)
        every.extend(times)
    overall = figures(every, target_ms, sum(e["failed"] for e in endpoints.values()))
    return {"endpoints": endpoints, "median_ms": overall["median_ms"], "p95_ms": overall["p95_ms"],
            "meets_target": overall["meets_target"], "failures": failures}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(retries=False),
            paths=dict(type="list", elements="str", default=["/health", "/api/errors/stats"]),
            samples=dict(type="int", default=10),
            target_ms=dict(type="float", default=200.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["samples"] <= 200:
        module.fail_json(msg="samples must be between 1 and 200, got %d" % p["samples"])
    bad = [path for path in p["paths"] if not path.startswith("/")]
    if bad or not p["paths"]:
        module.fail_json(msg="paths must be non-empty and start with '/': %s" % ", ".join(bad))
    client = client_from_module(module)  # no retries: a retried request would hide its own latency
    module.exit_json(changed=False, **measure(client, p["paths"], p["samples"], p["target_ms"]))


if __name__ == "__main__":
    main()
