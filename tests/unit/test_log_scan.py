# -*- coding: utf-8 -*-
"""log_scan, the module around the log core: options, results, check mode,
on real files and on a journalctl stand-in (see test_bemore_logs.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.unit.test_bemore_logs import (  # noqa: F401  pylint: disable=unused-import
    access, eh_line, journal, log_text, rotate, synthetic, write,
)

CORE = "ansible.module_utils.bemore_logs"


def scan(run_module, log, position, known=(), **extra):
    result = run_module("log_scan", dict({"files": [str(log)], "position": position,
                                          "known_signatures": list(known)}, **extra))
    assert not result.get("failed"), result.get("msg")
    return result


def test_reviews_new_lines_and_keeps_the_position(tmp_path, run_module):
    log = tmp_path / "app.log"
    write(log, access("POST", "/api/session/start", 400, "190", "4.098") + "\n"
          + eh_line("ERROR", "2026-12-02T09:46:05.110Z", "express", "UNKNOWN", "Validation failed") + "\n"
          + eh_line("WARN", "2026-12-02T09:46:05.200Z", "auth", "AUTH", "unauthorized token") + "\n")
    first = scan(run_module, log, {})
    assert first["changed"] is False and first["source"] == "files"
    assert (first["lines"], first["requests"], first["errors"]) == (3, 1, 1)
    assert first["status"]["4xx"] == 1 and first["levels"]["WARN"] == 1
    assert first["new_signatures"] == ["ERROR [express] (UNKNOWN) Validation failed"]
    assert first["top_signatures"] == first["signatures"] and first["window"] is None
    # The earlier version's names, for playbooks that read them.
    assert first["lines_read"] == 3 and first["counts"] == {"error": 1, "warn": 1}
    write(log, eh_line("ERROR", "2026-12-02T09:47:00.000Z", "express", "UNKNOWN", "Validation failed") + "\n")
    second = scan(run_module, log, first["position"], first["new_signatures"])
    assert second["lines"] == 1 and second["new_signatures"] == [] and second["signatures"][0]["new"] is False
    assert scan(run_module, log, second["position"])["lines"] == 0


@pytest.mark.parametrize("lines, rate", [
    # Errors per request: 2 ERROR/CRITICAL lines over 4 access lines.
    ([("ERROR", None), ("CRITICAL", None), (None, 200), (None, 200), (None, 500), (None, 404)], 50.0),
    # No error lines (stderr not captured): the 5xx access lines count.
    ([(None, 200), (None, 503), (None, 200), (None, 200)], 25.0),
    ([("ERROR", None)], None),  # no request: no rate
])
def test_the_error_rate_is_errors_per_request(tmp_path, run_module, lines, rate):
    log = tmp_path / "app.log"
    text = ""
    for level, status in lines:
        text += (eh_line(level, "2026-12-02T09:46:05.110Z", "express", "UNKNOWN", "boom") if level
                 else access("GET", "/health", status, "15", "1.000")) + "\n"
    write(log, text)
    assert scan(run_module, log, {})["error_rate"] == rate


def test_check_mode_reads_the_same_and_changes_nothing(tmp_path, run_module):
    log = tmp_path / "app.log"
    write(log, log_text(300))
    before = os.stat(log)
    normal = scan(run_module, log, {})
    checked = run_module("log_scan", {"files": [str(log)]}, check_mode=True)
    for key in ("lines", "requests", "status", "levels", "errors", "signatures", "position"):
        assert checked[key] == normal[key], key
    assert checked["changed"] is False
    after = os.stat(log)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_rotation_between_runs(tmp_path, run_module):
    log = tmp_path / "app.log"
    write(log, log_text(50))
    first = scan(run_module, log, {})
    write(log, log_text(20, seed=3, start=50))
    rotate(log, "copytruncate")
    write(log, log_text(5, seed=4, start=70))
    second = scan(run_module, log, first["position"])
    assert second["lines"] == len(log_text(20, 3, 50).splitlines()) + len(log_text(5, 4, 70).splitlines())
    assert second["rotations"][0]["how"].startswith("truncated (copytruncate), finished from app.log.1")


def test_the_budget_through_the_module(tmp_path, run_module, monkeypatch):
    monkeypatch.setattr(sys.modules[CORE], "CHUNK_BYTES", 32 * 1024)
    log = tmp_path / "app.log"
    write(log, log_text(3000))
    whole = scan(run_module, log, {})
    first = scan(run_module, log, {}, budget_s=0)
    assert not first["backlog"]["complete"]
    assert first["backlog"]["bytes"] == os.path.getsize(log) - first["position"]["files"][str(log)]["offset"]
    runs = [first]
    while not runs[-1]["backlog"]["complete"]:
        runs.append(scan(run_module, log, runs[-1]["position"], budget_s=0))
    assert sum(r["lines"] for r in runs) == whole["lines"] and sum(r["errors"] for r in runs) == whole["errors"]


def test_a_missing_file_is_a_problem_not_a_failure(tmp_path, run_module):
    result = scan(run_module, tmp_path / "nope.log", {})
    assert result["problems"] == ["%s does not exist" % (tmp_path / "nope.log")] and result["lines"] == 0


def test_the_journal_through_the_module(journal, run_module, monkeypatch):
    journal.add(synthetic(200, 1796204700 * 10 ** 6))
    # The module's "now" is the test's: a minute after the last entry, on any day.
    monkeypatch.setenv("BEMORE_RUNBOOK_NOW", str(journal.entries[-1]["realtime"] / 1e6 + 60))
    result = run_module("log_scan", {"journal_unit": "bemore"})
    assert not result.get("failed"), result.get("msg")
    assert result["source"] == "journal" and result["lines"] == len(journal.entries)
    assert result["position"] == {"cursor": journal.entries[-1]["cursor"]}
    assert set(result["window"]) == {"seconds", "since", "requests", "errors", "status", "complete",
                                     "own_requests", "own_errors"}
    # module.get_bin_path found the stand-in on PATH.
    assert journal.calls()[0][:2] == ["-u", "bemore"]
    again = run_module("log_scan", {"journal_unit": "bemore", "position": result["position"]})
    assert again["lines"] == 0 and again["position"] == result["position"]


@pytest.mark.parametrize("args,msg", [
    ({"files": ["app.log"]}, "files must be absolute paths, got 'app.log'"),
    ({"files": ["/x"], "budget_s": -1}, "budget_s must be 0 or more seconds, got -1"),
    ({"files": ["/x"], "window_s": 0}, "window_s must be a positive number of seconds, got 0"),
    ({"files": ["/x"], "top": -2}, "top must be 0 or more, got -2"),
    ({"files": ["/x"], "journal_unit": "bemore"}, "mutually exclusive"),
    ({"files": []}, "log_scan needs files (log file paths) or journal_unit (a systemd unit); both are empty"),
])
def test_bad_input_is_refused(run_module, args, msg):
    result = run_module("log_scan", args)
    assert result["failed"] and msg in result["msg"]


def test_max_bytes_and_the_patterns_are_accepted_but_deprecated(tmp_path, run_module):
    log = tmp_path / "app.log"
    write(log, log_text(10))
    result = scan(run_module, log, {}, max_bytes=1024, error_pattern="ERROR")
    messages = json.dumps(result.get("deprecations"))
    assert "max_bytes" in messages and "error_pattern" in messages
    assert result["lines"] == len(log_text(10).splitlines())
