# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client every check of the BeMore API uses, on ansible.module_utils.urls.

TLS as ansible.builtin.uri has it (``make_context``: a CA bundle, a client
certificate and key, validate_certs), proxies from the environment as uri
reads them (https_proxy, http_proxy, no_proxy), and what uri does not give:
a total deadline per exchange (Deadline), a bounded retry budget for
idempotent requests and 429s, an X-Request-Id on every request, and
redirects followed only within the configured origin, so a token never
leaves it. bemore_api.py reads the answers.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import json
import math
import os
import re
import socket
import ssl
import threading
import time
import uuid

from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit
from urllib.request import HTTPHandler, HTTPSHandler, ProxyHandler, Request, build_opener

from ansible.module_utils.urls import HTTPRedirectHandler, make_context

# Every request the runbook sends carries an X-Request-Id that starts with
# this prefix. The backend echoes it into its morgan access line
# (``reqId=...``), which is how the runbook leaves its own requests out of the
# error rate it judges: the user agent is not logged and error lines carry no
# request id.
RUNBOOK_REQUEST_ID_PREFIX = "bemore-runbook-"

# Errors of a request, by what went wrong; the checks treat a refused
# connection differently from an answer they could not use. Other kinds:
# http (a 4xx/5xx), json (not JSON), contract (a field missing), redirect (to
# another origin, not followed) and rate_limited (a 429: the service answers).
TRANSPORT = ("connect", "timeout")


class ApiError(Exception):
    """An endpoint could not be read, or its answer lacks what a check needs."""

    def __init__(self, endpoint, reason, status=None, kind="http", reset_s=None):
        super().__init__("%s: %s" % (endpoint, reason))
        self.endpoint = endpoint
        self.reason = reason
        self.status = status
        self.kind = kind
        self.reset_s = reset_s
        # The limit a refused answer announced, when it announced one.
        self.rate = None

    def as_dict(self):
        out = {"endpoint": self.endpoint, "reason": self.reason, "status": self.status, "kind": self.kind}
        if self.kind == "rate_limited":
            out["reset_s"] = self.reset_s
        return out


# --- base URLs -------------------------------------------------------------

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact_url(text):
    """``text`` with the userinfo of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", str(text))


def check_base_url(url, name="bemore_base_url"):
    """The base URL without a trailing slash; ValueError naming what is wrong.

    Only scheme, host and port are allowed: a path would turn every check
    into a 404 ("service down"), and credentials in a URL end up in reports
    and notifications. The message never repeats a password.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("%s is empty; give the API's base URL, e.g. https://api.example.com" % name)
    shown = redact_url(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError("%s %r is not a valid URL: %s" % (name, shown, exc))
    if parts.scheme not in ("http", "https"):
        raise ValueError("%s %r must start with http:// or https://" % (name, shown))
    if parts.username is not None or parts.password is not None:
        raise ValueError("%s %r must not contain credentials (user:password@); give the API token in "
                         "bemore_api_token (kept in a vault) instead" % (name, shown))
    if not parts.hostname:
        raise ValueError("%s %r names no host" % (name, shown))
    if parts.path not in ("", "/"):
        raise ValueError("%s %r must not have a path (%r): the checks add the API's own paths to it"
                         % (name, shown, parts.path))
    if parts.query or parts.fragment or url.strip().endswith(("?", "#")):
        raise ValueError("%s %r must not have a query or fragment" % (name, shown))
    host = parts.hostname
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s%s" % (parts.scheme, host, ":%d" % port if port else "")


# --- the HTTP client ---------------------------------------------------------

# Same-origin redirects followed per request; a redirect to another origin is
# never followed (the token would go with it).
MAX_REDIRECTS = 5
# An answer larger than this is not one of the backend's JSON answers.
MAX_BODY = 16 * 1048576
_CHUNK = 65536


def origin_of(url):
    """(scheme, host, port) of a URL, the port filled in; None when it has no host."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    return (parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80))


def shown_origin(url):
    """The origin of a URL as text, never its userinfo, path or query (they may hold secrets)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s%s" % (parts.scheme or "?", host, ":%d" % port if port else "")


def new_request_id():
    """A request id the backend logs as reqId= and the error rate leaves out."""
    return RUNBOOK_REQUEST_ID_PREFIX + uuid.uuid4().hex


def retry_after_s(headers, now=None):
    """Seconds until a 429's limit resets: RateLimit-Reset, else Retry-After (seconds or an HTTP date); None."""
    h = dict((str(k).lower(), str(v).strip()) for k, v in (headers or {}).items())
    for name in ("ratelimit-reset", "retry-after"):
        value = h.get(name)
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                continue
            if when is None or when.tzinfo is None:
                continue
            seconds = when.timestamp() - (time.time() if now is None else now)
        if not math.isfinite(seconds):
            continue
        return max(0, int(math.ceil(seconds)))
    return None


def rate_limited_reason(reset_s):
    if reset_s is None:
        return "rate limited (HTTP 429, no reset time announced)"
    return "rate limited (HTTP 429, resets in %d s)" % reset_s


class Deadline(object):
    """The total deadline of one exchange: connect, headers and body together.

    The sockets' own timeout is per operation, so a server that sends a byte
    now and then never trips it. A timer shuts the connection's socket down
    when the deadline passes, which ends whatever read is waiting.
    """

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.expired = False
        self._conns = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()

    def remaining(self):
        return self.end - time.monotonic()

    def attach(self, conn):
        with self._lock:
            self._conns.append(conn)
            expired = self.expired
        if expired:
            self._expire()

    def fit_socket(self):
        """The sockets' per-operation timeout cut to the time left."""
        left = self.remaining()
        if left <= 0:
            raise socket.timeout("deadline passed")
        for conn in list(self._conns):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.settimeout(left)
                except OSError:
                    pass

    def _expire(self):
        with self._lock:
            self.expired = True
            conns = list(self._conns)
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _bounded(base):
    class Bounded(base):
        def __init__(self, *args, **kwargs):
            self._deadline = kwargs.pop("deadline")
            base.__init__(self, *args, **kwargs)
            self._deadline.attach(self)

        def connect(self):
            left = self._deadline.remaining()
            if left <= 0:
                raise socket.timeout("deadline passed")
            self.timeout = left
            base.connect(self)
    Bounded.__name__ = "Bounded" + base.__name__
    return Bounded


_BoundedHTTPConnection = _bounded(http.client.HTTPConnection)
_BoundedHTTPSConnection = _bounded(http.client.HTTPSConnection)


class _BoundedHTTPHandler(HTTPHandler):
    def http_open(self, req):
        return self.do_open(functools.partial(_BoundedHTTPConnection, deadline=req.bemore_deadline), req)


class _BoundedHTTPSHandler(HTTPSHandler):
    def __init__(self, context):
        HTTPSHandler.__init__(self, context=context)
        self.bemore_context = context

    def https_open(self, req):
        return self.do_open(functools.partial(_BoundedHTTPSConnection, deadline=req.bemore_deadline), req,
                            context=self.bemore_context)


@functools.lru_cache(maxsize=16)
def tls_context(validate_certs=True, ca_path=None, client_cert=None, client_key=None):
    """The SSL context ansible's ``uri`` builds from the same options (``make_context``).

    ``ca_path``: a PEM bundle trusted instead of the system's; ``client_cert``
    (and ``client_key`` when the key is not in the same file): the client
    certificate presented when the server asks for one. ValueError naming the
    file that cannot be used. One context per set of options serves every
    host and thread of a run (reading the system's CAs takes a while).
    """
    for name, path in (("ca_path", ca_path), ("client_cert", client_cert), ("client_key", client_key)):
        if path is not None and not os.path.isfile(path):
            raise ValueError("%s %r is not a file" % (name, path))
    if client_key and not client_cert:
        raise ValueError("client_key is set without client_cert")
    try:
        return make_context(cafile=ca_path, validate_certs=validate_certs, client_cert=client_cert,
                            client_key=client_key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        given = (("ca_path", ca_path), ("client_cert", client_cert), ("client_key", client_key))
        files = ", ".join("%s %s" % (name, path) for name, path in given if path)
        raise ValueError("cannot use the TLS files (%s): %s" % (files, exc))


def _read_body(resp, deadline):
    """The whole body, in chunks, each read with the time left; socket.timeout when the deadline passes."""
    chunks, size = [], 0
    read = getattr(resp, "read1", None) or resp.read
    while True:
        deadline.fit_socket()
        chunk = read(_CHUNK)
        if deadline.expired:
            raise socket.timeout("deadline passed")
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise ValueError("the answer is larger than %d MB" % (MAX_BODY // 1048576))
        chunks.append(chunk)


class Response(object):
    """One HTTP answer: status, headers (lower-case names), body bytes, seconds taken."""

    def __init__(self, status, headers, raw, elapsed, url=None):
        self.status = status
        self.headers = dict((k.lower(), v) for k, v in (headers or {}).items())
        self.raw = raw
        self.elapsed = elapsed
        self.url = url

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self, endpoint):
        """The parsed body; ApiError when it is not JSON."""
        try:
            return json.loads(self.raw.decode("utf-8")) if self.raw else None
        except (UnicodeDecodeError, ValueError):
            kind = (self.header("Content-Type") or "no content type").split(";")[0].strip()
            raise ApiError(endpoint, "the answer is not JSON (HTTP %d, %s, %d bytes)"
                           % (self.status, kind, len(self.raw)), self.status, "json")


class Client(object):
    """A small JSON-over-HTTP client with bounded, idempotent-only retries.

    Every exchange has a total deadline of ``timeout`` seconds (connect,
    headers and body together, not per socket read), and a whole request
    with its retries and waits is bounded by
    ``timeout * (retries + 1) + backoff * (2**retries - 1)``
    (``max_wall_time``). Only GET, HEAD and OPTIONS are retried, and only
    after a transport error, a timeout, a 5xx or a 429: a 4xx is the
    server's considered answer, and a POST may have taken effect (a second
    test session). After a 429 the client waits as long as RateLimit-Reset
    (or Retry-After) says when that wait and one more attempt fit in what
    is left of the bound; otherwise the 429 is the answer.

    Every request carries ``X-Request-Id: RUNBOOK_REQUEST_ID_PREFIX...``,
    unique per exchange. The token goes only to the configured origin
    (scheme, host, port): a redirect to another origin is never followed
    (ApiError kind ``redirect``); a same-origin one is, up to MAX_REDIRECTS.
    """

    IDEMPOTENT = ("GET", "HEAD", "OPTIONS")

    def __init__(self, base_url, timeout=10.0, retries=2, backoff=0.5, validate_certs=True,
                 headers=None, api_token=None, user_agent="bemore-runbooks", ca_path=None, client_cert=None,
                 client_key=None):
        self.base_url = check_base_url(base_url)
        self.origin = origin_of(self.base_url)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        # NaN fails every comparison, so only "in range" tests reject it.
        if not (math.isfinite(self.timeout) and math.isfinite(self.backoff) and self.timeout > 0 and self.backoff >= 0) \
                or self.retries < 0:
            raise ValueError("timeout must be > 0, retries and backoff >= 0, all finite")
        self.headers = {"Accept": "application/json", "User-Agent": user_agent}
        self.headers.update(headers or {})
        if api_token:
            self.headers["Authorization"] = "Bearer %s" % api_token
        self.validate_certs = validate_certs
        # The TLS options, as given: a client made from this one (the session end) reuses them.
        self.tls = {"ca_path": ca_path or None, "client_cert": client_cert or None, "client_key": client_key or None}
        self.context = tls_context(bool(validate_certs), **self.tls) if self.base_url.startswith("https") else None
        # Proxies from the environment (https_proxy, http_proxy, no_proxy), as ansible's uri reads them;
        # redirects come back as their 3xx answer (follow_redirects none) and request() decides.
        handlers = [ProxyHandler(), _BoundedHTTPHandler(), HTTPRedirectHandler("none")]
        if self.context is not None:
            handlers.append(_BoundedHTTPSHandler(self.context))
        self._opener = build_opener(*handlers)

    def max_wall_time(self):
        return self.timeout * (self.retries + 1) + self.backoff * (2 ** self.retries - 1)

    def url(self, path):
        return self.base_url + path

    def request(self, method, path, body=None, extra_headers=None, retry=True):
        """Return a Response for any HTTP status below 500 (after retries for 5xx and 429).

        Raises ApiError with a readable reason and ``kind`` connect, timeout,
        redirect or http (5xx); never lets a socket exception escape.
        """
        data = None
        headers = dict(self.headers)
        headers.update(extra_headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        attempts = self.retries + 1 if retry and method in self.IDEMPOTENT else 1
        bound = time.monotonic() + (self.max_wall_time() if attempts > 1 else self.timeout)
        last = None
        wait = 0.0
        for attempt in range(attempts):
            if attempt:
                if bound - time.monotonic() - wait <= 0:
                    break
                time.sleep(wait)
            started = time.monotonic()
            # Never past the bound, whatever the waits before took.
            allowed = min(self.timeout, bound - started)
            try:
                status, rheaders, raw, url = self._exchange(method, path, data, headers, allowed)
            except ApiError as exc:
                if exc.kind == "redirect":
                    raise
                last = exc
                wait = self.backoff * (2 ** attempt)
                continue
            elapsed = time.monotonic() - started
            if status >= 500:
                last = ApiError(path, "HTTP %d%s" % (status, _error_suffix(raw)), status, "http")
                wait = self.backoff * (2 ** attempt)
                continue
            resp = Response(status, rheaders, raw, elapsed, url)
            if status == 429:
                reset = retry_after_s(rheaders)
                left = bound - time.monotonic()
                if attempt + 1 < attempts and reset is not None and reset + self.timeout <= left:
                    last, wait = resp, float(reset)
                    continue
            return resp
        if isinstance(last, Response):
            return last
        raise last

    def _exchange(self, method, path, data, headers, seconds):
        """(status, headers, body, url) of one request and its same-origin redirects, all within ``seconds``."""
        url = self.url(path)
        with Deadline(seconds) as deadline:
            for _hop in range(MAX_REDIRECTS + 1):
                status, rheaders, raw = self._send(method, url, data, headers, deadline, path, seconds)
                location = rheaders.get("location") if status in (301, 302, 303, 307, 308) else None
                if not location:
                    return status, rheaders, raw, url
                target = urljoin(url, location)
                if origin_of(target) != self.origin:
                    raise ApiError(path, "redirected to %s (HTTP %d); not followed: the token is sent only to %s"
                                   % (shown_origin(target), status, self.base_url), status, "redirect")
                url = target
                if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
                    method, data = "GET", None
                    headers = dict((k, v) for k, v in headers.items() if k.lower() != "content-type")
        raise ApiError(path, "more than %d redirects" % MAX_REDIRECTS, status, "redirect")

    def _send(self, method, url, data, headers, deadline, path, seconds):
        """One HTTP exchange; ApiError for a transport failure or a passed deadline."""
        headers = dict(headers)
        headers["X-Request-Id"] = new_request_id()
        req = Request(url, data=data, headers=headers, method=method)
        req.bemore_deadline = deadline
        resp = None
        try:
            try:
                resp = self._opener.open(req, timeout=max(deadline.remaining(), 0.001))
                status, body = resp.status, resp
            except HTTPError as exc:
                resp = exc
                status, body = exc.code, exc.fp
            rheaders = dict((k.lower(), v) for k, v in (resp.headers or {}).items())
            raw = _read_body(body, deadline) if body is not None else b""
            return status, rheaders, raw
        except Exception as exc:  # pylint: disable=broad-except
            if deadline.expired or deadline.remaining() <= 0 or _is_timeout(exc):
                raise ApiError(path, "timed out: no complete answer within the %.1fs deadline" % seconds, kind="timeout")
            reason = exc.reason if isinstance(exc, URLError) else exc
            if isinstance(exc, ValueError) and not isinstance(exc, http.client.HTTPException):
                raise ApiError(path, "request failed: %s" % exc, kind="connect")
            raise ApiError(path, "cannot connect to %s: %s" % (self.base_url, reason), kind="connect")
        finally:
            if resp is not None:
                try:
                    resp.close()
                except Exception:  # pylint: disable=broad-except
                    pass

    def get_json(self, path, retry=True):
        """(Response, parsed body) of a GET that must answer 2xx with JSON."""
        resp = self.request("GET", path, retry=retry)
        return resp, expect_json(resp, path)

    def post_json(self, path, body):
        resp = self.request("POST", path, body=body)
        return resp, expect_json(resp, path)


def _is_timeout(exc):
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return True
    return isinstance(exc, URLError) and isinstance(exc.reason, (socket.timeout, TimeoutError))


def client_argument_spec():
    """The connection options of a module (doc fragments bemore_api and bemore_api.retries)."""
    return dict(
        base_url=dict(type="str", required=True),
        timeout=dict(type="float", default=10.0),
        validate_certs=dict(type="bool", default=True),
        api_token=dict(type="str", no_log=True),
        headers=dict(type="dict", default={}),
        retries=dict(type="int", default=2),
        backoff=dict(type="float", default=0.5),
        ca_path=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path"),
    )


def client_from_params(p):
    """A Client from a module's connection options; ValueError naming the bad one."""
    return Client(p["base_url"], timeout=p["timeout"], retries=p["retries"], backoff=p["backoff"],
                  validate_certs=p["validate_certs"], headers=p["headers"], api_token=p["api_token"],
                  ca_path=p.get("ca_path"), client_cert=p.get("client_cert"), client_key=p.get("client_key"))


def expect_json(resp, endpoint):
    """The JSON body of a 2xx answer; ApiError for anything else (kind rate_limited for a 429)."""
    if resp.status == 429:
        reset = retry_after_s(resp.headers)
        err = ApiError(endpoint, rate_limited_reason(reset), 429, "rate_limited", reset)
        # The refusal still announces the limit (RateLimit-*): the API
        # security check reads it from here rather than send more.
        err.rate = parse_rate_limit(resp.headers)
        raise err
    if not 200 <= resp.status < 300:
        parsed = None
        try:
            parsed = json.loads(resp.raw.decode("utf-8")) if resp.raw else None
        except (UnicodeDecodeError, ValueError):
            pass
        raise ApiError(endpoint, "HTTP %d: %s" % (resp.status, error_message(parsed)), resp.status, "http")
    return resp.json(endpoint)


def error_message(parsed):
    """The message of the backend's error body ({"success": false, "error": {...}})."""
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and err.get("message"):
            code = err.get("code")
            return "%s%s" % (err["message"], " (%s)" % code if code else "")
        if isinstance(err, str):
            return err
        if parsed.get("message"):
            return str(parsed["message"])
    return "no error message in the answer"


def _error_suffix(raw):
    try:
        parsed = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return ""
    return ": " + error_message(parsed) if isinstance(parsed, dict) else ""


def parse_rate_limit(headers):
    """The rate limit an answer announces, from its headers; None when it announces none.

    express-rate-limit's standard headers (``RateLimit-Limit``,
    ``-Remaining``, ``-Reset``, ``RateLimit-Policy: 600;w=600``), the combined
    ``RateLimit: limit=..., remaining=..., reset=...`` of later drafts, or the
    legacy ``X-RateLimit-*``.
    """
    h = dict((str(k).lower(), str(v)) for k, v in (headers or {}).items())

    def num(value):
        try:
            return int(float(value.strip()))
        except (AttributeError, ValueError):
            return None

    limit = num(h.get("ratelimit-limit")) if "ratelimit-limit" in h else None
    remaining = num(h.get("ratelimit-remaining")) if "ratelimit-remaining" in h else None
    reset = num(h.get("ratelimit-reset")) if "ratelimit-reset" in h else None
    combined = h.get("ratelimit")
    if limit is None and combined:
        fields = dict((k.strip().lower(), v.strip()) for k, _sep, v in
                      (part.partition("=") for part in combined.split(",")))
        limit, remaining, reset = num(fields.get("limit")), num(fields.get("remaining")), num(fields.get("reset"))
    if limit is None and "x-ratelimit-limit" in h:
        limit = num(h.get("x-ratelimit-limit"))
        remaining = num(h.get("x-ratelimit-remaining", ""))
        reset_at = num(h.get("x-ratelimit-reset", ""))
        # The legacy header is an epoch time in some servers, seconds in others.
        reset = reset_at - int(time.time()) if reset_at and reset_at > 10 ** 9 else reset_at
    if limit is None:
        return None
    window = None
    policy = h.get("ratelimit-policy")
    if policy:
        match = re.search(r"(?:^|;)\s*w=(\d+)", policy)
        window = int(match.group(1)) if match else None
    return {"limit": limit, "remaining": remaining, "reset_s": reset, "window_s": window,
            "policy": policy}
