# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decision tables of the runbook checks: readings in, finished report
steps out.

Every check ends in one report step, ``{step, status, severity, summary,
figures, problems}``, decided here in plain functions (no Ansible, no I/O)
that pytest covers table by table. The severities follow the guide's
escalation table:

=========  ============  ==================================================
severity   respond in    examples (the guide's)
=========  ============  ==================================================
critical   15 minutes    service down, data loss, security breach
high       1 hour        high error rate (> 5 %), slowness
medium     4 hours       non-critical bugs, performance issues
low        24 hours      documentation, minor improvements
=========  ============  ==================================================

A step may also carry ``alert: true``: the guide's "Alert: > 1 % error rate
within 5 min" is medium, but it is notified at once like critical and high.
Each function also returns the state the next run needs (or None); the
caller commits it only after the run's report is written.
"""

from __future__ import annotations

from ansible.module_utils.bemore_api import CATEGORIES
from ansible.module_utils.runbook_common import SEVERITIES, STATUS_RANK, iso, parse_time, percentile

MB = 1048576.0

# The report's step name of each check role.
STEP_OF_ROLE = {
    "health_check": "health",
    "error_monitoring": "error_monitoring",
    "log_management": "log_management",
    "disk_usage": "disk_usage",
    "tmp_cleanup": "tmp_cleanup",
    "performance_check": "performance",
    "api_security": "api_security",
}


def worst_severity(values):
    best = "none"
    for value in values:
        if value in SEVERITIES and SEVERITIES.index(value) > SEVERITIES.index(best):
            best = value
    return best


def worst_status(values):
    best = "ok"
    for value in values:
        if STATUS_RANK.get(value, 3) > STATUS_RANK[best]:
            best = value if value in STATUS_RANK else "failed"
    return best


def step(name, status, severity, summary, figures=None, problems=None, alert=False):
    out = {"step": name, "status": status, "severity": severity, "summary": summary,
           "figures": figures or {}, "problems": list(problems or [])}
    if alert:
        out["alert"] = True
    return out


def not_applicable(name, reason):
    """A step that cannot run on this host (no shell on a PaaS, no log): shown, never a failure."""
    return step(name, "not_applicable", "none", "not applicable: %s" % reason, {"reason": reason})


def unreadable(name, reason, severity="medium"):
    """A step whose input could not be read: the report says why, the run goes on."""
    return step(name, "warning", severity, "could not check: %s" % reason, {}, [reason])


def name_unread(stp, what, reason, severity="low"):
    """Name in ``stp`` a reading the run asked for and could not use: never a silent drop.

    It goes into the figures (``unread``: {what: reason}), the problems and
    the summary; a step that read ok becomes a warning of at least
    ``severity``. Returns ``stp``.
    """
    text = "could not use %s: %s" % (what, reason)
    stp["figures"].setdefault("unread", {})[what] = reason
    if text not in stp["problems"]:
        stp["problems"].append(text)
        stp["summary"] += "; " + text
    if STATUS_RANK.get(stp["status"], 3) < STATUS_RANK["warning"]:
        stp["status"] = "warning"
    stp["severity"] = worst_severity([stp["severity"], severity])
    return stp


def _round(value, digits=1):
    return None if value is None else round(float(value), digits)


def _fmt(value, digits=1):
    if value is None:
        return "unknown"
    text = ("%%.%df" % digits) % value
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- health -----------------------------------------------------------------

def commits_match(expected, actual):
    """A short hash (>= 7 characters) matches the full one, either way round."""
    expected, actual = (expected or "").strip().lower(), (actual or "").strip().lower()
    if not expected or not actual:
        return False
    if len(expected) >= 7 and len(actual) >= 7:
        return expected.startswith(actual) or actual.startswith(expected)
    return expected == actual


def restarted_since(uptime, previous_uptime, now_ts=None, previous_ts=None, tolerance=60.0):
    """Whether a process with ``uptime`` now restarted since it reported ``previous_uptime``."""
    if previous_uptime is None or uptime is None:
        return False
    # Uptime only grows while the process lives: less than before is a restart,
    # however young either process is.
    if uptime < previous_uptime:
        return True
    # A restart that has since run longer than the last reading is found by
    # the time that passed between the two runs (tolerance: clock skew).
    if now_ts is not None and previous_ts is not None and now_ts >= previous_ts:
        return uptime + tolerance < previous_uptime + (now_ts - previous_ts)
    return False


def health_step(reading, cfg, previous=None, now=None, rechecked=None):
    """The health step from /health (and /api/monitoring/health when read).

    ``reading``: {"health": parsed or None, "error": ApiError dict or None,
    "response_ms", "monitoring": parsed or None, "monitoring_error"}.
    ``rechecked``: a second /health reading taken because later calls of the
    run failed to connect (the service went down during the run).
    Returns (step, state).
    """
    previous = previous or {}
    name = "health"
    if rechecked is not None and rechecked.get("error") and reading.get("health"):
        reason = rechecked["error"]["reason"]
        return step(name, "critical", "critical",
                    "service went down during the run: /health answered at first, then %s" % reason,
                    {"reachable": False, "went_down": True},
                    ["service went down during the run: %s" % reason]), None
    if reading.get("error"):
        return _health_unread(name, reading["error"]), None
    health = reading["health"]
    problems = []
    status, severity = "ok", "none"
    if health["status"] != "ok":
        problems.append("/health: status is %r, expected 'ok'" % health["status"])
        status, severity = "critical", "critical"
    commit = health.get("commit")
    expected = cfg.get("expected_commit") or ""
    matches = None
    if expected:
        if commit is None:
            matches = None
            problems.append("the backend reports no commit, so the deployment of %s cannot be verified; "
                            "set GIT_COMMIT (or RENDER_GIT_COMMIT / COMMIT_SHA) in its environment" % expected)
            if status == "ok":
                status, severity = "warning", "medium"
        else:
            matches = commits_match(expected, commit)
            if not matches:
                problems.append("/health: commit is %s, expected %s" % (commit, expected))
                status, severity = "critical", worst_severity([severity, "high"])
    uptime = health.get("uptime_s")
    checked_at = _api_time(health.get("timestamp"), now)
    restarted = restarted_since(uptime, previous.get("uptime_s"), checked_at, previous.get("checked_at"),
                                float(cfg.get("restart_tolerance", 60)))
    if restarted:
        problems.append("restarted since the last run (uptime %s s, was %s s)"
                        % (_fmt(uptime, 0), _fmt(previous.get("uptime_s"), 0)))
        if status == "ok":
            status, severity = "warning", "medium"
    monitoring = reading.get("monitoring")
    verdict = monitoring["status"] if monitoring else None
    if verdict == "unhealthy":
        problems.append("the backend calls itself unhealthy: %s errors/s since its start"
                        % _fmt(monitoring.get("error_rate_per_s"), 4))
        if status == "ok":
            status, severity = "warning", "medium"
    elif verdict == "degraded" and status == "ok":
        severity = worst_severity([severity, "low"])
    summary = "healthy: version %s, commit %s, uptime %s s" % (
        health.get("version") or "unknown", commit or "unknown", _fmt(uptime, 0))
    if status == "critical":
        summary = "unhealthy: " + "; ".join(problems)
    elif problems:
        summary += "; " + "; ".join(problems)
    if verdict:
        summary += "; backend says %s (%s errors/s)" % (verdict, _fmt(monitoring.get("error_rate_per_s"), 4))
    figures = {
        "reachable": True, "version": health.get("version"), "commit": commit, "uptime_s": _round(uptime),
        "response_time_ms": _round(reading.get("response_ms")), "restarted": restarted,
        "commit_matches": matches, "monitoring_status": verdict,
        "monitoring_error_rate_per_s": monitoring.get("error_rate_per_s") if monitoring else None,
    }
    state = {"uptime_s": uptime, "checked_at": checked_at, "commit": commit, "version": health.get("version")}
    return step(name, status, severity, summary, figures, problems), state


def _health_unread(name, error):
    """The health step when /health gave no health JSON, by what it gave instead.

    - ``rate_limited`` (HTTP 429): the service answers; the limiter (600
      requests per 10 minutes per address, /health included) refused this
      address. Health unknown: warning, medium, never a page.
    - ``json`` / ``contract`` (a 2xx that is not the health JSON, such as a
      proxy's or a login page): it answers, but not as the backend;
      critical, since whatever answers there is not the API.
    - ``redirect`` to another origin (not followed: the token stays home):
      the configured origin does not serve /health itself; its health is
      unknown; high (the API's clients are sent elsewhere).
    - anything else (refused, timed out, 5xx, 4xx): service down, critical.
    """
    kind = error.get("kind")
    reason = "%s: %s" % (error.get("endpoint"), error.get("reason"))
    if kind == "rate_limited":
        reset = error.get("reset_s")
        summary = "rate limited (HTTP 429, %s): the service answers, its health is unknown this run" % (
            "resets in %d s" % reset if reset is not None else "no reset time announced")
        return step(name, "warning", "medium", summary,
                    {"reachable": True, "state": "unknown", "rate_limited": True, "reset_s": reset},
                    ["/health not read: %s" % error.get("reason")])
    if kind in ("json", "contract"):
        summary = "/health answers, but not with the health JSON: %s" % error.get("reason")
        return step(name, "critical", "critical", summary, {"reachable": True, "state": "unknown"}, [summary])
    if kind == "redirect":
        summary = "/health %s" % error.get("reason")
        return step(name, "critical", "high", summary,
                    {"reachable": True, "state": "unknown", "redirected": True}, [summary])
    return step(name, "critical", "critical", "service down: %s" % reason,
                {"reachable": False}, ["service down: %s" % reason])


def _api_time(text, now):
    ts = parse_time(text)
    return ts if ts is not None else now


# --- error rate -------------------------------------------------------------

def classify_rate(rate, cfg):
    """(status, severity, alert) for an error rate in percent (None: unknown), on thresholds alone.

    Use judge_rate where the counts are known: it applies the minimum sample.
    """
    if rate is None:
        return "ok", "none", False
    if rate > float(cfg.get("critical_rate", 5.0)):
        return "critical", "high", True
    if rate > float(cfg.get("warning_rate", 1.0)):
        return "warning", "medium", True
    if rate > float(cfg.get("target_rate", 0.1)):
        return "ok", "low", False
    return "ok", "none", False


# The minimum sample of a judged rate (error_monitoring_min_requests and
# error_monitoring_min_errors; the role's defaults declare the same values).
MIN_REQUESTS = 100
MIN_ERRORS = 5


def judge_rate(rate, errors, requests, cfg):
    """(status, severity, alert, note) of an error rate of ``errors`` in ``requests``.

    The guide's thresholds (target 0.1 %, alert above 1 %: medium, above
    5 %: high) are about traffic. A rate from a handful of requests with a
    handful of errors is not evidence: 1 error in 5 requests is 20 %, and
    says nothing. The rule: the rate is judged by the thresholds when the
    window holds at least ``min_errors`` errors (default 5: enough failures
    are evidence whatever the traffic, so 5 of 5 is high) OR at least
    ``min_requests`` requests (default 100: enough traffic for a rate to mean
    something, so 2 of 100 is medium). Below BOTH minimums it is reported
    with its counts and a note naming both minimums, and it raises no
    severity (ok, none, no alert): 1 of 5 and 4 of 99 are not judged; 20 of
    104 is high. ``note`` is None when the rate was judged.
    """
    if rate is None:
        return "ok", "none", False, None
    min_requests = int(cfg.get("min_requests", MIN_REQUESTS))
    min_errors = int(cfg.get("min_errors", MIN_ERRORS))
    errors, requests = int(errors or 0), int(requests or 0)
    if errors < min_errors and requests < min_requests:
        counts = "%d error%s in %d request%s" % (errors, "" if errors == 1 else "s", requests, "" if requests == 1 else "s")
        return "ok", "none", False, "%s: too few to judge, below the minimums of %d errors and %d requests" % (
            counts, min_errors, min_requests)
    status, severity, alert = classify_rate(rate, cfg)
    return status, severity, alert, None


def log_error_rate(window):
    """(rate in percent or None, errors, requests) of a log window's counts.

    Errors are the backend's ERROR/CRITICAL lines; where the log holds none
    at all but 5xx access lines (its stderr is not captured), the 5xx lines.
    """
    requests = int(window.get("requests") or 0)
    errors = int(window.get("errors") or 0)
    if errors == 0:
        errors = int((window.get("status") or {}).get("5xx") or 0)
    if requests <= 0:
        return None, errors, requests
    return round(100.0 * errors / requests, 4), errors, requests


def error_step(stats, stats_error, window, cfg, previous=None, now=None, monitoring=None, restarted=False,
               own_caused=None):
    """The error-monitoring step.

    ``stats``: parsed /api/errors/stats or None (``stats_error`` says why).
    ``window``: the log's counts for the rate ({requests, errors, status,
    label, own_requests, own_errors}) or None when the host has no readable log.
    Each reading is judged on its own (judge_rate: thresholds and the
    minimum sample): the newest window is the finding, the history only gives
    the trend.

    The runbook's own requests never count: the log core leaves its access
    lines (reqId with the runbook's prefix) and its CORS probe's error lines
    out of the window, and the summary says how many. The backend's error
    counters cannot be filtered: ``own_caused`` ({type: count}) is what the
    runbook's own probes added to them since the previous reading, and is
    subtracted from the change of the counters (and said so).
    Returns (step, state).
    """
    previous = previous or {}
    now = now if now is not None else 0.0
    name = "error_monitoring"
    problems, figures = [], {}
    thresholds = {"target": float(cfg.get("target_rate", 0.1)), "alert": float(cfg.get("warning_rate", 1.0)),
                  "high": float(cfg.get("critical_rate", 5.0))}
    figures["thresholds_percent"] = thresholds
    rate = None
    left_out = []
    if window is not None:
        rate, errors, requests = log_error_rate(window)
        own_requests, own_errors = int(window.get("own_requests") or 0), int(window.get("own_errors") or 0)
        figures.update(error_rate_percent=rate, window=window.get("label"), window_errors=errors,
                       window_requests=requests, window_own_requests=own_requests, window_own_errors=own_errors)
        if own_requests:
            left_out.append("%d of the runbook's own requests" % own_requests)
        if own_errors:
            left_out.append("%d error line%s of its CORS probe" % (own_errors, "" if own_errors == 1 else "s"))
    else:
        figures.update(error_rate_percent=None, window=None)
    per_minute = None
    own_caused = dict((k, int(v)) for k, v in (own_caused or {}).items() if int(v) > 0)
    if stats is not None:
        total = stats["total"]
        prev_total, prev_ts = previous.get("total"), previous.get("ts")
        if prev_total is not None and prev_ts is not None and now > prev_ts and not restarted and total >= prev_total:
            caused = min(sum(own_caused.values()), total - prev_total)
            figures["own_errors_subtracted"] = caused
            if caused:
                left_out.append("%d error%s its own CORS probe added to the backend's counters" % (
                    caused, "" if caused == 1 else "s"))
            per_minute = round((total - prev_total - caused) * 60.0 / (now - prev_ts), 3)
        by_type = stats["by_type"]
        newest = list(reversed(stats["recent"]))[:int(cfg.get("recent_limit", 20))]
        figures.update(
            total_errors=total, errors_per_minute=per_minute, by_type=by_type,
            by_category=dict((cat, by_type.get(cat, 0)) for cat in CATEGORIES),
            by_code=stats["by_code"], by_module=stats["by_module"],
            newest_errors=newest,
            latest_error=newest[0]["message"] if newest else None)
        prev_types = previous.get("by_type")
        if isinstance(prev_types, dict) and not restarted:
            figures["new_by_type"] = dict((k, v - prev_types.get(k, 0) - own_caused.get(k, 0)) for k, v in by_type.items()
                                          if v - prev_types.get(k, 0) - own_caused.get(k, 0) > 0)
    else:
        problems.append("cannot read the error statistics: %s" % stats_error)
    if monitoring:
        figures.update(monitoring_status=monitoring["status"],
                       monitoring_error_rate_per_s=monitoring.get("error_rate_per_s"))
    status, severity, alert, sample_note = judge_rate(rate, figures.get("window_errors"), figures.get("window_requests"), cfg)
    figures["rate_judged"] = rate is not None and sample_note is None
    # The rate only when it was judged: what a release records as its pre-deploy baseline (a 1-in-5 20 % is no
    # baseline, and would mask a real regression); None otherwise, with the counts and the note beside it.
    figures["judged_rate_percent"] = rate if figures["rate_judged"] else None
    # The severity of the judged rate alone (not of unreadable readings): what an incident is classified by.
    figures["rate_severity"] = severity
    if sample_note:
        figures["note"] = sample_note
    if rate is not None and status != "ok":
        limit = thresholds["high"] if status == "critical" else thresholds["alert"]
        problems.append("error rate %s %% is above %s %% (%s of %s requests, %s)"
                        % (_fmt(rate, 2), _fmt(limit, 2), figures["window_errors"], figures["window_requests"],
                           window.get("label")))
    elif rate is None and window is not None:
        figures["note"] = "no requests in the window; the rate is unknown"
    elif window is None:
        figures["note"] = ("the per-request error rate needs the backend's log (bemore_log_source); "
                           "reporting errors per minute and the backend's own verdict instead")
        if monitoring and monitoring["status"] == "unhealthy":
            status, severity = "warning", "medium"
            problems.append("the backend calls itself unhealthy (%s errors/s since its start)"
                            % _fmt(monitoring.get("error_rate_per_s"), 4))
    if stats is None and status == "ok":
        status, severity = "warning", worst_severity([severity, "medium"])
    samples = list(previous.get("samples") or [])
    trend = None
    if rate is not None:
        earlier = [s["rate"] for s in samples if isinstance(s, dict) and s.get("rate") is not None]
        if earlier:
            trend = round(rate - earlier[-1], 4)
        samples.append({"ts": round(now, 1), "rate": rate, "errors": figures.get("window_errors"),
                        "requests": figures.get("window_requests")})
    figures["rate_change_since_last_run"] = trend
    keep_s = float(cfg.get("history_days", 30)) * 86400.0
    samples = [s for s in samples if isinstance(s, dict) and now - float(s.get("ts") or 0) <= keep_s][-500:]
    if rate is not None:
        summary = "error rate %s %% (%s of %s requests, %s)" % (
            _fmt(rate, 3), figures["window_errors"], figures["window_requests"], window.get("label"))
        if sample_note:
            summary += "; not judged: " + sample_note
    elif per_minute is not None:
        summary = "%s errors/min since the last run; per-request rate needs the log" % _fmt(per_minute, 2)
    elif window is not None:
        summary = "no requests in the window (%s)" % window.get("label")
    else:
        summary = "error rate unknown (no log; first reading of the counters)"
    if stats is not None:
        top = sorted(((v, k) for k, v in stats["by_type"].items() if v), reverse=True)[:3]
        summary += "; %d errors since start%s" % (stats["total"], (", top: " + ", ".join(
            "%s %d" % (k, v) for v, k in top)) if top else "")
    if left_out:
        summary += "; left out: " + ", ".join(left_out)
    figures["left_out"] = left_out
    if problems and status != "ok":
        summary += "; " + problems[0]
    state = {"samples": samples}
    if stats is not None:
        state.update(total=stats["total"], by_type=stats["by_type"], ts=round(now, 1))
    return step(name, status, severity, summary, figures, problems, alert), state


# --- log review ---------------------------------------------------------------

def log_step(scan, cfg, previous=None, now=None, source_label=None):
    """The log review since the last run. Returns (step, state).

    The first review of a host (no previous state) judges the error counts
    it reads like any other; only its signatures become the baseline
    instead of each being reported as new.
    """
    previous = previous or {}
    name = "log_management"
    first = not previous.get("position")
    known = dict(previous.get("signatures") or {})
    problems = list(scan.get("problems") or [])
    errors = int(scan.get("errors") or 0)
    warns = int((scan.get("levels") or {}).get("WARN") or 0)
    sigs = scan.get("signatures") or []
    new = [] if first else [s["signature"] for s in sigs if s["signature"] not in known]
    status, severity = "ok", "none"
    if errors >= int(cfg.get("errors_critical", 100)):
        status, severity = "critical", "high"
        problems.append("%d error lines since the last review (critical at %s)" % (errors, cfg.get("errors_critical")))
    elif errors >= int(cfg.get("errors_warning", 10)):
        status, severity = "warning", "medium"
        problems.append("%d error lines since the last review (warning at %s)" % (errors, cfg.get("errors_warning")))
    for sig in new[:20]:
        problems.append("new error: %s" % sig)
    if new and status == "ok":
        status, severity = "warning", "medium"
    backlog = scan.get("backlog") or {}
    behind = int(backlog.get("bytes") or 0)
    growing = behind > 0 and behind > int(previous.get("backlog_bytes") or 0) and previous.get("backlog_bytes") is not None
    if behind:
        problems.append("the review stopped at its time budget: %.1f MB%s not read yet%s" % (
            behind / MB, (" (%s behind)" % _duration(backlog.get("seconds_behind")))
            if backlog.get("seconds_behind") else "", ", and the backlog grew since the last run" if growing else ""))
        if growing and status == "ok":
            status, severity = "warning", "medium"
    if scan.get("problems") and status == "ok":
        status, severity = "warning", "medium"
    top = scan.get("top_signatures") or sigs[:10]
    summary = "%s%d new line(s): %d error(s), %d warning(s), %d new signature(s)" % (
        "first review: " if first else "", int(scan.get("lines") or 0), errors, warns, len(new))
    if top:
        summary += ", top: %s x%d" % (top[0]["signature"], top[0]["count"])
    if scan.get("rotations"):
        summary += "; rotated: %s" % ", ".join(r.get("how", "") for r in scan["rotations"])
    if source_label:
        summary += " (%s)" % source_label
    own = (int(scan.get("own_requests") or 0), int(scan.get("own_errors") or 0))
    if any(own):
        # The runbook's own access lines and its CORS probe's refusals are not the backend's errors to review.
        summary += "; left out: %d of the runbook's own requests, %d error line(s) of its CORS probe" % own
    figures = {
        "source": source_label, "lines": scan.get("lines"), "bytes": scan.get("bytes"), "errors": errors,
        "warnings": warns, "levels": scan.get("levels"), "requests": scan.get("requests"),
        "status_counts": scan.get("status"), "first_review": first, "new_signatures": new,
        "top_signatures": ["%s x%d" % (s["signature"], s["count"]) for s in top],
        "rotations": scan.get("rotations") or [], "backlog_bytes": behind,
        "backlog_seconds": backlog.get("seconds_behind"), "backlog_growing": growing,
        "own_requests": own[0], "own_errors": own[1],
    }
    stamp = _iso(now)
    for sig in sigs:
        known.setdefault(sig["signature"], stamp)
    keep = int(cfg.get("known_max", 500))
    if len(known) > keep:
        known = dict(sorted(known.items(), key=lambda kv: kv[1], reverse=True)[:keep])
    state = {"position": scan.get("position") or {}, "signatures": known, "backlog_bytes": behind,
             "reviewed": stamp}
    return step(name, status, severity, summary, figures, problems), state


def _duration(seconds):
    if seconds is None:
        return "unknown"
    seconds = float(seconds)
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds / 60)
    return "%.1f h" % (seconds / 3600)


def _iso(ts):
    return iso(ts) if ts is not None else None


# --- disk ---------------------------------------------------------------------

def growth_per_day(samples, min_span_s):
    """Least-squares slope of used_bytes over time, in bytes per day; None with too little data."""
    points = []
    for s in samples:
        try:
            points.append((float(s["ts"]), float(s["used_bytes"])))
        except (KeyError, TypeError, ValueError):
            continue
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    if max(xs) - min(xs) < min_span_s:
        return None
    n = float(len(points))
    mx = sum(xs) / n
    my = sum(p[1] for p in points) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / var * 86400.0


def days_until_full(avail_bytes, growth):
    if growth is None or growth <= 0:
        return None
    return round(avail_bytes / growth, 1)


def disk_step(reading, cfg, previous=None, now=None):
    """Filesystem and temp folder against the thresholds. Returns (step, state)."""
    previous = previous or {}
    name = "disk_usage"
    fs, folder = reading["filesystem"], reading.get("folder")
    sample = {"ts": round(now, 1), "used_bytes": fs["used_bytes"],
              "folder_bytes": folder["bytes"] if folder else None}
    history = [s for s in previous.get("samples") or [] if isinstance(s, dict)]
    growth = growth_per_day(history + [sample], float(cfg.get("min_span_h", 12)) * 3600.0)
    days = days_until_full(fs["avail_bytes"], growth)
    problems, status, severity = [], "ok", "none"
    used = fs["used_percent"]
    if used >= float(cfg["critical_percent"]):
        problems.append("%s is %s %% full (critical at %s %%)" % (fs["mount"], used, cfg["critical_percent"]))
        status, severity = "critical", "high"
    elif used >= float(cfg["warning_percent"]):
        problems.append("%s is %s %% full (warning at %s %%)" % (fs["mount"], used, cfg["warning_percent"]))
        status, severity = "warning", "medium"
    if days is not None and days <= float(cfg["days_critical"]):
        problems.append("%s full in %s days at the current growth" % (fs["mount"], days))
        status, severity = "critical", "high"
    elif days is not None and days <= float(cfg["days_warning"]):
        problems.append("%s full in %s days at the current growth" % (fs["mount"], days))
        if status == "ok":
            status, severity = "warning", "medium"
    folder_mb = round(folder["bytes"] / MB, 2) if folder else None
    limit = float(cfg["folder_limit_mb"])
    if folder_mb is not None and folder_mb > limit:
        problems.append("temp folder %s MB is above the %s MB cap; the cleanup is not keeping up" % (folder_mb, _fmt(limit)))
        status, severity = "critical", "high"
    elif folder_mb is not None and folder_mb > limit * float(cfg.get("folder_warning_ratio", 0.8)):
        problems.append("temp folder %s MB is above %d %% of the %s MB cap" % (
            folder_mb, int(float(cfg.get("folder_warning_ratio", 0.8)) * 100), _fmt(limit)))
        if status == "ok":
            status, severity = "warning", "medium"
    summary = "%s %s %% used, %d MB free" % (fs["mount"], used, round(fs["avail_bytes"] / MB))
    if days is not None:
        summary += ", full in %s days" % days
    if folder is not None:
        summary += ", temp folder %s MB of %s MB cap (%d files)" % (folder_mb, _fmt(limit), folder["files"])
    figures = {"mount": fs["mount"], "used_percent": used, "avail_mb": round(fs["avail_bytes"] / MB, 1),
               "used_mb": round(fs["used_bytes"] / MB, 1),
               "growth_mb_per_day": round(growth / MB, 2) if growth is not None else None,
               "days_until_full": days, "folder_mb": folder_mb, "folder_limit_mb": limit,
               "warning_percent": float(cfg["warning_percent"]), "critical_percent": float(cfg["critical_percent"]),
               "folder_files": folder["files"] if folder else None,
               "largest_files": folder["largest"][:5] if folder else []}
    keep_s = float(cfg.get("history_days", 30)) * 86400.0
    samples = [s for s in history + [sample] if now - float(s.get("ts") or 0) <= keep_s][-1000:]
    return step(name, status, severity, summary, figures, problems), {"samples": samples}


# --- temp cleanup ------------------------------------------------------------

def tmp_cleanup_step(cfg, service=None, service_error=None, folder=None, cleanup=None, uptime_s=None,
                     now=None, check_mode=False):
    """The app's cleanup service, the temp folder and (weekly) the cleanup run.

    ``lastCheckTime: null`` means the service has not checked yet; that is a
    finding only once the app has been up longer than twice the interval.
    """
    name = "tmp_cleanup"
    problems = []
    interval_min = float(cfg.get("interval_min", 60))
    figures = {"cap_mb": float(cfg.get("max_size_mb", 500)), "interval_min": interval_min,
               "max_age_days": cfg.get("max_age_days")}
    if cfg.get("check_service", True):
        if service is None:
            problems.append("cannot read the cleanup statistics: %s" % (service_error or "no answer"))
        else:
            figures["service"] = service
            last = service.get("last_check_time")
            last_ts = parse_time(last) if last else None
            if last is None:
                figures["service_last_check_age_s"] = None
                if uptime_s is not None and uptime_s > 2 * interval_min * 60:
                    problems.append("the app's cleanup service has not run once in %s min of uptime "
                                    "(interval %s min)" % (_fmt(uptime_s / 60, 0), _fmt(interval_min, 0)))
            elif last_ts is not None and now is not None:
                age = max(0.0, now - last_ts)
                figures["service_last_check_age_s"] = round(age, 1)
                if age > 2 * interval_min * 60:
                    problems.append("the app's cleanup service last ran %s min ago, more than twice its %s min "
                                    "interval" % (_fmt(age / 60, 1), _fmt(interval_min, 0)))
            if service.get("errors"):
                problems.append("the app's cleanup service reports %d errors" % service["errors"])
    if folder is not None:
        figures.update(folder_mb=round(folder["bytes"] / MB, 2), folder_files=folder["files"])
        # A cap of 0 disables the cap (the spec: TEMP_FILE_MAX_SIZE_MB=0): there is nothing to be over.
        over = folder["bytes"] - figures["cap_mb"] * MB if figures["cap_mb"] and figures["cap_mb"] > 0 else 0
        figures["over_cap_bytes"] = int(max(over, 0))
        if over > 0 and cleanup is None:
            # The app's service keeps the folder under the cap at each check;
            # still over it now is a check that did not, or one that is overdue.
            problems.append("temp folder %s MB (%d files) is over the %s MB cap by %s; %s" % (
                _fmt(figures["folder_mb"], 2), folder["files"], _fmt(figures["cap_mb"]),
                ("%s MB" % _fmt(over / MB, 2)) if over >= 0.01 * MB else "%d bytes" % over,
                _last_check_text(service, figures.get("service_last_check_age_s"), cfg.get("check_service", True))))
    mode = "status"
    if cleanup is not None:
        mode = cleanup.get("mode", "policy")
        figures.update(files_deleted=cleanup["files_deleted"], bytes_freed=cleanup["bytes_freed"],
                       files_remaining=cleanup["files_remaining"],
                       folder_mb=round(cleanup["bytes_remaining"] / MB, 2),
                       folder_files=cleanup["files_remaining"],
                       deleted_by=cleanup.get("deleted_by"), skipped_by=cleanup.get("skipped_by"))
        if cleanup.get("over_cap"):
            problems.append("still over the %s MB cap: only protected (open or excluded) files remain"
                            % _fmt(figures["cap_mb"]))
        for err in cleanup.get("errors") or []:
            problems.append("cleanup: %s" % err)
        if cleanup.get("env_changed"):
            figures["env_changed"] = cleanup["env_changed"]
    figures["mode"] = mode
    if cleanup is not None:
        summary = "%s %d files (%s MB; age %s, cap %s), %d files / %s MB remain" % (
            "would delete" if check_mode else "deleted", cleanup["files_deleted"],
            _fmt(cleanup["bytes_freed"] / MB, 2), (cleanup.get("deleted_by") or {}).get("age", 0),
            (cleanup.get("deleted_by") or {}).get("size_cap", 0), cleanup["files_remaining"],
            _fmt(cleanup["bytes_remaining"] / MB, 2))
    elif folder is not None:
        summary = "temp folder %s MB (%d files) of the %s MB cap" % (
            figures["folder_mb"], folder["files"], _fmt(figures["cap_mb"]))
    else:
        summary = "cleanup service status"
    if service is not None:
        summary += "; service: %s checks, %s files deleted" % (service.get("checks_run"), service.get("files_deleted"))
    if problems:
        summary += ": " + "; ".join(problems)
    # A cleanup service that stopped is a disk-full incident in the making:
    # worth a look within 4 hours.
    status, severity = ("warning", "medium") if problems else ("ok", "none")
    return step(name, status, severity, summary, figures, problems)


def _last_check_text(service, age_s, checked):
    """When the app's cleanup service last checked the folder, as a sentence part."""
    if not checked:
        return "the app's cleanup service was not checked in this run"
    if service is None:
        return "when the app's cleanup service last checked is unknown (its statistics could not be read)"
    last = service.get("last_check_time")
    if last is None:
        return "the app's cleanup service has not checked it yet"
    if age_s is None:
        return "the app's cleanup service last checked at %s" % last
    return "the app's cleanup service last checked at %s, %s min ago" % (last, _fmt(age_s / 60.0, 0))


# --- performance --------------------------------------------------------------

def performance_step(latency, process, cfg):
    """API latency against the 200 ms target; memory and CPU of the app process.

    ``latency``: {"times_ms": [...], "failed": n, "endpoints": {...}} or None;
    ``process``: {"found", "rss_mb", "cpu_percent", "reason"} or None (not
    measurable here).
    """
    name = "performance"
    target = float(cfg.get("api_target_ms", 200))
    problems = []
    times = (latency or {}).get("times_ms") or []
    median, p95 = percentile(times, 50), percentile(times, 95)
    failed = int((latency or {}).get("failed") or 0)
    slow = p95 is not None and p95 > target * float(cfg.get("slowness_factor", 2.5))
    if p95 is not None and p95 > target:
        problems.append("API p95 %s ms is above the %s ms target" % (_fmt(p95), _fmt(target)))
    if failed:
        problems.append("%d of the timed requests failed" % failed)
    limited = (latency or {}).get("rate_limited")
    unread = (latency or {}).get("not_read")
    if limited:
        # The service answered; this address had spent its quota.
        problems.append("latency samples not read after %d: %s" % (len(times), limited.get("reason")))
    elif unread:
        problems.append("latency samples %s" % unread.get("reason"))
    elif latency is not None and not times:
        problems.append("no timed request succeeded")
    rss = cpu = None
    if process is not None:
        if process.get("found"):
            rss, cpu = process.get("rss_mb"), process.get("cpu_percent")
            if rss is not None and rss > float(cfg.get("memory_target_mb", 1024)):
                problems.append("memory %s MB is above the %s MB target" % (rss, _fmt(float(cfg["memory_target_mb"]))))
            if cpu is not None and cpu > float(cfg.get("cpu_target_percent", 30)):
                problems.append("CPU %s %% is above the %s %% target" % (cpu, _fmt(float(cfg["cpu_target_percent"]))))
        else:
            problems.append("app process not measured: %s" % process.get("reason"))
    status = "critical" if slow else ("warning" if problems else "ok")
    severity = "high" if slow else ("medium" if problems else "none")
    summary = "API median %s ms, p95 %s ms (target %s)" % (_fmt(_round(median)), _fmt(_round(p95)), _fmt(target))
    if rss is not None:
        summary += ", memory %s MB (target %s), CPU %s %% (target %s)" % (
            rss, _fmt(float(cfg.get("memory_target_mb", 1024))), cpu, _fmt(float(cfg.get("cpu_target_percent", 30))))
    if problems:
        summary += "; " + "; ".join(problems)
    figures = {"median_ms": _round(median), "p95_ms": _round(p95), "target_ms": target,
               "samples": len(times) + failed, "failed": failed,
               "endpoints": (latency or {}).get("endpoints") or {}, "rss_mb": rss, "cpu_percent": cpu}
    return step(name, status, severity, summary, figures, problems)


# --- API security -------------------------------------------------------------

def api_security_step(cfg, tls=None, cors=None, rate=None):
    """TLS certificate, CORS from the frontend, the rate limit the API announces."""
    name = "api_security"
    problems, figures = [], {}
    status, severity = "ok", "none"

    def worse(new_status, new_severity):
        nonlocal status, severity
        if STATUS_RANK[new_status] > STATUS_RANK[status]:
            status = new_status
        severity = worst_severity([severity, new_severity])

    if tls is not None:
        figures["tls"] = tls
        if tls.get("error"):
            problems.append("TLS: %s" % tls["error"])
            worse("critical", "high")
        elif tls.get("days_left") is not None:
            if tls["days_left"] <= float(cfg.get("tls_critical_days", 7)):
                problems.append("TLS: the certificate expires in %s days" % tls["days_left"])
                worse("critical", "high")
            elif tls["days_left"] <= float(cfg.get("tls_warning_days", 30)):
                problems.append("TLS: the certificate expires in %s days" % tls["days_left"])
                worse("warning", "medium")
    if cors is not None:
        figures["cors"] = cors
        for problem in cors.get("problems") or []:
            problems.append("CORS: %s" % problem)
            worse("warning", "high" if cors.get("foreign_allowed") or cors.get("wildcard") else "medium")
    if rate is not None:
        figures["rate_limit"] = rate
        if rate.get("error"):
            problems.append("rate limit: %s" % rate["error"])
            worse("warning", "medium")
        elif rate.get("limit") is None:
            probe = rate.get("probe")
            if probe and not probe.get("hit") and not probe.get("error"):
                # Asked to probe, and no 429 after as many requests as allowed: inactive.
                problems.append("rate limit: the API announces no limit, and no 429 after %d requests; rate limiting "
                                "looks inactive" % probe.get("sent", 0))
                worse("critical", "high")
            else:
                problems.append("rate limit: the API announces no limit (no RateLimit-* headers)")
                worse("warning", "medium")
    parts = []
    if tls is not None:
        parts.append("TLS %s" % ("error" if tls.get("error") else "%s days left" % tls.get("days_left")))
    if cors is not None:
        parts.append("CORS %s" % ("ok" if not cors.get("problems") else "problems"))
    if rate is not None and rate.get("limit") is not None:
        parts.append("rate limit %s per %s s (%s left)" % (
            rate["limit"], rate.get("window_s") or "?", rate.get("remaining")))
    summary = ", ".join(parts) or "nothing checked"
    if problems:
        summary += "; " + "; ".join(problems)
    return step(name, status, severity, summary, figures, problems)


# --- smoke test -------------------------------------------------------------

def smoke_step(session, window_rate, baseline, cfg):
    """The post-deployment smoke test: a session started and ended, the error rate against the baseline.

    The rate is compared only when the error-monitoring step judged it
    (``cfg["rate_judged"]``: its minimum sample, see judge_rate); a 0 %
    baseline is a baseline like any other. The release records a baseline
    only from a judged pre-deploy rate; without one (``baseline`` None,
    ``cfg["baseline_note"]`` saying why) the summary says "no judged
    baseline": the regression check against it cannot run, and the
    post-deploy rate is judged on its own thresholds (error_monitoring).
    """
    name = "smoke_test"
    problems = []
    judged = cfg.get("rate_judged", True) is not False
    limited = session.get("rate_limited")
    if limited:
        reset = limited.get("reset_s")
        problems.append("session start not tested: rate limited (HTTP 429, %s)" % (
            "resets in %d s" % reset if reset is not None else "no reset time announced"))
    elif session.get("error"):
        problems.append("POST /api/session/start failed: %s" % session["error"])
    elif session.get("end_error"):
        problems.append("the test session %s could not be ended: %s" % (session.get("session_id"), session["end_error"]))
    margin = float(cfg.get("error_margin", 0.5))
    if judged and baseline is not None and window_rate is not None and window_rate > float(baseline) + margin:
        problems.append("error rate %s %% is above the pre-deploy baseline of %s %%" % (_fmt(window_rate, 3), _fmt(float(baseline), 3)))
    summary = "session start %s, end %s; error rate %s %% against %s" % (
        "skipped (check mode)" if session.get("skipped") else (
            problems[0].replace("session start ", "", 1) if limited else ("FAILED" if session.get("error") else "ok")),
        "skipped" if session.get("skipped") or session.get("error") or limited else ("FAILED" if session.get("end_error") else "ok"),
        _fmt(window_rate, 3), "a baseline of %s %%" % _fmt(baseline, 3) if baseline is not None else "no judged baseline")
    if baseline is None:
        summary += " (%s): the regression check against it cannot run; the post-deploy rate is judged on its own thresholds" % (
            cfg.get("baseline_note") or "none was recorded before the deploy")
    if not judged and window_rate is not None:
        summary += "; not compared: %s" % (cfg.get("rate_note") or "too few requests or errors to judge")
    if problems[1 if limited else 0:]:
        status, severity = "critical", "high"
    elif limited:
        status, severity = "warning", "medium"
    else:
        status, severity = "ok", "none"
    return step(name, status, severity, summary,
                {"session_id": session.get("session_id"), "ended": session.get("ended"), "rate_limited": bool(limited),
                 "error_rate_percent": window_rate, "baseline_percent": baseline}, problems)


# --- incident ---------------------------------------------------------------

def classify_incident(checked):
    """The findings of an incident from the identification steps, by the guide's escalation table.

    ``checked``: {step name: report step} of the run (health, error_monitoring,
    disk_usage, performance). Every finding comes from a step's own decided
    status or severity, never from a raw figure, so the rules of those steps
    (the error rate's minimum sample, the runbook's own requests left out)
    apply here too:

    ================  ==========================================  ========
    finding           when                                        severity
    ================  ==========================================  ========
    service_down      health's decided severity is critical       critical
    health_unknown    health answers but was not read (a          high / medium
                      redirect: high; a 429: medium); no restart
    high_error_rate   the judged error rate is high (> 5 %)       high
    high_error_rate   the judged rate is medium (> 1 %), or the   medium
                      backend calls itself unhealthy
    disk              disk usage critical / warning               high / medium
    memory            the app's memory above its target           high
    ================  ==========================================  ========

    Returns (findings, severity): a list of {type, severity, evidence,
    suggested} and the worst severity ("none" without findings).
    """
    checked = checked or {}
    found = []
    health = checked.get("health") or {}
    health_severity = health.get("severity")
    if health_severity == "critical":
        found.append({"type": "service_down", "severity": "critical", "evidence": health.get("summary"),
                      "suggested": "restart"})
    elif (health.get("figures") or {}).get("state") == "unknown" and health_severity in ("high", "medium"):
        # It answers, but its health could not be read (a redirect to another origin: high; a 429: medium):
        # not down, and no restart.
        if (health.get("figures") or {}).get("rate_limited"):
            suggested = "wait for the rate limit to reset and re-check; the service answers, do not restart it"
        else:
            suggested = "check what redirects the base URL to another origin (proxy, DNS); do not restart the service"
        found.append({"type": "health_unknown", "severity": health_severity, "evidence": health.get("summary"),
                      "suggested": suggested})
    errors = checked.get("error_monitoring") or {}
    figures = errors.get("figures") or {}
    rate_severity = figures.get("rate_severity", "none")
    if rate_severity == "high":
        found.append({"type": "high_error_rate", "severity": "high", "evidence": errors.get("summary"),
                      "suggested": "review recent errors; restart or disable the failing feature"})
    elif rate_severity == "medium" or figures.get("monitoring_status") == "unhealthy":
        found.append({"type": "high_error_rate", "severity": "medium", "evidence": errors.get("summary"),
                      "suggested": "review recent errors and errors by type"})
    disk = checked.get("disk_usage") or {}
    if disk.get("status") in ("critical", "warning"):
        found.append({"type": "disk", "severity": "high" if disk["status"] == "critical" else "medium",
                      "evidence": disk.get("summary"), "suggested": "emergency_cleanup"})
    perf = checked.get("performance") or {}
    memory = [p for p in perf.get("problems") or [] if str(p).startswith("memory")]
    if memory:
        found.append({"type": "memory", "severity": "high", "evidence": memory[0], "suggested": "restart"})
    return found, worst_severity([f["severity"] for f in found])


def incident_outcome(findings, severity, actions, check_mode=False):
    """(status, resolved) of an incident from its findings and the mitigations done.

    ``resolved``: at least one mitigation was done (not in check mode) and
    the re-check after the last one found the service healthy and its
    errors resolved (recheck_errors). ``status``: ok without findings; a
    warning when resolved (the follow-up, root cause and 24-hour watch, is
    still open) or when the incident's severity is low or medium; critical
    otherwise.
    """
    actions = [a for a in (actions or []) if isinstance(a, dict)]
    last = actions[-1] if actions else {}
    resolved = bool(actions) and not check_mode and last.get("healthy_after") is True and last.get("errors_resolved") is True
    if not findings:
        status = "ok"
    elif resolved or severity in ("low", "medium"):
        status = "warning"
    else:
        status = "critical"
    return status, resolved


def recheck_errors(window, verdict, cfg):
    """The error rate after a mitigation, judged like the step's (judge_rate), and whether it is resolved.

    ``window``: log_scan's counts since the mitigation ({requests, errors,
    status, own_requests, own_errors}) or None without a log; ``verdict``:
    the backend's own status after it, or None. A rate is judged when the
    window holds at least min_errors errors OR at least min_requests
    requests (judge_rate), so 2 errors in 1,000 requests is judged (0.2 %).
    With a judged rate the errors are resolved when it is at most the alert
    threshold (1 %). Only a window with too few requests AND too few errors
    is no evidence either way: it raises nothing, but "resolved" needs
    evidence too, so the errors count as resolved only when the window holds
    none at all and the backend's verdict is read and not "unhealthy"
    (without a log, the verdict alone). Returns
    {error_rate_after, errors, requests, judged, note, errors_resolved}.
    """
    if window is None:
        rate, errors, requests = None, None, None
        judged, note = False, "no log to count the errors per request"
    else:
        rate, errors, requests = log_error_rate(window)
        _status, _severity, _alert, note = judge_rate(rate, errors, requests, cfg)
        judged = rate is not None and note is None
    if judged:
        resolved = rate <= float(cfg.get("warning_rate", 1.0))
    else:
        resolved = not errors and verdict not in (None, "unhealthy")
    return {"error_rate_after": rate, "errors": errors, "requests": requests, "judged": judged, "note": note,
            "errors_resolved": resolved}
