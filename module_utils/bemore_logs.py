# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the BeMore backend's stdout: its log file(s) or its systemd journal.

The backend writes two kinds of lines that matter (services/ErrorHandler.js
and app.js of KUS-CapstoneDesign-II/BeMoreBackend):

* morgan's access line, one per request, without a timestamp::

      POST /api/session/start 400 190 - 4.098 ms reqId=f0a53bac-...

* ErrorHandler.log(), in ANSI colours (INFO cyan, WARN yellow, ERROR red,
  CRITICAL magenta)::

      \\x1b[31m[ERROR]\\x1b[0m \\x1b[90m<ISO time>\\x1b[0m \\x1b[34m[module]\\x1b[0m \\x1b[33m(TYPE)\\x1b[0m message

  A CRITICAL line is followed by ``\\x1b[90mStack Trace:\\x1b[0m`` and the
  error's stack (``Error: ...`` and ``    at ...`` frames).

Other console output (the backend prints many emoji lines with words like
``[CRITICAL]`` in them) is counted as lines only: a level counts only in the
ErrorHandler layout, where a timestamp, a module and a type follow it.

The scan is built for speed: data is read in large chunks, lines are counted
with ``bytes.count``, the regular expressions run over whole chunks and stop
only where a level token or an access line's tail is, and the signatures of
a chunk's error lines are normalised in one pass over all of them. A time
budget replaces a byte cap: a scan that runs out of time keeps the offset
(or journal cursor) it reached and reports how far behind it is.

Standard library only: this runs on the managed host.
"""

from __future__ import annotations

import calendar
import fcntl
import glob
import gzip
import os
import re
import subprocess
import tempfile
import time
import zlib

# Bytes read per chunk. Large enough that the per-chunk work is noise, small
# enough to keep the scan's memory far below 64 MB.
CHUNK_BYTES = 8 * 1024 * 1024
# A "line" longer than this is skipped (counted, not classified): whatever
# it is, it is not one of the backend's lines.
MAX_LINE_BYTES = 4 * CHUNK_BYTES
MAX_SAMPLE = 500
MAX_SIGNATURE = 300
# Distinct signatures kept per scan; the error lines of any further ones are
# still counted (``signatures_overflow``).
MAX_SIGNATURES = 1000
# A journal read for the first time (first_run=start) starts this far back:
# one day, the period of the daily review.
FIRST_RUN_SPAN_S = 86400
# The journal is classified in smaller chunks, from a pipe enlarged to hold
# one: journalctl (the slower side) keeps writing while a chunk is
# classified instead of blocking on a full 64 KiB pipe.
JOURNAL_CHUNK_BYTES = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# When the main read ran out of time, the separate read of the rate window
# still gets this long.
WINDOW_MIN_BUDGET_S = 10.0

LEVELS = ("INFO", "WARN", "ERROR", "CRITICAL")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")

ANSI_TEXT = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
ANSI_BYTES = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")

_SGR = rb"(?:\x1b\[[0-9;]*m)*"
# ErrorHandler's line. The level token must start the line, follow a colour
# code, a space (a journal or container prefix) or "=" (the journal's export
# format): a level word inside a message does not count. The search starts
# at a literal "[", which sre finds quickly; access lines have none.
LEVEL_LINE = re.compile(
    rb"\[(?:(?<=^\[)|(?<=[\n m=]\[))(INFO|WARN|ERROR|CRITICAL)\]" + _SGR + rb" " + _SGR
    + rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)" + _SGR + rb" " + _SGR
    + rb"\[([^\]\n]*)\]" + _SGR + rb" " + _SGR + rb"\(([^)\n]*)\)" + _SGR + rb"(?: ([^\n]*))?")
# The same layout on one ANSI-free line of text, for single lines.
LEVEL_TEXT = re.compile(
    r"(?:^|(?<=[ =]))\[(INFO|WARN|ERROR|CRITICAL)\] (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) "
    r"\[([^\]\n]*)\] \(([^)\n]*)\)(?: (.*))?$")
# morgan's ":status :res[content-length] - :response-time ms reqId=:id",
# matched backwards on the reversed chunk so that the search starts at the
# fixed text " ms reqId=" and touches only the few bytes before it. The
# group is the class of a 1xx, 3xx, 4xx or 5xx status; a request closed
# before its response has "-" for status, length and time; 2xx is the rest.
ACCESS_TAIL = b" ms reqId="
UNANSWERED_TAIL = b" - - - - ms reqId="
STATUS_REVERSED = re.compile(rb"=dIqer sm [^ ]* - [^ ]* ..([1345]) ")
# The runbook's own traffic (bemore_api.RUNBOOK_REQUEST_ID_PREFIX, written
# out here because this file runs on the host with the standard library
# only): its access lines carry this reqId prefix, and its CORS probe's
# foreign origin is named in the error line the backend logs for it. Both are
# left out of the counts the error rate is judged on, and counted apart --
# except a 5xx: a 5xx is a backend failure whoever asked (and anyone can send
# the prefix), so an access line with the prefix and a 5xx counts, as a
# request and (in the 5xx fallback) as an error. The probe's error line is
# matched by its WHOLE origin as the backend prints it, the configured
# api_security_foreign_origin (OWN_PROBE_ORIGIN when none is given): a
# look-alike such as https://bemore-runbook-probe.evil.com is not the probe.
OWN_REQUEST_ID = b"bemore-runbook-"
OWN_ACCESS_TAIL = ACCESS_TAIL + OWN_REQUEST_ID
OWN_UNANSWERED_TAIL = UNANSWERED_TAIL + OWN_REQUEST_ID
OWN_STATUS_REVERSED = re.compile(re.escape(OWN_REQUEST_ID[::-1]) + STATUS_REVERSED.pattern)
OWN_PROBE_ORIGIN = b"https://bemore-runbook-probe.invalid"
OWN_CORS_LINE = b"CORS policy: Origin "
STACK_MARK = b"Stack Trace:"
STACK_FRAME = re.compile(rb"\s{2,}(at [^\n]+)")

# A leading timestamp of lines in other layouts (for signature() only).
TIMESTAMP = re.compile(r"^\s*(\[?\d{4}-\d{2}-\d{2}[T ][\d:.,]+(Z|[+-]\d{2}:?\d{2})?\]?|[A-Z][a-z]{2} [ \d]\d [\d:]{8})\s*")
# Variable parts of a message, applied in this order. None of them crosses a
# newline, so they run over many messages joined by newlines at once.
_B, _E = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
NORMALISERS = [
    (re.compile(_B + r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}" + _E, re.I), "<uuid>"),
    # SessionManager's ids, sess_<Date.now()>_<8 hex>: one placeholder, so
    # that an all-digit random part does not make a different signature.
    (re.compile(_B + r"sess_\d+_[0-9a-f]+" + _E), "<session>"),
    # A URL as a whole (CORS errors name the rejected origin).
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+"), "<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w<])(?:/[\w.@-]+)+/?"), "<path>"),
    (re.compile(r"\"[^\"\n]*\"|'[^'\n]*'"), "<str>"),
    (re.compile(_B + r"(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}" + _E, re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"[^\S\n]+"), " "),
]
_EDGE_SPACE = re.compile(r"^ | $", re.M)
# The first two rules run on bytes (whole chunks of messages before they are
# decoded), in signature() too, so that both see the same ASCII classes.
ID_RULES = [(re.compile(p.pattern.encode(), p.flags & re.I), r.encode()) for p, r in NORMALISERS[:2]]
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")

EXPORT_ENTRY = b"\n\n__CURSOR="
EXPORT_CURSOR = re.compile(rb"__CURSOR=([^\n]*)\n")
EXPORT_REALTIME = re.compile(rb"__REALTIME_TIMESTAMP=(\d+)\n")


# ------------------------------------------------------------------ lines

def strip_ansi(text):
    """``text`` (str or bytes) without ANSI escape sequences."""
    if isinstance(text, bytes):
        return ANSI_BYTES.sub(b"", text)
    return ANSI_TEXT.sub("", text)


def normalise(message):
    """``message`` with ids, uuids, hex, numbers, e-mails, IPs, paths and quoted values as placeholders."""
    data = message.replace("\n", " ").encode("utf-8", "replace")
    for pattern, placeholder in ID_RULES:
        data = pattern.sub(placeholder, data)
    return _normalise_rest(data.decode("utf-8", "replace"))[:MAX_SIGNATURE]


def _normalise_rest(text):
    """The rules after ID_RULES, over one message or many joined by newlines."""
    for pattern, placeholder in NORMALISERS[2:]:
        text = pattern.sub(placeholder, text)
    return _EDGE_SPACE.sub("", text)


def parse_line(line):
    """An ErrorHandler line as {"level", "time", "module", "type", "message"}, or None.

    ``line`` is str or bytes, with or without colours and with or without a
    journal/container prefix before the level.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    match = LEVEL_TEXT.search(strip_ansi(line).rstrip("\r\n"))
    if not match:
        return None
    level, stamp, module, kind, message = match.groups()
    return {"level": level, "time": stamp, "module": module, "type": kind, "message": (message or "").strip()}


def signature(line):
    """``LEVEL [module] (TYPE) message`` of an ErrorHandler line, variable parts normalised.

    Any other line gives its own text without a leading timestamp, normalised
    the same way.
    """
    parsed = parse_line(line)
    if parsed:
        return ("%s [%s] (%s) %s" % (parsed["level"], parsed["module"], parsed["type"],
                                     normalise(parsed["message"])))[:MAX_SIGNATURE]
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    return normalise(TIMESTAMP.sub("", strip_ansi(line).strip(), count=1))


def _iso_from_us(usec):
    seconds, micro = divmod(int(usec), 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % (micro // 1000)


def _epoch_of_iso(stamp):
    """Seconds since the epoch of an ErrorHandler time (``2026-12-02T09:46:05.110Z``), or None."""
    try:
        whole, _dot, frac = stamp.rstrip("Z").partition(".")
        return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + (float("0." + frac) if frac else 0.0)
    except (ValueError, AttributeError):
        return None


class Tally(object):
    """What the scanned chunks held. ``feed`` takes whole lines (or whole
    journal export entries) and classifies them a chunk at a time."""

    def __init__(self, known=(), export=False, probe_origin=None):
        self.known = set(known)
        self.export = export
        # The runbook's CORS probe origin, exactly as the backend prints it in its refusal.
        origin = probe_origin or OWN_PROBE_ORIGIN
        self.probe_origin = origin.encode() if isinstance(origin, str) else bytes(origin)
        self.lines = 0
        self.bytes = 0
        self.requests = 0
        self.status = dict.fromkeys(STATUS_CLASSES, 0)
        self.status_other = 0
        self.levels = dict.fromkeys(LEVELS, 0)
        self.errors = 0
        # The runbook's own requests (but not those that got a 5xx) and its
        # probe's error lines, left out of requests, status and errors.
        self.own_requests = 0
        self.own_errors = 0
        self.groups = {}
        self.overflow = 0
        self.first_time = None
        self.last_time = None
        self._heads = {}
        self._normalised = {}

    def feed(self, data, end=None):
        """Classify ``data[:end]``: whole lines, or whole export entries when ``export``."""
        end = len(data) if end is None else end
        if end <= 0:
            return
        self.bytes += end
        if self.export:
            self.lines += data.count(b"\n__CURSOR=", 0, end) + (1 if data.startswith(b"__CURSOR=") else 0)
        else:
            self.lines += data.count(b"\n", 0, end)
        self._levels(data, end)
        requests = data.count(ACCESS_TAIL, 0, end)
        if requests:
            own = data.count(OWN_ACCESS_TAIL, 0, end)
            own_5xx = self._status(data, end, requests, own)
            self.requests += requests - own + own_5xx
            self.own_requests += own - own_5xx

    def _status(self, data, end, requests, own):
        """Count the status classes of the counted lines; return how many of the runbook's own got a 5xx (they count)."""
        reverse = bytearray(memoryview(data)[:end])
        reverse.reverse()
        found = STATUS_REVERSED.findall(reverse)
        mine = OWN_STATUS_REVERSED.findall(reverse) if own else []
        del reverse
        own_5xx = mine.count(b"5")
        requests = requests - own + own_5xx
        others = 0
        for digit in (b"3", b"4", b"5"):
            count = found.count(digit) - (mine.count(digit) if digit != b"5" else 0)
            self.status[digit.decode() + "xx"] += count
            others += count
        odd = found.count(b"1") + data.count(UNANSWERED_TAIL, 0, end)
        if own:
            odd -= mine.count(b"1") + data.count(OWN_UNANSWERED_TAIL, 0, end)
        self.status_other += odd
        self.status["2xx"] += requests - others - odd
        return own_5xx

    def _levels(self, data, end):
        found = LEVEL_LINE.findall(data, 0, end)
        if not found:
            return
        stamps = [item[1] for item in found]
        lo, hi = min(stamps).decode(), max(stamps).decode()
        if self.first_time is None or lo < self.first_time:
            self.first_time = lo
        if self.last_time is None or hi > self.last_time:
            self.last_time = hi
        levels = self.levels
        errors = [item for item in found if item[0] == b"ERROR" or item[0] == b"CRITICAL"]
        if errors and data.find(self.probe_origin, 0, end) >= 0:
            kept = [item for item in errors if not _own_probe_line(item[4], self.probe_origin)]
            self.own_errors += len(errors) - len(kept)
            found = [item for item in found if item[0] in (b"INFO", b"WARN")] + kept
            errors = kept
        if len(errors) < len(found):
            for item in found:
                if item[0] == b"INFO" or item[0] == b"WARN":
                    levels[item[0].decode()] += 1
        if not errors:
            return
        self.errors += len(errors)
        heads = self._heads
        for item in errors:
            key = item[0], item[2], item[3]
            if key not in heads:
                heads[key] = "%s [%s] (%s)" % (item[0].decode(), _text(item[2]), _text(item[3]))
        sigs = [(heads[item[0], item[2], item[3]] + " " + norm)[:MAX_SIGNATURE] if norm else heads[item[0], item[2], item[3]]
                for item, norm in zip(errors, self._normalise([item[4] for item in errors]))]
        last = dict(zip(sigs, [item[1] for item in errors]))
        first = {}
        for index, sig in enumerate(sigs):
            if sig not in first and sig not in self.groups:
                first[sig] = index
        groups = self.groups
        counts = {}
        for sig in sigs:
            counts[sig] = counts.get(sig, 0) + 1
        critical = False
        for sig, count in counts.items():
            group = groups.get(sig)
            if group is None:
                item = errors[first[sig]]
                if len(groups) >= MAX_SIGNATURES:
                    self.overflow += count
                    levels[item[0].decode()] += count
                    continue
                level = item[0].decode()
                group = groups[sig] = {
                    "signature": sig, "level": level, "module": _text(item[2]), "type": _text(item[3]),
                    "count": 0, "sample": ("[%s] %s [%s] (%s) %s" % (
                        level, item[1].decode(), _text(item[2]), _text(item[3]), _text(item[4]))).strip()[:MAX_SAMPLE],
                    "new": sig not in self.known, "last_time": None, "frame": level != "CRITICAL"}
            group["count"] += count
            group["last_time"] = last[sig].decode()
            levels[group["level"]] += count
            if not group["frame"]:
                critical = True
        if critical:
            self._frames(data, end)

    def _normalise(self, messages):
        """The normalised text of each raw message. A message with its digits
        zeroed normalises the same (no rule tells one digit from another),
        so repeats of a message with other numbers cost a lookup."""
        out = [None] * len(messages)
        cache = self._normalised
        missed, keys = [], []
        for index, message in enumerate(messages):
            key = message.translate(_ZERO_DIGITS)
            known = cache.get(key)
            if known is None:
                missed.append(index)
                keys.append(key)
            else:
                out[index] = known
        if not missed:
            return out
        # uuids and session ids first (their rules come first anyway, and
        # behave the same on bytes), then the other rules once per distinct
        # remainder.
        joined = strip_ansi(b"\n".join([messages[i] for i in missed])).replace(b"\r", b"")
        for pattern, placeholder in ID_RULES:
            joined = pattern.sub(placeholder, joined)
        parts = [part.translate(_ZERO_DIGITS) for part in joined.split(b"\n")]
        distinct = {}
        for part in parts:
            distinct.setdefault(part, part)
        rest = _normalise_rest(b"\n".join(distinct).decode("utf-8", "replace")).split("\n")
        final = dict(zip(distinct, rest))
        room = len(cache) < 50000
        for index, part, key in zip(missed, parts, keys):
            text = final[part]
            out[index] = text
            if room:
                cache[key] = text
        return out

    def _frames(self, data, end):
        """Put the first frame of a CRITICAL's stack trace (the lines after it) into its group's sample."""
        pos = data.find(b"[CRITICAL]", 0, end)
        while pos >= 0:
            match = LEVEL_LINE.match(data, pos, end)
            if match:
                item = match.groups()
                norm = self._normalise([item[4] or b""])[0]
                head = self._heads.get((item[0], item[2], item[3]))
                if head:
                    sig = (head + " " + norm)[:MAX_SIGNATURE] if norm else head
                    group = self.groups.get(sig)
                    if group is not None and not group["frame"]:
                        frame = _first_frame(data[match.end():min(match.end() + 4096, end)])
                        if frame:
                            group["sample"] = ("%s | %s" % (group["sample"], frame))[:MAX_SAMPLE]
                            group["frame"] = True
            pos = data.find(b"[CRITICAL]", pos + 10, end)

    def window(self):
        """The counts the error rate is judged on, and what of the runbook's own was left out of them."""
        return {"requests": self.requests, "errors": self.errors, "status": dict(self.status),
                "own_requests": self.own_requests, "own_errors": self.own_errors}

    def result(self, top):
        groups = []
        for group in self.groups.values():
            group = dict(group)
            del group["frame"]
            groups.append(group)
        groups.sort(key=lambda g: (-g["count"], g["signature"]))
        return {
            "lines": self.lines, "bytes": self.bytes, "requests": self.requests, "status": dict(self.status),
            "status_other": self.status_other, "levels": dict(self.levels), "errors": self.errors,
            "signatures": groups, "top_signatures": groups[:max(int(top), 0)],
            "new_signatures": [g["signature"] for g in groups if g["new"]],
            "signatures_overflow": self.overflow,
            "own_requests": self.own_requests, "own_errors": self.own_errors,
            "first_time": self.first_time, "last_time": self.last_time,
        }


def _own_probe_line(message, probe_origin=OWN_PROBE_ORIGIN):
    """Whether an error line's message is the backend's refusal of the runbook's own CORS probe origin.

    The origin the line names must be the configured one EXACTLY (the whole
    origin as the backend prints it), never one that merely starts alike.
    """
    message = strip_ansi(message).strip() if message else b""
    if not message.startswith(OWN_CORS_LINE):
        return False
    origin = message[len(OWN_CORS_LINE):].split(b" ", 1)[0]
    return origin == probe_origin


def _text(raw):
    return strip_ansi(raw).decode("utf-8", "replace").replace("\r", "").strip() if raw else ""


def _first_frame(tail):
    """The first ``at ...`` frame of the stack trace that starts ``tail``, or None."""
    mark = tail.find(STACK_MARK)
    if mark < 0 or LEVEL_LINE.search(tail, 0, mark):
        return None
    frame = STACK_FRAME.search(tail, mark)
    if frame is None or LEVEL_LINE.search(tail, mark, frame.start()):
        return None
    return _text(frame.group(1))


# ------------------------------------------------------------------ files

class _Clock(object):
    def __init__(self, budget_s):
        self.started = time.monotonic()
        self.deadline = self.started + max(float(budget_s), 0.0)
        self.fed = 0
        self.stopped = False

    def may_read(self):
        """True while the budget lasts. Until a chunk of data was classified
        it is always true, so that every run makes progress."""
        if self.fed and time.monotonic() >= self.deadline:
            self.stopped = True
            return False
        return True

    def elapsed(self):
        return time.monotonic() - self.started


def _open_any(name):
    return gzip.open if name.endswith(".gz") else open


def _read_lines(handle, offset, tally, clock):
    """Classify whole lines of ``handle`` from ``offset``: (offset reached, read to the end).

    A last line without its newline is still being written: it is left for
    the next run.
    """
    handle.seek(offset)
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    filled = 0
    try:
        while True:
            if not clock.may_read():
                # Out of time; unless all there is left is a line still being written.
                if handle.read(1):
                    return offset, False
                clock.stopped = False
                return offset, True
            got = handle.readinto(view[filled:])
            if not got:
                return offset, True
            total = filled + got
            end = buf.rfind(b"\n", 0, total) + 1
            if end == 0:
                if total < len(buf):
                    filled = total
                    continue
                # Not one of the backend's lines: counted and skipped whole.
                skipped = _skip_line(handle)
                if skipped is None:
                    return offset, True
                tally.lines += 1
                offset += total + skipped
                filled = 0
                continue
            tally.feed(buf, end)
            clock.fed += 1
            offset += end
            filled = total - end
            if filled:
                buf[:filled] = buf[end:total]
    finally:
        view.release()


def _skip_line(handle):
    """Bytes up to and including the next newline of ``handle``, or None at its end."""
    skipped = 0
    while True:
        data = handle.read(CHUNK_BYTES)
        if not data:
            return None
        end = data.find(b"\n")
        if end >= 0:
            handle.seek(end + 1 - len(data), os.SEEK_CUR)
            return skipped + end + 1
        skipped += len(data)


def rotated_candidates(path):
    """Files logrotate may have moved ``path`` to, newest first."""
    names = set(glob.glob(glob.escape(path) + ".[0-9]*")) | set(glob.glob(glob.escape(path) + "-*"))
    return sorted(names, key=lambda n: os.stat(n).st_mtime if os.path.exists(n) else 0, reverse=True)


def _finish_rotated(path, prev, tally, clock):
    """Read the previous file's lines after ``prev['offset']`` from its rotated copy.

    Returns (how, finished, offset reached in the copy, copy name or None).
    """
    offset = prev.get("offset", 0)
    candidates = rotated_candidates(path)
    for name in candidates:  # renamed away: the same inode
        try:
            st = os.stat(name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (prev.get("dev"), prev.get("ino")):
            with open(name, "rb") as handle:
                reached, done = _read_lines(handle, offset, tally, clock)
            return "renamed to %s" % os.path.basename(name), done, reached, name
    # Compressed already, or copied (copytruncate): the newest rotated copy
    # that is at least as long as what was read holds the rest.
    for name in candidates:
        try:
            opener = _open_any(name)
            with opener(name, "rb") as handle:
                handle.seek(offset)
                probe = handle.read(1)
                if not probe and offset:
                    continue
                reached, done = _read_lines(handle, offset, tally, clock)
            return "finished from %s" % os.path.basename(name), done, reached, name
        except (OSError, EOFError):
            continue
    return "rotated copy not found; lines after the last read may be missed", True, offset, None


HOW = {"renamed": "rotated, ", "truncated": "truncated (copytruncate), ",
       "replaced": "rotated (a new file on the old inode), "}
HEAD_BYTES = 4096


def _head(path, length):
    """CRC of the first ``length`` bytes of ``path``: tells a file from a new
    one that got the same inode number (a rotated file deleted, its inode
    reused for the new log) once it has grown past the old offset."""
    with open(path, "rb") as handle:
        return zlib.crc32(handle.read(length))


def _scan_file(path, prev, first_run, tally, clock):
    """(new state, rotation or None, problem or None, backlog bytes, newest time when behind)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return prev, None, "%s: %s" % (path, exc.strerror), 0, None
    rotation = None
    offset = prev.get("offset", 0) if prev else None
    try:
        if prev:
            kind = prev.get("rotated")
            same = st is not None and (st.st_dev, st.st_ino) == (prev.get("dev"), prev.get("ino"))
            if kind:
                pass
            elif not same:
                kind = "renamed"
            elif st.st_size < offset:
                kind = "truncated"
            elif prev.get("head_len") and _head(path, prev["head_len"]) != prev.get("head"):
                kind = "replaced"
            if kind:
                before = tally.lines
                lookup = prev if kind == "renamed" else dict(prev, ino=None)
                how, done, reached, copy = _finish_rotated(path, lookup, tally, clock)
                rotation = {"file": path, "how": HOW[kind] + how, "lines_from_old": tally.lines - before}
                if not done:
                    # Out of time inside the copy: the next run finishes it first.
                    left = _copy_left(copy, reached) + (st.st_size if st is not None else 0)
                    return dict(prev, offset=reached, rotated=kind), rotation, None, left, _newest(path, copy)
                offset = 0
        if st is None:
            return {}, rotation, None if prev else "%s does not exist" % path, 0, None
        if offset is None:
            offset = 0 if first_run == "start" else st.st_size
        with open(path, "rb") as handle:
            reached, done = _read_lines(handle, offset, tally, clock)
            size = os.fstat(handle.fileno()).st_size
        head_len = min(reached, HEAD_BYTES)
        state = {"dev": st.st_dev, "ino": st.st_ino, "offset": reached}
        if head_len:
            state.update(head=_head(path, head_len), head_len=head_len)
    except OSError as exc:
        return prev, rotation, "%s: %s" % (path, exc.strerror), 0, None
    return state, rotation, None, 0 if done else max(size - reached, 0), None if done else _newest(path)


def _copy_left(name, reached):
    if not name:
        return 0
    try:
        size = os.path.getsize(name)
    except OSError:
        return 0
    # A compressed copy's remaining length is unknown without reading it;
    # its compressed size stands in.
    return size if name.endswith(".gz") else max(size - reached, 0)


def _newest(*names):
    """The newest time in the ErrorHandler lines at the end of the first of
    ``names`` that has one (its last 64 KiB), else that file's mtime, as
    seconds since the epoch; None when neither is known."""
    mtime = None
    for name in names:
        if not name:
            continue
        try:
            with _open_any(name)(name, "rb") as handle:
                if not name.endswith(".gz"):
                    handle.seek(max(os.fstat(handle.fileno()).st_size - 65536, 0))
                    tail = handle.read()
                else:
                    tail = b""
                    while True:
                        data = handle.read(CHUNK_BYTES)
                        if not data:
                            break
                        tail = (tail + data)[-65536:]
            if mtime is None:
                mtime = os.path.getmtime(name)
        except (OSError, EOFError):
            continue
        stamps = [m[1] for m in LEVEL_LINE.findall(tail)]
        if stamps:
            return _epoch_of_iso(max(stamps).decode())
    return mtime


def _base_result(tally, top, clock, problems, rotations, position, complete, behind_bytes, seconds_behind):
    result = tally.result(top)
    result.update(
        rotations=rotations, problems=list(dict.fromkeys(problems)), position=position, elapsed_s=round(clock.elapsed(), 3),
        backlog={"bytes": int(behind_bytes), "seconds_behind": seconds_behind, "complete": bool(complete)})
    return result


def scan_files(paths, position, first_run="start", budget_s=60.0, known_signatures=(), top=10, now=None, probe_origin=None):
    """Scan the log files ``paths`` from ``position`` (a previous result's ``position``; {} the first time).

    Returns a dict of figures; ``position`` in it is what to pass next time.
    A file that is missing or unreadable is a sentence in ``problems``.
    """
    now = time.time() if now is None else now
    clock = _Clock(budget_s)
    tally = Tally(known_signatures, probe_origin=probe_origin)
    _check_first_run(first_run)
    old = (position or {}).get("files") if isinstance(position, dict) else None
    old = old if isinstance(old, dict) else {}
    files, rotations, problems = {}, [], []
    behind, newest = 0, None
    for path in paths:
        prev = old.get(path)
        if prev is not None and not _valid_state(prev):
            problems.append("the saved position of %s is not one this module wrote (%r); read as a first run"
                            % (path, prev))
            prev = None
        if clock.stopped:
            # Out of time: the file keeps its place (a new one gets its start).
            state, left = _place_untouched(path, prev, first_run)
            if state:
                files[path] = state
            behind += left
            continue
        state, rotation, problem, left, mtime = _scan_file(path, prev, first_run, tally, clock)
        if state:
            files[path] = state
        if rotation:
            rotations.append(rotation)
        if problem:
            problems.append(problem)
        if left:
            behind += left
            if newest is None:
                newest = mtime
    complete = not clock.stopped
    seconds = 0.0 if complete else None
    if not complete and tally.last_time and newest:
        last = _epoch_of_iso(tally.last_time)
        if last is not None:
            seconds = round(max(newest - last, 0.0), 1)
    result = _base_result(tally, top, clock, problems, rotations, {"files": files}, complete,
                          0 if complete else behind, seconds)
    result["window"] = None
    result["source"] = "files"
    return result


def _check_first_run(first_run):
    if first_run not in ("start", "end"):
        raise ValueError("first_run must be 'start' or 'end', got %r" % (first_run,))


def _valid_state(state):
    return (isinstance(state, dict) and all(isinstance(state.get(k), int) for k in ("dev", "ino", "offset"))
            and state["offset"] >= 0 and state.get("rotated") in (None, "renamed", "truncated", "replaced"))


def _place_untouched(path, prev, first_run):
    try:
        st = os.stat(path)
    except OSError:
        return prev, 0
    if prev and not prev.get("rotated") and (st.st_dev, st.st_ino) == (prev.get("dev"), prev.get("ino")):
        return prev, max(st.st_size - prev.get("offset", 0), 0)
    if prev:
        return prev, st.st_size
    offset = 0 if first_run == "start" else st.st_size
    return {"dev": st.st_dev, "ino": st.st_ino, "offset": offset}, st.st_size - offset


# ---------------------------------------------------------------- journal

class _Unreadable(Exception):
    pass


class _JournalRead(object):
    """One ``journalctl -o export`` run, classified as it streams."""

    def __init__(self, argv, tally, clock, window_us=None, window_tally=None):
        self.argv = argv
        self.show_cursor = "--show-cursor" in argv
        self.tally = tally
        self.clock = clock
        self.window_us = window_us
        self.window_tally = window_tally
        self.cursor = None
        self.first_us = None
        self.last_us = None
        self.complete = False
        self.started = False
        self.error = None
        self.stderr = ""

    def run(self):
        env = dict(os.environ, SYSTEMD_COLORS="0", SYSTEMD_PAGER="", PAGER="cat", LC_ALL="C")
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=errors, env=env)
            except OSError as exc:
                self.error = "cannot run %s: %s" % (self.argv[0], exc.strerror or exc)
                return self
            self.started = True
            try:
                self._stream(proc)
            except _Unreadable as exc:
                self.error = str(exc)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                rc = proc.wait()
                errors.seek(0)
                self.stderr = errors.read(4096).decode("utf-8", "replace").strip()
            if self.complete and rc != 0:
                self.complete = False
                self.error = "%s exited with %d: %s" % (
                    " ".join(self.argv[:3]), rc, self.stderr.splitlines()[0] if self.stderr else "no message")
        return self

    def _stream(self, proc):
        fd = proc.stdout.fileno()
        chunk = min(CHUNK_BYTES, JOURNAL_CHUNK_BYTES)
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, chunk)
        except OSError:
            pass  # not Linux, or above /proc/sys/fs/pipe-max-size: a slower read, the same result
        buf = bytearray()
        while True:
            if not self.clock.may_read():
                self._take(buf, final=False)
                return
            # Fill a chunk; the pipe hands over at most its capacity at a time.
            eof = False
            while len(buf) < chunk:
                piece = os.read(fd, 1 << 20)
                if not piece:
                    eof = True
                    break
                buf += piece
            if eof:
                self._take(buf, final=True)
                self.complete = True
                return
            buf = self._take(buf, final=False)

    def _take(self, buf, final):
        """Classify the whole entries in ``buf``; returns what is left (an unfinished entry)."""
        if final and self.show_cursor:
            mark = buf.rfind(b"-- cursor: ")
            if mark >= 0 and (mark == 0 or buf[mark - 1] == 0x0A):
                self.cursor = bytes(buf[mark + 11:]).strip().decode("ascii", "replace") or self.cursor
                del buf[mark:]
        if final:
            end = len(buf)
        else:
            end = buf.rfind(EXPORT_ENTRY)
            if end < 0:
                if len(buf) > MAX_LINE_BYTES:
                    raise _Unreadable("journalctl printed an entry longer than %d bytes" % MAX_LINE_BYTES)
                return buf
            end += 2
        if end <= 0:
            return buf
        data = bytes(buf[:end])
        del buf[:end]
        self._classify(data)
        self.clock.fed += 1
        return buf

    def _classify(self, data):
        start = data.rfind(b"__CURSOR=")
        if start < 0:
            return
        last = EXPORT_CURSOR.match(data, start)
        if last:
            self.cursor = last.group(1).decode("ascii", "replace")
        first_us = EXPORT_REALTIME.search(data)
        last_us = EXPORT_REALTIME.search(data, start)
        if first_us and self.first_us is None:
            self.first_us = int(first_us.group(1))
        if last_us:
            self.last_us = int(last_us.group(1))
        self.tally.feed(data)
        if self.window_tally is None or last_us is None or int(last_us.group(1)) < self.window_us:
            return
        if first_us and int(first_us.group(1)) >= self.window_us:
            self.window_tally.feed(data)
            return
        for stamp in EXPORT_REALTIME.finditer(data):
            if int(stamp.group(1)) >= self.window_us:
                entry = data.rfind(b"\n\n__CURSOR=", 0, stamp.start())
                self.window_tally.feed(data[entry + 2 if entry >= 0 else 0:])
                return


def _journal_argv(journalctl, unit, fields=True):
    argv = [journalctl, "-u", unit, "--no-pager", "-o", "export"]
    if fields:
        # Only MESSAGE besides the fields export always prints (__CURSOR,
        # __REALTIME_TIMESTAMP, __MONOTONIC_TIMESTAMP, _BOOT_ID).
        argv.append("--output-fields=MESSAGE")
    return argv


def _cursor_time_us(cursor):
    match = re.search(r"(?:^|;)t=([0-9a-f]+)(?:;|$)", cursor or "")
    return int(match.group(1), 16) if match else None


def scan_journal(unit, position, first_run="start", budget_s=60.0, window_s=300, known_signatures=(), top=10,
                 journalctl="journalctl", now=None, probe_origin=None):
    """Scan systemd unit ``unit``'s journal after ``position['cursor']``.

    Reads ``journalctl -u UNIT -o export --output-fields=MESSAGE`` resumed
    with ``--after-cursor``: export prints every entry's cursor, so a read
    cut short by the budget resumes exactly after the last entry it
    classified (short-iso prints none, and its times are not the ones
    ``--since`` seeks by). A unit never read before starts
    ``FIRST_RUN_SPAN_S`` back (first_run=start) or at the journal's end
    (first_run=end). ``window`` holds the last ``window_s`` seconds by the
    journal's own timestamps; when the main read does not cover them (a run
    less than ``window_s`` after the previous one, a first run at the end, a
    read cut short) they are read on their own with ``--since``, given at
    least ``WINDOW_MIN_BUDGET_S``.
    """
    now = time.time() if now is None else now
    clock = _Clock(budget_s)
    known = tuple(known_signatures)
    problems = []
    _check_first_run(first_run)
    cursor = position.get("cursor") if isinstance(position, dict) else None
    if cursor is not None and not isinstance(cursor, str):
        problems.append("the saved journal cursor is not text (%r); read as a first run" % (cursor,))
        cursor = None
    window_us = int((now - window_s) * 1000000)
    since_first = ["--since", "@%d" % int(now - FIRST_RUN_SPAN_S)]
    options = {"fields": True}

    def read(extra, counts, run_clock, window_tally=None):
        job = _JournalRead(_journal_argv(journalctl, unit, options["fields"]) + extra, counts, run_clock,
                           window_us, window_tally).run()
        if job.error and options["fields"] and "output-fields" in job.stderr:
            options["fields"] = False  # systemd before 236 has no --output-fields
            job = _JournalRead(_journal_argv(journalctl, unit, False) + extra, counts, run_clock,
                               window_us, window_tally).run()
        if "not seeing messages" in job.stderr:
            problems.append("journalctl does not show %s's entries to this user: %s"
                            % (unit, job.stderr.splitlines()[0]))
        return job

    def main_read(tail, start_us):
        counts = Tally(known, export=True, probe_origin=probe_origin)
        # The main read gives the window too when it starts before it.
        covers = start_us is not None and start_us <= window_us
        window_tally = Tally(export=True, probe_origin=probe_origin) if covers else None
        return read(tail, counts, clock, window_tally), counts, window_tally

    if cursor:
        job, tally, window_tally = main_read(["--after-cursor", cursor], _cursor_time_us(cursor))
        if job.error and "cursor" in job.error.lower():
            problems.append("journalctl refused the saved cursor (%s); read from %s instead" % (
                job.error, "the end" if first_run == "end" else "the last %d h" % (FIRST_RUN_SPAN_S // 3600)))
            cursor = None
    if not cursor:
        if first_run == "end":
            job, tally, window_tally = main_read(["-n", "0", "--show-cursor"], None)
        else:
            job, tally, window_tally = main_read(since_first, int(now - FIRST_RUN_SPAN_S) * 1000000)
    if job.error:
        problems.append(job.error)
    complete = job.complete
    window = None
    if job.started:
        if window_tally is not None and complete:
            window = dict(window_tally.window(), complete=True)
        else:
            window_clock = _Clock(max(clock.deadline - time.monotonic(), WINDOW_MIN_BUDGET_S))
            counts = Tally(export=True, probe_origin=probe_origin)
            wjob = read(["--since", "@%.6f" % (window_us / 1000000.0)], counts, window_clock)
            if wjob.error and wjob.error not in problems:
                problems.append(wjob.error)
            window = dict(counts.window(), complete=wjob.complete)
        window.update(seconds=int(window_s), since=_iso_from_us(window_us))
    seconds, behind = (0.0, 0) if complete else (None, 0)
    if not complete and job.last_us is not None:
        newest = read(["-n", "1"], Tally(export=True), _Clock(WINDOW_MIN_BUDGET_S)).last_us
        if newest is None:
            newest = int(now * 1000000)
        seconds = round(max(newest - job.last_us, 0) / 1000000.0, 1)
        span = (job.last_us - job.first_us) / 1000000.0
        # The journal does not say how many bytes are left: estimated from
        # the bytes per second of journal time of the part read.
        behind = int(tally.bytes / span * seconds) if span > 0 else tally.bytes
    result = _base_result(tally, top, clock, problems, [], {"cursor": job.cursor or cursor}, complete, behind, seconds)
    result["backlog"]["bytes_estimated"] = not complete
    if job.first_us is not None:
        result["first_time"], result["last_time"] = _iso_from_us(job.first_us), _iso_from_us(job.last_us)
    else:
        result["first_time"] = result["last_time"] = None
    result["window"] = window
    result["source"] = "journal"
    return result
