# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API readings of the runbook checks, for one host or a whole fleet at once.

One call reads everything the selected checks need from each host's API,
every host concurrently, so a fleet's API checks cost about one round-trip
of wall time per phase rather than one per host and check. Per host:

1. ``GET /health`` alone (a dead service answers nothing else either);
2. the other readings concurrently: error statistics, the backend's own
   health verdict, temp-cleanup statistics, latency samples, CORS
   preflights, TLS; the rate limit is read from the headers those answers
   already carry (no extra request);
3. when /health answered but a later call could not connect, /health once
   more: a service that went down during the run is a finding of its own.

Nothing here judges a reading; bemore_steps does.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ansible.module_utils.bemore_api import (
    ApiError, Client, Deadline, ENDPOINTS, TRANSPORT, expect_json, tls_context, parse_cleanup_stats, parse_error_stats, parse_health,
    parse_monitoring_health, parse_rate_limit, parse_session_start, rate_limited_reason, retry_after_s,
    session_end_path,
)
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_common import median

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # an ansible-core dependency; absent only on a host that does not run the API checks
    HAS_CRYPTOGRAPHY = False

# The CORS probe's foreign origin: the backend names it in the error line it
# logs for the refusal, and bemore_logs leaves lines naming a
# "bemore-runbook-probe" host out of the error rate (OWN_PROBE_ORIGIN there).
DEFAULT_PROBE_ORIGIN = "https://bemore-runbook-probe.invalid"

# What each check needs from the API.
NEEDS = {
    "health_check": ("health", "monitoring"),
    "error_monitoring": ("error_stats", "monitoring"),
    "tmp_cleanup": ("cleanup", "health"),
    "performance_check": ("latency",),
    "api_security": ("tls", "cors", "rate"),
    "smoke_test": ("health",),
}


def needed(roles):
    out = set()
    for role in roles:
        out.update(NEEDS.get(role, ()))
    return out


def _timed(fn):
    started = time.monotonic()
    try:
        return fn(), None, (time.monotonic() - started) * 1000.0
    except ApiError as exc:
        return None, exc, (time.monotonic() - started) * 1000.0


def read_health(client):
    """{"health": parsed|None, "error": dict|None, "response_ms", "rate": headers' limit or None}."""
    def call():
        resp, body = client.get_json(ENDPOINTS["health"])
        return resp, parse_health(body)
    got, err, ms = _timed(call)
    if err is not None:
        return {"health": None, "error": err.as_dict(), "response_ms": None, "rate": err.rate}
    resp, health = got
    return {"health": health, "error": None, "response_ms": round(resp.elapsed * 1000.0, 1),
            "rate": parse_rate_limit(resp.headers)}


def _reading(client, path, parser):
    def call():
        resp, body = client.get_json(path)
        return resp, parser(body, path)
    got, err, _ms = _timed(call)
    if err is not None:
        return {"data": None, "error": err.as_dict(), "rate": None}
    resp, data = got
    return {"data": data, "error": None, "rate": parse_rate_limit(resp.headers)}


def read_latency(client, paths, samples):
    """Timed sequential GETs without retries (a retry would hide its own latency).

    A 429 is not a failed request: the service answered, this address has
    spent its quota. Sampling stops there (every further sample would be
    refused as well) and the result names it under ``rate_limited``. It
    stops after a timeout too: each further sample would wait its whole
    deadline, and one is the finding.
    """
    times, failed, failures, endpoints = [], 0, [], {}
    limited, stopped = None, False
    for path in paths:
        mine = []
        for _sample in range(0 if limited or stopped else samples):
            started = time.monotonic()
            try:
                resp = client.request("GET", path, retry=False)
                if resp.status == 429:
                    expect_json(resp, path)
                if resp.status >= 400:
                    raise ApiError(path, "HTTP %d" % resp.status, resp.status)
            except ApiError as exc:
                if exc.kind == "rate_limited":
                    limited = exc.as_dict()
                    break
                failed += 1
                if len(failures) < 10:
                    failures.append(exc.as_dict())
                if exc.kind == "timeout":
                    stopped = True
                    break
                continue
            mine.append((time.monotonic() - started) * 1000.0)
        endpoints[path] = {"samples": len(mine), "median_ms": round(median(mine), 1) if mine else None,
                           "max_ms": round(max(mine), 1) if mine else None}
        times.extend(mine)
    return {"times_ms": [round(t, 2) for t in times], "failed": failed, "failures": failures, "endpoints": endpoints,
            "rate_limited": limited, "stopped_after_timeout": stopped}


def read_cors(client, path, frontend, foreign):
    """Preflights from the frontend and from a foreign origin."""
    out = {"frontend": frontend, "problems": []}
    if not frontend:
        out["problems"].append("no frontend origin configured (bemore_frontend_origin) to test with")
        return out
    for label, origin in (("frontend", frontend), ("foreign", foreign)):
        try:
            resp = client.request("OPTIONS", path, extra_headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
        except ApiError as exc:
            out["problems"].append("the preflight from %s failed: %s" % (origin, exc))
            out["error"] = exc.as_dict()
            return out
        if resp.status == 429:
            err = ApiError(path, rate_limited_reason(retry_after_s(resp.headers)), 429, "rate_limited")
            out["problems"].append("the preflight from %s not read: %s" % (origin, err.reason))
            out["error"] = err.as_dict()
            return out
        allowed = resp.header("Access-Control-Allow-Origin")
        out[label + "_status"] = resp.status
        if label == "frontend":
            out["allowed_origin"] = allowed
            out["frontend_allowed"] = allowed in (origin, "*")
            out["wildcard"] = allowed == "*"
            if allowed == "*":
                out["problems"].append("the API allows every origin (*), not just %s" % origin)
            elif allowed != origin:
                out["problems"].append("a preflight from %s was answered with HTTP %d and Access-Control-Allow-Origin %r"
                                       % (origin, resp.status, allowed))
        else:
            out["foreign_allowed"] = allowed == origin
            # Only the backend's own refusal (HTTP 400 with its JSON error body) is an error in its counters;
            # a proxy's or WAF's 403 never reached it and logged nothing there.
            out["foreign_refused_by_backend"] = _backend_cors_refusal(resp)
            if allowed == origin:
                out["problems"].append("the API also allows the foreign origin %s" % origin)
    return out


def _backend_cors_refusal(resp):
    """Whether a preflight's answer is the backend's own CORS refusal: HTTP 400 with its JSON error body
    ({"success": false, "error": {"message": "CORS policy: ..."}}), the one that adds an error to its counters."""
    if resp.status != 400:
        return False
    try:
        body = json.loads(resp.raw.decode("utf-8")) if resp.raw else None
    except (UnicodeDecodeError, ValueError):
        return False
    error = body.get("error") if isinstance(body, dict) and body.get("success") is False else None
    return isinstance(error, dict) and str(error.get("message") or "").startswith("CORS policy")


def probe_rate_limit(client, path, max_requests, stop_at_remaining=0):
    """Send GETs until a 429, at most ``max_requests``; only when asked to (it spends the quota)."""
    sent = 0
    for sent in range(1, max_requests + 1):
        try:
            resp = client.request("GET", path, retry=False)
        except ApiError as exc:
            return {"hit": False, "sent": sent, "error": str(exc)}
        if resp.status == 429:
            return {"hit": True, "sent": sent, "retry_after": resp.header("Retry-After")}
        announced = parse_rate_limit(resp.headers)
        if announced and announced.get("remaining") is not None and announced["remaining"] <= stop_at_remaining:
            return {"hit": False, "sent": sent, "stopped": "remaining quota reached %d" % announced["remaining"]}
    return {"hit": False, "sent": sent}


def certificate_dates(der):
    """{"subject": its common name or None, "not_after": aware UTC datetime} of a DER certificate; ValueError.

    Read with ``cryptography`` from the bytes the handshake received, so an
    unverified certificate (validate_certs false) is read the same way.
    """
    if not HAS_CRYPTOGRAPHY:
        raise ValueError("the Python library cryptography is not installed")
    if not der:
        raise ValueError("the server sent no certificate")
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return {"subject": str(names[0].value) if names else None, "not_after": cert.not_valid_after_utc}


class _Held(object):
    """What ``Deadline.attach`` shuts down: an object with a ``sock``."""

    def __init__(self, sock):
        self.sock = sock


def read_tls(base_url, timeout, validate, context=None):
    """The certificate's expiry of an https base URL (None for http), over ``context`` (the API client's)."""
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        return None
    host, port = parts.hostname, parts.port or 443
    ctx = context if context is not None else tls_context(bool(validate))
    # The same total deadline as every API request: a server that sends its
    # handshake a byte at a time never trips the per-operation timeout.
    deadline = Deadline(timeout)
    try:
        with deadline:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                with ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False) as tls:
                    deadline.attach(_Held(tls))
                    tls.do_handshake()
                    der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        if deadline.expired or isinstance(exc, socket.timeout):
            return {"error": "no TLS handshake with %s within the %gs deadline" % (host, timeout), "days_left": None}
        return {"error": "cannot verify the certificate of %s: %s" % (host, exc), "days_left": None}
    try:
        cert = certificate_dates(der)
    except ValueError as exc:
        return {"error": "cannot read the certificate of %s: %s" % (host, exc), "days_left": None}
    not_after = cert["not_after"]
    days = (not_after - datetime.datetime.fromtimestamp(clock_now(), datetime.timezone.utc)).total_seconds() / 86400.0
    return {"subject": cert["subject"], "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days_left": round(days, 1), "error": None}


def read_host(client, wants, cfg, inner_workers=4):
    """Everything ``wants`` asks of one host's API. Never raises for the API's faults."""
    out = {}
    if wants & {"health", "error_stats", "monitoring", "cleanup", "latency", "cors", "rate"}:
        # Health first and alone: the later calls are read against it.
        out["health"] = read_health(client)
    unanswered = (out.get("health") or {}).get("error")
    if unanswered and unanswered.get("kind") in TRANSPORT + ("rate_limited",):
        # No answer in time, or this address's quota is spent: every other
        # call would end the same way, each after its own deadline. Naming
        # them as not read keeps a dead host's API time to one bound.
        skipped = set(wants) & {"error_stats", "monitoring", "cleanup", "latency", "cors"}
        wants = set(wants) - skipped
        out.update(_not_read(unanswered, skipped, cfg))
    jobs = {}
    if "error_stats" in wants:
        jobs["error_stats"] = lambda: _reading(client, ENDPOINTS["error_stats"], parse_error_stats)
    if "monitoring" in wants:
        jobs["monitoring"] = lambda: _reading(client, ENDPOINTS["monitoring_health"], parse_monitoring_health)
    if "cleanup" in wants:
        jobs["cleanup"] = lambda: _reading(client, ENDPOINTS["temp_cleanup_stats"], parse_cleanup_stats)
    if "latency" in wants:
        jobs["latency"] = lambda: read_latency(client, cfg.get("latency_paths") or ["/health"],
                                               int(cfg.get("latency_samples", 5)))
    if "tls" in wants:
        jobs["tls"] = lambda: read_tls(client.base_url, client.timeout, client.validate_certs, client.context)
    if jobs:
        with ThreadPoolExecutor(max_workers=min(inner_workers, len(jobs))) as pool:
            futures = dict((name, pool.submit(fn)) for name, fn in jobs.items())
            for name, future in futures.items():
                out[name] = future.result()
    if "cors" in wants:
        # After the error statistics were read: the refused preflight adds one
        # error to the backend's counters, which this run's reading then never
        # holds and the next run subtracts (it is in this run's state).
        out["cors"] = read_cors(client, cfg.get("cors_path") or ENDPOINTS["session_start"],
                                cfg.get("frontend_origin"), cfg.get("foreign_origin") or DEFAULT_PROBE_ORIGIN)
    if "rate" in wants:
        out["rate"] = _announced_rate(out)
        if cfg.get("rate_limit_probe"):
            out["rate"]["probe"] = probe_rate_limit(client, cfg.get("rate_limit_path") or ENDPOINTS["error_stats"],
                                                    int(cfg.get("rate_limit_probe_max", 50)))
            out["rate"]["requests"] = out["rate"]["probe"]["sent"]
    health = out.get("health")
    if health and health.get("health") and _lost_connection(out):
        out["recheck"] = read_health(client)
    return out


def _not_read(health_error, names, cfg):
    """The readings left out because /health gave no answer (or a 429), each saying why."""
    limited = health_error.get("kind") == "rate_limited"
    reason = health_error["reason"] if limited else "not read: /health did not answer (%s)" % health_error["reason"]
    kind = "rate_limited" if limited else "not_read"
    paths = {"error_stats": ENDPOINTS["error_stats"], "monitoring": ENDPOINTS["monitoring_health"],
             "cleanup": ENDPOINTS["temp_cleanup_stats"]}
    out = {}
    for name in names:
        if name in paths:
            err = {"endpoint": paths[name], "reason": reason, "status": None, "kind": kind}
            if limited:
                err["reset_s"] = health_error.get("reset_s")
            out[name] = {"data": None, "error": err, "rate": None}
    if "latency" in names:
        err = {"endpoint": ENDPOINTS["health"], "reason": reason, "status": None, "kind": kind,
               "reset_s": health_error.get("reset_s")}
        out["latency"] = {"times_ms": [], "failed": 0, "failures": [], "endpoints": {},
                          "rate_limited": err if limited else None, "not_read": None if limited else err}
    if "cors" in names:
        out["cors"] = {"frontend": cfg.get("frontend_origin"), "problems": ["the preflights were not sent: %s" % reason],
                       "error": {"endpoint": cfg.get("cors_path") or ENDPOINTS["session_start"], "reason": reason,
                                 "status": None, "kind": kind}}
    return out


def _announced_rate(out):
    """The limit from the headers of an /api answer this sweep already has."""
    for name in ("error_stats", "monitoring", "cleanup"):
        reading = out.get(name)
        if reading and reading.get("rate"):
            return dict(reading["rate"], source=ENDPOINTS.get(name, name), requests=0)
    health = out.get("health") or {}
    if health.get("rate"):
        return dict(health["rate"], source=ENDPOINTS["health"], requests=0)
    if any((out.get(n) or {}).get("error") for n in ("error_stats", "monitoring", "cleanup")) or health.get("error"):
        return {"limit": None, "error": "no answer to read the RateLimit headers from", "requests": 0}
    return {"limit": None, "requests": 0}


def _lost_connection(out):
    for name in ("error_stats", "monitoring", "cleanup"):
        err = (out.get(name) or {}).get("error")
        if err and err.get("kind") in TRANSPORT:
            return True
    latency = out.get("latency")
    if latency and any(f.get("kind") in TRANSPORT for f in latency.get("failures", [])):
        return True
    return False


def client_for(api, token=None):
    return Client(api["base_url"], timeout=api.get("timeout", 10), retries=api.get("retries", 2),
                  backoff=api.get("backoff", 0.5), validate_certs=api.get("validate_certs", True),
                  api_token=token or None, ca_path=api.get("ca_path"), client_cert=api.get("client_cert"),
                  client_key=api.get("client_key"))


def sweep(targets, tokens=None, workers=64):
    """Read every target's API concurrently.

    ``targets``: {host: {"api": {...}, "wants": [...], "cfg": {...}}}.
    Returns ({host: reading}, elapsed_ms). A host whose client cannot be
    built (a bad URL) gets {"error": ...}; one host never stops the others.
    """
    tokens = tokens or {}
    started = time.monotonic()
    results = {}
    lock = threading.Lock()

    def one(item):
        host, target = item
        try:
            client = client_for(target["api"], tokens.get(host))
            reading = read_host(client, set(target.get("wants") or ()), target.get("cfg") or {})
        except ValueError as exc:
            reading = {"error": str(exc)}
        with lock:
            results[host] = reading

    items = sorted(targets.items())
    if items:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
            list(pool.map(one, items))
    return results, round((time.monotonic() - started) * 1000.0, 1)


def run_session(client, body, end_timeout=60.0):
    """Start a test session and end it again; the end is tried whenever the start gave an id.

    The backend takes about 30 seconds to end a session (it writes the
    session's report then), so the end has its own, longer timeout and is
    never retried: a second end would write a second report.
    A start refused by the rate limiter (HTTP 429: POSTs are limited to 300
    per 10 minutes per address) tested nothing: it is returned as
    ``rate_limited`` ({reset_s, reason}), not as a failed start.
    """
    try:
        _resp, parsed = client.post_json(ENDPOINTS["session_start"], body)
        session = parse_session_start(parsed)
    except ApiError as exc:
        if exc.kind == "rate_limited":
            return {"session_id": None, "ended": False, "error": None, "end_error": None,
                    "rate_limited": {"reset_s": exc.reset_s, "reason": exc.reason}}
        return {"session_id": None, "ended": False, "error": str(exc), "end_error": None}
    out = {"session_id": session["session_id"], "ended": False, "error": None, "end_error": None}
    ender = Client(client.base_url, timeout=end_timeout, retries=0, headers=client.headers,
                   validate_certs=client.validate_certs, **client.tls)
    try:
        ender.post_json(session_end_path(session["session_id"]), {})
        out["ended"] = True
    except ApiError as exc:
        out["end_error"] = str(exc)
    return out
