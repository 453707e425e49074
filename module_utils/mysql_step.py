# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The finished report step of one mysql_maintenance run: its status,
severity and summary, decided from what the run did (backup, OPTIMIZE) or
why it could not run.
"""

from __future__ import annotations

from ansible.module_utils.bemore_steps import step as make_step
from ansible.module_utils.mysql_schema import ARROW, MB, mapping_text, public, totals

STEP = "db_maintenance"


def connection_step(kind, reason, skip_unreachable):
    """The step when the server or the schema is not usable; kind is denied, unreachable or missing."""
    if kind == "denied":
        return make_step(STEP, "failed", "high", "database maintenance could not log in, nothing was backed up: %s"
                         % reason, {"reason": reason}, [reason])
    if skip_unreachable and kind in ("unreachable", "missing"):
        return make_step(STEP, "skipped", "none", "skipped: no database reachable (%s)" % reason, {"reason": reason})
    return make_step(STEP, "failed", "high", "no backup: database maintenance could not run, nothing was backed up: %s"
                     % reason, {"reason": reason}, [reason])


def _backup_text(backup):
    if backup is None:
        return "no backup (backup off)"
    if backup["action"] == "would_take":
        text = "backup would be taken: %s" % backup["file"]
        if backup.get("replaced_unverified"):
            text += " (this period's file does not verify: %s)" % backup["replaced_unverified"]
        return text
    how = "new" if backup["action"] == "taken" else "reused, taken earlier this period"
    return "backup verified: %s (%s, %s)" % (backup["file"], how, human_size(backup["size"] or 0))


def human_size(size):
    if size < MB:
        return "%.0f KB" % max(size / 1024.0, 1)
    return "%.1f MB" % (size / MB)


def maintenance_step(facts):
    """The finished report step of one maintenance run.

    ``facts``: server, server_version, schema, check_mode, optimize (on or
    off), table_map ({name: table}), before / after (table rows), backup
    (None when off, else backup_schema's facts), optimized, not_optimized,
    fragmented (tables over the thresholds), thresholds, refused (a reason
    when the table names were refused: nothing ran).
    """
    check_mode = facts.get("check_mode")
    mapping = facts.get("table_map") or {}
    rows = facts.get("after") or facts.get("before") or []
    figures = {
        "server": facts.get("server"), "server_version": facts.get("server_version"), "schema": facts.get("schema"),
        "check_mode": bool(check_mode), "table_map": mapping, "tables": [public(r) for r in rows],
        "totals": totals(rows), "fulltext_tables": [r["table"] for r in rows if r.get("fulltext")],
        "fragmented": facts.get("fragmented") or [], "thresholds": facts.get("thresholds") or {},
        "optimize": bool(facts.get("optimize")), "optimized": facts.get("optimized") or [],
        "not_optimized": facts.get("not_optimized") or [], "backup": facts.get("backup"),
        "backup_file": None,
    }
    if facts.get("refused"):
        return make_step(STEP, "failed", "medium", "database maintenance refused, nothing was backed up or optimized: %s"
                         % facts["refused"], figures, [facts["refused"]])
    backup = facts.get("backup")
    parts, problems = [], []
    status, severity = "ok", "none"
    if backup is not None:
        if backup.get("error"):
            figures["backup_file"] = None
            reason = backup["error"]
            return make_step(STEP, "critical", "high", "backup failed, nothing was optimized: %s" % reason,
                             figures, ["backup failed: %s" % reason])
        figures["backup_file"] = backup["file"]
        parts.append(_backup_text(backup))
        if backup.get("removed"):
            parts.append("%s %d old backup(s)" % ("would remove" if check_mode else "removed", len(backup["removed"])))
        for error in backup.get("prune_errors") or []:
            problems.append("could not remove an old backup: %s" % error)
    else:
        parts.append(_backup_text(None))
    total = totals(rows)
    parts.append("%d tables, %.1f MB, %.1f MB free" % (total["tables"], total["total_mb"], total["free_mb"]))
    names_of = {}
    for name, table in mapping.items():
        names_of.setdefault(table, []).append(name)

    def label(table):
        return mapping_text(dict((n, table) for n in names_of.get(table, [table])))

    if facts.get("optimize"):
        done, failed = [], []
        for entry in facts.get("optimized") or []:
            text = label(entry["table"])
            if "after" in entry:
                text += " (%.1f %s %.1f MB free)" % (entry["before"]["free_mb"], ARROW, entry["after"]["free_mb"])
            done.append(text)
            if entry.get("ok") is False:
                texts = "; ".join(m["text"] for m in entry.get("messages") or [] if m["type"].lower() == "error")
                failed.append("OPTIMIZE %s reported an error: %s" % (entry["table"], texts or "no status OK"))
        if done:
            parts.append("%s %s" % ("would optimize" if check_mode else "optimized", ", ".join(done)))
        problems += failed
        quiet = [e["table"] for e in facts.get("not_optimized") or [] if e["reason"].startswith("not fragmented")]
        if quiet:
            parts.append("not fragmented: %s" % ", ".join(label(t) for t in quiet))
        for entry in facts.get("not_optimized") or []:
            if not entry["reason"].startswith("not fragmented"):
                problems.append("%s not optimized: %s" % (label(entry["table"]), entry["reason"]))
        if failed:
            # The backup is safe and the table still works; it stays fragmented (performance: 4 hours).
            status, severity = "warning", "medium"
    else:
        parts.append("OPTIMIZE off")
        if figures["fragmented"]:
            parts.append("fragmented: %s" % ", ".join(figures["fragmented"]))
    if problems and status == "ok":
        status, severity = "warning", "low"
    summary = "; ".join(parts)
    if problems:
        summary += "; " + "; ".join(problems)
    return make_step(STEP, status, severity, summary, figures, problems)
