# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a run report, and the earlier reports it is compared with, as one
self-contained HTML page, from the report role's autoescaping Jinja2
template (roles/report/templates/report.html.j2).

The page has to open from a CI artifact, an AWX job's files or an e-mail
attachment, and is read by people deciding whether to act, so:

- it carries no JavaScript and loads nothing (no external CSS, fonts or
  images; its Content-Security-Policy forbids both, as a second line should
  the escaping ever miss something);
- every text taken from the report is redacted here (report_redact) and
  escaped by the template's autoescaping; only the charts, which report_svg
  draws and escapes itself, are inserted as markup;
- status is shown as text and symbol as well as colour;
- the markup is XHTML-compatible, so the page also parses as XML, which the
  tests use to check it is well-formed.

This file decides what the page says (the view: verdict, table, charts,
details); the template decides how it looks. AnsiballZ ships only the .py
files of module_utils, so the template's text is passed in: the
runbook_report action plugin and the runbook_journal callback read it on
the controller. Jinja2 is the controller's (ansible-core requires it); on a
Python without it the page is not rendered and the caller says so.
"""

from __future__ import annotations

import collections
import datetime
import json
import re

from ansible.module_utils.report_chart_data import chart_data, host_colours, runs_of
from ansible.module_utils.report_history import hosts_of, parse_time, report_time, stamp, steps_of
from ansible.module_utils.report_redact import clean_text
from ansible.module_utils.report_svg import render_chart
from ansible.module_utils.runbook_common import SEVERITIES, STATUS_RANK

try:
    from jinja2 import Environment, StrictUndefined
    from markupsafe import Markup
    HAS_JINJA2 = True
except ImportError:  # a target's Python; the page is rendered on the controller
    HAS_JINJA2 = False

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
COUNT_ORDER = ("ok", "warning", "critical", "failed", "skipped", "not_applicable", "not_run")
MAX_FIGURES_CHARS = 20000
WIDE_TABLE_HOSTS = 6  # more hosts than this: a row per host instead of a row per step

# Nothing may load or run: defence in depth should the escaping ever fail.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _status(value):
    return value if value in STATUS_RANK else "failed"


def _severity(value):
    """A severity worth showing next to a status, or None."""
    return value if value in SEVERITIES and value != "none" else None


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def link_target(value):
    """A link target: http(s) or a relative path, redacted; anything else (javascript:, data:, file:) is None."""
    text = clean_text(value).strip()
    if text.lower().startswith(("http://", "https://")):
        return text
    head = re.split(r"[/?#]", text, 1)[0]
    if not text or ":" in head or text.startswith("//") or "\\" in text:
        return None
    return text


def _counts(report):
    counts = collections.OrderedDict((s, 0) for s in COUNT_ORDER)
    for data in hosts_of(report).values():
        for step in steps_of(data):
            status = _status(step.get("status"))
            counts[status] = counts.get(status, 0) + 1
    return counts


def _step_names(report):
    names = []
    for _host, data in sorted(hosts_of(report).items()):
        for step in steps_of(data):
            name = str(step.get("step", "unnamed"))
            if name not in names:
                names.append(name)
    return names


def _interruption(report):
    reason = report.get("interruption")
    if isinstance(reason, dict):
        reason = reason.get("reason") or reason.get("message")
    return clean_text(reason) if reason else ""


def _incomplete(data):
    return isinstance(data, dict) and data.get("completed") is False


def _problems(step):
    problems = step.get("problems") if isinstance(step.get("problems"), list) else []
    return [clean_text(p) for p in problems if p not in (None, "")]


def verdict_view(report):
    """The verdict box and the notices under it."""
    status = _status(report.get("worst_status"))
    hosts = hosts_of(report)
    counts = _counts(report)
    total = sum(counts.values())
    return {
        "status": status,
        "severity": report.get("worst_severity") if report.get("worst_severity") in SEVERITIES else "none",
        "sentence": VERDICT_SENTENCE[status],
        "hosts": _plural(len(hosts), "host"),
        "checks": _plural(total, "check"),
        "counts": [(name, count) for name, count in counts.items() if count],
        "interrupted": bool(report.get("interrupted")),
        "reason": _interruption(report),
        "incomplete": [clean_text(h) for h in sorted(str(h) for h, d in hosts.items() if _incomplete(d))],
        "check_mode": bool(report.get("check_mode")),
    }


def _cell(data, name, anchor_base):
    """One table cell: the host's step called ``name``, or why it has none."""
    for index, step in enumerate(steps_of(data)):
        if str(step.get("step", "unnamed")) == name:
            problems = step.get("problems") if isinstance(step.get("problems"), list) else []
            return {"missing": None, "status": _status(step.get("status")),
                    "severity": _severity(step.get("severity")), "problems": len([p for p in problems if p]),
                    "anchor": "%s-s%d" % (anchor_base, index), "summary": clean_text(step.get("summary"))}
    return {"missing": "not_reached" if _incomplete(data) else "not_part"}


def matrix_view(report, host_ids):
    """The hosts x steps table: a row per step for a few hosts (it reads like the run), else a row per host."""
    hosts = sorted(hosts_of(report).items(), key=lambda item: str(item[0]))
    names = _step_names(report)
    heads = [{"name": clean_text(h), "id": host_ids[str(h)], "incomplete": _incomplete(d)} for h, d in hosts]
    if len(hosts) <= WIDE_TABLE_HOSTS:
        rows = [{"head": clean_text(name), "cells": [_cell(d, name, host_ids[str(h)]) for h, d in hosts]}
                for name in names]
        return {"by": "step", "hosts": heads, "steps": [clean_text(n) for n in names], "rows": rows}
    rows = [{"host": head, "cells": [_cell(d, name, head["id"]) for name in names]}
            for head, (_h, d) in zip(heads, hosts)]
    return {"by": "host", "hosts": heads, "steps": [clean_text(n) for n in names], "rows": rows}


def _figures_text(figures):
    try:
        text = json.dumps(figures, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(figures)
    if len(text) > MAX_FIGURES_CHARS:
        text = text[:MAX_FIGURES_CHARS] + "\n\u2026 (%d more characters)" % (len(text) - MAX_FIGURES_CHARS)
    return clean_text(text)


def details_view(report, host_ids):
    """Per host, every step with its summary, problems and figures."""
    out = []
    for host, data in sorted(hosts_of(report).items(), key=lambda item: str(item[0])):
        hid = host_ids[str(host)]
        steps = []
        for index, step in enumerate(steps_of(data)):
            figures = step.get("figures")
            steps.append({"status": _status(step.get("status")), "anchor": "%s-s%d" % (hid, index),
                          "name": clean_text(step.get("step", "unnamed")), "severity": _severity(step.get("severity")),
                          "alert": step.get("alert") is True, "summary": clean_text(step.get("summary")),
                          "problems": _problems(step), "figures": _figures_text(figures) if figures else None})
        out.append({"id": hid, "name": clean_text(host), "incomplete": _incomplete(data), "steps": steps,
                    "status": _status(data.get("worst_status") if isinstance(data, dict) else None)})
    return out


def _epoch_stamp(value):
    try:
        return stamp(datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc))
    except (TypeError, ValueError, OverflowError, OSError):
        return "time unknown"


def incidents_view(report):
    """Per host, the watch's incident (report.watch.incidents) and its timeline, oldest entry first.

    A watch report that opened, reminded of or resolved an incident carries
    it whole; the page shows what happened when, so the reader of a
    "resolved" message sees the outage it ends. Other reports: [].
    """
    watch = report.get("watch") if isinstance(report.get("watch"), dict) else {}
    incidents = watch.get("incidents") if isinstance(watch.get("incidents"), dict) else {}
    out = []
    for host, incident in sorted(incidents.items(), key=lambda item: str(item[0])):
        if not isinstance(incident, dict):
            continue
        timeline = incident.get("timeline") if isinstance(incident.get("timeline"), list) else []
        entries = [{"at": _epoch_stamp(e.get("ts")), "event": clean_text(e.get("event") or "?"),
                    "severity": _severity(e.get("severity")), "summary": clean_text(e.get("summary"))}
                   for e in timeline if isinstance(e, dict)]
        resolved = incident.get("resolved_at") is not None
        out.append({"host": clean_text(host), "id": clean_text(incident.get("id") or "?"),
                    "severity": _severity(incident.get("severity")),
                    "state": ("resolved %s" % _epoch_stamp(incident["resolved_at"])) if resolved else "open",
                    "opened": _epoch_stamp(incident.get("opened_at")), "entries": entries})
    return out


def charts_view(report, history, options):
    """The trend charts (SVG markup from report_svg), what they cover, and what they leave out."""
    runs = runs_of(report, history)
    colours = host_colours(report, runs, int(options.get("legend_hosts", 8)))
    current = report_time(report)
    current_ts = current.timestamp() if current else None
    drawn, empty = [], []
    for chart in chart_data(report, history):
        svg = render_chart(chart, colours, report, current_ts)
        if svg is None:
            empty.append(chart["title"])
        else:
            drawn.append(svg)
    timed = [t for t in (report_time(r) for r in runs) if t is not None]
    if options.get("history_label"):
        scope = clean_text(options["history_label"])
    elif len(timed) > 1:
        scope = "%d runs from %s to %s" % (len(timed), stamp(min(timed)), stamp(max(timed)))
    else:
        scope = "this run only: no earlier reports to compare with"
    hints = []
    if empty:
        hints.append("Not charted, no figures in these runs: %s." % ", ".join(empty))
    unreadable = options.get("unreadable_reports") or 0
    if isinstance(unreadable, (list, tuple)):
        unreadable = len(unreadable)
    if unreadable:
        hints.append("%d earlier report file%s could not be read and %s left out."
                     % (unreadable, "" if unreadable == 1 else "s", "was" if unreadable == 1 else "were"))
    return {"scope": scope, "svgs": drawn, "hints": hints}


def page_view(report, history, options=None):
    """Everything the page shows, as plain data (text redacted, not escaped; the charts as SVG markup)."""
    if not isinstance(report, dict):
        raise TypeError("report must be a dict (a run report), got %s" % type(report).__name__)
    options = dict(options or {})
    schedule = clean_text(report.get("schedule") or "unknown")
    environment = clean_text(report.get("environment") or "unknown")
    marks = [mark for mark, on in (("interrupted", report.get("interrupted")), ("check mode", report.get("check_mode")))
             if on]
    host_ids = dict((str(h), "h%d" % i) for i, h in enumerate(sorted(str(k) for k in hosts_of(report))))
    meta = ["run %s" % clean_text(report.get("run_id") or "unknown")]
    started = parse_time(report.get("started_at"))
    generated = parse_time(report.get("generated_at"))
    if started:
        meta.append("started %s" % stamp(started))
    if generated:
        meta.append("report written %s" % stamp(generated))
    links = []
    for item in options.get("links") or []:
        try:
            label, target = item
        except (TypeError, ValueError):
            continue
        href = link_target(target)
        if href:
            links.append((clean_text(label), href))
    return {
        "title": clean_text(options.get("title") or "BeMore %s run: %s" % (schedule, environment)),
        "flags": " (%s)" % ", ".join(marks) if marks else "",
        "status": _status(report.get("worst_status")),
        "meta": meta,
        "links": links,
        "verdict": verdict_view(report),
        "matrix": matrix_view(report, host_ids),
        "charts": charts_view(report, history, options),
        "details": details_view(report, host_ids),
        "incidents": incidents_view(report),
        "footer": {"schedule": schedule, "run_id": clean_text(report.get("run_id") or "?"),
                   "environment": environment},
    }


def render_html(report, history, options=None, template=None):
    """The run's HTML page (a str): verdict, hosts x steps, trend charts over ``history``, step details.

    ``report`` is the run's report dict as the report module writes it;
    ``history`` the earlier report dicts (load_history), in any order; the
    current run is dropped from it if present. ``template`` (required) is
    the text of the page template (roles/report/templates/report.html.j2).
    ``options``:

    - ``title``: the page title (default "BeMore <schedule> run: <environment>");
    - ``links``: [(label, href)] shown under the title, e.g. the JSON and
      Markdown reports (only http(s) and relative targets are kept);
    - ``unreadable_reports``: a count (or the list from scan_history) of
      earlier reports that could not be read, stated under the charts;
    - ``legend_hosts``: how many hosts get a colour and a legend entry (8);
    - ``history_label``: text describing what the charts cover.
    """
    if not HAS_JINJA2:
        raise RuntimeError("the HTML page needs Jinja2, which this Python (the controller's has it) lacks")
    if not isinstance(template, str) or not template.strip():
        raise ValueError("template must be the text of the page template (report.html.j2)")
    view = page_view(report, history, options)
    view["charts"]["svgs"] = [Markup(svg) for svg in view["charts"]["svgs"]]  # drawn and escaped by report_svg
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    return env.from_string(template).render(page=view, look=STATUS_LOOK, csp=CSP)
