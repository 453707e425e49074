# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The BeMore Backend's answers as the backend really gives them (the HTTP
client that fetches them is bemore_http.py).

The shapes are the ones recorded from the running backend
(bemore-api-observed.md); tests feed those recorded answers to every parser
here. The parsers are as tolerant as the backend: unknown fields are ignored,
a field the backend may leave null or out is returned as None ("unknown"),
and an answer is refused only when it is not JSON, not 2xx, or lacks what the
check needs; the error names the endpoint and the field. The sandbox
simulator is written separately from this file, so a misreading here fails a
test instead of being served back.
"""

from __future__ import annotations

from urllib.parse import quote

# The client, and the names older callers import from here (parse_time and iso: runbook_common's).
# pylint: disable=unused-import
from ansible.module_utils.bemore_http import (
    MAX_BODY, MAX_REDIRECTS, RUNBOOK_REQUEST_ID_PREFIX, TRANSPORT, ApiError, Client, Deadline, Response,
    check_base_url, client_argument_spec, client_from_params, error_message, expect_json, new_request_id, origin_of,
    parse_rate_limit, rate_limited_reason, redact_url, retry_after_s, shown_origin, tls_context,
)
from ansible.module_utils.runbook_common import iso, parse_time
# pylint: enable=unused-import

# The guide's eight categories. The backend's /api/monitoring/errors/{CATEGORY}
# counts the entries whose own ``type`` equals the category, so its total is
# byType[CATEGORY] of the error statistics.
CATEGORIES = ("WEBSOCKET", "SESSION", "STT", "VAD", "GEMINI", "CBT", "DATABASE", "NETWORK")
# The backend's own classification of an error (``type``).
ERROR_TYPES = ("NETWORK", "VALIDATION", "AUTH", "DATABASE", "AI_SERVICE", "WEBSOCKET", "FILE", "UNKNOWN")
LEVELS = ("INFO", "WARN", "ERROR", "CRITICAL")
# /api/errors/stats keeps this many entries in ``recent``.
RECENT_KEPT = 100

ENDPOINTS = {
    "health": "/health",
    "error_stats": "/api/errors/stats",
    "monitoring_error_stats": "/api/monitoring/error-stats",
    "recent_errors": "/api/monitoring/recent-errors",
    "errors_by_category": "/api/monitoring/errors/{category}",
    "monitoring_health": "/api/monitoring/health",
    "temp_cleanup_stats": "/api/system/temp-cleanup-stats",
    "session_start": "/api/session/start",
    "session_end": "/api/session/{session_id}/end",
}


class ContractError(ApiError):
    """A 2xx JSON answer that lacks a field the check needs."""

    def __init__(self, endpoint, reason):
        super().__init__(endpoint, reason, None, "contract")


# --- parsers of the recorded answers ----------------------------------------

def _object(body, endpoint):
    if not isinstance(body, dict):
        raise ContractError(endpoint, "expected a JSON object, got %s" % _kind(body))
    return body


def _kind(value):
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number" if isinstance(value, (int, float)) else "a value")


def _data(body, endpoint):
    """The ``data`` object of the backend's {"success": true, "data": ...} envelope."""
    body = _object(body, endpoint)
    if body.get("success") is False:
        raise ContractError(endpoint, "answer says success=false: %s" % error_message(body))
    data = body.get("data")
    if not isinstance(data, dict):
        raise ContractError(endpoint, "field 'data' is missing or not an object")
    return data


def _count(payload, field, endpoint, required=False):
    """A non-negative integer field; None when absent or null (unknown) unless required."""
    value = payload.get(field)
    if value is None:
        if required:
            raise ContractError(endpoint, "field '%s' is missing" % field)
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise ContractError(endpoint, "field '%s' should be a count, got %r" % (field, value))
    return int(value)


def _number(value):
    """A float from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _text(value):
    return value if isinstance(value, str) else None


def _counts_map(value):
    """{name: count} of the stats' byType/byCode/byModule; odd entries dropped."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, count in value.items():
        if isinstance(count, (int, float)) and not isinstance(count, bool) and count >= 0:
            out[str(key)] = int(count)
    return out


def parse_error_entry(entry):
    """One error of ``recent``: the fields every entry should have, None where absent."""
    if not isinstance(entry, dict):
        return None
    return {
        "type": _text(entry.get("type")),
        "level": _text(entry.get("level")),
        "message": _text(entry.get("message")),
        "module": _text(entry.get("module")),
        "timestamp": _text(entry.get("timestamp")),
        "code": _text(entry.get("code")),
        "requestId": _text(entry.get("requestId")),
    }


def parse_health(body, endpoint=ENDPOINTS["health"]):
    """GET /health (no envelope). ``status`` is what the check needs."""
    body = _object(body, endpoint)
    status = body.get("status")
    if not isinstance(status, str):
        raise ContractError(endpoint, "field 'status' is missing or not a string")
    return {
        "status": status,
        "timestamp": _text(body.get("timestamp")),
        "uptime_s": _number(body.get("uptime")),
        "version": _text(body.get("version")),
        # null on a self-hosted backend without a commit variable: unknown.
        "commit": _text(body.get("commit")) or None,
    }


def parse_error_stats(body, endpoint=ENDPOINTS["error_stats"]):
    """GET /api/errors/stats (no envelope) or /api/monitoring/error-stats (enveloped).

    ``total`` (errors since the process started) is what the check needs;
    ``recent`` is returned oldest first as the backend keeps it.
    """
    body = _object(body, endpoint)
    if "total" not in body and isinstance(body.get("data"), dict):
        body = body["data"]
    total = _count(body, "total", endpoint, required=True)
    recent = body.get("recent")
    entries = [e for e in (parse_error_entry(x) for x in recent) if e] if isinstance(recent, list) else []
    return {
        "total": total,
        "by_type": _counts_map(body.get("byType")),
        "by_code": _counts_map(body.get("byCode")),
        "by_module": _counts_map(body.get("byModule")),
        "recent": entries,
    }


def parse_recent_errors(body, endpoint=ENDPOINTS["recent_errors"]):
    data = _data(body, endpoint)
    errors = data.get("errors")
    if not isinstance(errors, list):
        raise ContractError(endpoint, "field 'data.errors' is missing or not an array")
    return {"count": _count(data, "count", endpoint), "limit": _count(data, "limit", endpoint),
            "errors": [e for e in (parse_error_entry(x) for x in errors) if e]}


def parse_category(body, endpoint=ENDPOINTS["errors_by_category"]):
    """GET /api/monitoring/errors/{CATEGORY}: ``total`` is the count that means something."""
    data = _data(body, endpoint)
    return {"category": _text(data.get("category")), "total": _count(data, "total", endpoint, required=True)}


def parse_monitoring_health(body, endpoint=ENDPOINTS["monitoring_health"]):
    """GET /api/monitoring/health: the backend's own verdict on its error rate."""
    data = _data(body, endpoint)
    status = data.get("status")
    if not isinstance(status, str):
        raise ContractError(endpoint, "field 'data.status' is missing or not a string")
    return {
        "status": status,
        # A string in the answer ("0.0225"): errors per second since the start.
        "error_rate_per_s": _number(data.get("errorRate")),
        "uptime_s": _number(data.get("uptime")),
        "total_errors": _count(data, "totalErrors", endpoint),
        "recent_errors": _count(data, "recentErrors", endpoint),
    }


def parse_cleanup_stats(body, endpoint=ENDPOINTS["temp_cleanup_stats"]):
    """GET /api/system/temp-cleanup-stats. ``lastCheckTime`` null: no check yet."""
    data = _data(body, endpoint)
    if "lastCheckTime" not in data and "checksRun" not in data:
        raise ContractError(endpoint, "fields 'data.lastCheckTime' and 'data.checksRun' are both missing")
    last = data.get("lastCheckTime")
    if last is not None and not isinstance(last, str):
        raise ContractError(endpoint, "field 'data.lastCheckTime' should be a time or null, got %r" % (last,))
    freed = _number(data.get("bytesFreed"))
    return {
        "files_deleted": _count(data, "filesDeleted", endpoint),
        "bytes_freed": int(freed) if freed is not None else None,
        "checks_run": _count(data, "checksRun", endpoint),
        "last_check_time": last,
        "errors": _count(data, "errors", endpoint),
    }


def parse_session_start(body, endpoint=ENDPOINTS["session_start"]):
    data = _data(body, endpoint)
    session_id = data.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        raise ContractError(endpoint, "field 'data.sessionId' is missing or empty")
    return {"session_id": session_id}


def session_end_path(session_id):
    return ENDPOINTS["session_end"].format(session_id=quote(session_id, safe=""))
