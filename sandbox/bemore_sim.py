#!/usr/bin/env python3
"""BeMore backend simulator for the sandbox, the tests and the Molecule testbed.

It stands in for the real BeMore backend (Node.js 20, Express 5): the same
routes, bodies, headers, status codes and stdout log lines, as recorded in
the project's spec page (bemore-api-observed.md). It imports nothing from the
project: a contract test compares its answers with the recorded real ones.

Command line (all optional):
  --host H --port P                 listen address (default 127.0.0.1:18080)
  --ports A-B[,C...]                serve the same app on every listed port too;
  --extra-port P (repeatable)         each port has its own rate-limit buckets
  --version V                       package version (default 1.0.0)
  --commit SHA | --commit-file F    the deployed commit; otherwise the app .env's
                                    RENDER_GIT_COMMIT/GIT_COMMIT/COMMIT_SHA/
                                    VERCEL_GIT_COMMIT_SHA; otherwise null
  --env-file F                      the app's .env: FRONTEND_URLS (FRONTEND_URL),
                                    NODE_ENV, TEMP_FILE_MAX_AGE_DAYS,
                                    TEMP_FILE_MAX_SIZE_MB, TEMP_CLEANUP_INTERVAL_MIN
  --frontend-urls LIST              CORS origins, comma-separated (wins over .env)
  --cors-origin O (repeatable)      add one allowed origin
  --log-file F                      append the app's stdout/stderr lines here ("-": stdout)
  --pid-file F
  --rate-limit N --rate-window S    requests per IP per window (600 per 600 s); 0 = off
  --write-rate-limit N              POST/PUT/DELETE per window (default N/2: 300)
  --background-rps R                synthetic traffic written as access lines (5; 0 = none)
  --base-failure F                  failing share of that traffic (0.0002 = 0.02 %)
  --session-end-wait S              POST /api/session/{id}/end holds its answer S s (30)
  --cleanup-tmp                     the temp cleanup service really deletes in <.env dir>/tmp
  --random-seed N                   repeatable synthetic traffic
  --fault NAME=VALUE (repeatable)   see below

Faults (``--fault`` or ``POST /__sim/faults`` with a JSON object; null, false
or 0 removes one; ``DELETE /__sim/faults`` removes all; bad input: HTTP 400
INVALID_FAULTS):
  error_spike=TYPE[:PERCENT]  PERCENT % (default 3) of the traffic fails with TYPE
                              (a backend type, or a guide category mapped to one);
                              setting it writes a burst of 500 requests at once
  request_errors=TYPE         every client request except / and /health fails with TYPE
  latency_ms=N                every app answer (and synthetic response time) +N ms
  status_5xx=CODE             a reverse proxy answers CODE (500-599) with its HTML page
  malformed_json=1            JSON answers are cut in half
  health_down=1               the app is dead behind its proxy: every path 503 from the proxy
  refuse_s=N                  every port refuses connections for N s
  cleanup_stalled=1           the temp cleanup service stopped 3 intervals ago
  cleanup_errors=N            each cleanup check fails on N files (FILE errors)
  memory_mb=N                 the process holds N MB more
  no_rate_limit=1             the app runs without its rate limiters (no RateLimit headers)
  redirect=ORIGIN|self        a proxy answers every app path with 302 to the same path at ORIGIN
                              (http(s)://host[:port]); "self": to the same path on this origin,
                              marked so that the second request is served
  dribble_s=S                 app answers send their headers at once, then the body one byte
                              every S seconds (a slow or stuck upstream)

Control routes (never rate-limited, logged or counted):
  GET/POST/DELETE /__sim/faults   read (with open_sessions) / set / clear faults
  GET  /__sim/state               uptime, open sessions, error total, cleanup, limits,
                                  the Authorization headers each route saw
  DELETE /__sim/authorizations    forget them
  POST /__sim/commit              {"commit": "...", "version": "..."}
  POST /__sim/restart             a process restart: uptime, counters, sessions and rate
                                  limits reset, .env re-read; memory_mb, health_down and
                                  cleanup_stalled end (a deployed commit stays)
  DELETE /__sim/rate-window       forget every client's rate-limit hits

What was checked against the real backend (GitHub KUS-CapstoneDesign-II/
BeMoreBackend, HEAD adefcfa of 2025-11-19, and the 2025-10-24 tree the guide
was written for), reading its source and running it here on Node 20 with
MariaDB 10.11. These are facts about its behaviour, not its code:

* Middleware order: helmet, a 600/10 min limiter on every path, a 300/10 min
  limiter on POST/PUT/DELETE, request id, morgan, cors, JSON body parser
  (1 MB), routes, the ErrorHandler middleware, the 404 handler. Hence:
  - A 429 (express-rate-limit 7.5.1) has helmet and RateLimit headers plus
    Retry-After, the text/html body "Too many requests, please try again
    later.", no X-Request-Id and no access line. A POST carries the write
    limiter's headers (RateLimit-Policy: 300;w=600), since it sets them last.
    Each client's window starts at its first hit; the limit trips when hits
    exceed it; RateLimit-Reset is the seconds left (left out at 0).
  - A disallowed Origin fails any request, preflight or not: 400 through the
    ErrorHandler ({"success":false,"error":{"type":"UNKNOWN","message":"CORS
    policy: Origin X is not allowed",...,"code":"UNKNOWN"}}), an error in the
    stats and a "CORS: Blocked origin" warning line, no CORS headers. An
    allowed or absent Origin gets Vary: Origin, credentials and the exposed
    headers; an OPTIONS request gets 204 with methods and allowed headers.
    FRONTEND_URLS (else FRONTEND_URL) replaces the three built-in origins;
    https://be-more-frontend*.vercel.app previews are always allowed.
  - Helmet 7 headers: report-only CSP, HSTS 180 days with subdomains,
    X-Content-Type-Options nosniff, COOP same-origin-allow-popups, and the rest
    below (HELMET_HEADERS); no X-Powered-By. 'trust proxy' only in production.
* ErrorHandler: type by the first matching rule (code ECONNREFUSED/ETIMEDOUT
  NETWORK; name ValidationError VALIDATION/WARN; message containing
  "authentication"/"unauthorized" AUTH/WARN, "database"/"MongoDB"
  DATABASE/CRITICAL, "Gemini"/"API" AI_SERVICE, "WebSocket"/"ws" WEBSOCKET;
  a code starting with E plus a syscall FILE; else UNKNOWN/ERROR). The level a
  caller passes is ignored. The middleware answers err.status, else 500 for
  CRITICAL and 400 otherwise, code = err.code or the type, and stores the
  request id; errors handled inside routes (session end) store none.
  Error lines go to stderr as ANSI: colour by level (INFO 36, WARN 33,
  ERROR 31, CRITICAL 35), time 90, module 34, type 33; CRITICAL adds a grey
  "Stack Trace:" line and the stack. Stats keep total/byType/byCode (null
  code counts as UNKNOWN)/byModule and the last 100 entries; the summary sorts
  by count, topModules keeps 5. POST /api/monitoring/reset-stats exists but
  breaks every stats route afterwards (it drops byCode); not simulated.
* recent-errors: limit = JavaScript parseInt(limit) or 20 when that is NaN or
  0, echoed as parsed (negative too), and recent.slice(0, limit), so a
  negative limit drops that many from the end. No 400 for any limit.
  errors/:category takes parseInt(limit) or 50 the same way.
* Session start validates with zod (userId, counselorId non-empty strings):
  failure is an AppError 400 VALIDATION_ERROR through the middleware. Success
  is HTTP 201 (the spec page says 200; the code and the running backend say
  201) with sessionId sess_<ms>_<8 hex>, wsUrls from the Host header,
  startedAt, status, userId, counselorId. Malformed JSON is a 400 from the
  body parser (code null in the stats, "UNKNOWN" in the answer).
* Session end: an unknown id answers 400 {"success":false,"error":{"code":
  "SESSION_END_ERROR","message":"세션을 찾을 수 없습니다: <id>"}} at once and
  records an error with module session-end and no request id. A known id is
  marked ended at once, then the answer waits 30 s (a grace period added
  2025-10-26; the 2025-10-24 release answered at once) and is 200 with
  status "ended", endedAt, duration, emotionCount, emotionSummary null and
  zeroed inferenceStats. Ending twice is fine (same answer).
* morgan writes ":method :url :status :res[content-length] - :response-time
  ms reqId=:id" when the answer is sent, so an error line comes before its
  request's access line. X-Request-Id echoes a client's x-request-id.
* TempFileCleanup: TEMP_* from the environment at start (strings); one check
  at start, then every interval; lastCheckTime null until the first check
  ends; bytesFreed in bytes, bytesFreedMB a 2-decimal string; only regular
  files directly in tmp/, age rule first, then oldest-first down to the size
  cap; a failed unlink counts in errors and in the error stats.
* Tables (sequelize.sync of models/ on MariaDB): see sandboxctl.py.

Where the simulator knowingly differs: it writes a request's log lines just
before its answer leaves (so whoever got the answer finds them); it keeps
the default for a non-positive or non-numeric TEMP_* value (the app would
spin); it deletes temp files only with --cleanup-tmp (the sandbox's tmp/ is
there for the runbooks); the commit comes from --commit/--commit-file or the
.env, never from its own environment; the dotenv banner has no "tip"; the
WebSocket routes and every route the guide does not use answer 404.
"""

from __future__ import annotations

import argparse
import base64
import errno
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import parse_qs, unquote, urlsplit

TYPES = ("NETWORK", "VALIDATION", "AUTH", "DATABASE", "AI_SERVICE", "WEBSOCKET", "FILE", "UNKNOWN")
CATEGORIES = ("WEBSOCKET", "SESSION", "STT", "VAD", "GEMINI", "CBT", "DATABASE", "NETWORK")
# The guide's categories name features, not the backend's error types; an
# operator's "GEMINI spike" shows up in the stats as AI_SERVICE errors.
CATEGORY_TYPE = {"WEBSOCKET": "WEBSOCKET", "SESSION": "UNKNOWN", "STT": "AI_SERVICE", "VAD": "UNKNOWN",
                 "GEMINI": "AI_SERVICE", "CBT": "UNKNOWN", "DATABASE": "DATABASE", "NETWORK": "NETWORK"}
RECENT_MAX = 100
SPIKE_BURST = 500
CLEANUP_STALL_INTERVALS = 3

HELMET_HEADERS = (
    ("Content-Security-Policy-Report-Only",
     "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';"
     "frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';"
     "script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"),
    ("Cross-Origin-Opener-Policy", "same-origin-allow-popups"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Origin-Agent-Cluster", "?1"),
    ("Referrer-Policy", "no-referrer"),
    ("Strict-Transport-Security", "max-age=15552000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-DNS-Prefetch-Control", "off"),
    ("X-Download-Options", "noopen"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Permitted-Cross-Domain-Policies", "none"),
    ("X-XSS-Protection", "0"),
)
CORS_DEFAULT_ORIGINS = ("http://localhost:5173", "http://localhost:3000", "https://be-more-frontend.vercel.app")
CORS_PREVIEW = re.compile(r"^https://be-more-frontend.*\.vercel\.app$")
CORS_METHODS = "GET,POST,PUT,DELETE,OPTIONS,PATCH"
CORS_ALLOW_HEADERS = "Content-Type,Authorization,x-request-id,x-device-id,x-csrf-token,x-timestamp,x-client-version"
CORS_EXPOSE_HEADERS = "x-request-id,x-device-id,x-csrf-token,x-timestamp"
RATE_LIMITED_BODY = b"Too many requests, please try again later."
JSON_LIMIT = 1024 * 1024
WRITE_METHODS = ("POST", "PUT", "DELETE")

COLORS = {"INFO": "\x1b[36m", "WARN": "\x1b[33m", "ERROR": "\x1b[31m", "CRITICAL": "\x1b[35m"}
RESET = "\x1b[0m"

FAULT_NAMES = ("error_spike", "request_errors", "latency_ms", "status_5xx", "malformed_json", "health_down",
               "refuse_s", "cleanup_stalled", "cleanup_errors", "memory_mb", "no_rate_limit", "redirect",
               "dribble_s")
BOOLEAN_FAULTS = ("malformed_json", "health_down", "cleanup_stalled", "no_rate_limit")
NUMBER_FAULTS = {"latency_ms": (0, 120000), "refuse_s": (0, 3600), "cleanup_errors": (0, 10000),
                 "memory_mb": (0, 8192), "dribble_s": (0, 60)}
# A request carrying this query parameter was sent here by the redirect fault's
# same-origin redirect, and is served.
REDIRECTED_MARK = "_sim_redirected=1"
COMMIT_VARIABLES = ("RENDER_GIT_COMMIT", "GIT_COMMIT", "COMMIT_SHA", "VERCEL_GIT_COMMIT_SHA")

# Synthetic failures, one or two per type. Each message and code is chosen so
# that the backend's own classification rules give that type (a unit test
# checks it with classify()).
FAILURES = {
    "NETWORK": ({"message": "connect ETIMEDOUT 10.0.3.7:443", "code": "ETIMEDOUT"},
                {"message": "connect ECONNREFUSED 127.0.0.1:6379", "code": "ECONNREFUSED"}),
    "VALIDATION": ({"message": "Validation error: rating must be between 1 and 5", "name": "ValidationError"},),
    "AUTH": ({"message": "unauthorized: access token expired", "code": "TOKEN_EXPIRED"},),
    "DATABASE": ({"message": "database connection lost: The server closed the connection.",
                  "code": "PROTOCOL_CONNECTION_LOST", "error_name": "SequelizeConnectionError"},),
    "AI_SERVICE": ({"message": "Gemini API request timed out after 45000ms"},
                   {"message": "OpenAI API error: 429 Rate limit reached for whisper-1"}),
    "WEBSOCKET": ({"message": "WebSocket connection closed abnormally (code 1006)"},),
    "FILE": ({"message": "ENOSPC: no space left on device, write", "code": "ENOSPC", "syscall": "write"},),
    "UNKNOWN": ({"message": "Cannot read properties of undefined (reading 'emotion')",
                 "error_name": "TypeError"},),
}
BASE_FAILURE_TYPES = ("UNKNOWN", "NETWORK", "AI_SERVICE", "WEBSOCKET")

# (weight, method, path, status, content-length range, median ms) of the
# frontend's everyday traffic, from the backend's routes.
TRAFFIC = (
    (30, "GET", "/health", 200, (106, 109), 0.6),
    (8, "OPTIONS", "/api/session/{sid}/frames", 204, (0, 0), 0.4),
    (15, "POST", "/api/session/{sid}/frames", 200, (58, 74), 14.0),
    (10, "POST", "/api/session/{sid}/audio", 200, (58, 74), 9.0),
    (6, "POST", "/api/session/{sid}/stt", 200, (120, 420), 35.0),
    (8, "POST", "/api/session/{sid}/tick", 200, (180, 620), 6.0),
    (5, "GET", "/api/session/{sid}", 200, (300, 360), 1.2),
    (10, "GET", "/api/dashboard/summary", 200, (600, 2400), 18.0),
    (3, "POST", "/api/session/start", 201, (400, 420), 8.0),
    (2, "POST", "/api/session/{sid}/end", 200, (310, 330), 30040.0),
    (3, "GET", "/api/user/preferences", 200, (90, 200), 4.0),
    (2, "GET", "/api/session/{sid}/report", 200, (2000, 9000), 25.0),
)
TRAFFIC_WEIGHTS = [row[0] for row in TRAFFIC]

PROXY_TITLES = {500: "500 Internal Server Error", 502: "502 Bad Gateway",
                503: "503 Service Temporarily Unavailable", 504: "504 Gateway Time-out"}


# ---------------------------------------------------------------- helpers

# The backend's wall clock, moved by --now (or BEMORE_RUNBOOK_NOW) for tests:
# it starts at that instant and runs on. Written here, not shared with the
# runbooks: the simulator shares none of their code.
CLOCK = {"offset": 0.0}


def wall():
    return time.time() + CLOCK["offset"]


def parse_now(value):
    """Epoch seconds from epoch seconds or an ISO-8601 time (UTC when it names no offset)."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def iso(ts):
    """Date.prototype.toISOString() of an epoch time."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_json(obj):
    """JSON.stringify: compact, UTF-8 as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def weak_etag(data):
    """Express's default (weak) ETag of a response body."""
    digest = base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")[:27]
    return 'W/"%x-%s"' % (len(data), digest)


JS_INT = re.compile(r"^[\s\ufeff]*([+-]?)(0[xX][0-9a-fA-F]+|\d+)")


def js_parse_int(value):
    """JavaScript parseInt(value) without a radix; None stands for NaN."""
    if value is None:
        return None
    match = JS_INT.match(str(value))
    if not match:
        return None
    sign, digits = match.groups()
    number = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits)
    return -number if sign == "-" else number


def classify(message, code=None, name=None, syscall=None):
    """The backend's error classification: (type, level)."""
    message = message or ""
    if code in ("ECONNREFUSED", "ETIMEDOUT"):
        return "NETWORK", "ERROR"
    if name == "ValidationError":
        return "VALIDATION", "WARN"
    if "authentication" in message or "unauthorized" in message:
        return "AUTH", "WARN"
    if "database" in message or "MongoDB" in message:
        return "DATABASE", "CRITICAL"
    if "Gemini" in message or "API" in message:
        return "AI_SERVICE", "ERROR"
    if "WebSocket" in message or "ws" in message:
        return "WEBSOCKET", "ERROR"
    if isinstance(code, str) and code.startswith("E") and syscall:
        return "FILE", "ERROR"
    return "UNKNOWN", "ERROR"


def v8_token_error(doc, pos):
    """V8's message for an unexpected character, with its quoted context:
    the whole text up to 20 characters, else 10 characters either side."""
    if len(doc) <= 20:
        shown = '"%s"' % doc
    else:
        left, right = max(0, pos - 10), min(len(doc), pos + 10)
        shown = ('..."' if left else '"') + doc[left:right] + ('"...' if right < len(doc) else '"')
    return "Unexpected token '%s', %s is not valid JSON" % (doc[pos], shown)


def node_json_error(doc, exc):
    """The message Node 20's JSON.parse gives for what Python's json refused."""
    msg, pos = getattr(exc, "msg", str(exc)), getattr(exc, "pos", 0)
    if not doc.strip() or (msg == "Expecting value" and not doc[pos:].strip()):
        return "Unexpected end of JSON input"
    if msg.startswith("Expecting property name"):
        if doc[:pos].rstrip().endswith(","):
            return "Expected double-quoted property name in JSON at position %d" % pos
        return "Expected property name or '}' in JSON at position %d" % pos
    if msg.startswith("Expecting ','"):
        if doc.lstrip().startswith("["):
            return "Expected ',' or ']' after array element in JSON at position %d" % pos
        return "Expected ',' or '}' after property value in JSON at position %d" % pos
    if msg.startswith("Expecting ':'"):
        return "Expected ':' after property name in JSON at position %d" % pos
    if msg.startswith("Extra data"):
        return "Unexpected non-whitespace character after JSON at position %d" % pos
    if msg.startswith("Unterminated string"):
        return "Unterminated string in JSON at position %d" % len(doc)
    if msg.startswith("Invalid control character"):
        return "Bad control character in string literal in JSON at position %d" % pos
    for literal in ("true", "false", "null"):  # V8 reads a literal up to the first wrong character
        matched = 0
        while matched < len(literal) and doc[pos + matched:pos + matched + 1] == literal[matched]:
            matched += 1
        if matched:
            pos += matched
            break
    if pos >= len(doc):
        return "Unexpected end of JSON input"
    return v8_token_error(doc, pos)


def strict_json(raw):
    """body-parser's json(): strict (object or array only); raise ValueError(node message)."""
    text = raw.decode("utf-8", errors="replace")
    if not text:
        return {}  # body-parser's special case of an empty JSON body
    stripped = text.lstrip(" \t\n\r")
    if not stripped:
        raise ValueError("Unexpected end of JSON input")
    if stripped[0] not in "{[":
        raise ValueError(v8_token_error(text, len(text) - len(stripped)))

    def refuse_constant(name):
        raise json.JSONDecodeError("Expecting value", text, text.find(name))

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(node_json_error(text, exc)) from None


def inspect_str(value):
    """util.inspect of a string: single quotes unless the string has one."""
    return ("'%s'" % value) if "'" not in value else '"%s"' % value


def parse_dotenv(path):
    """Read a .env the way dotenv does for the keys the backend uses."""
    values = {}
    if not path:
        return values
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        value = value.strip()
        if value[:1] in ("'", '"', "`") and value.endswith(value[0]) and len(value) >= 2:
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key] = value
    return values


def parse_ports(spec):
    """'18100-18199' or '18100,18102' (or both, comma-separated) -> list of ports."""
    ports = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise ValueError("port range %r is not N or N-M" % part) from None
        if not 0 < first <= last < 65536:
            raise ValueError("port range %r is outside 1-65535 or reversed" % part)
        if last - first >= 1000:
            raise ValueError("port range %r has more than 1000 ports" % part)
        ports.extend(range(first, last + 1))
    return ports


def _truthy(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() not in ("", "0", "false", "no", "off", "none", "null")


def parse_fault(name, value):
    """A fault's typed value, None to remove it; ValueError naming the input when bad."""
    if name not in FAULT_NAMES:
        raise ValueError("unknown fault %r (known: %s)" % (name, ", ".join(FAULT_NAMES)))
    if value is None or value is False:
        return None
    if name in BOOLEAN_FAULTS:
        return True if _truthy(value) else None
    if name in ("error_spike", "request_errors"):
        if isinstance(value, dict):
            asked, percent = value.get("type") or value.get("category"), value.get("percent", 3)
        elif isinstance(value, str):
            asked, _, percent = value.partition(":")
            percent = percent or 3
        else:
            raise ValueError("%s wants TYPE[:PERCENT] or {\"type\": ..., \"percent\": ...}, got %r" % (name, value))
        asked = str(asked or "").strip().upper()
        if asked in ("", "0", "FALSE", "NONE", "NULL"):
            return None
        if asked in TYPES:
            kind = asked
        elif asked in CATEGORY_TYPE:
            kind = CATEGORY_TYPE[asked]
        else:
            raise ValueError("%s type %r is not a backend type (%s) or a guide category (%s)"
                             % (name, asked, ", ".join(TYPES), ", ".join(CATEGORIES)))
        if name == "request_errors":
            return {"type": kind, "asked": asked}
        try:
            percent = float(percent)
        except (TypeError, ValueError):
            raise ValueError("error_spike percent %r is not a number" % (percent,)) from None
        if not 0 < percent <= 100:
            raise ValueError("error_spike percent must be above 0 and at most 100, got %s" % percent)
        return {"type": kind, "asked": asked, "percent": percent}
    if name == "redirect":
        target = str(value).strip().rstrip("/")
        if target.lower() in ("", "0", "false", "none", "null"):
            return None
        if target.lower() == "self":
            return "self"
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise ValueError("redirect wants an origin such as http://127.0.0.1:8081, or self; got %r" % (value,))
        return target
    if name == "status_5xx":
        try:
            code = int(str(value).strip())
        except ValueError:
            raise ValueError("status_5xx must be an HTTP status 500-599, got %r" % (value,)) from None
        if code == 0:
            return None
        if not 500 <= code <= 599:
            raise ValueError("status_5xx must be an HTTP status 500-599, got %d" % code)
        return code
    low, high = NUMBER_FAULTS[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("%s must be a number, got %r" % (name, value)) from None
    if math.isnan(number) or not low <= number <= high:
        raise ValueError("%s must be between %s and %s, got %s" % (name, low, high, value))
    if number == 0:
        return None
    return int(number) if name in ("cleanup_errors", "memory_mb") else number


# ---------------------------------------------------------------- app state

class AppLog(object):
    """The backend's stdout/stderr, appended to a file (opened per write, so a
    logrotate that moves the file is followed) or written to stdout."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.failed = False

    def write(self, lines):
        if not self.path or not lines:
            return
        text = "".join(line + "\n" for line in lines)
        with self.lock:
            try:
                if self.path == "-":
                    sys.stdout.write(text)
                    sys.stdout.flush()
                    return
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(text)
            except OSError as exc:
                if not self.failed:
                    self.failed = True
                    sys.stderr.write("bemore_sim: cannot write the app log %s: %s\n" % (self.path, exc))


def error_lines(entry, stack=None):
    """The ErrorHandler's coloured line(s) for one error."""
    level = entry["level"]
    lines = ["%s[%s]%s \x1b[90m%s\x1b[0m \x1b[34m[%s]\x1b[0m \x1b[33m(%s)\x1b[0m %s" % (
        COLORS.get(level, ""), level, RESET, entry["timestamp"], entry["module"], entry["type"], entry["message"])]
    if level == "CRITICAL" and stack:
        lines.append("\x1b[90mStack Trace:\x1b[0m")
        lines.extend(stack.splitlines())
    return lines


def fake_stack(error_name, message, app_dir):
    app_dir = app_dir or "/srv/bemore/app"
    return "\n".join([
        "%s: %s" % (error_name or "Error", message),
        "    at ConnectionManager.connect (%s/node_modules/sequelize/lib/dialects/mysql/connection-manager.js:102:17)"
        % app_dir,
        "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
        "    at async ConnectionManager._connect (%s/node_modules/sequelize/lib/dialects/abstract/"
        "connection-manager.js:222:24)" % app_dir,
        "    at async %s/services/session/sessionService.js:41:7" % app_dir,
    ])


class RateLimiter(object):
    """express-rate-limit's MemoryStore: a window per client from its first hit."""

    def __init__(self):
        self.hits = {}

    def hit(self, key, limit, window, now):
        client = self.hits.get(key)
        if client is None or client[1] <= now:
            client = [0, now + window]
            self.hits[key] = client
        client[0] += 1
        reset = max(0, int(math.ceil(client[1] - now)))
        return {"limit": limit, "remaining": max(limit - client[0], 0), "reset": reset,
                "exceeded": client[0] > limit}

    def expire(self, now):
        self.hits = {k: v for k, v in self.hits.items() if v[1] > now}


class Sim(object):
    """One backend process: its settings, counters, sessions and faults."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.log = AppLog(args.log_file)
        self.rng = random.Random(args.random_seed)
        self.faults = {}
        self.ballast = None
        self.refusing = False
        self.stop_event = threading.Event()
        self.servers = {}
        self.ports = args.all_ports
        self.version = args.version
        self.deployed = None  # a commit set through POST /__sim/commit: the release now deployed
        self.authorizations = {}  # "METHOD /path": every Authorization header it saw ("" for none)
        self.authorizations_lock = threading.Lock()
        self.accum = 0.0
        self.boot()

    # process life ------------------------------------------------------
    def boot(self):
        """What a process start does: read .env, reset everything in memory."""
        env = parse_dotenv(self.args.env_file)
        self.env = env
        self.app_dir = os.path.dirname(os.path.abspath(self.args.env_file)) if self.args.env_file else None
        self.node_env = env.get("NODE_ENV", "")
        urls = self.args.frontend_urls if self.args.frontend_urls is not None else (
            env.get("FRONTEND_URLS") or env.get("FRONTEND_URL") or "")
        origins = [u.strip() for u in urls.split(",") if u.strip()]
        origins += [o for o in self.args.cors_origin if o and o not in origins]
        self.origins = origins or list(CORS_DEFAULT_ORIGINS)
        self.commit = self.read_commit(env)
        self.started = wall()
        self.stats = {"total": 0, "byType": {}, "byCode": {}, "byModule": {}, "recent": []}
        self.sessions = {}
        self.limiter = RateLimiter()
        self.write_limiter = RateLimiter()
        self.cleanup = Cleanup(self, env)
        lines = ["[dotenv@17.2.3] injecting env (%d) from .env" % len(env), "✅ SessionManager 초기화 완료",
                 "🔬 MultimodalAnalyzer 초기화 완료", "📄 SessionReportGenerator 초기화 완료",
                 "🌐 CORS allowed origins: [ %s ]" % ", ".join(inspect_str(o) for o in self.origins)]
        lines += self.cleanup.start_lines()
        lines += ["✅ WebSocket 3채널 라우터 설정 완료", "🚀 서버 실행 중 (port): %d" % self.ports[0]]
        self.log.write(lines)
        self.cleanup.check()
        self.log.write(["✅ 데이터베이스 연결 성공"])

    def read_commit(self, env):
        """The commit at (re)start: a release's REVISION file is read again;
        otherwise a commit deployed through the control route stays."""
        if self.args.commit_file:
            self.deployed = None
            try:
                with open(self.args.commit_file, encoding="utf-8") as handle:
                    commit = handle.read().strip()
            except OSError:
                commit = ""
            return commit or None
        if self.deployed is not None:
            return self.deployed or None
        if self.args.commit is not None:
            return self.args.commit or None
        for name in COMMIT_VARIABLES:
            if env.get(name):
                return env[name]
        return None

    def restart(self):
        self.log.write(["🛑 Received SIGTERM. Shutting down gracefully...",
                        "[TempFileCleanup] ⏹️ Temporary file cleanup stopped {}", "✅ Shutdown complete"])
        with self.lock:
            # What lives in the process ends with it (leaked memory, a hung
            # event loop, a stopped timer); what comes from outside (an
            # upstream API failing, latency, the proxy) stays.
            for fault in ("memory_mb", "health_down", "cleanup_stalled"):
                self.faults.pop(fault, None)
            self.ballast = None
            self.boot()

    def uptime(self):
        return max(wall() - self.started, 1e-6)

    def down_code(self):
        """The proxy's status while the app does not answer, else None."""
        if self.faults.get("health_down"):
            return 503
        return self.faults.get("status_5xx")

    # errors ---------------------------------------------------------------
    def record_error(self, message, module, code=None, request_id=None, name=None, syscall=None,
                     error_name=None, ts=None):
        """ErrorHandler.handle(): classify, count, return the log lines."""
        kind, level = classify(message, code, name, syscall)
        entry = {"type": kind, "level": level, "message": message, "module": module,
                 "timestamp": iso(ts or wall()), "code": code or None, "requestId": request_id}
        with self.lock:
            stats = self.stats
            stats["total"] += 1
            stats["byType"][kind] = stats["byType"].get(kind, 0) + 1
            code_key = code or "UNKNOWN"
            stats["byCode"][code_key] = stats["byCode"].get(code_key, 0) + 1
            stats["byModule"][module] = stats["byModule"].get(module, 0) + 1
            stats["recent"].append(entry)
            if len(stats["recent"]) > RECENT_MAX:
                del stats["recent"][0]
        stack = fake_stack(error_name, message, self.app_dir) if level == "CRITICAL" else None
        return entry, error_lines(entry, stack)

    def middleware_error(self, request_id, message, code=None, status=None, name=None, syscall=None,
                         error_name=None):
        """The ErrorHandler middleware: (status, body, log lines)."""
        entry, lines = self.record_error(message, "express", code, request_id, name, syscall, error_name)
        if status is None:
            status = 500 if entry["level"] == "CRITICAL" else 400
        body = {"success": False, "error": {"type": entry["type"], "message": message,
                                            "timestamp": entry["timestamp"], "requestId": request_id,
                                            "code": code or entry["type"]}}
        return status, body, lines

    def stats_snapshot(self):
        with self.lock:
            stats = {"total": self.stats["total"], "byType": dict(self.stats["byType"]),
                     "byCode": dict(self.stats["byCode"]), "byModule": dict(self.stats["byModule"]),
                     "recent": [dict(e) for e in self.stats["recent"]]}

        def by_count(counts, keep=None):
            ordered = sorted(counts.items(), key=lambda item: -item[1])  # stable, like Array.sort
            return dict(ordered[:keep] if keep else ordered)

        stats["summary"] = {"total": stats["total"], "byType": by_count(stats["byType"]),
                            "byCode": by_count(stats["byCode"]), "topModules": by_count(stats["byModule"], 5)}
        return stats

    # faults -------------------------------------------------------------
    def set_faults(self, faults):
        parsed = {name: parse_fault(name, value) for name, value in faults.items()}
        with self.lock:
            was_stalled = bool(self.faults.get("cleanup_stalled"))
            for name, value in parsed.items():
                if value is None:
                    self.faults.pop(name, None)
                else:
                    self.faults[name] = value
            if "memory_mb" in parsed:
                self.set_memory(parsed["memory_mb"])
        if "cleanup_stalled" in parsed and bool(parsed["cleanup_stalled"]) != was_stalled:
            self.cleanup.set_stalled(bool(parsed["cleanup_stalled"]))
        if parsed.get("cleanup_errors"):
            self.cleanup.check()
        if parsed.get("error_spike"):
            self.traffic(SPIKE_BURST, burst=True)
        if parsed.get("refuse_s"):
            threading.Thread(target=self.refuse, args=(parsed["refuse_s"],), daemon=True).start()
        return parsed

    def clear_faults(self):
        with self.lock:
            stalled = self.faults.get("cleanup_stalled")
            self.faults.clear()
            self.set_memory(None)
        if stalled:
            self.cleanup.set_stalled(False)

    def set_memory(self, mb):
        self.ballast = None
        if mb:
            ballast = bytearray(int(mb * 1024 * 1024))
            for offset in range(0, len(ballast), 4096):
                ballast[offset] = 1  # touch every page so the RSS really grows
            self.ballast = ballast

    def public_faults(self):
        with self.lock:
            return dict(self.faults)

    # sessions -------------------------------------------------------------
    def session_counts(self):
        with self.lock:
            states = [s["status"] for s in self.sessions.values()]
        return {"open": sum(1 for s in states if s != "ended"), "ended": states.count("ended"),
                "total": len(states)}

    # synthetic traffic ------------------------------------------------------
    def traffic(self, count, burst=False):
        """Write ``count`` synthetic requests (and their errors) as the app would log them."""
        if count <= 0 or self.refusing or self.down_code():
            return
        spike = self.faults.get("error_spike")
        latency = self.faults.get("latency_ms", 0)
        rng = self.rng
        failing = set()
        if burst and spike:
            failing = set(rng.sample(range(count), int(round(count * spike["percent"] / 100.0))))
        lines = []
        now = wall()
        for i in range(count):
            _, method, path, status, sizes, median = rng.choices(TRAFFIC, TRAFFIC_WEIGHTS)[0]
            if path.endswith("/end"):
                median = self.args.session_end_wait * 1000.0 + 40.0
            path = path.replace("{sid}", "sess_%d_%s" % (int(now * 1000) - rng.randint(0, 3600000),
                                                         "%08x" % rng.getrandbits(32)))
            request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            kind = None
            if burst:
                kind = spike["type"] if i in failing else None
            elif spike and rng.random() < spike["percent"] / 100.0:
                kind = spike["type"]
            elif rng.random() < self.args.base_failure:
                kind = rng.choice(BASE_FAILURE_TYPES)
            elapsed = rng.lognormvariate(math.log(median), 0.5) + latency
            if kind:
                template = rng.choice(FAILURES[kind])
                ts = now - (count - i) * 0.002 if burst else now
                entry, err_lines = self.record_error(
                    template["message"], "express", template.get("code"), request_id, template.get("name"),
                    template.get("syscall"), template.get("error_name"), ts=ts)
                status = 500 if entry["level"] == "CRITICAL" else 400
                size = len(to_json({"success": False, "error": {
                    "type": entry["type"], "message": entry["message"], "timestamp": entry["timestamp"],
                    "requestId": request_id, "code": template.get("code") or entry["type"]}}))
                lines.extend(err_lines)
                elapsed = min(elapsed, rng.uniform(2.0, 40.0) + latency)
            else:
                size = rng.randint(*sizes)
            lines.append("%s %s %d %d - %.3f ms reqId=%s" % (method, path, status, size, elapsed, request_id))
        self.log.write(lines)

    def authorizations_snapshot(self):
        with self.authorizations_lock:
            return dict((k, sorted(v)) for k, v in self.authorizations.items())

    def background(self):
        """One thread: synthetic traffic, the cleanup schedule, expired rate-limit buckets."""
        tick = 0.5
        last = time.monotonic()
        while not self.stop_event.wait(tick):
            now = time.monotonic()
            self.accum += self.args.background_rps * (now - last)
            last = now
            count = int(self.accum)
            self.accum -= count
            try:
                if count:
                    self.traffic(count)
                self.cleanup.tick()
                with self.lock:
                    self.limiter.expire(wall())
                    self.write_limiter.expire(wall())
            except Exception as exc:  # keep the app alive, as the backend's handlers do
                sys.stderr.write("bemore_sim: background: %r\n" % (exc,))

    # listening ------------------------------------------------------------
    def listen(self, ports):
        """Listen on every port. The first port is bound last, so that whoever
        waits for it to accept finds all the others listening too (a bound
        socket queues connections until its thread accepts them)."""
        servers = []
        try:
            for port in ports[1:] + ports[:1]:
                try:
                    servers.append(AppServer((self.args.host, port), Handler, self, port))
                except OSError as exc:
                    raise OSError(exc.errno, "port %d: %s" % (port, exc.strerror)) from None
        except OSError:
            for server in servers:
                server.server_close()
            raise
        for server in servers:
            # Each loop wakes up every poll interval to look for a shutdown;
            # 0.5 s keeps 100 idle ports under 1 % of a CPU.
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
            self.servers[server.app_port] = server

    def close_all(self):
        servers, self.servers = list(self.servers.values()), {}
        threads = [threading.Thread(target=s.shutdown, daemon=True) for s in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        for server in servers:
            server.server_close()

    def refuse(self, seconds):
        with self.lock:
            if self.refusing:
                return
            self.refusing = True
        try:
            self.close_all()
            self.stop_event.wait(seconds)
        finally:
            with self.lock:
                self.faults.pop("refuse_s", None)
            if not self.stop_event.is_set():
                try:
                    self.listen(self.ports)
                except OSError as exc:  # as the app, which dies when its port is taken
                    sys.stderr.write("bemore_sim: cannot listen again after refuse_s: %s\n" % exc)
                    self.stop_event.set()
            self.refusing = False


class Cleanup(object):
    """The app's TempFileCleanup service."""

    def __init__(self, sim, env):
        self.sim = sim
        self.raw = {key: env.get(key) for key in ("TEMP_FILE_MAX_AGE_DAYS", "TEMP_FILE_MAX_SIZE_MB",
                                                   "TEMP_CLEANUP_INTERVAL_MIN")}
        self.max_age_days = self._number(self.raw["TEMP_FILE_MAX_AGE_DAYS"], 7)
        self.max_size_mb = self._number(self.raw["TEMP_FILE_MAX_SIZE_MB"], 500)
        self.interval_min = self._number(self.raw["TEMP_CLEANUP_INTERVAL_MIN"], 60)
        self.tmp_dir = os.path.join(sim.app_dir, "tmp") if sim.app_dir else None
        self.stats = {"filesDeleted": 0, "bytesFreed": 0, "checksRun": 0, "lastCheckTime": None, "errors": 0}
        self.last_check = None
        self.next_check = wall() + self.interval_min * 60
        self.stalled = False

    @staticmethod
    def _number(raw, default):
        # The app multiplies the env strings; a non-positive or non-numeric
        # value would make Node's setInterval spin every millisecond, which
        # the simulator does not copy: it keeps the default instead.
        try:
            value = float(raw)
        except (TypeError, ValueError):
            return default
        return value if value > 0 else default

    def start_lines(self):
        def shown(key, default):
            raw = self.raw[key]
            return inspect_str(raw) if raw else str(default)

        return ["[TempFileCleanup] [TempFileCleanup] 초기화 완료 {",
                "  tmpDir: %s," % inspect_str(self.tmp_dir or os.path.join(os.getcwd(), "tmp")),
                "  maxAgeDays: %s," % shown("TEMP_FILE_MAX_AGE_DAYS", 7),
                "  maxSizeMB: %s," % shown("TEMP_FILE_MAX_SIZE_MB", 500),
                "  checkIntervalMinutes: %s" % shown("TEMP_CLEANUP_INTERVAL_MIN", 60),
                "}",
                "[TempFileCleanup] ✅ Temporary file cleanup started { interval: '%s분' }"
                % (self.raw["TEMP_CLEANUP_INTERVAL_MIN"] or 60)]

    def interval_s(self):
        return self.interval_min * 60

    def tick(self):
        if not self.stalled and wall() >= self.next_check:
            self.next_check += self.interval_s()
            if self.next_check <= wall():
                self.next_check = wall() + self.interval_s()
            self.check()

    def set_stalled(self, stalled):
        """Stalled: the service stopped CLEANUP_STALL_INTERVALS intervals ago."""
        with self.sim.lock:
            self.stalled = stalled
            if stalled:
                self.last_check = wall() - CLEANUP_STALL_INTERVALS * self.interval_s()
                self.stats["lastCheckTime"] = iso(self.last_check)
        if not stalled:
            self.next_check = wall() + self.interval_s()
            self.check()

    def _regular_files(self):
        files = []
        if not self.tmp_dir:
            return files
        try:
            names = os.listdir(self.tmp_dir)
        except OSError:
            return files
        for name in names:
            path = os.path.join(self.tmp_dir, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if os.path.isfile(path):
                files.append((name, path, st.st_size, st.st_mtime))
        return files

    def check(self):
        """One cleanup run; returns nothing, logs like the service."""
        if self.stalled:
            return
        lines = []
        files = self._regular_files()
        total = sum(f[2] for f in files)
        if self.sim.args.cleanup_tmp and self.tmp_dir:
            now = wall()
            old = [f for f in files if now - f[3] > self.max_age_days * 86400]
            young = sorted((f for f in files if f not in old), key=lambda f: f[3])
            for name, path, size, mtime in old:
                if self._unlink(name, path, size, lines):
                    total -= size
                    lines.append("[TempFileCleanup] 🗑️ Deleted (age) { file: %s, ageDays: %d, size: '%.2fKB' }"
                                 % (inspect_str(name), int((now - mtime) // 86400), size / 1024.0))
            for name, path, size, _mtime in young:
                if total <= self.max_size_mb * 1024 * 1024:
                    break
                if self._unlink(name, path, size, lines):
                    total -= size
                    lines.append("[TempFileCleanup] 🗑️ Deleted (size limit) { file: %s, remainingSize: '%.2fMB' }"
                                 % (inspect_str(name), total / 1048576.0))
        for i in range(int(self.sim.faults.get("cleanup_errors", 0) or 0)):
            victim = files[i % len(files)][0] if files else "rec_%02d.wav" % i
            where = os.path.join(self.tmp_dir or "/srv/bemore/app/tmp", victim)
            self._failed(victim, "EACCES: permission denied, unlink '%s'" % where, lines)
        with self.sim.lock:
            self.stats["checksRun"] += 1
            self.last_check = wall()
            self.stats["lastCheckTime"] = iso(self.last_check)
        lines.append("[TempFileCleanup] ✅ Cleanup completed { filesDeleted: %d, bytesFreed: '%.2fMB', "
                     "remainingSize: '%.2fMB' }" % (self.stats["filesDeleted"], self.stats["bytesFreed"] / 1048576.0,
                                                   total / 1048576.0))
        self.sim.log.write(lines)

    def _unlink(self, name, path, size, lines):
        try:
            os.unlink(path)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "EIO")
            self._failed(name, "%s: %s, unlink '%s'" % (code, (exc.strerror or "").lower(), path), lines)
            return False
        with self.sim.lock:
            self.stats["filesDeleted"] += 1
            self.stats["bytesFreed"] += size
        return True

    def _failed(self, name, message, lines):
        with self.sim.lock:
            self.stats["errors"] += 1
        code = message.split(":", 1)[0]
        _entry, err_lines = self.sim.record_error(message, "TempFileCleanup", code, None, syscall="unlink")
        lines.extend(err_lines)
        lines.append("[TempFileCleanup] ⚠️ Error: Failed to delete file: %s { error: %s }"
                     % (name, inspect_str(message)))

    def public(self):
        with self.sim.lock:
            data = dict(self.stats)
        data["bytesFreedMB"] = "%.2f" % (data["bytesFreed"] / 1048576.0)
        return data


# ---------------------------------------------------------------- HTTP

class AppServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, sim, port):
        self.sim = sim
        self.app_port = port
        ThreadingHTTPServer.__init__(self, address, handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host's FQDN, which can take a
        # DNS timeout per port; the name is never used here.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # Node's keep-alive timeout

    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        # Node's sockets do not wait to coalesce small writes (noDelay).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # the app log is what matters
        pass

    def send_response(self, code, message=None):
        # Express sends no Server header.
        self.send_response_only(code, message)

    # plumbing -------------------------------------------------------------
    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_OPTIONS(self):
        self.dispatch("OPTIONS")

    def read_body(self):
        """The request body, or None when over the JSON limit (then discarded)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > JSON_LIMIT:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length > 0 else b""

    def write(self, status, data, headers, content_type="application/json; charset=utf-8"):
        """Send one answer: status line, headers, body, in a single write."""
        headers = list(headers)
        if data is not None:
            if content_type:
                headers.append(("Content-Type", content_type))
            headers.append(("Content-Length", str(len(data))))
            if data:
                headers.append(("ETag", weak_etag(data)))
        headers.append(("Date", self.date_time_string()))
        if self.close_connection:
            headers.append(("Connection", "close"))
        else:
            headers += [("Connection", "keep-alive"), ("Keep-Alive", "timeout=5")]
        self.send_response_only(status)
        # One join instead of a send_header() call per header: a third of
        # the CPU of an answer, which matters with 100 ports answering at once.
        self._headers_buffer.append("".join("%s: %s\r\n" % item for item in headers).encode("latin-1", "replace"))
        self._headers_buffer.append(b"\r\n")
        # The control routes answer at once: the fault is the app's.
        dribble = None if self.path.startswith("/__sim") else self.server.sim.faults.get("dribble_s")
        if data and self.command != "HEAD" and not dribble:
            self._headers_buffer.append(data)
        self.flush_headers()
        if data and self.command != "HEAD" and dribble:
            for i in range(len(data)):
                time.sleep(dribble)
                self.wfile.write(data[i:i + 1])

    def dispatch(self, method):
        try:
            self.handle_request(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # pylint: disable=broad-except
            sys.stderr.write("bemore_sim: %s %s failed: %r\n" % (method, self.path, exc))
            self.close_connection = True
            try:
                self.write(500, to_json({"error": "simulator failure: %r" % (exc,)}), [])
            except OSError:
                pass

    # the app ----------------------------------------------------------------
    def handle_request(self, method):
        sim = self.server.sim
        parts = urlsplit(self.path)
        path = parts.path or "/"
        if path == "/__sim" or path.startswith("/__sim/"):
            return self.control(method, path)
        body = self.read_body() if method not in ("GET", "HEAD") or self.headers.get("Content-Length") else b""
        # For tests of the clients: which credentials reached which route (the
        # backend itself needs none on these routes, so it never refuses).
        with sim.authorizations_lock:
            sim.authorizations.setdefault("%s %s" % (method, path), set()).add(self.headers.get("Authorization") or "")
        down = sim.down_code()
        if down:
            return self.proxy_page(down)
        redirect = sim.faults.get("redirect")
        if redirect and REDIRECTED_MARK not in (parts.query or ""):
            return self.redirect_page(redirect, parts)
        headers = list(HELMET_HEADERS)
        if not self.rate_limit(method, headers):
            return
        started = time.monotonic()
        incoming = (self.headers.get("x-request-id") or "").strip()
        request_id = incoming or str(uuid.uuid4())
        headers.append(("X-Request-Id", request_id))
        latency = sim.faults.get("latency_ms")
        if latency:
            time.sleep(latency / 1000.0)
        lines, self.after_lines = [], []
        status, payload, content_type = self.route(method, path, parts.query, body, request_id, headers, lines)
        if isinstance(payload, bytes):
            data = payload
        elif payload is None:
            data = b""
        else:
            data = to_json(payload)
            if sim.faults.get("malformed_json"):
                data = data[:max(1, len(data) // 2)]
        if status == 204:
            data = b""
        elapsed = (time.monotonic() - started) * 1000.0
        lines.append("%s %s %d %d - %.3f ms reqId=%s" % (method, self.path, status, len(data), elapsed, request_id))
        # Written before the answer leaves, so whoever got the answer finds
        # its lines (morgan writes on 'finish', a moment later).
        sim.log.write(lines + self.after_lines)
        self.write(status, data, headers, content_type if data or status != 204 else None)

    def rate_limit(self, method, headers):
        """Both limiters; False when the request was answered 429."""
        sim, args = self.server.sim, self.server.sim.args
        if not args.rate_limit or sim.faults.get("no_rate_limit"):
            return True
        ip = self.client_address[0]
        if sim.node_env == "production":  # app.set('trust proxy', 1)
            forwarded = [p.strip() for p in (self.headers.get("X-Forwarded-For") or "").split(",") if p.strip()]
            if forwarded:
                ip = forwarded[-1]
        key = (self.server.app_port, ip)
        now = wall()
        checks = [(sim.limiter, args.rate_limit)]
        if method in WRITE_METHODS and args.write_rate_limit:
            checks.append((sim.write_limiter, args.write_rate_limit))
        for limiter, limit in checks:
            with sim.lock:
                info = limiter.hit(key, limit, args.rate_window, now)
            policy = [("RateLimit-Policy", "%d;w=%d" % (limit, int(math.ceil(args.rate_window)))),
                      ("RateLimit-Limit", str(limit)), ("RateLimit-Remaining", str(info["remaining"]))]
            if info["reset"]:
                policy.append(("RateLimit-Reset", str(info["reset"])))
            names = {name for name, _ in policy} | {"RateLimit-Reset"}
            headers[:] = [h for h in headers if h[0] not in names] + policy
            if info["exceeded"]:
                headers.append(("Retry-After", str(info["reset"] or int(math.ceil(args.rate_window)))))
                self.write(429, RATE_LIMITED_BODY, headers, "text/html; charset=utf-8")
                return False
        return True

    def cors(self, method, headers, request_id, lines):
        """The cors middleware: None to go on, or the (status, body) it ends with."""
        sim = self.server.sim
        origin = self.headers.get("Origin")
        if origin and origin not in sim.origins and CORS_PREVIEW.match(origin):
            lines.append("✅ CORS: Allowed Vercel preview deployment: %s" % origin)
        elif origin and origin not in sim.origins:
            lines.append("❌ CORS: Blocked origin: %s" % origin)
            status, body, err_lines = sim.middleware_error(
                request_id, "CORS policy: Origin %s is not allowed" % origin)
            lines.extend(err_lines)
            return status, body
        if origin:
            headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Vary", "Origin"))
        headers.append(("Access-Control-Allow-Credentials", "true"))
        if method == "OPTIONS":
            headers.append(("Access-Control-Allow-Methods", CORS_METHODS))
            headers.append(("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS))
            headers.append(("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS))
            return 204, None
        headers.append(("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS))
        return None

    def parse_json_body(self, body, request_id, lines):
        """express.json(): (parsed or None, error answer or None)."""
        sim = self.server.sim
        if body is None:
            status, answer, err_lines = sim.middleware_error(request_id, "request entity too large", status=413)
            lines.extend(err_lines)
            return None, (status, answer)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not body or not (ctype == "application/json" or (ctype.startswith("application/")
                                                            and ctype.endswith("+json"))):
            return None, None
        try:
            return strict_json(body), None
        except ValueError as exc:
            status, answer, err_lines = sim.middleware_error(request_id, str(exc), status=400)
            lines.extend(err_lines)
            return None, (status, answer)

    def route(self, method, path, query, body, request_id, headers, lines):
        """(status, payload, content type) of the app for one request."""
        sim = self.server.sim
        json_type = "application/json; charset=utf-8"
        denied = self.cors(method, headers, request_id, lines)
        if denied:
            return denied[0], denied[1], json_type
        parsed, failed = (None, None)
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            parsed, failed = self.parse_json_body(body, request_id, lines)
            if failed:
                return failed[0], failed[1], json_type
        # Express routes match case-insensitively, with an optional trailing slash.
        segments = [unquote(s) for s in path.rstrip("/").split("/")[1:]] if path != "/" else []
        low = [s.lower() for s in segments]
        read = method in ("GET", "HEAD")
        forced = sim.faults.get("request_errors")
        if forced and low not in ([], ["health"]):
            template = FAILURES[forced["type"]][0]
            status, answer, err_lines = sim.middleware_error(
                request_id, template["message"], template.get("code"), None, template.get("name"),
                template.get("syscall"), template.get("error_name"))
            lines.extend(err_lines)
            return status, answer, json_type
        query_args = parse_qs(query, keep_blank_values=True)

        def query_int(name):
            values = query_args.get(name)
            return js_parse_int(",".join(values)) if values else None

        if read and low == []:
            return 200, {"status": "ok", "message": "BeMore Backend API server is running successfully!"}, json_type
        if read and low == ["health"]:
            return 200, {"status": "ok", "timestamp": iso(wall()), "uptime": round(sim.uptime(), 9),
                         "version": sim.version, "commit": sim.commit}, json_type
        if read and low == ["api", "errors", "stats"]:
            return 200, sim.stats_snapshot(), json_type
        if read and low == ["api", "system", "temp-cleanup-stats"]:
            return 200, {"success": True, "data": sim.cleanup.public()}, json_type
        if read and low[:2] == ["api", "monitoring"] and len(low) in (3, 4):
            answer = self.monitoring(low, segments, query_int)
            if answer:
                return answer[0], answer[1], json_type
        if low[:2] == ["api", "session"]:
            answer = self.session(method, low, segments, parsed, request_id, lines)
            if answer:
                return answer[0], answer[1], json_type
        return 404, {"success": False, "error": {"code": "NOT_FOUND", "message": "Resource not found",
                                                 "path": path, "requestId": request_id}}, json_type

    def monitoring(self, low, segments, query_int):
        sim = self.server.sim
        if len(low) == 3 and low[2] == "error-stats":
            return 200, {"success": True, "data": sim.stats_snapshot()}
        if len(low) == 3 and low[2] == "recent-errors":
            limit = query_int("limit") or 20
            recent = sim.stats_snapshot()["recent"][:limit]
            return 200, {"success": True, "data": {"count": len(recent), "limit": limit, "errors": recent}}
        if len(low) == 3 and low[2] == "health":
            stats = sim.stats_snapshot()
            uptime = sim.uptime()
            rate = stats["total"] / uptime
            status = "unhealthy" if rate > 1 else "degraded" if rate > 0.1 else "healthy"
            return 200, {"success": True, "data": {
                "status": status, "uptime": int(uptime), "errorRate": "%.4f" % rate, "totalErrors": stats["total"],
                "recentErrors": len(stats["recent"]), "timestamp": int(wall() * 1000)}}
        if len(low) == 4 and low[2] == "errors":
            category = segments[3].upper()
            if category not in CATEGORIES:
                return 400, {"success": False, "error": {
                    "code": "INVALID_CATEGORY",
                    "message": "유효하지 않은 카테고리입니다. 사용 가능: %s" % ", ".join(CATEGORIES)}}
            limit = query_int("limit") or 50
            stats = sim.stats_snapshot()
            # The backend filters on a `category` field the entries never carry.
            found = [e for e in stats["recent"] if e.get("category") == category][:limit]
            return 200, {"success": True, "data": {"category": category, "count": len(found),
                                                   "total": stats["byType"].get(category, 0), "limit": limit,
                                                   "errors": found}}
        return None

    def session(self, method, low, segments, body, request_id, lines):
        sim = self.server.sim
        if method == "POST" and low == ["api", "session", "start"]:
            fields = body if isinstance(body, dict) else {}
            user, counselor = fields.get("userId"), fields.get("counselorId")
            if not (isinstance(user, str) and user and isinstance(counselor, str) and counselor):
                status, answer, err_lines = sim.middleware_error(request_id, "Validation failed", "VALIDATION_ERROR",
                                                                 status=400, name="AppError")
                lines.extend(err_lines)
                return status, answer
            now_ms = int(wall() * 1000)
            session_id = "sess_%d_%s" % (now_ms, uuid.uuid4().hex[:8])
            host = self.headers.get("Host") or "%s:%d" % (sim.args.host, self.server.app_port)
            with sim.lock:
                sim.sessions[session_id] = {"userId": user, "counselorId": counselor, "status": "active",
                                            "startedAt": now_ms, "endedAt": None}
            lines.append("✅ 세션 생성: %s (사용자: %s, 상담사: %s)" % (session_id, user, counselor))
            # Without Supabase settings (a self-hosted server) the backend
            # logs this right after every session start's answer.
            self.after_lines.append("❌ Error creating session in Supabase: Supabase client not configured: "
                                    "missing SUPABASE_URL or SUPABASE_ANON_KEY")
            ws = "ws://%s/ws/%%s?sessionId=%s" % (host, session_id)
            return 201, {"success": True, "data": {
                "sessionId": session_id,
                "wsUrls": {"landmarks": ws % "landmarks", "voice": ws % "voice", "session": ws % "session"},
                "startedAt": now_ms, "status": "active", "userId": user, "counselorId": counselor}}
        if len(low) == 4 and method == "POST" and low[3] == "end":
            return self.end_session(segments[2], lines)
        if len(low) == 3 and method in ("GET", "HEAD"):
            session_id = segments[2]
            with sim.lock:
                found = dict(sim.sessions[session_id]) if session_id in sim.sessions else None
            if not found:
                lines.append("⚠️ 세션 없음: %s" % session_id)
                return 404, {"success": False, "error": {"code": "SESSION_NOT_FOUND",
                                                         "message": "세션을 찾을 수 없습니다: %s" % session_id}}
            end = found["endedAt"] or int(wall() * 1000)
            return 200, {"success": True, "data": {
                "sessionId": session_id, "userId": found["userId"], "counselorId": found["counselorId"],
                "status": found["status"], "startedAt": found["startedAt"], "pausedAt": None, "resumedAt": None,
                "endedAt": found["endedAt"], "duration": end - found["startedAt"], "emotionCount": 0,
                "landmarkCount": 0, "sttCount": 0}}
        return None

    def end_session(self, session_id, lines):
        sim = self.server.sim
        with sim.lock:
            found = sim.sessions.get(session_id)
            already = bool(found) and found["status"] == "ended"
            if found and not already:
                found["status"] = "ended"
                found["endedAt"] = int(wall() * 1000)
            found = dict(found) if found else None
        if not found:
            message = "세션을 찾을 수 없습니다: %s" % session_id
            lines.append("⚠️ 세션 없음: %s" % session_id)
            _entry, err_lines = sim.record_error(message, "session-end")
            lines.extend(err_lines)
            return 400, {"success": False, "error": {"code": "SESSION_END_ERROR", "message": message}}
        wait = sim.args.session_end_wait
        ended = ("⏹️ 이미 종료된 세션: %s" % session_id if already else "✅ 세션 종료: %s (지속 시간: %d초)"
                 % (session_id, (found["endedAt"] - found["startedAt"]) // 1000))
        sim.log.write([ended, "⏹️ [CRITICAL] Session end requested: %s" % session_id,
                       "⏳ [CRITICAL] Waiting %g seconds for final Gemini responses to arrive..." % wait])
        if wait > 0:
            sim.stop_event.wait(wait)
        lines.extend(["✅ [CRITICAL] Grace period complete, fetching emotions from database...",
                      "⚠️ [CRITICAL] No emotions found for session: %s" % session_id,
                      "📊 [CRITICAL] Inference stats: 0 minutes analyzed"])
        return 200, {"success": True, "data": {
            "sessionId": session_id, "status": "ended", "endedAt": found["endedAt"],
            "duration": found["endedAt"] - found["startedAt"], "emotionCount": 0, "emotionSummary": None,
            "inferenceStats": {"totalMinutes": 0, "avgCombinedScore": 0, "avgFacialScore": 0, "avgVadScore": 0,
                               "avgTextSentiment": 0, "maxCombinedScore": 0, "minCombinedScore": 0}}}

    def redirect_page(self, target, parts):
        """A proxy's 302 to the same path elsewhere (or, for "self", here again, marked)."""
        if target == "self":
            query = (parts.query + "&" if parts.query else "") + REDIRECTED_MARK
            location = "%s?%s" % (parts.path or "/", query)
        else:
            location = target + (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self.send_response_only(302)
        self.send_header("Server", "nginx")
        self.send_header("Date", self.date_time_string())
        self.send_header("Location", location)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        self.end_headers()

    def proxy_page(self, code):
        """What nginx in front of a dead or broken app answers."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        title = PROXY_TITLES.get(code, "%d %s" % (code, phrase))
        page = ("<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n"
                "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n" % (title, title)).encode("ascii")
        self.send_response_only(code)
        self.send_header("Server", "nginx")
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(page)

    # control routes -----------------------------------------------------------
    def control(self, method, path):
        sim = self.server.sim
        raw = self.read_body()
        body = {}
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                return self.control_answer(400, {"success": False, "error": {
                    "code": "INVALID_JSON", "message": "the control request's body is not JSON: %s" % exc}})
        elif raw is None:
            return self.control_answer(413, {"success": False, "error": {"code": "TOO_LARGE",
                                                                         "message": "body over 1 MB"}})
        route = path.rstrip("/")
        if route == "/__sim/faults" and method == "GET":
            return self.control_answer(200, {"faults": sim.public_faults(), "commit": sim.commit, "pid": os.getpid(),
                                             "open_sessions": sim.session_counts()["open"]})
        if route == "/__sim/faults" and method == "POST":
            if not isinstance(body, dict):
                return self.control_answer(400, {"success": False, "error": {
                    "code": "INVALID_FAULTS", "message": "faults must be a JSON object of NAME: VALUE"}})
            try:
                sim.set_faults(body)
            except (ValueError, TypeError) as exc:
                return self.control_answer(400, {"success": False, "error": {"code": "INVALID_FAULTS",
                                                                             "message": str(exc)}})
            return self.control_answer(200, {"faults": sim.public_faults()})
        if route == "/__sim/faults" and method == "DELETE":
            sim.clear_faults()
            return self.control_answer(200, {"faults": {}})
        if route == "/__sim/authorizations" and method == "DELETE":
            with sim.authorizations_lock:
                sim.authorizations.clear()
            return self.control_answer(200, {"authorizations": {}})
        if route == "/__sim/state" and method == "GET":
            stats = sim.stats_snapshot()
            return self.control_answer(200, {
                "pid": os.getpid(), "ports": sim.ports, "started": iso(sim.started), "uptime": sim.uptime(),
                "version": sim.version, "commit": sim.commit, "faults": sim.public_faults(),
                "sessions": sim.session_counts(), "errors_total": stats["total"],
                "cleanup": sim.cleanup.public(), "cleanup_interval_min": sim.cleanup.interval_min,
                "frontend_urls": sim.origins, "node_env": sim.node_env,
                "rate_limit": {"limit": sim.args.rate_limit, "write_limit": sim.args.write_rate_limit,
                               "window_s": sim.args.rate_window,
                               "enabled": bool(sim.args.rate_limit) and not sim.faults.get("no_rate_limit")},
                "background_rps": sim.args.background_rps, "session_end_wait": sim.args.session_end_wait,
                "authorizations": sim.authorizations_snapshot()})
        if route == "/__sim/commit" and method == "POST":
            if not isinstance(body, dict):
                return self.control_answer(400, {"success": False, "error": {
                    "code": "INVALID_COMMIT", "message": "want {\"commit\": ..., \"version\": ...}"}})
            for key in ("commit", "version"):
                if key in body and body[key] is not None and not isinstance(body[key], str):
                    return self.control_answer(400, {"success": False, "error": {
                        "code": "INVALID_COMMIT", "message": "%s must be a string or null" % key}})
            if "commit" in body:
                sim.commit = body["commit"] or None
                sim.deployed = body["commit"] or ""
            if body.get("version"):
                sim.version = body["version"]
            return self.control_answer(200, {"commit": sim.commit, "version": sim.version})
        if route == "/__sim/restart" and method == "POST":
            sim.restart()
            return self.control_answer(200, {"uptime": sim.uptime(), "commit": sim.commit})
        if route == "/__sim/rate-window" and method == "DELETE":
            with sim.lock:
                sim.limiter = RateLimiter()
                sim.write_limiter = RateLimiter()
            return self.control_answer(200, {"rate_window": {}})
        return self.control_answer(404, {"success": False, "error": {
            "code": "NOT_FOUND", "message": "no control route %s %s" % (method, route)}})

    def control_answer(self, status, payload):
        self.write(status, to_json(payload), [])


# ---------------------------------------------------------------- main

def serve(args):
    sim = Sim(args)
    faults = dict(item.partition("=")[::2] for item in args.fault)
    refuse = faults.pop("refuse_s", None)
    sim.set_faults(faults)  # before listening, so no request sees the app without them
    sim.listen(args.all_ports)
    if refuse is not None:
        sim.set_faults({"refuse_s": refuse})
    if args.pid_file:
        with open(args.pid_file, "w", encoding="utf-8") as handle:
            handle.write("%d\n" % os.getpid())
    worker = threading.Thread(target=sim.background, daemon=True)
    worker.start()

    def stop(signum, _frame):
        sim.log.write(["🛑 Received %s. Shutting down gracefully..." % signal.Signals(signum).name])
        sim.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not sim.stop_event.wait(0.5):
        pass
    # Exiting closes every socket; the serving threads are daemons.
    sim.log.write(["[TempFileCleanup] ⏹️ Temporary file cleanup stopped {}", "✅ Shutdown complete"])
    return 0


def build_parser():
    doc = __doc__ or ""
    faults = doc[doc.find("Faults ("):doc.find("What was checked")].strip()
    parser = argparse.ArgumentParser(description=doc.split("\n\n", 1)[0], epilog=faults,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="the first port (default 18080 unless --ports is given)")
    parser.add_argument("--ports", help="more ports: N-M or a comma list; each has its own rate-limit buckets")
    parser.add_argument("--extra-port", type=int, action="append", default=[], help="one more port (repeatable)")
    parser.add_argument("--version", default="1.0.0", help="package.json version served by /health")
    parser.add_argument("--commit", help="the deployed commit served by /health (default: from the .env, else null)")
    parser.add_argument("--commit-file", help="read the commit from this file (a release's REVISION); "
                                              "a missing or empty file stops the start, as a broken release would")
    parser.add_argument("--env-file", help="the app's .env")
    parser.add_argument("--frontend-urls", help="FRONTEND_URLS, comma-separated (wins over the .env)")
    parser.add_argument("--cors-origin", action="append", default=[], help="add one allowed origin (repeatable)")
    parser.add_argument("--log-file", help="append the app's log lines here; '-' writes them to stdout")
    parser.add_argument("--pid-file")
    parser.add_argument("--rate-limit", type=int, default=600, help="requests per IP per window; 0 = no limiter")
    parser.add_argument("--rate-window", type=float, default=600.0, help="the limiters' window in seconds")
    parser.add_argument("--write-rate-limit", type=int, help="POST/PUT/DELETE per IP per window (default half)")
    parser.add_argument("--background-rps", type=float, default=5.0, help="synthetic requests per second; 0 = none")
    parser.add_argument("--base-failure", type=float, default=0.0002,
                        help="failing share of the synthetic requests without a fault (default 0.02 %%)")
    parser.add_argument("--session-end-wait", type=float, default=30.0,
                        help="seconds POST /api/session/{id}/end holds its answer (the backend's grace period)")
    parser.add_argument("--cleanup-tmp", action="store_true",
                        help="the cleanup service really deletes old files in <dir of --env-file>/tmp")
    parser.add_argument("--random-seed", type=int, help="seed of the synthetic traffic")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--now", default=os.environ.get("BEMORE_RUNBOOK_NOW") or None,
                        help="start the clock at this time (epoch seconds or ISO-8601 UTC; default BEMORE_RUNBOOK_NOW): a test seam")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.now:
        try:
            CLOCK["offset"] = parse_now(args.now) - time.time()
        except ValueError:
            parser.error("--now must be epoch seconds or an ISO-8601 UTC time, got %r" % args.now)
    if args.commit_file:
        try:
            with open(args.commit_file, encoding="utf-8") as handle:
                commit = handle.read().strip()
        except OSError as exc:
            sys.exit("bemore_sim: cannot read the release's commit: %s" % exc)
        if not commit:
            sys.exit("bemore_sim: %s is empty" % args.commit_file)
    for name, value in (("--rate-limit", args.rate_limit), ("--background-rps", args.background_rps),
                        ("--session-end-wait", args.session_end_wait)):
        if value < 0:
            parser.error("%s must not be negative, got %s" % (name, value))
    if args.rate_window <= 0:
        parser.error("--rate-window must be above 0, got %s" % args.rate_window)
    if not 0 <= args.base_failure <= 1:
        parser.error("--base-failure is a share between 0 and 1, got %s" % args.base_failure)
    if args.write_rate_limit is None:
        args.write_rate_limit = args.rate_limit // 2
    elif args.write_rate_limit < 0:
        parser.error("--write-rate-limit must not be negative, got %s" % args.write_rate_limit)
    ports = [args.port] if args.port is not None else ([] if args.ports or args.extra_port else [18080])
    try:
        ports += parse_ports(args.ports) if args.ports else []
    except ValueError as exc:
        parser.error("--ports: %s" % exc)
    ports += args.extra_port
    args.all_ports = list(dict.fromkeys(ports))
    if not args.all_ports:
        parser.error("no port to listen on")
    for item in args.fault:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error("--fault wants NAME=VALUE, got %r" % item)
        try:
            parse_fault(name, value)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        return serve(args)
    except OSError as exc:
        sys.exit("bemore_sim: cannot listen on %s %s" % (args.host, exc.strerror or exc))


if __name__ == "__main__":
    sys.exit(main())
