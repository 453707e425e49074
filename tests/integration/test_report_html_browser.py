"""The run's HTML page in a real browser: Debian's Chromium, headless.

Renders the fixture reports with their history, opens the page from a file
as a person opening a CI artifact would, and checks what Chromium drew
(the screenshot is not blank and shows the verdict's and the charts'
colours), what it shows as text (the verdict, every step), that hostile
text stayed text, and that the page fetches nothing.

Skipped when Chromium is not installed (``apt-get install -y chromium``).

``python -m tests.integration.test_report_html_browser docs/report-example.png``
redraws the README's example from the critical fixture.
"""

from __future__ import annotations

import json
import os
import random
import socketserver
import struct
import sys
import threading
import zlib

import pytest

from tests import browser
from tests.helpers import REPO, register_module_utils

register_module_utils()
from ansible.module_utils import report_history, report_html as rh, report_svg  # noqa: E402

with open(os.path.join(REPO, "roles", "report", "templates", "report.html.j2"), encoding="utf-8") as _handle:
    TEMPLATE = _handle.read()

FIXTURES = os.path.join(REPO, "tests", "unit", "fixtures", "reports")
SIZE = (1280, 1500)  # the verdict, the table and the first charts of the critical page


def hex_rgb(text):
    return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))


# Colours the page's own CSS and SVG use: the critical verdict's background,
# and the first host's series colour in the charts.
VERDICT_CRITICAL_BG = hex_rgb("#ffebe9")
FIRST_HOST = hex_rgb(report_svg.PALETTE[0])


def write_page(name, out_dir, options=None):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        report = json.load(handle)
    scan = report_history.scan_history(os.path.join(FIXTURES, "root"), report["schedule"], report["environment"],
                           now=report_history.parse_time("2026-12-02T12:00:00Z"))
    opts = {"unreadable_reports": scan.unreadable, "links": [("JSON report", report["run_id"] + ".json")]}
    opts.update(options or {})
    path = os.path.join(str(out_dir), name + ".html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(rh.render_html(report, scan.reports, opts, TEMPLATE))
    return report, scan, path


def _png(width, rows, filters, channels=3):
    """A PNG of ``rows`` (bytes), each row filtered with the given filter type, as an encoder would."""
    out, previous = [], bytes(width * channels)
    for row, kind in zip(rows, filters):
        line = bytearray([kind])
        for i, value in enumerate(row):
            left = row[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            guess = left + up - corner  # Paeth: the nearest of left, up, corner; ties in that order
            paeth = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))[2]
            predictor = {0: 0, 1: left, 2: up, 3: (left + up) // 2, 4: paeth}[kind]
            line.append((value - predictor) & 0xFF)
        out.append(bytes(line))
        previous = row
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour_type, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(out))) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [3, 4, 1])
def test_png_decoder_reverses_every_filter(tmp_path, channels):
    rnd = random.Random(channels)
    width = 7
    rows = [bytes(rnd.randrange(256) for _ in range(width * channels)) for _ in range(10)]
    path = tmp_path / "filters.png"
    path.write_bytes(_png(width, rows, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0], channels))
    image = browser.read_png(str(path))
    assert (image.width, image.height, image.channels) == (width, 10, channels)
    assert image.rows == rows
    first = tuple(rows[0][0:3]) if channels >= 3 else (rows[0][0],) * 3
    assert browser.count_colour(image, first, tolerance=0, region=(0, 0, 1, 1)) == 1


def looks_drawn(stats):
    """A page with content: many colours, and the background not nearly everything."""
    return stats.distinct >= 60 and stats.dominant_share < 0.97


@pytest.fixture(scope="module")
def chromium():
    return browser.require_chromium()


def test_page_shows_verdict_steps_and_charts(chromium, tmp_path):
    report, scan, path = write_page("critical", tmp_path)
    assert len(scan.reports) > 10  # charts with history, not one point
    page = browser.open_page(path, tmp_path, size=SIZE, chromium=chromium)
    assert "Verdict: CRITICAL" in page.text and "worst severity high" in page.text
    for host in report["hosts"].values():
        for step in host["steps"]:
            assert step["step"] in page.text
    for title in ("Error rate per run", "API latency", "Disk used", "Temp folder size"):
        assert title in page.text
    image = browser.read_png(page.png)
    stats = browser.colour_stats(image)
    assert (stats.width, stats.height) == SIZE
    assert looks_drawn(stats), stats
    # The CSS was applied (the verdict's band) and the SVG was drawn (host lines).
    assert browser.count_colour(image, VERDICT_CRITICAL_BG, tolerance=3, region=(0, 0, SIZE[0], 300), step=2) > 5000
    assert browser.count_colour(image, FIRST_HOST, tolerance=10, region=(0, 800, SIZE[0], SIZE[1])) > 200


def test_a_blank_page_is_told_apart(chromium, tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    png = str(tmp_path / "blank.png")
    browser.screenshot(str(blank), png, size=(400, 300), chromium=chromium)
    assert not looks_drawn(browser.colour_stats(png))


def test_hostile_text_stays_text_in_the_browser(chromium, tmp_path):
    _report, _scan, path = write_page("hostile", tmp_path)
    dom = browser.dump_dom(path, chromium=chromium)
    text = browser.visible_text(dom)
    assert "<script>alert(1)</script>" in text
    assert '"><img src=x onerror=alert(2)>' in text
    assert "<script" not in dom.lower() and "<img" not in dom.lower()
    assert "s3cr3t" not in dom


class _Recorder(socketserver.StreamRequestHandler):
    """Answers every proxied request with 502 and records its request line."""

    def handle(self):
        line = self.rfile.readline(4096).decode("latin-1").strip()
        if line:
            self.server.seen.append(line)
        self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def recording_proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _page_requests(seen):
    """Requests other than Chromium's own background calls."""
    out = []
    for line in seen:
        target = line.split(" ")[1] if " " in line else line
        host = target.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if host not in browser.CHROMIUM_OWN_HOSTS:
            out.append(line)
    return out


def test_the_page_fetches_nothing(chromium, tmp_path, recording_proxy):
    proxy = "http://127.0.0.1:%d" % recording_proxy.server_address[1]
    # Loopback too goes through the proxy, so nothing the page asks for is missed.
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><img src="http://fetch-me.invalid/pixel.png"/></body></html>')
    browser.run_chromium(str(control), ["--dump-dom", "--proxy-bypass-list=<-loopback>"], chromium=chromium,
                         proxy=proxy)
    assert any("fetch-me.invalid" in line for line in _page_requests(recording_proxy.seen)), recording_proxy.seen
    del recording_proxy.seen[:]
    _report, _scan, path = write_page("critical", tmp_path)
    png = str(tmp_path / "shot.png")
    browser.run_chromium(path, ["--screenshot=" + png, "--window-size=1280,3000", "--proxy-bypass-list=<-loopback>"],
                         chromium=chromium, proxy=proxy)
    assert _page_requests(recording_proxy.seen) == []


def make_example(out_png):
    """Draw the README's example page (the critical fixture with its weekly history)."""
    import tempfile  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="bemore-report-example-")
    _report, _scan, path = write_page("critical", work, {"links": []})
    seconds = browser.screenshot(path, out_png, size=(1280, 1600))
    return seconds


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "docs", "report-example.png")
    print("%s written in %.1f s" % (target, make_example(target)))


def test_the_page_of_a_sandbox_run_opens_in_chromium(sandbox, ansible_env, tmp_path):
    browser.require_chromium()
    from tests.integration.test_sandbox_playbooks import play  # pylint: disable=import-outside-toplevel

    for _ in range(2):  # a second run gives the charts a history
        proc = play("daily.yml", ansible_env)
        assert proc.returncode == 0, proc.stdout[-3000:]
    folder = os.path.join(ansible_env["BEMORE_REPORT_DIR"], "daily")
    page = os.path.join(folder, os.readlink(os.path.join(folder, "latest.html")))
    shown = browser.open_page(page, str(tmp_path), size=SIZE, name="sandbox")
    stats = browser.colour_stats(shown.png)
    assert stats.distinct > 20 and stats.dominant_share < 0.95, stats  # not a blank page
    text = shown.text
    with open(os.path.join(folder, "latest.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["worst_status"].upper() in text.upper()
    for step in report["hosts"]["sandbox"]["steps"]:
        assert step["step"] in text
