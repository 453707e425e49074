# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The watch's decisions: one page per incident, as Alertmanager groups them.

Plain functions with ``now`` passed in. The health and error-rate verdicts
are bemore_steps' own (health_step, error_step, judge_rate): this module
only turns a run's steps into a signal (failing, clean or unknown) and the
signal into incident events and messages.

State ownership (issue 26's rule): the watch owns the state topic ``watch``
of each host and nothing else; the daily, weekly and other schedules own
``health``, ``error_monitoring``, ``log_management``, ``disk_usage`` and
``own_errors``. A watch never writes theirs, so its frequent runs cannot
take a log position or an error sample away from the daily run. Its own
log position is committed compare-and-set (``merge_watch_state``): it never
moves back when two runs overlap.
"""

from __future__ import annotations

import datetime

from ansible.module_utils.bemore_steps import worst_severity
from ansible.module_utils.runbook_common import SEVERITY_RANK

# The guide's response times: an open incident is reminded of no sooner than its severity's.
REMIND_S = {"critical": 15 * 60, "high": 60 * 60, "medium": 4 * 60 * 60}
# Severities that open an incident (low is the target missed, not an incident).
OPENS = ("critical", "high", "medium")
RELAPSE_S = 30 * 60
CLEAN_RUNS = 2
TIMELINE_KEEP = 100

FAILING, CLEAN, UNKNOWN = "failing", "clean", "unknown"


def signal(steps):
    """(signal, severity, summary) of one host's watch steps.

    failing: a step at medium or worse that says something about the
    backend; unknown: nothing failing, but a reading that decides it could
    not be used (a 429 on /health, its state unknown); clean otherwise.
    """
    failing = [s for s in steps if SEVERITY_RANK.get(s.get("severity"), 0) >= SEVERITY_RANK["medium"]
               and not _is_unknown(s)]
    if failing:
        severity = worst_severity([s["severity"] for s in failing])
        return FAILING, severity, "; ".join("%s: %s" % (s["step"], s["summary"]) for s in failing
                                            if s["severity"] == severity)
    unknown = [s for s in steps if _is_unknown(s)]
    if unknown:
        return UNKNOWN, "none", "; ".join("%s: %s" % (s["step"], s["summary"]) for s in unknown)
    return CLEAN, "none", "; ".join("%s: %s" % (s["step"], s["summary"]) for s in steps)


def _is_unknown(stp):
    figures = stp.get("figures") or {}
    return bool(figures.get("rate_limited")) or figures.get("watch_state") == UNKNOWN


def per_minute_step(stp, cfg):
    """Judge the errors per minute of a step without a log window against the watch's own thresholds.

    The guide's % thresholds need requests; the counters give errors per
    minute only, so they get thresholds of their own
    (``errors_per_minute_medium`` / ``_high``), and the step says so.
    ``stp``: error_step's result. Returns the step (changed in place).
    """
    figures = stp.setdefault("figures", {})
    if figures.get("window") is not None:
        return stp
    per_minute = figures.get("errors_per_minute")
    figures["judged_by"] = "errors per minute from the backend's counters"
    if per_minute is None:
        figures["watch_state"] = UNKNOWN if stp.get("status") == "ok" else None
        return stp
    high = float(cfg.get("errors_per_minute_high", 60.0))
    medium = float(cfg.get("errors_per_minute_medium", 10.0))
    if per_minute > high:
        status, severity, limit = "critical", "high", high
    elif per_minute > medium:
        status, severity, limit = "warning", "medium", medium
    else:
        return stp
    if SEVERITY_RANK[severity] > SEVERITY_RANK.get(stp.get("severity"), 0):
        stp["status"], stp["severity"], stp["alert"] = status, severity, True
    text = "%s errors/min from the backend's counters is above the watch's threshold of %s errors/min" % (
        _num(per_minute), _num(limit))
    stp.setdefault("problems", []).append(text)
    stp["summary"] = "%s; %s" % (stp.get("summary") or "", text)
    return stp


def _num(value):
    return ("%.2f" % float(value)).rstrip("0").rstrip(".")


def stamp(ts):
    return datetime.datetime.fromtimestamp(float(ts), datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def duration_text(seconds):
    seconds = int(round(max(0.0, float(seconds))))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%d h %02d min" % (hours, minutes)
    if minutes:
        return "%d min %02d s" % (minutes, secs)
    return "%d s" % secs


def _event(incident, now, kind, severity, summary):
    timeline = list(incident.get("timeline") or [])
    timeline.append({"ts": round(now, 1), "event": kind, "severity": severity, "summary": summary[:500]})
    incident["timeline"] = timeline[-TIMELINE_KEEP:]


def _message(incident, now, kind, host, environment, text):
    incident["messages"] = int(incident.get("messages") or 0) + 1
    return {"id": "%s/%d" % (incident["id"], incident["messages"]), "incident_id": incident["id"], "kind": kind,
            "severity": incident["severity"], "host": host, "environment": environment, "ts": round(now, 1),
            "text": text}


def step_incident(incident, sig, severity, summary, now, host, environment="unknown", clean_runs=CLEAN_RUNS,
                  relapse_s=RELAPSE_S, remind_s=None, silenced=None, repeat_s=0):
    """(incident or None, messages, event or None) after one watch run on one host.

    ``incident``: the host's incident of the previous runs (open, or
    resolved and kept for its relapse window) or None. ``sig``/``severity``/
    ``summary``: signal() of this run. ``silenced``: the open silence
    ({"until", "reason"}) or None: events still happen, messages are held.
    ``repeat_s``: Alertmanager's repeat_interval, the least time between two
    messages of one open incident; a reminder waits for the longer of it and
    the severity's response time (reminder_after()).
    """
    remind_s = dict(REMIND_S, **(remind_s or {}))
    now = round(float(now), 1)  # as the times it is compared with are stored
    incident = dict(incident) if incident else None
    messages = []
    event = None
    is_open = incident is not None and incident.get("resolved_at") is None
    if incident is not None and not is_open and now - float(incident["resolved_at"]) > relapse_s:
        incident = None  # the relapse window is over: a new failure is a new incident
    if sig == FAILING and SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK["medium"]:
        if incident is None:
            incident = {"id": "%s-%s-%s" % (environment, host, stamp(now)), "host": host, "opened_at": round(now, 1),
                        "severity": severity, "resolved_at": None, "timeline": [], "messages": 0}
            event = "opened"
            text = "[%s] BeMore %s on %s: incident opened: %s" % (severity.upper(), host, environment, summary)
        elif not is_open:
            event = "relapsed"
            incident.update(resolved_at=None, severity=worst_severity([incident["severity"], severity]))
            text = "[%s] BeMore %s on %s: relapsed within %d min, same incident: %s" % (
                incident["severity"].upper(), host, environment, relapse_s // 60, summary)
        elif SEVERITY_RANK[severity] > SEVERITY_RANK[incident["severity"]]:
            event = "escalated"
            text = "[%s] BeMore %s on %s: escalated from %s: %s" % (
                severity.upper(), host, environment, incident["severity"], summary)
            incident["severity"] = severity
        elif now - float(incident.get("notified_at") or incident["opened_at"]) > reminder_after(
                severity, repeat_s, remind_s):
            # At the response time of what it is now: a critical incident whose service came back with
            # only its restart to show (medium) is reminded of after 4 hours, not 15 minutes.
            event = "reminder"
            text = "[%s] BeMore %s on %s: still failing after %s: %s" % (
                incident["severity"].upper(), host, environment, duration_text(now - incident["opened_at"]), summary)
        else:
            text = None
        incident.update(last_failing_at=round(now, 1), clean_runs=0, clean_since=None, summary=summary[:500])
        if event:
            _event(incident, now, event, incident["severity"], summary)
            incident["notified_at"] = round(now, 1)
            if silenced:
                _event(incident, now, "held", incident["severity"], "silenced: %s" % silenced.get("reason"))
                incident.setdefault("paged", False)
            else:
                messages.append(_message(incident, now, event, host, environment, text))
                incident["paged"] = True
        return incident, messages, event
    if not is_open:
        return incident, messages, None
    if sig == UNKNOWN:
        # Neither clean nor failing: the incident stays open, no reminder is due on a reading it did not make.
        if (incident.get("timeline") or [{}])[-1].get("event") != "unknown":
            _event(incident, now, "unknown", incident["severity"], summary)
        return incident, messages, "unknown"
    incident["clean_runs"] = int(incident.get("clean_runs") or 0) + 1
    if incident.get("clean_since") is None:
        incident["clean_since"] = round(now, 1)
    if incident["clean_runs"] < clean_runs:
        return incident, messages, "clean"
    lasted = float(incident["clean_since"]) - float(incident["opened_at"])
    incident.update(resolved_at=round(now, 1), lasted_s=round(lasted, 1))
    event = "resolved"
    _event(incident, now, event, incident["severity"], "back to normal after %s" % duration_text(lasted))
    text = "[RESOLVED] BeMore %s on %s: incident %s lasted %s (%d clean runs in a row)" % (
        host, environment, incident["id"], duration_text(lasted), incident["clean_runs"])
    # An incident that was never paged (it opened and ended inside a silence) is not "resolved" to anyone.
    if not silenced and incident.get("paged", True):
        messages.append(_message(incident, now, event, host, environment, text))
    return incident, messages, event


def reminder_after(severity, repeat_s, remind_s=None):
    """Seconds after its last message that an open incident of ``severity`` is reminded of.

    The longer of ``repeat_s`` (bemore_watch_repeat_minutes) and the guide's
    response time: a reminder never comes sooner than the guide asks for a
    response, and an outage shorter than the repeat interval is one page
    and one resolved message.
    """
    return max(float(repeat_s or 0), float((remind_s or REMIND_S)[severity]))


def open_silence(silences, now):
    """The silence in force at ``now`` (the longest), or None."""
    active = [s for s in silences or [] if isinstance(s, dict) and float(s.get("until") or 0) > now
              and float(s.get("since") or 0) <= now]
    return max(active, key=lambda s: float(s["until"])) if active else None


def merge_watch_state(stored, new):
    """The watch topic to commit over ``stored`` (what is in the file now): compare-and-set.

    The log position never moves back: when the stored one is of the same
    file and further on (another run read further meanwhile), it is kept.
    Messages another run marked sent stay sent.
    """
    stored = stored if isinstance(stored, dict) else {}
    out = dict(new)
    old_pos, new_pos = stored.get("position") or {}, out.get("position") or {}
    if _ahead(old_pos, new_pos):
        out["position"] = old_pos
    sent = set(stored.get("sent") or []) | set(out.get("sent") or [])
    out["outbox"] = [m for m in out.get("outbox") or [] if m.get("id") not in sent]
    out["sent"] = sorted(sent)[-200:]
    return out


def _ahead(old, new):
    """True when log position ``old`` is further on than ``new`` in a file both name (same device and inode)."""
    if not old or not new:
        return bool(old) and not new
    old_files, new_files = old.get("files"), new.get("files")
    if not isinstance(old_files, dict) or not isinstance(new_files, dict):
        return False
    for name in set(old_files) & set(new_files):
        a, b = old_files[name], new_files[name]
        if not (isinstance(a, dict) and isinstance(b, dict)):
            continue
        same = (a.get("dev"), a.get("ino")) == (b.get("dev"), b.get("ino"))
        if same and int(a.get("offset") or 0) > int(b.get("offset") or 0):
            return True
    return False


def exit_code(delivery_failed, state_failed):
    """The watch's rc: it never pages by itself.

    0: the watch ran and recorded its decisions, whatever the backend's
    state (open incidents are paged by messages, not by a failed job). 2:
    the watch itself could not do its job (state not committed, or a message
    still owed after its retries: it is kept and sent by the next run), so
    no heartbeat is sent and the outside switch notices. Bad input fails
    the module (rc 2 too).
    """
    return 2 if (delivery_failed or state_failed) else 0


def watch_view(report, watch_topics, now):
    """What the daily and incident reports say about the watch: the dead-man's switch and the open incidents.

    ``watch_topics``: {host: the watch's state topic}. Returns ({host: {"last_success_ago_s", "incident_id"}},
    covered): covered is True when every host whose result would page has an open watch incident, so the run
    names that incident instead of paging a second time.
    """
    view = {}
    paging = [h for h, d in (report.get("hosts") or {}).items()
              if SEVERITY_RANK.get(d.get("worst_severity"), 0) >= SEVERITY_RANK["high"]]
    for host in report.get("hosts") or {}:
        topic = watch_topics.get(host) or {}
        if not isinstance(topic, dict):
            topic = {}
        incident = topic.get("incident") if isinstance(topic.get("incident"), dict) else None
        last = topic.get("last_success")
        view[host] = {"last_success_ago_s": round(now - float(last), 1) if last is not None else None,
                      "incident_id": incident["id"] if incident and incident.get("resolved_at") is None else None}
    covered = bool(paging) and all(view[h]["incident_id"] for h in paging) and not report.get("interrupted") \
        and not report.get("alerts")
    return view, covered


def watch_lines(view):
    """The report lines of watch_view: how long ago the watch last succeeded, per host; the open incidents."""
    out = []
    for host, entry in sorted(view.items()):
        ago = entry["last_success_ago_s"]
        text = "never ran" if ago is None else "last succeeded %s ago" % duration_text(ago)
        if entry["incident_id"]:
            text += "; open incident %s" % entry["incident_id"]
        out.append("%s %-18s %s" % (host, "(watch)", text))
    return out


# The dead-man's switch of the daily report: a watch that has not succeeded for three intervals has stopped.
WATCH_STALE_S = 15 * 60


def watch_stale(view, limit=WATCH_STALE_S):
    """A warning naming the hosts whose watch last succeeded more than ``limit`` seconds ago, or None."""
    stale = sorted("%s (%s ago)" % (h, duration_text(v["last_success_ago_s"])) for h, v in view.items()
                   if v["last_success_ago_s"] is not None and v["last_success_ago_s"] > limit)
    if not stale:
        return None
    return "the watch has not succeeded for more than %d min on: %s; check its schedule (runbooks/watch.md)" % (
        limit // 60, ", ".join(stale))


# --- from watch to response ---------------------------------------------------

# How the watch may start incident.yml's identify step. cron has no unit the
# watch could start and no job API, so it is refused rather than ignored.
RESPONSE_VIA = ("systemd", "awx")
# The events after which a critical incident gets its identify run.
RESPONSE_EVENTS = ("opened", "escalated", "relapsed")
# How long the watch waits for the identify run's report before it says there is none.
RESPONSE_WAIT_S = 30 * 60


def response_mode(enabled, via):
    """The validated way to start the identify step: None (not asked), 'systemd' or 'awx'; ValueError otherwise."""
    if not enabled:
        return None
    if via == "cron":
        raise ValueError("bemore_watch_start_incident is not offered under cron: cron has no unit the watch can start "
                         "and no job to launch; run the watch from the systemd timers or AWX, or set "
                         "bemore_watch_start_incident: false")
    if via not in RESPONSE_VIA:
        raise ValueError("bemore_watch_start_incident_via must be one of %s, got %r" % (", ".join(RESPONSE_VIA), via))
    return via


def start_response(incident, event, mode, now):
    """Whether this run starts the identify step for ``incident``; marks it on the incident (changed in place).

    Only a critical incident, only on the run that opened, escalated or
    relapsed it, and once per incident: a reminder or a second relapse
    starts nothing more (the first identify run's report is the evidence).
    """
    if mode is None or not incident or event not in RESPONSE_EVENTS or incident.get("severity") != "critical":
        return False
    if incident.get("response"):
        return False
    incident["response"] = {"via": mode, "started_at": round(float(now), 1), "report": None}
    _event(incident, now, "response started", "critical", "incident.yml identify step started via %s" % mode)
    return True


def response_follow_up(incident, reports, now, host, environment="unknown", wait_s=RESPONSE_WAIT_S):
    """The follow-up message (or None) of an incident whose identify step was started (changed in place).

    ``reports``: the incident runs' reports, [{"started_at": epoch, "hosts": [...], "worst_status", "link"}].
    The first report of a run that started at or after the response and covers
    ``host`` is linked once; none after ``wait_s`` is said once, since a page
    that promised a report must not go quiet.
    """
    response = (incident or {}).get("response")
    if not isinstance(response, dict) or response.get("report") is not None:
        return None
    started = float(response["started_at"])
    found = sorted((r for r in reports or [] if isinstance(r, dict) and r.get("started_at") is not None
                    and float(r["started_at"]) >= started and host in (r.get("hosts") or [])),
                   key=lambda r: float(r["started_at"]))
    if found:
        first = found[0]
        response["report"] = first.get("link") or "?"
        text = "[%s] BeMore %s on %s: incident %s, identify step reported %s: %s" % (
            incident["severity"].upper(), host, environment, incident["id"],
            str(first.get("worst_status") or "unknown").upper(), response["report"])
        _event(incident, now, "response report", incident["severity"], "identify report: %s" % response["report"])
    elif now - started >= wait_s:
        response["report"] = ""
        text = "[%s] BeMore %s on %s: incident %s, the identify step started %s ago via %s wrote no report" % (
            incident["severity"].upper(), host, environment, incident["id"], duration_text(now - started),
            response.get("via"))
        _event(incident, now, "response missing", incident["severity"], "no identify report after %s"
               % duration_text(now - started))
    else:
        return None
    msg = _message(incident, now, "response", host, environment, text)
    if response["report"]:
        msg["report"] = response["report"]
    return msg
