# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a run report, and the earlier reports it is compared with, as one
self-contained HTML page.

The page has to open from a CI artifact, an AWX job's files or an e-mail
attachment, and is read by people deciding whether to act, so:

- it carries no JavaScript and loads nothing (no external CSS, fonts or
  images; its Content-Security-Policy forbids both, as a second line should
  the escaping ever miss something);
- every text taken from the report is escaped (error messages and summaries
  quote what the backend and its users sent) and passed through a redaction
  of credentials in URLs, bearer tokens and ``password=``-style parameters;
- status is shown as text and symbol as well as colour;
- the markup is XHTML-compatible, so the page also parses as XML, which the
  tests use to check it is well-formed;
- the charts are inline SVG drawn from the figures of the steps; a figure
  that is missing, null or not a number is a gap, never an error, so reports
  written before a figure existed still chart.

Only the standard library is used, and the code stays importable on Python
3.8 (the report module runs on the controller, but module_utils must import
on targets too).
"""

from __future__ import annotations

import collections
import datetime
import errno
import html
import json
import math
import os
import re
import stat

from ansible.module_utils.runbook_clock import now as clock_now

STATUS_RANK = {"ok": 0, "skipped": 0, "not_applicable": 0, "not_run": 0, "warning": 1, "critical": 2, "failed": 3}
SEVERITIES = ("none", "low", "medium", "high", "critical")

# Badge text and symbol per status: the symbol keeps the page readable
# printed in black and white and for readers who do not see the colours.
STATUS_LOOK = {
    "ok": ("OK", "\u2713"),
    "skipped": ("SKIPPED", "\u2013"),
    "not_applicable": ("N/A", "\u2013"),
    "not_run": ("NOT RUN", "\u25cb"),
    "warning": ("WARNING", "\u25b2"),
    "critical": ("CRITICAL", "\u2716"),
    "failed": ("FAILED", "\u2716"),
}
VERDICT_SENTENCE = {
    "ok": "All checks passed.",
    "warning": "Some checks need attention.",
    "critical": "Critical findings: act now, by the guide's escalation table.",
    "failed": "Some checks could not run or a host failed: the picture is incomplete.",
}

# The guide's numbers, used when a report does not carry its own.
DEFAULT_ERROR_THRESHOLDS = (("target", 0.1), ("alert", 1.0), ("high", 5.0))
DEFAULT_LATENCY_TARGET_MS = 200.0
DEFAULT_TMP_CAP_MB = 500.0
DEFAULT_DISK_THRESHOLDS = (("warning", 80.0), ("critical", 90.0))  # disk_usage role defaults

MAX_REPORT_BYTES = 8 * 1024 * 1024  # a report is a few kB; anything this big is not one
MAX_FIGURES_CHARS = 20000
REPORT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# --- text: redaction, cleaning, escaping -----------------------------------

# Greedy up to the last "@" before the host, so a password holding an "@"
# is hidden whole.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s<>\"']*@")
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)=[^&\s\"'<>]+")
# A credential after "Bearer"/"Basic" has a digit or a symbol in it: prose
# such as "basic authentication." is left alone.
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)\s+(?=[A-Za-z]*(?:[0-9+/=_~-]|\.[A-Za-z0-9]))[A-Za-z0-9._~+/=-]{8,}")
_ANSI = re.compile("\x1b\\[[0-9;?]*[ -/]*[@-~]")
# Characters XML 1.0 forbids (and C0/C1 controls a browser would show as
# boxes): replaced, so that a log line cannot break the page.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def redact(text):
    """``text`` with credentials in URLs, bearer/basic tokens and secret-looking parameters replaced by ``***``."""
    text = _USERINFO.sub(r"\1***@", text)
    text = _SECRET_PARAM.sub(lambda m: m.group(1) + "=***", text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + " ***", text)


def clean_text(value):
    """A report value as printable, redacted text (not yet escaped)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    value = _ANSI.sub("", value)
    return _UNPRINTABLE.sub("\ufffd", redact(value))


def _e(value):
    return html.escape(clean_text(value), quote=True)


def _status(value):
    return value if value in STATUS_RANK else "failed"


def _badge(status, count=None):
    label, symbol = STATUS_LOOK.get(status, STATUS_LOOK["failed"])
    return '<span class="badge s-%s"><span class="sym" aria-hidden="true">%s</span> %s%s</span>' % (
        status if status in STATUS_LOOK else "failed", symbol, "" if count is None else "%d " % count, label)


# --- numbers and times -----------------------------------------------------

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


_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")
_RUN_ID_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d+))?Z")
UTC = datetime.timezone.utc


def _to_datetime(parts, zone=None):
    year, month, day, hour, minute, second, fraction = parts
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    when = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        when -= sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return when


def parse_time(text):
    """An aware UTC datetime from an ISO 8601 time stamp (naive means UTC), or None."""
    match = _ISO.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    try:
        return _to_datetime(match.groups()[:7], match.group(8))
    except ValueError:
        return None


def report_time(report):
    """When the run happened: its start, else the time in its run id, else when it was written; or None."""
    when = parse_time(report.get("started_at"))
    if when is None:
        match = _RUN_ID_TIME.match(str(report.get("run_id") or ""))
        if match:
            try:
                when = _to_datetime(match.groups())
            except ValueError:
                when = None
    return when or parse_time(report.get("generated_at"))


def _run_key(report):
    when = report_time(report)
    return (when.timestamp() if when else float("-inf"), str(report.get("run_id") or ""))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day(when):
    return "%s %d" % (_MONTHS[when.month - 1], when.day)


def _stamp(when):
    return "%04d-%02d-%02d %02d:%02d UTC" % (when.year, when.month, when.day, when.hour, when.minute)


# --- history ---------------------------------------------------------------

HistoryScan = collections.namedtuple("HistoryScan", "reports unreadable")
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_FILE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR, getattr(errno, "EMLINK", errno.ELOOP))


def _is_report(data):
    return isinstance(data, dict) and isinstance(data.get("hosts"), dict) and "run_id" in data


def _read_dir(dir_fd, label, unreadable):
    """The reports in one open schedule directory.

    Files are opened relative to the directory's descriptor with O_NOFOLLOW,
    so a symlink (``latest.json`` or one planted to point out of the report
    root) is never read; report files are written as regular files.
    """
    found = []
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError:
        unreadable.append(label + "/")
        return found
    for name in names:
        if not name.endswith(".json") or name.startswith((".", "latest")):
            continue
        try:
            fd = os.open(name, _O_FILE, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in _LINK_ERRORS:
                unreadable.append("%s/%s" % (label, name))
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                continue
            if info.st_size > MAX_REPORT_BYTES:
                unreadable.append("%s/%s" % (label, name))
                continue
            with os.fdopen(fd, "rb") as handle:
                fd = None
                raw = handle.read(MAX_REPORT_BYTES + 1)
            data = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            unreadable.append("%s/%s" % (label, name))
            continue
        finally:
            if fd is not None:
                os.close(fd)
        if _is_report(data):
            found.append(data)
    return found


def scan_history(report_root, schedule, environment=None, now=None, quarter_days=92, last_runs=30):
    """The earlier reports to chart with a run, and the files that could not be read.

    For ``quarterly``, every report of any schedule under ``report_root``
    that ran within the last ``quarter_days`` days before ``now`` (every run
    of every host in the quarter); for any other schedule, the newest
    ``last_runs`` reports of that schedule. ``environment``, when given,
    keeps only the reports of that environment. Reports come oldest first.

    Returns ``HistoryScan(reports, unreadable)``; ``unreadable`` names the
    ``.json`` files (relative to ``report_root``) that could not be read or
    parsed. Symbolic links are never followed below ``report_root``;
    ``latest.*`` links, dot files and JSON that is not a report are ignored.
    A missing ``report_root`` is an empty history (the first run).
    """
    if not isinstance(schedule, str) or not REPORT_NAME.match(schedule):
        raise ValueError("schedule %r may only contain letters, digits, '_' and '-'" % (schedule,))
    if now is None:
        now = datetime.datetime.fromtimestamp(clock_now(), UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    unreadable = []
    try:
        root_fd = os.open(report_root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return HistoryScan([], [])
        raise ValueError("report_root %r cannot be opened as a directory: %s" % (report_root, exc.strerror))
    try:
        quarterly = schedule == "quarterly"
        if quarterly:
            subdirs = sorted(n for n in os.listdir(root_fd) if REPORT_NAME.match(n))
        else:
            subdirs = [schedule]
        reports = []
        for subdir in subdirs:
            try:
                dir_fd = os.open(subdir, _O_DIR, dir_fd=root_fd)
            except OSError:
                continue  # not there yet, not a directory, or a symlink
            try:
                reports.extend(_read_dir(dir_fd, subdir, unreadable))
            finally:
                os.close(dir_fd)
    finally:
        os.close(root_fd)
    if environment is not None:
        reports = [r for r in reports if r.get("environment") == environment]
    reports.sort(key=_run_key)
    if quarterly:
        since = now - datetime.timedelta(days=quarter_days)
        reports = [r for r in reports if report_time(r) is not None and report_time(r) >= since]
    elif last_runs > 0:
        reports = reports[-last_runs:]
    return HistoryScan(reports, unreadable)


def load_history(report_root, schedule, environment=None, now=None, quarter_days=92, last_runs=30):
    """The earlier report dicts to chart, oldest first; see scan_history (which also names unreadable files)."""
    return scan_history(report_root, schedule, environment, now, quarter_days, last_runs).reports


# --- reading figures -------------------------------------------------------

def _hosts(report):
    hosts = report.get("hosts")
    return hosts if isinstance(hosts, dict) else {}


def _steps(host):
    steps = host.get("steps") if isinstance(host, dict) else None
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def _find_step(host, name):
    for step in _steps(host):
        if step.get("step") == name:
            return step
    return None


def _figures(step):
    figures = step.get("figures") if step else None
    return figures if isinstance(figures, dict) else {}


def _reading(host, step_name, keys):
    """(step ran, value): the first number among ``keys`` in that step's figures."""
    step = _find_step(host, step_name)
    if step is None:
        return False, None
    figures = _figures(step)
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
    for _host, data in sorted(_hosts(report).items()):
        figures = _figures(_find_step(data, step_name))
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
    for _host, data in sorted(_hosts(report).items()):
        cap = number(_figures(_find_step(data, "tmp_cleanup")).get("cap_mb"))
        if cap is None:
            cap = number(_figures(_find_step(data, "disk_usage")).get("folder_limit_mb"))
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
    runs = _runs(report, history)
    charts = []
    for chart_id, title, unit, axis, kinds in _CHARTS:
        series = collections.OrderedDict()
        for run in runs:
            when = report_time(run)
            if when is None:
                continue
            for host, data in sorted(_hosts(run).items()):
                if not isinstance(data, dict):
                    continue
                for kind, read in kinds:
                    ran, value = read(data)
                    if ran or data.get("completed") is False:
                        series.setdefault((str(host), kind), []).append((when, value))
        charts.append({"id": chart_id, "title": title, "unit": unit, "axis": axis, "series": series,
                       "thresholds": _thresholds(chart_id, report)})
    return charts


def _runs(report, history):
    """The runs to chart, oldest first: the history without the current run, then the current run."""
    own = (report.get("schedule"), report.get("run_id"))
    runs = [r for r in (history or []) if _is_report(r) and (r.get("schedule"), r.get("run_id")) != own]
    runs.sort(key=_run_key)
    return runs + [report]


# --- SVG charts ------------------------------------------------------------

# Okabe-Ito colours (distinguishable with the common colour-vision
# deficiencies), each paired with its own marker shape.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#8c564b")
OTHER_COLOUR = "#a0a7b0"
THRESHOLD_COLOUR = {"target": "#1a7f37", "alert": "#bc4c00", "high": "#cf222e", "warning": "#bc4c00",
                    "critical": "#cf222e"}
_SHAPES = ('<circle r="3.6"%s/>', '<rect x="-3.3" y="-3.3" width="6.6" height="6.6"%s/>',
           '<path d="M0,-4.8L4.8,0L0,4.8L-4.8,0Z"%s/>', '<path d="M0,-4.6L4.4,3.2L-4.4,3.2Z"%s/>')
_CLIPPED_SHAPE = '<path d="M0,-6L5.5,3.5L-5.5,3.5Z"%s/>'

WIDTH = 640
LEFT, RIGHT, TOP, PLOT_H = 58, 18, 56, 210
CLIP_FACTOR = 4.0  # values above this multiple of the highest threshold are clipped
MARK_EVERY_POINT = 60  # series longer than this get markers only where needed
_TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
               7 * 86400, 14 * 86400, 28 * 86400, 91 * 86400, 182 * 86400, 364 * 86400)


def _c(value):
    text = "%.2f" % value
    return text.rstrip("0").rstrip(".") if "." in text else text


def nice_step(raw):
    """The smallest of 1, 2, 2.5, 5 x 10^k that is at least ``raw`` (> 0)."""
    exponent = math.floor(math.log10(raw))
    base = 10.0 ** exponent
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * base >= raw * (1 - 1e-9):
            return factor * base
    return 10.0 * base


def y_scale(values, thresholds, fixed_max=None):
    """(y_max, tick step, clipped): the axis from 0 that shows every threshold.

    A value beyond CLIP_FACTOR times the highest threshold is clipped rather
    than squashing the thresholds into the axis; its marker says so.
    """
    if fixed_max:
        return fixed_max, fixed_max / 5.0, any(v > fixed_max for v in values)
    top = max(thresholds) if thresholds else 0.0
    peak = max(values) if values else 0.0
    want = max(peak * 1.05, top * 1.15)
    clipped = top > 0 and peak > top * CLIP_FACTOR
    if clipped:
        want = top * CLIP_FACTOR
    if want <= 0:
        want = 1.0
    step = nice_step(want / 5.0)
    return step * math.ceil(want / step - 1e-9), step, clipped


def _time_axis(times):
    """(t_min, t_max, ticks as epoch seconds, step)."""
    low, high = min(times), max(times)
    span = high - low
    if span < 600:
        middle = (low + high) / 2.0
        low, high, span = middle - 300, middle + 300, 600
    pad = span * 0.04
    low, high = low - pad, high + pad
    step = next((s for s in _TIME_STEPS if (high - low) / s <= 6), _TIME_STEPS[-1])
    first = math.ceil(low / step) * step
    ticks = []
    tick = first
    while tick <= high:
        ticks.append(tick)
        tick += step
    return low, high, ticks, step


def _legend_label(text, limit=34):
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _disk_forecast(report):
    """{host: (mount, forecast text)} from the current run's disk_usage figures."""
    out = {}
    for host, data in _hosts(report).items():
        figures = _figures(_find_step(data, "disk_usage"))
        if not figures:
            continue
        days = number(figures.get("days_until_full"))
        mount = _legend_label(clean_text(figures.get("mount")), 24) if figures.get("mount") else ""
        out[str(host)] = (mount, "no growth forecast" if days is None else "full in ~%s days" % fmt_number(days))
    return out


def render_chart(chart, colours, report, current_time):
    """One chart as an SVG element (a string); None when it has no value at all."""
    values = [v for points in chart["series"].values() for _t, v in points if v is not None]
    if not values:
        return None
    unit = chart["unit"]
    thresholds = chart["thresholds"]
    fixed = 100.0 if chart["id"] == "disk" else None
    y_max, y_step, clipped_any = y_scale(values, [t[1] for t in thresholds], fixed)
    bottom = TOP + PLOT_H
    right = WIDTH - RIGHT

    def y_of(value):
        return bottom - min(max(value, 0.0), y_max) / y_max * PLOT_H

    times = [t.timestamp() for points in chart["series"].values() for t, _v in points]
    t_low, t_high, t_ticks, t_step = _time_axis(times)

    def x_of(when):
        return LEFT + (when - t_low) / (t_high - t_low) * (right - LEFT)

    hosts_here = []
    for host, _kind in chart["series"]:
        if host not in hosts_here:
            hosts_here.append(host)
    named = sorted((h for h in hosts_here if h in colours), key=lambda h: colours[h])
    others = [h for h in hosts_here if h not in colours]

    def colour_of(host):
        return PALETTE[colours[host] % len(PALETTE)] if host in colours else OTHER_COLOUR

    def shape_of(host):
        return colours[host] % len(_SHAPES) if host in colours else 0

    forecast = _disk_forecast(report) if chart["id"] == "disk" else {}
    legend = []
    for host in named:
        label = _legend_label(clean_text(host))
        if host in forecast:
            mount, text = forecast[host]
            label += "%s: %s" % ((" (%s)" % mount) if mount else "", text)
        legend.append((colour_of(host), label, shape_of(host)))
    if others:
        legend.append((OTHER_COLOUR, "%d other host%s" % (len(others), "" if len(others) == 1 else "s"), None))
    if chart["id"] == "latency":
        legend.append(("#444", "solid: p95, dashed: median", "style"))

    # Legend rows under the plot, estimated at 6.7 px per character.
    legend_top = bottom + 64
    rows, x, row = [[]], LEFT, 0
    for entry in legend:
        width = 34 + len(entry[1]) * 6.7 + 18
        if x + width > right and rows[row]:
            rows.append([])
            row += 1
            x = LEFT
        rows[row].append((x, entry))
        x += width
    height = legend_top + len(rows) * 18 + 8

    out = []
    svg_id = "chart-" + chart["id"]
    out.append('<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="%s" data-chart="%s" viewBox="0 0 %d %d" '
               'width="100%%" role="img" aria-labelledby="%s-title" font-family="inherit" font-size="12">'
               % (svg_id, chart["id"], WIDTH, height, svg_id))
    described = ", ".join(t[0] for t in thresholds)
    out.append('<title id="%s-title">%s (%s), per host; lines: %s</title>'
               % (svg_id, html.escape(chart["title"]), html.escape(unit), html.escape(described)))
    out.append('<text class="c-title" x="%d" y="20" font-size="15" font-weight="600" fill="#1f2328">%s</text>'
               % (LEFT - 44, html.escape(chart["title"])))
    subtitle = "%s per host and run" % chart["axis"]
    if clipped_any:
        subtitle += "; values above %s %s are drawn at the top edge (\u25b2)" % (fmt_number(y_max), unit)
    out.append('<text class="c-sub" x="%d" y="37" font-size="11.5" fill="#59636e">%s</text>'
               % (LEFT - 44, html.escape(subtitle)))

    # Axes and grid. The y ticks carry their value so the scale can be read
    # back from the SVG itself.
    out.append('<g class="y-axis">')
    tick = 0.0
    while tick <= y_max * (1 + 1e-9):
        y = y_of(tick)
        out.append('<g class="y-tick" data-value="%s"><line x1="%d" x2="%d" y1="%s" y2="%s" stroke="%s"/>'
                   '<text x="%d" y="%s" text-anchor="end" fill="#59636e">%s</text></g>'
                   % (fmt_number(tick), LEFT, right, _c(y), _c(y), "#d0d7de" if tick == 0 else "#eef1f4",
                      LEFT - 6, _c(y + 4), fmt_number(tick)))
        tick += y_step
    out.append('<text x="14" y="%s" transform="rotate(-90 14 %s)" text-anchor="middle" fill="#59636e">%s</text>'
               % (_c(TOP + PLOT_H / 2.0), _c(TOP + PLOT_H / 2.0), html.escape(chart["axis"])))
    out.append('</g><g class="x-axis">')
    previous_day = None
    for tick in t_ticks:
        when = datetime.datetime.fromtimestamp(tick, UTC)
        x = x_of(tick)
        out.append('<line x1="%s" x2="%s" y1="%d" y2="%d" stroke="#8c959f"/>' % (_c(x), _c(x), bottom, bottom + 4))
        if t_step < 86400:
            first = "%02d:%02d" % (when.hour, when.minute)
            second = _day(when) if when.date() != previous_day else ""
            previous_day = when.date()
        else:
            first = _day(when) if t_step < 182 * 86400 else "%s %d" % (_MONTHS[when.month - 1], when.year)
            second = str(when.year) if when.year != getattr(previous_day, "year", None) else ""
            previous_day = when.date()
        out.append('<text x="%s" y="%d" text-anchor="middle" fill="#59636e">%s</text>' % (_c(x), bottom + 17, first))
        if second:
            out.append('<text x="%s" y="%d" text-anchor="middle" fill="#59636e">%s</text>'
                       % (_c(x), bottom + 31, second))
    out.append('<text x="%d" y="%d" text-anchor="end" fill="#59636e" font-size="11">run time (UTC)</text></g>'
               % (right, bottom + 44))

    # This run: a faint band so the newest points are easy to find.
    if current_time is not None:
        x = x_of(current_time)
        out.append('<g class="this-run"><line x1="%s" x2="%s" y1="%d" y2="%d" stroke="#8c959f" stroke-dasharray="2 3"/>'
                   '<text x="%s" y="%d" text-anchor="%s" font-size="10.5" fill="#59636e">this run</text></g>'
                   % (_c(x), _c(x), TOP - 2, bottom, _c(x - 4 if x > LEFT + 60 else x + 4), TOP - 4,
                      "end" if x > LEFT + 60 else "start"))

    # Threshold lines under the series, their labels over them.
    labels = []
    for label, value, kind in sorted(thresholds, key=lambda t: t[1]):
        y = y_of(value)
        colour = THRESHOLD_COLOUR.get(kind, "#cf222e")
        out.append('<line class="threshold" data-value="%s" data-label="%s" x1="%d" x2="%d" y1="%s" y2="%s" '
                   'stroke="%s" stroke-width="1.4" stroke-dasharray="6 4"/>'
                   % (fmt_number(value), html.escape(label), LEFT, right, _c(y), _c(y), colour))
        labels.append((y, label, colour))

    # Series: the hosts without a colour first, in grey, under the named ones.
    clip_y = y_of(y_max)
    for host in others + list(reversed(named)):
        colour = colour_of(host)
        shape = _SHAPES[shape_of(host)]
        for (series_host, kind), points in chart["series"].items():
            if series_host != host:
                continue
            dashed = ' stroke-dasharray="5 3"' if kind == "median" else ""
            width = "2" if host in colours else "1.2"
            segments, current = [], []
            for when, value in points:
                if value is None:
                    if current:
                        segments.append(current)
                    current = []
                else:
                    current.append((when, value))
            if current:
                segments.append(current)
            out.append('<g class="series" data-host="%s" data-kind="%s">' % (_e(host), kind or "value"))
            for segment in segments:
                if len(segment) > 1:
                    out.append('<polyline fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round"%s '
                               'points="%s"/>' % (colour, width, dashed, " ".join(
                                   "%s,%s" % (_c(x_of(w.timestamp())), _c(y_of(v))) for w, v in segment)))
            few = len(points) <= MARK_EVERY_POINT
            clipped_here = [p for p in points if p[1] is not None and p[1] > y_max]
            for index, segment in enumerate(segments):
                for position, (when, value) in enumerate(segment):
                    is_last = index == len(segments) - 1 and position == len(segment) - 1
                    over = value > y_max
                    if not (few or len(segment) == 1 or is_last or over):
                        continue
                    x, y = x_of(when.timestamp()), (clip_y if over else y_of(value))
                    fill = colour if kind != "median" else "#ffffff"
                    edge = "#ffffff" if kind != "median" else colour
                    attrs = ' fill="%s" stroke="%s" stroke-width="1.2"' % (fill, edge)
                    marker = (_CLIPPED_SHAPE % ' fill="%s" stroke="#1f2328" stroke-width="1"' % colour) if over \
                        else (shape % attrs)
                    tip = "%s%s, %s: %s %s%s" % (
                        clean_text(host), (" " + kind) if kind else "", _stamp(when), fmt_number(value), unit,
                        " (above the chart)" if over else "")
                    out.append('<g class="point%s" data-value="%s" transform="translate(%s,%s)">%s<title>%s</title></g>'
                               % (" clipped" if over else "", fmt_number(value), _c(x), _c(y), marker,
                                  html.escape(tip)))
                    # On paper there is no hover: a clipped value is written
                    # next to its marker (all of them when few, else the newest).
                    if over and (len(clipped_here) <= 4 or (when, value) == clipped_here[-1]):
                        anchor_end = x > right - 60
                        out.append('<text class="clipped-value" x="%s" y="%s" text-anchor="%s" font-size="11" '
                                   'font-weight="600" fill="%s" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
                                   '%s %s</text>' % (_c(x - 8 if anchor_end else x + 8), _c(y + 12),
                                                     "end" if anchor_end else "start", colour,
                                                     fmt_number(value), html.escape(unit)))
            out.append('</g>')

    # Threshold labels at the left end (the newest points are at the right), moved apart when thresholds are
    # close on this scale (0.1 % and 1 % under a clipped axis).
    placed = []
    for y, label, colour in sorted(labels, key=lambda item: -item[0]):
        text_y = y - 4
        if placed and text_y > placed[-1] - 12:
            text_y = placed[-1] - 12
        placed.append(text_y)
        out.append('<text class="threshold-label" x="%d" y="%s" font-size="11" font-weight="600" '
                   'fill="%s" stroke="#ffffff" stroke-width="3" paint-order="stroke">%s</text>'
                   % (LEFT + 6, _c(text_y), colour, html.escape(label)))

    out.append('<g class="legend">')
    for row_number, row_entries in enumerate(rows):
        y = legend_top + row_number * 18
        for x, (colour, label, shape_index) in row_entries:
            if shape_index == "style":
                out.append('<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-width="2"/>'
                           '<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-width="2" stroke-dasharray="5 3"/>'
                           % (_c(x), _c(x + 12), _c(y - 4), _c(y - 4), colour,
                              _c(x + 16), _c(x + 28), _c(y - 4), _c(y - 4), colour))
            else:
                out.append('<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-width="%s"/>'
                           % (_c(x), _c(x + 28), _c(y - 4), _c(y - 4), colour,
                              "2" if shape_index is not None else "1.2"))
                if shape_index is not None:
                    out.append('<g transform="translate(%s,%s)">%s</g>'
                               % (_c(x + 14), _c(y - 4),
                                  _SHAPES[shape_index] % (' fill="%s" stroke="#ffffff"' % colour)))
            out.append('<text class="legend-item" x="%s" y="%s" fill="#1f2328">%s</text>'
                       % (_c(x + 34), _c(y), html.escape(label)))
    out.append('</g></svg>')
    return "".join(out)


def host_colours(report, runs, limit):
    """{host: index} for the ``limit`` hosts that get a colour, a marker and a legend entry, the same in every chart.

    The current run's hosts come first, worst status first, then hosts seen
    only in earlier runs; the rest are drawn thin and grey.
    """
    current = sorted(_hosts(report).items(),
                     key=lambda item: (-STATUS_RANK.get(item[1].get("worst_status") if isinstance(item[1], dict)
                                                        else None, 3), str(item[0])))
    order = [str(h) for h, _d in current]
    for run in runs:
        for host in sorted(_hosts(run)):
            if str(host) not in order:
                order.append(str(host))
    return dict((host, i) for i, host in enumerate(order[:max(0, limit)]))


# --- the page --------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans",
  "DejaVu Sans", sans-serif; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 40px; }
header h1 { font-size: 22px; margin: 0 0 2px; letter-spacing: -0.01em; }
.meta { color: #59636e; margin: 0; }
.meta span + span::before { content: " \\00b7  "; }
.links { margin: 6px 0 0; }
.links a { color: #0969da; margin-right: 14px; }
section.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
h2 { font-size: 17px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
h4 { font-size: 14px; margin: 0; font-weight: 600; }
.verdict { display: flex; align-items: center; gap: 20px; border-radius: 8px; margin: 18px 0 12px;
  padding: 16px 22px; border: 1px solid; border-left-width: 12px; }
.verdict .word { font-size: 28px; font-weight: 700; letter-spacing: 0.02em; white-space: nowrap; }
.verdict p { margin: 2px 0; }
.verdict .line { font-size: 16px; }
.verdict.s-ok { background: #dafbe1; border-color: #1a7f37; color: #0f5323; }
.verdict.s-warning { background: #fff8c5; border-color: #bf8700; color: #6b4500; }
.verdict.s-critical { background: #ffebe9; border-color: #cf222e; color: #82071e; }
.verdict.s-failed { background: #ffebe9; border-color: #82071e; color: #660018; }
.notice { margin: 8px 0; padding: 9px 14px; border-radius: 6px; border: 1px solid #d0d7de; background: #fff; }
.notice.interrupted { border-color: #bf8700; background: #fff8c5; }
.notice.incomplete { border-color: #cf222e; background: #fff5f5; }
.notice.check { border-color: #0969da; background: #ddf4ff; }
.counts { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.badge { display: inline-block; white-space: nowrap; border-radius: 999px; padding: 1px 9px 1px 7px;
  font-size: 11.5px; font-weight: 700; letter-spacing: 0.03em; border: 1px solid; line-height: 18px; }
.badge .sym { font-weight: 400; }
.s-ok .sym, .badge.s-ok { color: #116329; }
.badge.s-ok { background: #dafbe1; border-color: #4ac26b; }
.badge.s-warning { background: #fff8c5; border-color: #d4a72c; color: #7d4e00; }
.badge.s-critical { background: #ffebe9; border-color: #ff8182; color: #a40e26; }
.badge.s-failed { background: #82071e; border-color: #82071e; color: #fff; }
.badge.s-skipped, .badge.s-not_run, .badge.s-not_applicable {
  background: #f6f8fa; border-color: #d0d7de; color: #59636e; }
.sev { font-size: 11.5px; color: #59636e; white-space: nowrap; }
.sev.high, .sev.critical { color: #a40e26; font-weight: 600; }
.sev.medium { color: #7d4e00; font-weight: 600; }
.scroll { overflow-x: auto; }
table.matrix { border-collapse: collapse; width: 100%; }
table.matrix th, table.matrix td {
  border-bottom: 1px solid #e6e9ed; padding: 8px 10px; text-align: left; vertical-align: top; }
table.matrix thead th { background: #f6f8fa; border-bottom: 1px solid #d0d7de; font-size: 13px; }
table.matrix th[scope=row] { white-space: nowrap; font-weight: 600; }
table.matrix th a { color: inherit; text-decoration: none; }
table.matrix td.s-warning { background: #fffdf0; }
table.matrix td.s-critical, table.matrix td.s-failed { background: #fff8f7; }
td .sum { display: block; margin-top: 3px; font-size: 12.5px; color: #31373d; overflow-wrap: anywhere; }
td .more { font-size: 11.5px; color: #0969da; }
.host-state { display: block; font-weight: 400; font-size: 11.5px; color: #a40e26; }
.wide td .sum { font-size: 11.5px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
figure.chart-box { margin: 0; border: 1px solid #e6e9ed; border-radius: 8px; padding: 8px 8px 2px; background: #fff; }
svg.chart { display: block; height: auto; }
.hint { color: #59636e; font-size: 12.5px; margin: 8px 0 0; }
.host-block { border-top: 1px solid #e6e9ed; padding-top: 4px; }
.host-block:first-of-type { border-top: 0; }
.step { border-left: 4px solid #d0d7de; padding: 6px 12px; margin: 8px 0; }
.step.s-ok { border-left-color: #4ac26b; }
.step.s-warning { border-left-color: #d4a72c; }
.step.s-critical { border-left-color: #cf222e; }
.step.s-failed { border-left-color: #82071e; }
.step .sum { margin: 3px 0; overflow-wrap: anywhere; }
ul.problems { margin: 4px 0; padding-left: 20px; }
ul.problems li { overflow-wrap: anywhere; }
details { margin: 4px 0; }
summary { cursor: pointer; color: #0969da; font-size: 12.5px; }
pre { background: #f6f8fa; border: 1px solid #e6e9ed; border-radius: 6px; padding: 8px 10px; margin: 6px 0;
  font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace;
  white-space: pre-wrap; overflow-wrap: anywhere; max-height: 420px; overflow: auto; }
footer { color: #59636e; font-size: 12px; margin-top: 24px; }
@media (max-width: 700px) {
  main { padding: 12px; } .charts { grid-template-columns: 1fr; } .verdict { display: block; } }
@media print {
  body { background: #fff; font-size: 12px; }
  main { max-width: none; padding: 0; }
  section.card { border: 0; padding: 0; margin: 12px 0; }
  .charts { grid-template-columns: 1fr; }
  figure.chart-box, .step, tr { break-inside: avoid; }
  .scroll { overflow: visible; }
  pre { max-height: none; }
  a { color: inherit; text-decoration: none; }
}
"""

# Nothing may load or run: defence in depth should the escaping ever fail.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _href(value):
    """An escaped link target: http(s) or a relative path; anything else (javascript:, data:, file:) is None."""
    text = clean_text(value).strip()
    if text.lower().startswith(("http://", "https://")):
        return html.escape(text, quote=True)
    head = re.split(r"[/?#]", text, 1)[0]
    if not text or ":" in head or text.startswith("//") or "\\" in text:
        return None
    return html.escape(text, quote=True)


def _counts(report):
    counts = collections.OrderedDict((s, 0) for s in ("ok", "warning", "critical", "failed", "skipped",
                                                      "not_applicable", "not_run"))
    for data in _hosts(report).values():
        for step in _steps(data):
            status = _status(step.get("status"))
            counts[status] = counts.get(status, 0) + 1
    return counts


def _step_names(report):
    names = []
    for _host, data in sorted(_hosts(report).items()):
        for step in _steps(data):
            name = str(step.get("step", "unnamed"))
            if name not in names:
                names.append(name)
    return names


def _interruption(report):
    reason = report.get("interruption")
    if isinstance(reason, dict):
        reason = reason.get("reason") or reason.get("message")
    return clean_text(reason) if reason else ""


def _render_verdict(report):
    status = _status(report.get("worst_status"))
    severity = report.get("worst_severity") if report.get("worst_severity") in SEVERITIES else "none"
    label, symbol = STATUS_LOOK[status]
    hosts = _hosts(report)
    counts = _counts(report)
    total = sum(counts.values())
    out = ['<section class="verdict s-%s" aria-label="verdict">' % status,
           '<div class="word"><span aria-hidden="true">%s</span> %s</div><div>' % (symbol, label),
           '<p class="line"><strong>Verdict: %s</strong>, worst severity <strong>%s</strong>. %s</p>'
           % (label, severity, html.escape(VERDICT_SENTENCE[status]))]
    out.append('<p>%d host%s, %d check%s:</p><div class="counts">'
               % (len(hosts), "" if len(hosts) == 1 else "s", total, "" if total == 1 else "s"))
    for name, count in counts.items():
        if count:
            out.append(_badge(name, count))
    out.append('</div></div></section>')
    if report.get("interrupted"):
        reason = _interruption(report)
        out.append('<p class="notice interrupted"><strong>%s Interrupted run.</strong> The run was stopped%s; '
                   'steps after that did not run, so this report is partial.</p>'
                   % ("\u26a0", (": " + html.escape(reason)) if reason else ""))
    incomplete = sorted(str(h) for h, d in hosts.items() if isinstance(d, dict) and d.get("completed") is False)
    if incomplete:
        out.append('<p class="notice incomplete"><strong>%s %d host%s did not complete the run</strong> '
                   '(unreachable or failed part-way; counted as failed): %s.</p>'
                   % ("\u2716", len(incomplete), "" if len(incomplete) == 1 else "s",
                      ", ".join(_e(h) for h in incomplete)))
    if report.get("check_mode"):
        out.append('<p class="notice check"><strong>Check mode.</strong> Nothing was changed on the hosts: '
                   'what would have been done is reported.</p>')
    return "".join(out)


def _cell(step, anchor):
    status = _status(step.get("status"))
    severity = step.get("severity")
    sev = ""
    if severity in SEVERITIES and severity != "none":
        sev = ' <span class="sev %s">severity %s</span>' % (severity, severity)
    problems = [p for p in (step.get("problems") or []) if p] if isinstance(step.get("problems"), list) else []
    more = ' <a class="more" href="#%s">%d problem%s</a>' % (anchor, len(problems), "" if len(problems) == 1 else "s") \
        if problems else ""
    return '<td class="s-%s">%s%s%s<span class="sum">%s</span></td>' % (
        status, _badge(status), sev, more, _e(step.get("summary")))


def _missing_cell(host):
    if isinstance(host, dict) and host.get("completed") is False:
        return '<td class="s-not_run">%s<span class="sum">not reached: the run stopped on this host</span></td>' \
            % _badge("not_run")
    return '<td><span class="sum">not part of this run</span></td>'


def _render_matrix(report, host_ids):
    hosts = sorted(_hosts(report).items(), key=lambda item: str(item[0]))
    names = _step_names(report)
    if not hosts:
        return '<p>No host took part in this run.</p>'

    def lookup(data, name):
        for index, step in enumerate(_steps(data)):
            if str(step.get("step", "unnamed")) == name:
                return index, step
        return None, None

    def host_head(host, data, scope):
        state = '<span class="host-state">did not complete</span>' \
            if isinstance(data, dict) and data.get("completed") is False else ""
        return '<th scope="%s"><a href="#%s">%s</a>%s</th>' % (scope, host_ids[str(host)], _e(host), state)

    out = []
    if len(hosts) <= 6:
        # Few hosts: a row per step reads top to bottom like the run did.
        out.append('<div class="scroll"><table class="matrix"><thead><tr><th scope="col">Step</th>')
        out.extend(host_head(h, d, "col") for h, d in hosts)
        out.append('</tr></thead><tbody>')
        for name in names:
            out.append('<tr><th scope="row">%s</th>' % _e(name))
            for host, data in hosts:
                index, step = lookup(data, name)
                out.append(_cell(step, "%s-s%d" % (host_ids[str(host)], index)) if step else _missing_cell(data))
            out.append('</tr>')
    else:
        out.append('<div class="scroll"><table class="matrix wide"><thead><tr><th scope="col">Host</th>')
        out.extend('<th scope="col">%s</th>' % _e(n) for n in names)
        out.append('</tr></thead><tbody>')
        for host, data in hosts:
            out.append('<tr>' + host_head(host, data, "row"))
            for name in names:
                index, step = lookup(data, name)
                out.append(_cell(step, "%s-s%d" % (host_ids[str(host)], index)) if step else _missing_cell(data))
            out.append('</tr>')
    out.append('</tbody></table></div>')
    return "".join(out)


def _figures_text(figures):
    try:
        text = json.dumps(figures, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(figures)
    if len(text) > MAX_FIGURES_CHARS:
        text = text[:MAX_FIGURES_CHARS] + "\n\u2026 (%d more characters)" % (len(text) - MAX_FIGURES_CHARS)
    return text


def _render_details(report, host_ids):
    out = []
    for host, data in sorted(_hosts(report).items(), key=lambda item: str(item[0])):
        hid = host_ids[str(host)]
        status = _status(data.get("worst_status") if isinstance(data, dict) else None)
        note = ' <span class="host-state">did not complete the run</span>' \
            if isinstance(data, dict) and data.get("completed") is False else ""
        out.append('<div class="host-block" id="%s"><h3>%s %s%s</h3>' % (hid, _e(host), _badge(status), note))
        steps = _steps(data)
        if not steps:
            out.append('<p>No step reported a result on this host.</p>')
        for index, step in enumerate(steps):
            status = _status(step.get("status"))
            severity = step.get("severity")
            sev = ' <span class="sev %s">severity %s</span>' % (severity, severity) \
                if severity in SEVERITIES and severity != "none" else ""
            alert = ' <span class="sev high">alert</span>' if step.get("alert") is True else ""
            out.append('<div class="step s-%s" id="%s-s%d"><h4>%s %s%s%s</h4>'
                       % (status, hid, index, _badge(status), _e(step.get("step", "unnamed")), sev, alert))
            if step.get("summary"):
                out.append('<p class="sum">%s</p>' % _e(step.get("summary")))
            problems = step.get("problems") if isinstance(step.get("problems"), list) else []
            problems = [p for p in problems if p not in (None, "")]
            if problems:
                out.append('<ul class="problems">%s</ul>' % "".join("<li>%s</li>" % _e(p) for p in problems))
            figures = step.get("figures")
            if figures:
                out.append('<details><summary>Figures</summary><pre>%s</pre></details>' % _e(_figures_text(figures)))
            out.append('</div>')
        out.append('</div>')
    return "".join(out)


def _render_charts(report, history, options):
    runs = _runs(report, history)
    charts = chart_data(report, history)
    colours = host_colours(report, runs, int(options.get("legend_hosts", 8)))
    current = report_time(report)
    current_ts = current.timestamp() if current else None
    drawn, empty = [], []
    for chart in charts:
        svg = render_chart(chart, colours, report, current_ts)
        if svg is None:
            empty.append(chart["title"])
        else:
            drawn.append('<figure class="chart-box">%s</figure>' % svg)
    timed = [t for t in (report_time(r) for r in runs) if t is not None]
    if options.get("history_label"):
        scope = clean_text(options["history_label"])
    elif len(timed) > 1:
        scope = "%d runs from %s to %s" % (len(timed), _stamp(min(timed)), _stamp(max(timed)))
    else:
        scope = "this run only: no earlier reports to compare with"
    out = ['<section class="card charts-card"><h2>Trends</h2><p class="hint">%s. One line per host; dashed lines '
           'are the guide\'s thresholds. Hover a point for its value.</p>' % html.escape(scope)]
    if drawn:
        out.append('<div class="charts">%s</div>' % "".join(drawn))
    hints = []
    if empty:
        hints.append("Not charted, no figures in these runs: %s." % ", ".join(empty))
    unreadable = options.get("unreadable_reports") or 0
    if isinstance(unreadable, (list, tuple)):
        unreadable = len(unreadable)
    if unreadable:
        hints.append("%d earlier report file%s could not be read and %s left out."
                     % (unreadable, "" if unreadable == 1 else "s", "was" if unreadable == 1 else "were"))
    out.extend('<p class="hint">%s</p>' % html.escape(h) for h in hints)
    out.append('</section>')
    return "".join(out)


def render_html(report, history, options=None):
    """The run's HTML page (a str): verdict, hosts x steps, trend charts over ``history``, step details.

    ``report`` is the run's report dict as the report module writes it;
    ``history`` the earlier report dicts (load_history), in any order; the
    current run is dropped from it if present. ``options``:

    - ``title``: the page title (default "BeMore <schedule> run: <environment>");
    - ``links``: [(label, href)] shown under the title, e.g. the JSON and
      Markdown reports (only http(s) and relative targets are kept);
    - ``unreadable_reports``: a count (or the list from scan_history) of
      earlier reports that could not be read, stated under the charts;
    - ``legend_hosts``: how many hosts get a colour and a legend entry (8);
    - ``history_label``: text describing what the charts cover.
    """
    if not isinstance(report, dict):
        raise TypeError("report must be a dict (a run report), got %s" % type(report).__name__)
    options = dict(options or {})
    schedule = clean_text(report.get("schedule") or "unknown")
    environment = clean_text(report.get("environment") or "unknown")
    title = clean_text(options.get("title") or "BeMore %s run: %s" % (schedule, environment))
    status = _status(report.get("worst_status"))
    marks = [mark for mark, on in (("interrupted", report.get("interrupted")), ("check mode", report.get("check_mode")))
             if on]
    flags = " (%s)" % ", ".join(marks) if marks else ""
    host_ids = dict((str(h), "h%d" % i) for i, h in enumerate(sorted(str(k) for k in _hosts(report))))

    meta = ["run %s" % _e(report.get("run_id") or "unknown")]
    started = parse_time(report.get("started_at"))
    generated = parse_time(report.get("generated_at"))
    if started:
        meta.append("started %s" % _stamp(started))
    if generated:
        meta.append("report written %s" % _stamp(generated))
    links = []
    for item in options.get("links") or []:
        try:
            label, target = item
        except (TypeError, ValueError):
            continue
        href = _href(target)
        if href:
            links.append('<a href="%s">%s</a>' % (href, _e(label)))

    out = [u'<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head>',
           '<meta charset="utf-8"/>',
           '<meta http-equiv="Content-Security-Policy" content="%s"/>' % CSP,
           '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
           '<meta name="referrer" content="no-referrer"/>',
           '<meta name="color-scheme" content="light"/>',
           '<title>%s%s: %s</title>' % (STATUS_LOOK[status][0], html.escape(flags), html.escape(title)),
           '<style>%s</style></head><body><main>' % CSS,
           '<header><h1>%s</h1><p class="meta">%s</p>' % (html.escape(title),
                                                          "".join("<span>%s</span>" % m for m in meta))]
    if links:
        out.append('<p class="links">%s</p>' % "".join(links))
    out.append('</header>')
    out.append(_render_verdict(report))
    out.append('<section class="card"><h2>Results by host and step</h2>%s</section>' % _render_matrix(report, host_ids))
    out.append(_render_charts(report, history, options))
    out.append('<section class="card"><h2>Details</h2>%s</section>' % _render_details(report, host_ids))
    out.append('<footer>BeMore maintenance runbooks: %s report of %s, environment %s. This page is self-contained: '
               'no scripts, nothing loaded from the network.</footer>' % (_e(schedule), _e(report.get("run_id") or "?"),
                                                                          _e(environment)))
    out.append('</main></body></html>\n')
    return "".join(out)
