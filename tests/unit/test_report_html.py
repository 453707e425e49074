"""module_utils/report_html.py and the report role's page template: the run's HTML page and the history it charts
(report_history, report_chart_data, report_svg, report_redact).

The pages are rendered from the fixture reports in fixtures/reports/ (a
report root with daily, weekly, monthly and quarterly runs of three hosts,
and five current runs: green, critical, a host unreachable, interrupted,
hostile text) and parsed as XML, so every assertion reads the page's
structure, not its source text.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import REPO, register_module_utils

register_module_utils()
from ansible.module_utils import report_history, report_html as rh, report_redact, report_svg  # noqa: E402

with open(os.path.join(REPO, "roles", "report", "templates", "report.html.j2"), encoding="utf-8") as _handle:
    TEMPLATE = _handle.read()

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "reports")
ROOT = os.path.join(FIXTURES, "root")
NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)
X = "{http://www.w3.org/1999/xhtml}"
S = "{http://www.w3.org/2000/svg}"
SCENARIOS = ("green", "critical", "unreachable", "interrupted", "hostile")
# The guide's thresholds, and the cap and disk levels the fixtures carry.
GUIDE_LINES = {"error_rate": {0.1, 1.0, 5.0}, "latency": {200.0}, "tmp_folder": {500.0}, "disk": {80.0, 90.0}}


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        return json.load(handle)


def history_for(report):
    return report_history.load_history(ROOT, report["schedule"], report["environment"], now=NOW)


def render(name_or_report, history=None, options=None):
    report = fixture(name_or_report) if isinstance(name_or_report, str) else name_or_report
    if history is None:
        history = history_for(report)
    page = rh.render_html(report, history, options, TEMPLATE)
    return page, ET.fromstring(page)


def text(element):
    skip = {X + "style", X + "title", S + "title"}
    parts = []

    def walk(node):
        if node.tag in skip:
            return
        parts.append(" " + (node.text or ""))
        for child in node:
            walk(child)
            parts.append(" " + (child.tail or ""))
    walk(element)
    return " ".join("".join(parts).split())


def chart(root, chart_id):
    found = [svg for svg in root.iter(S + "svg") if svg.get("data-chart") == chart_id]
    assert len(found) == 1, "expected one %s chart, found %d" % (chart_id, len(found))
    return found[0]


def y_scale_of(svg):
    """value -> y, fitted to the chart's own y-axis ticks (their printed text and their y)."""
    ticks = []
    for tick in svg.iter(S + "g"):
        if tick.get("class") == "y-tick":
            ticks.append((float(tick.find(S + "text").text), float(tick.find(S + "line").get("y1"))))
    assert len(ticks) >= 3, "a chart needs a y axis with ticks"
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    for value, y in ticks:  # the axis itself must be linear for the fit to mean anything
        assert abs(y0 + (value - v0) * (y1 - y0) / (v1 - v0) - y) < 0.05
    return (lambda value: y0 + (value - v0) * (y1 - y0) / (v1 - v0)), min(y0, y1), max(y0, y1)


def translate(element):
    x, y = re.match(r"translate\(([-\d.]+),([-\d.]+)\)", element.get("transform")).groups()
    return float(x), float(y)


def series(svg, host, kind="value"):
    found = [g for g in svg.iter(S + "g") if g.get("class") == "series" and g.get("data-host") == host
             and g.get("data-kind") == kind]
    assert len(found) == 1, "expected one %s/%s series" % (host, kind)
    return found[0]


def points(group):
    return [g for g in group.iter(S + "g") if (g.get("class") or "").startswith("point")]


# --- the page as a whole ----------------------------------------------------

@pytest.mark.parametrize("name", SCENARIOS)
def test_page_is_well_formed_and_loads_and_runs_nothing(name):
    page, root = render(name)
    assert root.tag == X + "html"
    assert "<script" not in page.lower()
    banned = {"script", "iframe", "object", "embed", "img", "link", "base", "form", "frame", "image", "use",
              "foreignObject"}
    for element in root.iter():
        local = element.tag.split("}")[-1]
        assert local not in banned, "a <%s> element in the %s page" % (local, name)
        for attr, value in element.attrib.items():
            attr = attr.split("}")[-1]
            assert not attr.lower().startswith("on"), "event handler %s=%r" % (attr, value)
            if attr in ("href", "src"):
                assert not re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", value, re.I) or value.startswith("http"), value
    style = "".join(s.text for s in root.iter(X + "style"))
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    csp = [m.get("content") for m in root.iter(X + "meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0]


@pytest.mark.parametrize("name", SCENARIOS)
def test_verdict_and_every_step_name_are_on_the_page(name):
    report = fixture(name)
    _page, root = render(report)
    verdict = [s for s in root.iter(X + "section") if "verdict" in (s.get("class") or "").split()]
    assert len(verdict) == 1
    assert "s-" + report["worst_status"] in verdict[0].get("class")
    verdict_text = text(verdict[0])
    # Readable without colour: the status and severity are words.
    assert "Verdict: %s" % report["worst_status"].upper() in verdict_text
    assert "worst severity %s" % report["worst_severity"] in verdict_text
    table = next(root.iter(X + "table"))
    row_heads = [text(th) for th in table.iter(X + "th") if th.get("scope") == "row"]
    steps = {s["step"] for h in report["hosts"].values() for s in h["steps"]}
    assert set(row_heads) == steps
    details = text(next(s for s in root.iter(X + "section") if text(s).startswith("Details")))
    for step in steps:
        assert step in details


def test_green_run_says_all_passed_and_nothing_else():
    _page, root = render("green")
    body = text(root)
    assert "All checks passed." in body
    for notice in ("Interrupted run", "did not complete", "Check mode"):
        assert notice not in body
    assert [p for p in root.iter(X + "p") if "notice" in (p.get("class") or "")] == []


def test_check_mode_run_says_so():
    report = fixture("green")
    report["check_mode"] = True
    page, root = render(report)
    assert "Check mode. Nothing was changed on the hosts" in text(root)
    assert "(check mode)" in next(root.iter(X + "title")).text


def test_critical_run_shows_each_critical_cell_with_its_summary():
    report = fixture("critical")
    _page, root = render(report)
    cells = [td for td in next(root.iter(X + "table")).iter(X + "td") if td.get("class") == "s-critical"]
    expected = [s for h in report["hosts"].values() for s in h["steps"] if s["status"] == "critical"]
    assert len(cells) == len(expected)
    for step in expected:
        assert any("CRITICAL" in text(td) and step["summary"] in text(td) for td in cells)


def test_unreachable_host_is_named_and_its_missing_steps_marked():
    report = fixture("unreachable")
    _page, root = render(report)
    notice = [p for p in root.iter(X + "p") if "incomplete" in (p.get("class") or "")]
    assert len(notice) == 1 and "1 host did not complete the run" in text(notice[0]) and "api2" in text(notice[0])
    table = next(root.iter(X + "table"))
    heads = [text(th) for th in table.iter(X + "th") if th.get("scope") == "col"]
    assert "api2 did not complete" in heads
    column = heads.index("api2 did not complete")
    rows = [tr for tr in table.iter(X + "tr")
            if tr.find(X + "th") is not None and tr.find(X + "th").get("scope") == "row"]
    by_step = dict((text(tr.find(X + "th")), tr.findall(X + "td")[column - 1]) for tr in rows)
    assert "FAILED" in text(by_step["health"]) and "SSH connection timed out" in text(by_step["health"])
    for step in ("error_monitoring", "log_management", "disk_usage"):
        assert "NOT RUN" in text(by_step[step]) and "not reached" in text(by_step[step])


def test_interrupted_run_says_so_with_its_reason():
    report = fixture("interrupted")
    _page, root = render(report)
    body = text(root)
    assert "Interrupted run." in body and report["interruption"]["reason"] in body
    assert "(interrupted)" in next(root.iter(X + "title")).text


def test_figures_are_collapsed_and_problems_listed():
    report = fixture("critical")
    _page, root = render(report)
    details = list(root.iter(X + "details"))
    with_figures = [s for h in report["hosts"].values() for s in h["steps"] if s["figures"]]
    assert len(details) == len(with_figures)
    assert all(d.get("open") is None for d in details)
    shown = [json.loads(d.find(X + "pre").text) for d in details]
    assert {"median_ms": 388.0, "p95_ms": 1450.0}.items() <= next(f for f in shown if "p95_ms" in f).items()
    problems = [text(li) for ul in root.iter(X + "ul") if ul.get("class") == "problems" for li in ul]
    assert problems == [p for h in sorted(report["hosts"]) for s in report["hosts"][h]["steps"] for p in s["problems"]]


# --- escaping and redaction -------------------------------------------------

def test_hostile_text_is_shown_as_text_and_secrets_are_redacted():
    report = fixture("hostile")
    page, root = render(report)
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<svg onload" not in lowered
    # The only SVG elements are the charts.
    assert all(svg.get("class") == "chart" for svg in root.iter(S + "svg"))
    body = text(root)
    assert "(UNKNOWN) <script>alert(1)</script>" in body
    assert '"><img src=x onerror=alert(2)>' in body
    assert 'edge"><svg onload=alert(3)>' in body
    figures = "".join(pre.text for pre in root.iter(X + "pre"))
    assert "</pre><script>alert(4)</script>" in figures
    assert "https://***@git.example.com/bemore/backend.git" in body
    for secret in ("s3cr3t", "deploy:", "eyJhbGciOiJIUzI1NiJ9", "tok_live_123"):
        assert secret not in page
    assert "\x1b" not in page and "[31m" not in page


@pytest.mark.parametrize("raw, shown", [
    ("https://user:pa55@host/x", "https://***@host/x"),
    ("mysql://root:p@ss@db:3306/bemore", "mysql://***@db:3306/bemore"),
    ("git+ssh://git@github.com/a/b", "git+ssh://***@github.com/a/b"),
    ("GET /api?token=abc123&x=1", "GET /api?token=***&x=1"),
    ("Authorization: Bearer abcdefgh.ijkl.mnop", "Authorization: Bearer ***"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
    ("basic authentication is on. Bearer tokens expire.", "basic authentication is on. Bearer tokens expire."),
    ("mail admin@example.com at https://example.com/a@b", "mail admin@example.com at https://example.com/a@b"),
])
def test_redaction(raw, shown):
    assert report_redact.redact(raw) == shown


def test_control_characters_cannot_break_the_xml():
    report = fixture("green")
    report["hosts"]["api1"]["steps"][0]["summary"] = "bad \x00\x07\x1b[0m\ud800 bytes\x85"
    page, root = render(report)
    assert "bad \ufffd\ufffd\ufffd bytes\ufffd" in text(root)
    page.encode("utf-8")  # a lone surrogate would fail here


def test_links_keep_only_http_and_relative_targets():
    links = [("JSON", "20261202T114512.json"), ("AWX", "https://awx.example/jobs/7"), ("bad", "javascript:alert(1)"),
             ("data", "data:text/html,x"), ("creds", "https://u:p@awx.example/")]
    _page, root = render("green", options={"links": links})
    links = [(a.text, a.get("href")) for a in root.iter(X + "a") if a.get("href") and not a.get("href").startswith("#")]
    assert links == [("JSON", "20261202T114512.json"), ("AWX", "https://awx.example/jobs/7"),
                     ("creds", "https://***@awx.example/")]


def test_report_must_be_a_dict():
    with pytest.raises(TypeError, match="report must be a dict"):
        rh.render_html([], [], None, TEMPLATE)


# --- charts -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["green", "critical"])
def test_threshold_lines_sit_at_their_values_on_the_charts_scale(name):
    _page, root = render(name)
    for chart_id, wanted in GUIDE_LINES.items():
        svg = chart(root, chart_id)
        y_of, top, bottom = y_scale_of(svg)
        lines = [l for l in svg.iter(S + "line") if l.get("class") == "threshold"]
        assert {float(l.get("data-value")) for l in lines} == wanted
        for line in lines:
            value = float(line.get("data-value"))
            y = float(line.get("y1"))
            assert float(line.get("y2")) == y
            assert abs(y - y_of(value)) < 0.05, "%s %s drawn at y=%s, the axis puts it at %s" % (
                chart_id, value, y, y_of(value))
            assert top <= y <= bottom, "%s threshold %s is outside the plot" % (chart_id, value)


def test_points_sit_at_their_values_and_the_newest_on_this_run():
    report = fixture("critical")
    _page, root = render(report)
    svg = chart(root, "latency")
    y_of, _top, _bottom = y_scale_of(svg)
    this_run_x = float(next(g for g in svg.iter(S + "g") if g.get("class") == "this-run").find(S + "line").get("x1"))
    for host in ("api2", "api3"):
        perf = next(s for s in report["hosts"][host]["steps"] if s["step"] == "performance")["figures"]
        for kind in ("p95", "median"):
            x, y = translate(points(series(svg, host, kind))[-1])
            assert abs(y - y_of(perf[kind + "_ms"])) < 0.05
            assert abs(x - this_run_x) < 0.05


def test_huge_values_are_clipped_with_the_thresholds_still_visible():
    _page, root = render("critical")
    for chart_id, value in (("error_rate", 37.2), ("latency", 1450.0)):
        svg = chart(root, chart_id)
        y_of, top, _bottom = y_scale_of(svg)
        top_tick = max(float(g.find(S + "text").text) for g in svg.iter(S + "g") if g.get("class") == "y-tick")
        assert top_tick < value
        clipped = [g for g in svg.iter(S + "g") if g.get("class") == "point clipped"]
        assert len(clipped) == 1 and fmt_in(value, clipped[0].find(S + "title").text)
        assert abs(translate(clipped[0])[1] - top) < 0.05
        labels = [t.text for t in svg.iter(S + "text") if t.get("class") == "clipped-value"]
        assert labels and fmt_in(value, labels[0])
    # An axis scaled to 1450 ms would squeeze the 200 ms target into the bottom fifth.
    y_of, top, bottom = y_scale_of(chart(root, "latency"))
    assert (bottom - y_of(200.0)) / (bottom - top) > 0.2


def fmt_in(value, label):
    return ("%g" % value) in label


def test_a_single_run_charts_one_point_per_host():
    report = fixture("critical")
    _page, root = render(report, history=[])
    for chart_id in GUIDE_LINES:
        svg = chart(root, chart_id)
        assert list(svg.iter(S + "polyline")) == []
        for group in (g for g in svg.iter(S + "g") if g.get("class") == "series"):
            assert len(points(group)) == 1
    page = ET.tostring(root, encoding="unicode")
    assert not re.search(r"\b(nan|inf)\b", page, re.I)
    assert "this run only" in text(root)


def test_missing_values_and_unreachable_runs_break_the_line():
    report = fixture("unreachable")
    history = history_for(report)
    _page, root = render(report, history)
    group = series(chart(root, "error_rate"), "api2")
    # Of api2's last 30 daily runs, d012 has no rate (null) and d017 could not
    # reach it; this run could not either: three pieces of line.
    assert [r["run_id"][-4:] for r in history][:1] == ["d004"]
    assert len(group.findall(S + "polyline")) == 3
    values = [r["hosts"]["api2"] for r in history if "api2" in r["hosts"]]
    expected = sum(1 for h in values if h["completed"] and any(
        s["step"] == "error_monitoring" and s["figures"].get("error_rate_percent") is not None for s in h["steps"]))
    assert len(points(group)) == expected


def test_a_host_in_only_some_runs_has_only_those_points():
    report = fixture("unreachable")
    history = history_for(report)
    _page, root = render(report, history)
    runs_with_api3 = sum(1 for r in history if "api3" in r["hosts"]) + 1
    assert 0 < runs_with_api3 < len(history)
    assert len(points(series(chart(root, "disk"), "api3"))) == runs_with_api3


def test_older_reports_without_the_newer_figures_still_chart():
    report = fixture("green")
    old = copy.deepcopy(fixture("green"))
    old["run_id"], old["started_at"] = "20261125T030000Z", "2026-11-25T03:00:00Z"
    for host in old["hosts"].values():
        for step in host["steps"]:
            if step["step"] == "error_monitoring":
                step["figures"] = {"error_rate": 0.5}  # before error_rate_percent and thresholds_percent
            if step["step"] == "performance":
                step["figures"] = {}
            if step["step"] == "tmp_cleanup":
                step["figures"].pop("folder_mb")
    _page, root = render(report, [old])
    svg = chart(root, "error_rate")
    y_of, _top, _bottom = y_scale_of(svg)
    first = points(series(svg, "api1"))[0]
    assert abs(translate(first)[1] - y_of(0.5)) < 0.05
    assert len(points(series(chart(root, "latency"), "api1", "p95"))) == 1
    # tmp_cleanup without folder_mb: the disk_usage step's folder size is used.
    assert len(points(series(chart(root, "tmp_folder"), "api1"))) == 2


def test_zero_values_keep_the_thresholds_on_the_axis():
    report = fixture("green")
    for host in report["hosts"].values():
        for step in host["steps"]:
            if step["step"] == "error_monitoring":
                step["figures"]["error_rate_percent"] = 0
    _page, root = render(report, history=[])
    svg = chart(root, "error_rate")
    y_of, top, bottom = y_scale_of(svg)
    assert top <= y_of(5.0) < bottom
    for group in (g for g in svg.iter(S + "g") if g.get("class") == "series"):
        assert abs(translate(points(group)[0])[1] - bottom) < 0.05


def test_charts_without_figures_are_named_not_drawn():
    report = fixture("unreachable")  # daily: no performance step
    _page, root = render(report)
    assert [svg for svg in root.iter(S + "svg") if svg.get("data-chart") == "latency"] == []
    assert "Not charted, no figures in these runs: API latency." in text(root)


def test_many_hosts_limit_the_legend_and_turn_the_table():
    report = fixture("green")
    template = report["hosts"]["api1"]
    report["hosts"] = dict(("web%02d" % i, copy.deepcopy(template)) for i in range(20))
    _page, root = render(report, history=[])
    svg = chart(root, "error_rate")
    legend = [t.text for t in svg.iter(S + "text") if t.get("class") == "legend-item"]
    assert len(legend) == 9 and legend[-1] == "12 other hosts"
    groups = [g for g in svg.iter(S + "g") if g.get("class") == "series"]
    assert len(groups) == 20
    grey = [g for g in groups if g.find(S + "g/" + S + "circle") is not None
            and g.find(S + "g/" + S + "circle").get("fill") == report_svg.OTHER_COLOUR]
    assert len(grey) == 12
    table = next(root.iter(X + "table"))
    assert [text(th) for th in table.iter(X + "th") if th.get("scope") == "col"][1:3] == ["health", "error_monitoring"]
    assert len([th for th in table.iter(X + "th") if th.get("scope") == "row"]) == 20


def test_the_current_run_in_the_history_is_charted_once():
    report = fixture("green")
    history = history_for(report) + [copy.deepcopy(report)]
    _page, root = render(report, history)
    _page, without = render(report, history[:-1])
    count = len(points(series(chart(root, "disk"), "api1")))
    assert count == len(points(series(chart(without, "disk"), "api1")))


def test_disk_forecast_is_in_the_legend():
    _page, root = render("critical")
    legend = [t.text for t in chart(root, "disk").iter(S + "text") if t.get("class") == "legend-item"]
    assert "api1 (/): full in ~4.5 days" in legend
    assert "api2 (/): no growth forecast" in legend


def test_unreadable_history_is_mentioned():
    _page, root = render("green", options={"unreadable_reports": ["daily/a.json", "daily/b.json"]})
    assert "2 earlier report files could not be read and were left out." in text(root)


# --- history ------------------------------------------------------------------

def production_daily_names():
    names = sorted(n for n in os.listdir(os.path.join(ROOT, "daily")) if n.endswith(".json"))
    return [n[:-5] for n in names if "-production-" in n]


def test_history_is_the_last_30_runs_of_the_schedule_and_environment():
    scan = report_history.scan_history(ROOT, "daily", "production", now=NOW)
    assert scan.unreadable == []
    assert [r["run_id"] for r in scan.reports] == production_daily_names()[-30:]
    assert report_history.load_history(ROOT, "daily", "production", now=NOW) == scan.reports
    everyone = report_history.load_history(ROOT, "daily", now=NOW)
    assert len(everyone) == 30 and "staging" in {r["environment"] for r in everyone}
    assert len(report_history.load_history(ROOT, "daily", "production", last_runs=5)) == 5


def test_quarterly_history_is_every_report_of_the_quarter():
    reports = report_history.load_history(ROOT, "quarterly", "production", now=NOW)
    since = NOW - datetime.timedelta(days=92)
    expected = []
    for schedule in sorted(os.listdir(ROOT)):
        for name in os.listdir(os.path.join(ROOT, schedule)):
            with open(os.path.join(ROOT, schedule, name)) as handle:
                data = json.load(handle)
            started = datetime.datetime.strptime(data["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc)
            if data["environment"] == "production" and started >= since:
                expected.append(data["run_id"])
    assert sorted(r["run_id"] for r in reports) == sorted(expected)
    assert len(reports) > 30
    assert {r["schedule"] for r in reports} == {"daily", "weekly", "monthly"}  # the quarterly run is older
    times = [report_history.report_time(r) for r in reports]
    assert times == sorted(times) and min(times) >= since
    assert len(report_history.load_history(ROOT, "quarterly", "production", now=NOW, quarter_days=7)) < len(reports)


@pytest.fixture
def root_copy(tmp_path):
    root = tmp_path / "reports"
    shutil.copytree(ROOT, str(root))
    return root


def test_corrupt_files_are_skipped_and_counted_and_non_reports_ignored(root_copy):
    daily = root_copy / "daily"
    (daily / "20261201T230000.000000Z-production-broken.json").write_text('{"schedule": "daily", "hosts": {')
    (daily / "20261201T230001.000000Z-production-binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (daily / "20261201T230002.000000Z-production-list.json").write_text("[1, 2, 3]")
    (daily / "notes.md").write_text("# not a report")
    (daily / ".tmp-abc.json").write_text("{")
    newest = production_daily_names()[-1]
    os.symlink(newest + ".json", str(daily / "latest.json"))
    scan = report_history.scan_history(str(root_copy), "daily", "production", now=NOW)
    assert sorted(scan.unreadable) == ["daily/20261201T230000.000000Z-production-broken.json",
                                       "daily/20261201T230001.000000Z-production-binary.json"]
    ids = [r["run_id"] for r in scan.reports]
    assert ids == production_daily_names()[-30:] and len(set(ids)) == 30


def test_symlinks_out_of_the_root_are_never_followed(root_copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = fixture("green")
    evil.update(schedule="daily", run_id="20261231T000000.000000Z-production-evil", started_at="2026-12-01T23:59:00Z")
    (outside / "evil.json").write_text(json.dumps(evil))
    os.symlink(str(outside / "evil.json"), str(root_copy / "daily" / "20261231T000000.000000Z-production-evil.json"))
    os.symlink(str(outside), str(root_copy / "evil"))
    for schedule in ("daily", "quarterly", "evil"):
        reports = report_history.load_history(str(root_copy), schedule, "production", now=NOW)
        assert "evil" not in {r["run_id"][-4:] for r in reports}
    # The same file, copied in as a regular file, is read: the link was the reason.
    shutil.copy(str(outside / "evil.json"), str(root_copy / "daily" / "20261231T000000.000000Z-production-real.json"))
    assert report_history.load_history(str(root_copy), "daily", "production", now=NOW)[-1]["run_id"].endswith("-evil")


def test_a_missing_root_is_an_empty_history_and_bad_names_are_refused(tmp_path):
    assert report_history.scan_history(str(tmp_path / "nothing"), "daily") == ([], [])
    with pytest.raises(ValueError, match="schedule '../daily'"):
        report_history.load_history(ROOT, "../daily")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cannot be opened as a directory"):
        report_history.load_history(str(tmp_path / "file"), "daily")


def watch_report(timeline, resolved_at=None):
    """The green fixture as a watch report that opened (and maybe resolved) an incident on its first host."""
    report = fixture("green")
    host = sorted(report["hosts"])[0]
    report["watch"] = {"events": [{"host": host, "event": timeline[-1]["event"], "incident_id": "prod-x-1",
                                   "severity": "critical"}],
                       "incidents": {host: {"id": "prod-x-1", "host": host, "severity": "critical",
                                            "opened_at": timeline[0]["ts"], "resolved_at": resolved_at,
                                            "timeline": timeline}}}
    return report, host


def incidents_section(root):
    return [s for s in root.iter(X + "section") if "incidents" in (s.get("class") or "").split()]


def test_a_watch_report_shows_its_incident_timeline_in_order():
    opened = datetime.datetime(2026, 12, 1, 10, 5, tzinfo=datetime.timezone.utc).timestamp()
    timeline = [{"ts": opened, "event": "opened", "severity": "critical", "summary": "health: service down: HTTP 503"},
                {"ts": opened + 900, "event": "reminder", "severity": "critical", "summary": "still down"},
                {"ts": opened + 1500, "event": "resolved", "severity": "critical",
                 "summary": "back to normal after 20 min 00 s"}]
    report, host = watch_report(timeline, resolved_at=opened + 1500)
    _page, root = render(report)
    (section,) = incidents_section(root)
    assert host in text(section.find(X + "h3")) and "prod-x-1" in text(section.find(X + "h3"))
    assert "Opened 2026-12-01 10:05 UTC, resolved 2026-12-01 10:30 UTC." == text(section.find(X + "p"))
    rows = [[text(c) for c in tr] for tr in section.find(X + "table").find(X + "tbody")]
    assert rows == [["2026-12-01 10:05 UTC", "opened", "critical", "health: service down: HTTP 503"],
                    ["2026-12-01 10:20 UTC", "reminder", "critical", "still down"],
                    ["2026-12-01 10:30 UTC", "resolved", "critical", "back to normal after 20 min 00 s"]]


def test_an_open_incident_says_so_and_its_text_is_escaped_and_redacted():
    hostile = "<script>alert(1)</script> Bearer abcdefghijklmnopqrstuvwxyz0123456789"
    report, _host = watch_report([{"ts": 1764583500.0, "event": "opened", "severity": "high", "summary": hostile}])
    page, root = render(report)
    (section,) = incidents_section(root)
    assert text(section.find(X + "p")).endswith(", open.")
    assert "<script" not in page and not list(root.iter(X + "script"))
    (row,) = section.find(X + "table").find(X + "tbody")
    assert "<script>alert(1)</script>" in text(row[3])
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in page


def test_a_report_without_an_incident_has_no_incident_section():
    _page, root = render("critical")
    assert incidents_section(root) == []
