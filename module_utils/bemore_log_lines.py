# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lines of the BeMore backend's stdout, classified: ErrorHandler's
levelled lines, morgan's access lines, the runbook's own requests kept
apart, and error signatures normalised so that one cause is one signature.

``Tally`` counts a chunk of lines at a time (what bemore_logs reads from a
log file or the journal); ``parse_line`` and ``signature`` read one line.
The layouts, and why they are matched as they are, are described in
bemore_logs.

Standard library only: this runs on the managed host.
"""

from __future__ import annotations

import calendar
import re
import time

MAX_SAMPLE = 500
MAX_SIGNATURE = 300
# Distinct signatures kept per scan; the error lines of any further ones are
# still counted (``signatures_overflow``).
MAX_SIGNATURES = 1000

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


def iso_from_us(usec):
    seconds, micro = divmod(int(usec), 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % (micro // 1000)


def epoch_of_iso(stamp):
    """Seconds since the epoch of an ErrorHandler time (``2026-12-02T09:46:05.110Z``), or None.

    Kept apart from runbook_common.parse_time: the journald test and the log benchmark run the two log files
    alone inside a container, and this reads only the one format the backend writes.
    """
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
