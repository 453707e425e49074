#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: report_trend
short_description: Trend of performance and error figures over the run reports of a period
description:
  - Reads the JSON run reports (written by the C(report) role) of the given
    schedules from the last I(days) days, and for each host and metric
    returns the series' count, first and last value, mean, the mean of the
    first and of the last third, and the change between those two in percent.
  - Metrics, lower is better for all of them - C(p95_ms), C(median_ms),
    C(rss_mb), C(cpu_percent) (performance step), C(error_rate)
    (error_monitoring step) and C(disk_used_percent) (disk_usage step).
  - Reports from check-mode runs are left out. Read-only; runs where the
    reports are (the control node).
version_added: "1.0.0"
options:
  report_dir:
    description: The reports folder (one subfolder per schedule).
    type: path
    required: true
  schedules:
    description: Schedules whose reports are read.
    type: list
    elements: str
    default: [daily, weekly]
  days:
    description: How far back reports count.
    type: int
    default: 92
  worse_percent:
    description: A metric whose last third is this many percent above its first third is C(worse).
    type: float
    default: 25
  min_points:
    description: Points a series needs before its trend is judged.
    type: int
    default: 3
extends_documentation_fragment:
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Performance trend over the quarter
  report_trend:
    report_dir: "{{ bemore_report_dir }}"
    days: 92
  delegate_to: localhost
"""

RETURN = r"""
trends:
  description: Per host, per metric.
  returned: always
  type: dict
  sample: {"api1": {"p95_ms": {"points": 13, "first": 120.0, "last": 180.0, "mean": 150.2, "early_mean": 125.0,
                               "late_mean": 171.0, "change_percent": 36.8, "worse": true}}}
worse:
  description: C(host metric +N%) for every metric that got worse.
  returned: always
  type: list
  elements: str
reports_read:
  description: Reports read.
  returned: always
  type: int
"""

import datetime
import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_common import parse_iso as parse_time

METRICS = {
    "performance": {"p95_ms": "p95_ms", "median_ms": "median_ms", "rss_mb": "rss_mb", "cpu_percent": "cpu_percent"},
    # error_rate_percent since the per-request rate from the log; error_rate in older reports.
    "error_monitoring": {"error_rate": ("error_rate_percent", "error_rate")},
    "disk_usage": {"disk_used_percent": "used_percent"},
}


def collect(paths, since):
    """{host: {metric: [(time, value), ...]}} from report files; and the number of reports used."""
    series, used = {}, 0
    for path in paths:
        try:
            with open(path) as fh:
                report = json.load(fh)
        except (OSError, ValueError):
            continue
        when = parse_time(report.get("generated_at"))
        if when is None or when < since or report.get("check_mode"):
            continue
        used += 1
        for host, data in (report.get("hosts") or {}).items():
            for step in data.get("steps") or []:
                for metric, fields in METRICS.get(step.get("step"), {}).items():
                    figures = step.get("figures") or {}
                    value = next((figures[f] for f in ((fields,) if isinstance(fields, str) else fields)
                                  if figures.get(f) is not None), None)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        series.setdefault(host, {}).setdefault(metric, []).append((when, float(value)))
    return series, used


def trend(points, worse_percent, min_points):
    points = sorted(points)
    values = [v for _when, v in points]
    n = len(values)
    third = max(1, n // 3)
    early = sum(values[:third]) / third
    late = sum(values[-third:]) / third
    change = None if early == 0 else round((late - early) * 100.0 / early, 1)
    return {"points": n, "first": values[0], "last": values[-1], "mean": round(sum(values) / n, 3),
            "early_mean": round(early, 3), "late_mean": round(late, 3), "change_percent": change,
            "worse": n >= min_points and change is not None and change >= worse_percent}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            report_dir=dict(type="path", required=True),
            schedules=dict(type="list", elements="str", default=["daily", "weekly"]),
            days=dict(type="int", default=92),
            worse_percent=dict(type="float", default=25.0),
            min_points=dict(type="int", default=3),
        ),
        supports_check_mode=True,
    )
    p = module.params
    since = datetime.datetime.fromtimestamp(clock_now(), datetime.timezone.utc) - datetime.timedelta(days=p["days"])
    paths = []
    for schedule in p["schedules"]:
        paths += [f for f in glob.glob(os.path.join(glob.escape(p["report_dir"]), schedule, "*.json"))
                  if not f.endswith("latest.json")]
    series, used = collect(sorted(paths), since)
    trends, worse = {}, []
    for host, metrics in sorted(series.items()):
        for metric, points in sorted(metrics.items()):
            t = trend(points, p["worse_percent"], p["min_points"])
            trends.setdefault(host, {})[metric] = t
            if t["worse"]:
                worse.append("%s %s %+.1f%%" % (host, metric, t["change_percent"]))
    module.exit_json(changed=False, trends=trends, worse=worse, reports_read=used)


if __name__ == "__main__":
    main()
