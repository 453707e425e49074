"""Headless Chromium for tests: open a page, take a screenshot, read what
it rendered.

Debian's ``chromium`` package (``/usr/bin/chromium``; ``BEMORE_CHROMIUM``
names another binary). Every call starts a fresh browser with its own
empty profile directory, no first-run work and no background networking,
and is killed with its whole process group if it outlives its timeout.
The PNG decoder is the standard library's zlib and struct, so a test can
judge a screenshot without Pillow.

Reuse, e.g. for the page of a real sandbox run::

    from tests import browser
    chromium = browser.require_chromium()          # pytest.skip when missing
    shot = browser.open_page(path_of_html, tmp_path, chromium=chromium)
    assert "Verdict:" in shot.text
    assert browser.colour_stats(browser.read_png(shot.png)).distinct > 50
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = "apt-get install -y chromium (Debian), or set BEMORE_CHROMIUM to a Chromium binary"

# The flags the project runs Chromium with: headless, no sandbox (tests run
# as root in containers), nothing fetched or synced on its own account.
BASE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--disable-extensions",
              "--disable-default-apps", "--no-default-browser-check", "--metrics-recording-only")


# Even with the flags above Chromium calls these on its own account (seen
# with Debian's 156: the update service, network time, accounts). They are
# not the page's doing; a test that records requests leaves them out.
CHROMIUM_OWN_HOSTS = frozenset(["update.googleapis.com", "clients2.google.com", "accounts.google.com",
                                "optimizationguide-pa.googleapis.com", "content-autofill.googleapis.com"])
# Where Chromium's traffic goes unless a test gives its own proxy: a closed
# loopback port, so nothing it tries leaves the machine. Loopback itself is
# reached directly (Chromium's implicit bypass), so local pages still load.
DEAD_END_PROXY = "http://127.0.0.1:9"


class BrowserError(RuntimeError):
    pass


Page = collections.namedtuple("Page", "png dom text seconds")
ColourStats = collections.namedtuple("ColourStats", "width height distinct dominant dominant_share")
Image = collections.namedtuple("Image", "width height channels rows")


def find_chromium():
    """The Chromium binary to use, or None."""
    named = os.environ.get("BEMORE_CHROMIUM")
    candidates = [named] if named else list(CHROMIUM_CANDIDATES)
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def require_chromium():
    """The Chromium binary; skips the calling test with the reason when there is none (fails it under CI=true)."""
    from tests.helpers import require  # pylint: disable=import-outside-toplevel

    path = find_chromium()
    where = os.environ.get("BEMORE_CHROMIUM") or " or ".join(CHROMIUM_CANDIDATES)
    require(path is not None, "Chromium (looked for at %s)" % where, INSTALL_HINT)
    return path


def page_url(page):
    """A file:// URL for a path; URLs are returned as they are."""
    text = str(page)
    if "://" in text:
        return text
    return Path(text).resolve().as_uri()


def run_chromium(page, args, timeout=60, chromium=None, proxy=DEAD_END_PROXY):
    """Run Chromium on ``page`` with ``args`` after the base flags; (stdout bytes, seconds).

    ``proxy`` receives every request Chromium makes beyond loopback (None:
    Chromium's own proxy settings, i.e. the real network).
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise BrowserError("Chromium not found: " + INSTALL_HINT)
    profile = tempfile.mkdtemp(prefix="bemore-chromium-")
    cmd = [chromium] + list(BASE_FLAGS) + ["--user-data-dir=" + profile]
    if proxy:
        cmd.append("--proxy-server=" + proxy)
    cmd += list(args) + [page_url(page)]
    env = dict(os.environ, HOME=profile)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Its renderer and zygote children share the session: end them all.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BrowserError("Chromium did not finish %s within %d s" % (page_url(page), timeout))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-8:]
        raise BrowserError("Chromium exited with %d on %s: %s" % (proc.returncode, page_url(page), "\n".join(tail)))
    return out, seconds


def screenshot(page, png_path, size=(1280, 2000), scale=1.0, timeout=60, chromium=None, proxy=DEAD_END_PROXY):
    """Save a screenshot of the top ``size`` CSS pixels of ``page``; returns the seconds it took."""
    args = ["--screenshot=%s" % png_path, "--window-size=%d,%d" % tuple(size)]
    if scale != 1.0:
        args.append("--force-device-scale-factor=%s" % scale)
    _out, seconds = run_chromium(page, args, timeout, chromium, proxy)
    if not os.path.isfile(png_path) or os.path.getsize(png_path) == 0:
        raise BrowserError("Chromium wrote no screenshot of %s to %s" % (page_url(page), png_path))
    return seconds


def dump_dom(page, timeout=60, chromium=None, proxy=DEAD_END_PROXY):
    """The DOM Chromium built from ``page``, serialised (str)."""
    out, _seconds = run_chromium(page, ["--dump-dom"], timeout, chromium, proxy)
    return out.decode("utf-8", "replace")


class _TextParser(HTMLParser):
    SKIP = ("style", "script", "title", "head")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif tag in ("p", "div", "tr", "li", "h1", "h2", "h3", "h4", "section", "br", "td", "th", "text"):
            self.parts.append("\n")
        else:
            self.parts.append(" ")  # inline elements: "13 OK" and "3 WARNING" stay two words

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(dom):
    """The text of a serialised DOM without its styles, scripts and head, whitespace collapsed per line."""
    parser = _TextParser()
    parser.feed(dom)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def open_page(page, out_dir, size=(1280, 2000), name="page", timeout=60, chromium=None, proxy=DEAD_END_PROXY):
    """Screenshot and rendered text of ``page``: Page(png path, dom, text, seconds of the screenshot)."""
    png = os.path.join(str(out_dir), name + ".png")
    seconds = screenshot(page, png, size=size, timeout=timeout, chromium=chromium, proxy=proxy)
    dom = dump_dom(page, timeout=timeout, chromium=chromium, proxy=proxy)
    return Page(png, dom, visible_text(dom), seconds)


# --- PNG, without Pillow -----------------------------------------------------

def read_png(path):
    """Image(width, height, channels, rows of bytes): 8-bit grey, RGB or RGBA, non-interlaced, as Chromium writes them.

    Pure Python: about 1.5 s for 1280x1500 here; decode once and pass the
    Image to colour_stats and count_colour.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s is not a PNG file" % path)
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("%s has no IHDR chunk" % path)
    width, height, depth, colour_type, _compression, _filter, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type)
    if depth != 8 or channels is None or interlace:
        raise ValueError("%s: only 8-bit, non-interlaced grey/RGB/RGBA PNGs are read (depth %d, colour type %d, "
                         "interlace %d)" % (path, depth, colour_type, interlace))
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError("%s: image data is %d bytes, expected %d" % (path, len(raw), height * (stride + 1)))
    _LOW7 = int.from_bytes(b"\x7f" * stride, "big")
    _HIGH1 = int.from_bytes(b"\x80" * stride, "big")
    _ALL = (1 << (8 * stride)) - 1
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            # Bytewise add without carries, on the whole row as one integer.
            a, b = int.from_bytes(line, "big"), int.from_bytes(previous, "big")
            low = ((a & _LOW7) + (b & _LOW7)) ^ ((a ^ b) & _HIGH1)
            line = bytearray((low & _ALL).to_bytes(stride, "big"))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(channels):
                line[i] = (line[i] + previous[i]) & 0xFF
            for i in range(channels, stride):
                a, b, c = line[i - channels], previous[i], previous[i - channels]
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)  # the Paeth predictor, inlined
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        elif kind != 0:
            raise ValueError("%s: unknown PNG filter %d in row %d" % (path, kind, y))
        rows.append(bytes(line))
        previous = line
    return Image(width, height, channels, rows)


def _image(png):
    return png if isinstance(png, Image) else read_png(png)


def histogram(png, region=None, step=1):
    """Counter of (r, g, b) over a PNG (path or Image), in ``region`` (x0, y0, x1, y1), every ``step`` pixel."""
    width, height, channels, rows = _image(png)
    x0, y0, x1, y1 = region or (0, 0, width, height)
    counts = collections.Counter()
    every = channels * step
    for row in rows[y0:y1:step]:
        part = row[x0 * channels:x1 * channels]
        if channels >= 3:
            counts.update(zip(part[0::every], part[1::every], part[2::every]))
        else:  # grey (with or without alpha): one value for all three
            counts.update((v, v, v) for v in part[0::every])
    return counts


def colour_stats(png, step=2):
    """ColourStats of a PNG (path or Image): distinct colours, the commonest and its share; every ``step`` pixel."""
    image = _image(png)
    counts = histogram(image, step=step)
    dominant, count = counts.most_common(1)[0]
    return ColourStats(image.width, image.height, len(counts), dominant, count / float(sum(counts.values())))


def count_colour(png, rgb, tolerance=8, region=None, step=1):
    """Pixels of a PNG (path or Image) within ``tolerance`` of ``rgb`` per channel, in ``region`` (x0, y0, x1, y1)."""
    return sum(n for colour, n in histogram(png, region, step).items()
               if all(abs(colour[k] - rgb[k]) <= tolerance for k in range(3)))
