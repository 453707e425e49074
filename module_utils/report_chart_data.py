# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The figures the report page charts: per chart, each host's value in each
run, and the threshold lines to draw.

A figure that is missing, null or not a number is a gap, never an error, so
reports written before a figure existed still chart. Drawing is
report_svg's job.

Only the standard library is used, and the code stays importable on Python
3.8 (module_utils must import on targets too).
"""

from __future__ import annotations

import collections
import math

from ansible.module_utils.report_history import figures_of, find_step, hosts_of, is_report, report_time, run_key
from ansible.module_utils.runbook_common import STATUS_RANK

# The guide's numbers, used when a report does not carry its own.
DEFAULT_ERROR_THRESHOLDS = (("target", 0.1), ("alert", 1.0), ("high", 5.0))
DEFAULT_LATENCY_TARGET_MS = 200.0
DEFAULT_TMP_CAP_MB = 500.0
DEFAULT_DISK_THRESHOLDS = (("warning", 80.0), ("critical", 90.0))  # disk_usage role defaults


def number(value):
    """A finite float from a report value, or None (missing, null, text, NaN, bool)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            result = float(value)
        elif isinstance(value, str):
            result = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def fmt_number(value):
    """A short, stable text for a number: 0.1, 1, 2.5, 37, 1250."""
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 100:
        text = "%.0f" % value
    elif size >= 10:
        text = "%.1f" % value
    elif size >= 1:
        text = "%.2f" % value
    elif size >= 0.001:
        text = "%.3f" % value
    else:
        return "%.2g" % value
    return text.rstrip("0").rstrip(".") if "." in text else text


def _reading(host, step_name, keys):
    """(step ran, value): the first number among ``keys`` in that step's figures."""
    step = find_step(host, step_name)
    if step is None:
        return False, None
    figures = figures_of(step)
    for key in keys:
        value = number(figures.get(key))
        if value is not None:
            return True, value
    return True, None


def _temp_folder(host):
    ran, value = _reading(host, "tmp_cleanup", ("folder_mb",))
    if value is None:
        ran_disk, value = _reading(host, "disk_usage", ("folder_mb",))
        ran = ran or ran_disk
    return ran, value


# Each chart: id, title, unit, axis title, and per series kind the reader of
# one host's value: returns (step ran, value).
_CHARTS = (
    ("error_rate", "Error rate per run", "%", "errors per request (%)",
     (("", lambda h: _reading(h, "error_monitoring", ("error_rate_percent", "error_rate"))),)),
    ("latency", "API latency", "ms", "response time (ms)",
     (("p95", lambda h: _reading(h, "performance", ("p95_ms",))),
      ("median", lambda h: _reading(h, "performance", ("median_ms",))))),
    ("disk", "Disk used", "%", "used (%)",
     (("", lambda h: _reading(h, "disk_usage", ("used_percent",))),)),
    ("tmp_folder", "Temp folder size", "MB", "size (MB)",
     (("", _temp_folder),)),
)


def _threshold_pairs(value, defaults):
    """[(name, number)] from a {name: value} mapping in the figures, else the defaults."""
    pairs = []
    if isinstance(value, dict):
        for name, _default in defaults:
            got = number(value.get(name))
            if got is not None:
                pairs.append((name, got))
    return pairs or list(defaults)


def _first_figures(report, step_name, predicate):
    for _host, data in sorted(hosts_of(report).items()):
        figures = figures_of(find_step(data, step_name))
        if predicate(figures):
            return figures
    return {}


def _thresholds(chart_id, report):
    """[(label, value, kind)] to draw, from the current report's figures or the guide's defaults."""
    if chart_id == "error_rate":
        figures = _first_figures(report, "error_monitoring", lambda f: isinstance(f.get("thresholds_percent"), dict))
        pairs = _threshold_pairs(figures.get("thresholds_percent"), DEFAULT_ERROR_THRESHOLDS)
        return [("%s %s %%" % (name, fmt_number(v)), v, name) for name, v in pairs]
    if chart_id == "latency":
        figures = _first_figures(report, "performance", lambda f: number(f.get("target_ms")) is not None)
        target = number(figures.get("target_ms"))
        target = DEFAULT_LATENCY_TARGET_MS if target is None else target
        return [("target %s ms" % fmt_number(target), target, "target")]
    if chart_id == "disk":
        keys = ("warning_percent", "critical_percent")
        figures = _first_figures(report, "disk_usage", lambda f: isinstance(f.get("thresholds_percent"), dict)
                                 or any(number(f.get(k)) is not None for k in keys))
        given = figures.get("thresholds_percent")
        if not isinstance(given, dict):
            given = dict((k[:-len("_percent")], figures.get(k)) for k in keys)
        pairs = _threshold_pairs(given, DEFAULT_DISK_THRESHOLDS)
        return [("%s %s %%" % (name, fmt_number(v)), v, "alert" if name == "warning" else "high") for name, v in pairs]
    caps = []
    for _host, data in sorted(hosts_of(report).items()):
        cap = number(figures_of(find_step(data, "tmp_cleanup")).get("cap_mb"))
        if cap is None:
            cap = number(figures_of(find_step(data, "disk_usage")).get("folder_limit_mb"))
        if cap is not None and cap not in caps:
            caps.append(cap)
    caps = caps or [DEFAULT_TMP_CAP_MB]
    return [("cap %s MB" % fmt_number(c), c, "high") for c in sorted(caps)[:3]]


def chart_data(report, history):
    """Per chart: {"id", "title", "unit", "axis", "series": {(host, kind): [(time, value or None)]},
    "thresholds": [(label, value, kind)]}, over the runs in time order.

    A gap (None) is recorded where a host's step ran without the figure or
    the host did not complete the run; a run where the step did not run at
    all (another schedule, another inventory) adds nothing, so the line
    continues across it.
    """
    runs = runs_of(report, history)
    charts = []
    for chart_id, title, unit, axis, kinds in _CHARTS:
        series = collections.OrderedDict()
        for run in runs:
            when = report_time(run)
            if when is None:
                continue
            for host, data in sorted(hosts_of(run).items()):
                if not isinstance(data, dict):
                    continue
                for kind, read in kinds:
                    ran, value = read(data)
                    if ran or data.get("completed") is False:
                        series.setdefault((str(host), kind), []).append((when, value))
        charts.append({"id": chart_id, "title": title, "unit": unit, "axis": axis, "series": series,
                       "thresholds": _thresholds(chart_id, report)})
    return charts


def runs_of(report, history):
    """The runs to chart, oldest first: the history without the current run, then the current run."""
    own = (report.get("schedule"), report.get("run_id"))
    runs = [r for r in (history or []) if is_report(r) and (r.get("schedule"), r.get("run_id")) != own]
    runs.sort(key=run_key)
    return runs + [report]


def host_colours(report, runs, limit):
    """{host: index} for the ``limit`` hosts that get a colour, a marker and a legend entry, the same in every chart.

    The current run's hosts come first, worst status first, then hosts seen
    only in earlier runs; the rest are drawn thin and grey.
    """
    current = sorted(hosts_of(report).items(),
                     key=lambda item: (-STATUS_RANK.get(item[1].get("worst_status") if isinstance(item[1], dict)
                                                        else None, 3), str(item[0])))
    order = [str(h) for h, _d in current]
    for run in runs:
        for host in sorted(hosts_of(run)):
            if str(host) not in order:
                order.append(str(host))
    return dict((host, i) for i, host in enumerate(order[:max(0, limit)]))
