# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The BeMore Backend API contract and the one HTTP client every module uses.

This file is the single place where the response shapes are written down.
The maintenance guide documents ``/health`` and ``/api/system/temp-cleanup-stats``;
for the other endpoints it gives no shape, so they follow the documented
``{"success": true, "data": ...}`` envelope as described in CONTRACT below.
The sandbox simulator imports this module, so simulator and modules cannot
disagree about what a valid answer is.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

from urllib.error import HTTPError, URLError
from urllib.request import HTTPHandler, HTTPSHandler, Request, build_opener

CATEGORIES = ("WEBSOCKET", "SESSION", "STT", "VAD", "GEMINI", "CBT", "DATABASE", "NETWORK")
RECENT_LIMIT_MAX = 100

ENDPOINTS = {
    "health": "/health",
    "error_stats": "/api/errors/stats",
    "recent_errors": "/api/monitoring/recent-errors",
    "errors_by_category": "/api/monitoring/errors/{category}",
    "temp_cleanup_stats": "/api/system/temp-cleanup-stats",
    "session_start": "/api/session/start",
}

# Field name -> accepted Python types. "envelope" means the body is
# {"success": true, "data": {...}} and the fields describe "data".
_NUM = (int, float)
_ERROR_ENTRY = {"id": (str,), "timestamp": (str,), "category": (str,), "message": (str,)}
CONTRACT = {
    "health": {
        "envelope": False,
        "fields": {"status": (str,), "timestamp": (str,), "uptime": _NUM,
                   "version": (str,), "commit": (str,)},
    },
    "error_stats": {
        "envelope": True,
        "fields": {"totalErrors": (int,), "totalRequests": (int,), "windowMinutes": _NUM,
                   "byCategory": (dict,), "lastErrorTime": (str, type(None))},
    },
    "recent_errors": {
        "envelope": True,
        "fields": {"errors": (list,), "count": (int,), "limit": (int,)},
        "items": ("errors", _ERROR_ENTRY),
    },
    "errors_by_category": {
        "envelope": True,
        "fields": {"category": (str,), "count": (int,), "errors": (list,)},
        "items": ("errors", _ERROR_ENTRY),
    },
    "temp_cleanup_stats": {
        "envelope": True,
        # bytesFreed is a string of megabytes in the guide ("5.23").
        "fields": {"filesDeleted": (int,), "bytesFreed": (str, int, float), "checksRun": (int,),
                   "lastCheckTime": (str, type(None)), "errors": (int,)},
    },
    "session_start": {
        "envelope": True,
        "fields": {"sessionId": (str,), "userId": (str,), "counselorId": (str,), "status": (str,)},
    },
}

_TYPE_NAMES = {str: "string", int: "integer", float: "number", dict: "object", list: "array",
               bool: "boolean", type(None): "null"}


class ApiError(Exception):
    """An endpoint could not be read or did not honour the contract."""

    def __init__(self, endpoint, reason, status=None):
        super().__init__("%s: %s" % (endpoint, reason))
        self.endpoint = endpoint
        self.reason = reason
        self.status = status

    def as_dict(self):
        return {"endpoint": self.endpoint, "reason": self.reason, "status": self.status}


def _type_ok(value, types):
    # bool is an int subclass; a JSON true is never a valid count.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def validate(kind, body, endpoint=None):
    """Check ``body`` against CONTRACT[kind]; return the payload (``data`` for
    enveloped answers). Raise ApiError naming the endpoint and the field."""
    endpoint = endpoint or ENDPOINTS.get(kind, kind)
    spec = CONTRACT[kind]
    if not isinstance(body, dict):
        raise ApiError(endpoint, "expected a JSON object, got %s" % _TYPE_NAMES.get(type(body), type(body).__name__))
    payload = body
    if spec["envelope"]:
        if body.get("success") is not True:
            raise ApiError(endpoint, "response envelope has success=%r" % (body.get("success"),))
        payload = body.get("data")
        if not isinstance(payload, dict):
            raise ApiError(endpoint, "response envelope has no 'data' object")
    for field, types in spec["fields"].items():
        if field not in payload:
            raise ApiError(endpoint, "missing field '%s'" % field)
        if not _type_ok(payload[field], types):
            raise ApiError(endpoint, "field '%s' should be %s, got %s" % (
                field, " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types),
                _TYPE_NAMES.get(type(payload[field]), type(payload[field]).__name__)))
    if "items" in spec:
        key, item_spec = spec["items"]
        for idx, item in enumerate(payload[key]):
            if not isinstance(item, dict):
                raise ApiError(endpoint, "%s[%d] is not an object" % (key, idx))
            for field, types in item_spec.items():
                if field not in item or not _type_ok(item[field], types):
                    raise ApiError(endpoint, "%s[%d] lacks a valid '%s'" % (key, idx, field))
    return payload


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def is_timestamp(value):
    return isinstance(value, str) and bool(_TIMESTAMP.match(value))


def parse_time(value):
    """Seconds since the epoch for an ISO 8601 time stamp of the API, or None."""
    if not is_timestamp(value):
        return None
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def join_url(base_url, path):
    return base_url.rstrip("/") + path


class Client(object):
    """A small JSON-over-HTTP client with bounded retries.

    The wall time of one ``get``/``post`` is bounded by
    ``timeout * (retries + 1) + backoff * (2**retries - 1)``.
    Only transport errors, timeouts and 5xx answers are retried: a 4xx is the
    server's considered answer and retrying it changes nothing.
    """

    def __init__(self, base_url, timeout=10.0, retries=2, backoff=0.5, validate_certs=True,
                 headers=None, api_token=None, user_agent="bemore-runbooks"):
        if not re.match(r"^https?://[^/\s]+", base_url or ""):
            raise ValueError("base_url must start with http:// or https:// and name a host, got %r" % (base_url,))
        self.base_url = base_url
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.headers = {"Accept": "application/json", "User-Agent": user_agent}
        self.headers.update(headers or {})
        if api_token:
            self.headers["Authorization"] = "Bearer %s" % api_token
        handlers = [HTTPHandler()]
        if base_url.startswith("https"):
            ctx = ssl.create_default_context()
            if not validate_certs:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            handlers.append(HTTPSHandler(context=ctx))
        self._opener = build_opener(*handlers)

    def max_wall_time(self):
        return self.timeout * (self.retries + 1) + self.backoff * (2 ** self.retries - 1)

    def request(self, method, path, body=None, extra_headers=None, parse=True):
        """Return (status, headers, parsed JSON, elapsed seconds of the last attempt).

        With ``parse=False`` the body is returned as bytes, unparsed (CORS
        preflights and probes whose bodies do not matter).

        Raises ApiError with a human-readable reason; never lets a socket or
        JSON exception escape.
        """
        url = join_url(self.base_url, path)
        data = None
        headers = dict(self.headers)
        headers.update(extra_headers or {})
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            started = time.monotonic()
            try:
                resp = self._opener.open(Request(url, data=data, headers=headers, method=method),
                                         timeout=self.timeout)
                status, raw, rheaders = resp.status, resp.read(), dict(resp.headers)
            except HTTPError as exc:
                status, rheaders = exc.code, dict(exc.headers or {})
                try:
                    raw = exc.read()
                except Exception:  # pylint: disable=broad-except
                    raw = b""
            except (socket.timeout, TimeoutError):
                last = ApiError(path, "timed out after %.1fs" % self.timeout)
                continue
            except URLError as exc:
                reason = exc.reason
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    last = ApiError(path, "timed out after %.1fs" % self.timeout)
                else:
                    last = ApiError(path, "cannot connect to %s: %s" % (self.base_url, reason))
                continue
            except (OSError, ValueError) as exc:
                last = ApiError(path, "request failed: %s" % exc)
                continue
            elapsed = time.monotonic() - started
            if status >= 500:
                last = ApiError(path, "server error HTTP %d" % status, status)
                continue
            if not parse:
                return status, rheaders, raw, elapsed
            try:
                parsed = json.loads(raw.decode("utf-8")) if raw else None
            except (UnicodeDecodeError, ValueError):
                # Malformed JSON from a 2xx is a server fault; retry it like a 5xx.
                last = ApiError(path, "malformed JSON in HTTP %d response (%d bytes)" % (status, len(raw)), status)
                if status < 400:
                    continue
                raise last
            return status, rheaders, parsed, elapsed
        raise last

    def get_json(self, kind, path=None, query=None):
        """GET an endpoint of the contract and return its validated payload."""
        path = path or ENDPOINTS[kind]
        if query:
            path = path + "?" + "&".join("%s=%s" % (k, v) for k, v in query.items())
        status, _headers, parsed, elapsed = self.request("GET", path)
        if status >= 400:
            raise ApiError(path, "HTTP %d: %s" % (status, _error_message(parsed)), status)
        payload = validate(kind, parsed, path)
        return payload, elapsed

    def fetch_many(self, jobs, workers=None):
        """Run ``jobs`` ({name: (kind, path, query)}) concurrently.

        Returns ({name: payload}, {name: ApiError}). The wall time is that of
        the slowest job, not the sum.
        """
        results, failures = {}, {}
        if not jobs:
            return results, failures

        def _one(item):
            name, (kind, path, query) = item
            try:
                return name, self.get_json(kind, path, query)[0], None
            except ApiError as exc:
                return name, None, exc

        with ThreadPoolExecutor(max_workers=workers or len(jobs)) as pool:
            for name, payload, err in pool.map(_one, list(jobs.items())):
                if err is None:
                    results[name] = payload
                else:
                    failures[name] = err
        return results, failures


def client_argument_spec(retries=True):
    """The argument_spec entries of the API connection (doc fragment bemore_api)."""
    spec = dict(
        base_url=dict(type="str", required=True),
        timeout=dict(type="float", default=10.0),
        validate_certs=dict(type="bool", default=True),
        api_token=dict(type="str", no_log=True),
        headers=dict(type="dict", default={}),
    )
    if retries:
        spec.update(retries=dict(type="int", default=2), backoff=dict(type="float", default=0.5))
    return spec


def client_from_module(module):
    """A Client from the module's connection options; fails the module on bad input."""
    p = module.params
    retries, backoff = p.get("retries", 0), p.get("backoff", 0.0)
    if p["timeout"] <= 0 or retries < 0 or backoff < 0:
        module.fail_json(msg="timeout must be > 0, retries and backoff >= 0")
    try:
        return Client(p["base_url"], timeout=p["timeout"], retries=retries, backoff=backoff,
                      validate_certs=p["validate_certs"], headers=p["headers"], api_token=p["api_token"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def _error_message(parsed):
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if parsed.get("message"):
            return str(parsed["message"])
    return "no error message in the response"
