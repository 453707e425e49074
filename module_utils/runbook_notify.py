# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The webhook notification of a report: whether a report pages, the
Slack-compatible message, and its delivery within a deadline.

One notification for every report path, so each pages alike, and the
delivery never raises and never names the URL (it is the credential).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error

from ansible.module_utils.runbook_files import safe_component
from ansible.module_utils.urls import open_url


RESPONSE = {"critical": "respond within 15 minutes", "high": "respond within 1 hour",
            "medium": "respond within 4 hours", "low": "respond within 24 hours"}


def should_notify(report, severities):
    return report["worst_severity"] in severities or bool(report.get("alerts")) or bool(report.get("interrupted"))


def webhook_payload(report, lines, page_url=None):
    """Slack-compatible JSON: text plus one attachment."""
    severity = report["worst_severity"]
    text = "[%s] BeMore %s run on %s ended %s%s" % (
        severity.upper(), report["schedule"], report["environment"], report["worst_status"],
        "; " + RESPONSE[severity] if severity in RESPONSE else "")
    if report.get("interrupted"):
        text += " (interrupted: %s)" % (report.get("interruption") or {}).get("reason", "")
    if report.get("alerts"):
        text += "; alert: %s" % ", ".join(report["alerts"][:10])
    fields = [{"title": "Severity", "value": severity, "short": True},
              {"title": "Run", "value": report["run_id"], "short": True}]
    if page_url:
        fields.append({"title": "Report", "value": page_url, "short": False})
    return {"text": text, "attachments": [{
        "color": {"critical": "#b00020", "high": "#e65100", "medium": "#f9a825"}.get(severity, "#607d8b"),
        "title": "%s / %s: %s" % (report["schedule"], report["environment"], report["worst_status"]),
        "text": "\n".join(lines[:40]), "fields": fields}]}


def _post_once(url, data, timeout):
    """(HTTP status or None, outcome) of one POST, answered within ``timeout`` seconds in all.

    open_url's timeout is per socket operation, so a receiver that answers a
    byte at a time would hold the run for as long as it likes. The POST runs
    in a daemon thread, left behind (and ended with the process) when the
    deadline passes.
    """
    box = {}

    def send():
        try:
            resp = open_url(url, data=data, method="POST", headers={"Content-Type": "application/json"},
                            timeout=timeout, validate_certs=True, follow_redirects="none")
            box["status"] = resp.getcode()
            resp.close()
        except urllib.error.HTTPError as exc:
            box["status"] = exc.code
        except (urllib.error.URLError, OSError, ValueError) as exc:
            box["error"] = "no answer (%s)" % type(getattr(exc, "reason", exc)).__name__

    worker = threading.Thread(target=send, name="webhook", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None, "no answer within the %.1fs deadline" % timeout
    if "status" in box:
        return box["status"], "HTTP %d" % box["status"]
    return None, box.get("error", "no answer")


def post_webhook(url, payload, timeout=10.0, retries=2, delay=2.0):
    """(ok, outcome). Never raises and never names the URL (it is the credential).

    Takes at most ``timeout * (retries + 1) + delay * retries`` seconds.
    """
    data = json.dumps(payload).encode("utf-8")
    outcome = "not sent"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(delay)
        status, outcome = _post_once(url, data, timeout)
        if status is not None and 200 <= status < 300:
            return True, "sent (HTTP %d)" % status
        if status is not None and 400 <= status < 500 and status != 429:
            break
    return False, "failed after %d attempt(s): %s" % (attempt + 1, outcome)


def notify(report, lines, settings, url, page=None, write_error=None):
    """Notify the webhook of a report when it needs it; return what happened (never the URL).

    The one notification of every report path - the report step, the
    callback's stopped and interrupted reports, the recovery of a killed
    run - so each pages alike. ``settings``: notify_severities,
    webhook_timeout, webhook_retries (the report role's options).
    """
    settings = settings or {}
    if not url:
        return "not configured"
    severities = settings.get("notify_severities")
    # An empty list is a choice (alerts and interruptions only), not a missing setting.
    if not should_notify(report, ["critical", "high"] if severities is None else severities) and not write_error:
        return "not needed"
    if report.get("check_mode"):
        return "not sent (check mode)"
    payload = webhook_payload(report, list(lines) + ([write_error] if write_error else []), page)
    timeout = settings.get("webhook_timeout")
    retries = settings.get("webhook_retries")
    return post_webhook(url, payload, 10.0 if timeout is None else float(timeout),
                        2 if retries is None else int(retries))[1]


def page_url(base, report):
    if not base:
        return None
    return "%s/%s/%s.html" % (base.rstrip("/"), safe_component(report["schedule"]), report["run_id"])
