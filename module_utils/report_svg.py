# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One trend chart of the report page as an inline SVG element: its axes,
the guide's threshold lines, a line and markers per host, and its legend.

The geometry is computed here; every text drawn (host names, labels, the
tooltips) is redacted and escaped here, so the page template inserts the
element as it is. The y ticks, threshold lines and points carry their value
(``data-value``) so that the scale can be read back from the SVG itself.

Only the standard library is used, and the code stays importable on Python
3.8 (module_utils must import on targets too).
"""

from __future__ import annotations

import datetime
import html
import math

from ansible.module_utils.report_chart_data import fmt_number, number
from ansible.module_utils.report_history import MONTHS, UTC, day, figures_of, find_step, hosts_of, stamp
from ansible.module_utils.report_redact import clean_text

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
    for host, data in hosts_of(report).items():
        figures = figures_of(find_step(data, "disk_usage"))
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
            second = day(when) if when.date() != previous_day else ""
            previous_day = when.date()
        else:
            first = day(when) if t_step < 182 * 86400 else "%s %d" % (MONTHS[when.month - 1], when.year)
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
            out.append('<g class="series" data-host="%s" data-kind="%s">'
                       % (html.escape(clean_text(host), quote=True), kind or "value"))
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
                        clean_text(host), (" " + kind) if kind else "", stamp(when), fmt_number(value), unit,
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
