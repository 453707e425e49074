# -*- coding: utf-8 -*-
"""The log core (module_utils/bemore_logs.py) on the backend's own output:
recorded lines, real files with rotations, and journalctl's export stream
(from a stand-in replaying a real journald recording; from the real journald
in the testbed container where podman is available)."""

from __future__ import annotations

import base64
import collections
import gzip
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib

import pytest

from tests.helpers import REPO, register_module_utils, require

register_module_utils()
from ansible.module_utils import bemore_logs as core  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils import bemore_log_lines as lines_core  # noqa: E402  pylint: disable=wrong-import-position

ESC = "\x1b"
OBSERVED_LOG = os.path.join(REPO, "tests", "fixtures", "observed", "real-app.log")


def eh_line(level, stamp, module, kind, message):
    """A line as services/ErrorHandler.js log() prints it (colours and all)."""
    colour = {"INFO": 36, "WARN": 33, "ERROR": 31, "CRITICAL": 35}[level]
    return "%s[%dm[%s]%s[0m %s[90m%s%s[0m %s[34m[%s]%s[0m %s[33m(%s)%s[0m %s" % (
        ESC, colour, level, ESC, ESC, stamp, ESC, ESC, module, ESC, ESC, kind, ESC, message)


def access(method, url, status, length="107", took="0.836", req="cc268f0b-d897-46cd-bc50-1d30421890d3"):
    """morgan's ':method :url :status :res[content-length] - :response-time ms reqId=:id'."""
    return "%s %s %s %s - %s ms reqId=%s" % (method, url, status, length, took, req)


STACK = [ESC + "[90mStack Trace:" + ESC + "[0m",
         "Error: database connection lost after 3 retries",
         "    at Sequelize.authenticate (/srv/bemore/app/node_modules/sequelize/lib/sequelize.js:457:19)",
         "    at async connect (/srv/bemore/app/models/index.js:31:5)"]


def write(path, text, mode="a"):
    with open(path, mode, encoding="utf-8") as handle:
        handle.write(text)


# ------------------------------------------------------------- one line

def test_strip_ansi_on_text_and_bytes():
    line = eh_line("ERROR", "2026-12-02T09:46:05.110Z", "express", "UNKNOWN", "Validation failed")
    assert lines_core.strip_ansi(line) == "[ERROR] 2026-12-02T09:46:05.110Z [express] (UNKNOWN) Validation failed"
    assert lines_core.strip_ansi(line.encode()) == b"[ERROR] 2026-12-02T09:46:05.110Z [express] (UNKNOWN) Validation failed"


@pytest.mark.parametrize("prefix", ["", "2026-12-02T09:46:05+0000 api-1 node[123]: ", "MESSAGE="])
def test_parse_line_reads_the_error_handler_layout(prefix):
    line = prefix + eh_line("CRITICAL", "2026-12-02T09:46:05.110Z", "db", "DATABASE", "database connection lost")
    assert lines_core.parse_line(line) == {"level": "CRITICAL", "time": "2026-12-02T09:46:05.110Z", "module": "db",
                                     "type": "DATABASE", "message": "database connection lost"}
    assert lines_core.parse_line(line.encode()) == lines_core.parse_line(line)


@pytest.mark.parametrize("line", [
    "⏹️ [CRITICAL] Session end requested: sess_1796212197048_55e5ebfb",   # console.log in sessionController.js
    "❌ [CRITICAL] Database fetch error: sessionRecord.emotionsData.map is not a function",
    "[ERROR] something without the handler's time, module and type",
    access("GET", "/api/errors/stats?level=[ERROR]", 200),
])
def test_level_words_outside_the_layout_are_not_error_lines(line):
    assert lines_core.parse_line(line) is None


@pytest.mark.parametrize("line,sig", [
    (eh_line("ERROR", "2026-12-02T09:46:05.179Z", "session-end", "UNKNOWN",
             "세션을 찾을 수 없습니다: sess_1796204570192_374e720d"),
     "ERROR [session-end] (UNKNOWN) 세션을 찾을 수 없습니다: <session>"),
    # An all-digit random part makes no other signature.
    (eh_line("ERROR", "2026-12-02T09:46:05.179Z", "session-end", "UNKNOWN",
             "세션을 찾을 수 없습니다: sess_1796204570192_37412720"),
     "ERROR [session-end] (UNKNOWN) 세션을 찾을 수 없습니다: <session>"),
    (eh_line("CRITICAL", "2026-12-02T11:51:05.307Z", "express", "DATABASE",
             "Unexpected token 'd', \"database\" is not valid JSON"),
     "CRITICAL [express] (DATABASE) Unexpected token <str>, <str> is not valid JSON"),
    (eh_line("ERROR", "2026-12-02T11:51:01.027Z", "express", "UNKNOWN",
             "CORS policy: Origin https://evil.example is not allowed"),
     "ERROR [express] (UNKNOWN) CORS policy: Origin <url> is not allowed"),
    ("2026-12-02T09:46:05+0000 api-1 node[7]: " + eh_line("WARN", "2026-12-02T09:46:05.110Z", "auth", "AUTH",
                                                       "unauthorized token for user 3f2b8c1e-1111-2222-3333-444455556666"),
     "WARN [auth] (AUTH) unauthorized token for user <uuid>"),
])
def test_signature_of_error_handler_lines(line, sig):
    assert lines_core.signature(line) == sig
    assert ESC not in lines_core.signature(line)


@pytest.mark.parametrize("line,sig", [
    ("2026-11-29T04:00:00.123Z ERROR [GEMINI] request timed out after 30000ms (session 4f2a91)",
     "ERROR [GEMINI] request timed out after <n>ms (session <hex>)"),
    ("2026-11-29 04:00:00,5 ERROR [WEBSOCKET] client 10.0.0.12:5511 disconnected (code 1006)",
     "ERROR [WEBSOCKET] client <ip> disconnected (code <n>)"),
    ("Nov 29 04:00:00 ERROR [STT] cannot read /srv/bemore/app/tmp/rec_01.wav",
     "ERROR [STT] cannot read <path>"),
    ("ERROR [SESSION] user 'bob@example.test' id 3f2b8c1e-1111-2222-3333-444455556666 not found",
     "ERROR [SESSION] user <str> id <uuid> not found"),
    ("ERROR mail to bob@example.test failed", "ERROR mail to <email> failed"),
])
def test_signature_of_other_lines_normalises_variable_parts(line, sig):
    assert lines_core.signature(line) == sig


def test_signature_groups_lines_that_differ_only_in_values():
    a = lines_core.signature(eh_line("CRITICAL", "2026-12-02T09:46:05.110Z", "db", "DATABASE", "deadlock; retrying (attempt 2)"))
    b = lines_core.signature(eh_line("CRITICAL", "2026-12-02T09:47:15.004Z", "db", "DATABASE", "deadlock; retrying (attempt 13)"))
    c = lines_core.signature(eh_line("CRITICAL", "2026-12-02T09:47:15.004Z", "db", "DATABASE", "connection refused"))
    assert a == b != c


def test_a_chunk_of_messages_normalises_as_each_line_alone(tmp_path):
    """The scan normalises a chunk's messages in one pass and reuses results
    for messages that differ only in digits; it must agree with signature()."""
    rnd = random.Random(3)
    words = ["세션을 찾을 수 없습니다:", "timeout", "user", "open", "Origin", "code", "a1b2c3", "at", "x", "DEADbeef9",
             "'quoted 12'", "\"dq\"", "/srv/x_1.wav", "10.0.0.%d:80", "sess_%d_%08x", "bob%d@example.test",
             "https://h%d.example/p", "%d", "%d.%d", "%08x", "%x-%x", "3f2b8c1e-1111-2222-3333-%012d", "_%d_",
             "\t", "  ", "ﬀ%d", "ſ%08x-1111-2222-3333-444455556666", "K%08x"]
    lines = []
    for i in range(900):
        parts = []
        for word in rnd.sample(words, 6):
            count = word.count("%")
            parts.append(word % tuple(rnd.randrange(1 << 32) for _ in range(count)) if count else word)
        lines.append(eh_line(rnd.choice(["ERROR", "CRITICAL"]), "2026-12-02T09:46:05.%03dZ" % (i % 1000),
                             rnd.choice(["express", "db", "세션"]), "UNKNOWN", " ".join(parts)))
    log = tmp_path / "app.log"
    write(log, "\n".join(lines) + "\n")
    got = core.scan_files([str(log)], {})
    assert got["signatures_overflow"] == 0
    assert {s["signature"]: s["count"] for s in got["signatures"]} == collections.Counter(map(lines_core.signature, lines))


def test_signatures_beyond_the_limit_are_counted_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(lines_core, "MAX_SIGNATURES", 5)
    log = tmp_path / "app.log"
    write(log, "".join(eh_line("ERROR", "2026-12-02T09:46:05.110Z", "m%s" % chr(97 + i), "UNKNOWN", "x") + "\n"
                       for i in range(8)))
    result = core.scan_files([str(log)], {})
    assert len(result["signatures"]) == 5 and result["signatures_overflow"] == 3
    assert result["errors"] == result["levels"]["ERROR"] == 8


# --------------------------------------------------------------- files

ACCESS_LINE = re.compile(r"(?:^|: )[A-Z]+ \S+ (\d{3}|-) (?:\d+|-) - (?:[\d.]+|-) ms reqId=\S*$")
HANDLER_LINE = re.compile(r"(?:^|[ =])\[(INFO|WARN|ERROR|CRITICAL)\] \d{4}-\d\d-\d\dT[\d:.]+Z \[[^\]]*\] \([^)]*\)")


def reference(text):
    """Counts of ``text`` line by line, the slow obvious way."""
    status = collections.Counter()
    levels = collections.Counter()
    lines = text.split("\n")[:-1]
    for line in lines:
        match = ACCESS_LINE.search(line)
        if match:
            code = match.group(1)
            status["other" if code == "-" or code[0] == "1" else code[0] + "xx"] += 1
        match = HANDLER_LINE.search(lines_core.strip_ansi(line))
        if match:
            levels[match.group(1)] += 1
    return {"lines": len(lines), "requests": sum(status.values()), "status_other": status.pop("other", 0),
            "status": {k: status.get(k, 0) for k in lines_core.STATUS_CLASSES},
            "levels": {k: levels.get(k, 0) for k in lines_core.LEVELS}, "errors": levels["ERROR"] + levels["CRITICAL"]}


def figures(result):
    return {k: result[k] for k in ("lines", "requests", "status_other", "status", "levels", "errors")}


@pytest.mark.skipif(not os.path.exists(OBSERVED_LOG), reason="tests/fixtures/observed/real-app.log is not there")
def test_a_real_backend_log(tmp_path):
    with open(OBSERVED_LOG, encoding="utf-8") as handle:
        text = handle.read()
    result = core.scan_files([OBSERVED_LOG], {})
    assert figures(result) == reference(text)
    assert result["status"]["4xx"] > 0 and result["errors"] > 0
    # The emoji lines with "[CRITICAL]" in them are console.log chatter; the
    # one CRITICAL is the handler's, and its stack trace adds no errors.
    assert text.count("[CRITICAL]") > result["levels"]["CRITICAL"] == 1
    critical = [s for s in result["signatures"] if s["level"] == "CRITICAL"]
    assert critical[0]["sample"].endswith("| at JSON.parse (<anonymous>)")
    assert ESC not in json.dumps(result, ensure_ascii=False)
    times = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lines_core.strip_ansi(text))
    assert (result["first_time"], result["last_time"]) == (min(times), max(times))


def test_status_classes_and_unanswered_requests(tmp_path):
    lines = [access("GET", "/health", 200), access("POST", "/api/session/start", 201, "405"),
             access("GET", "/api/session/sess_1_ab", 304, "-"), access("GET", "/x", 404, "140"),
             access("POST", "/api/session/start", 400, "190", "4.098"), access("GET", "/api/nope?a=1", 404, "404"),
             access("GET", "/api/health", 500, "96", "12.500"), access("GET", "/", 503, "-", "0.2"),
             access("GET", "/ws", 101, "-"), access("GET", "/api/slow", "-", "-", "-"),
             "2026-12-02T09:46:05+0000 api-1 node[7]: " + access("GET", "/health", 502, "10"),
             access("GET", "/health", 200, "500", "500.500", "rec-fixed-id-1"),
             "🚀 서버 실행 중 (port): 8000"]
    log = tmp_path / "app.log"
    write(log, "\n".join(lines) + "\n")
    result = core.scan_files([str(log)], {})
    assert figures(result) == reference("\n".join(lines) + "\n")
    assert result["status"] == {"2xx": 3, "3xx": 1, "4xx": 3, "5xx": 3} and result["status_other"] == 2
    assert result["requests"] == 12 and result["lines"] == 13


def test_a_critical_owns_its_stack_trace(tmp_path):
    lines = [access("GET", "/health", 200),
             eh_line("CRITICAL", "2026-12-02T09:46:05.110Z", "db", "DATABASE", "database connection lost after 3 retries")]
    lines += STACK + [access("GET", "/api/session/x", 500, "96"),
                      eh_line("CRITICAL", "2026-12-02T09:46:06.200Z", "db", "DATABASE", "database connection lost after 4 retries")]
    lines += STACK
    log = tmp_path / "app.log"
    write(log, "\n".join(lines) + "\n")
    result = core.scan_files([str(log)], {})
    assert result["lines"] == len(lines) and result["errors"] == 2 and result["levels"]["CRITICAL"] == 2
    (sig,) = result["signatures"]
    assert sig["signature"] == "CRITICAL [db] (DATABASE) database connection lost after <n> retries"
    assert sig["count"] == 2 and sig["last_time"] == "2026-12-02T09:46:06.200Z"
    assert sig["sample"] == ("[CRITICAL] 2026-12-02T09:46:05.110Z [db] (DATABASE) database connection lost after 3 retries"
                             " | at Sequelize.authenticate (/srv/bemore/app/node_modules/sequelize/lib/sequelize.js:457:19)")


def scan(log, position, known=(), **kw):
    result = core.scan_files([str(log)], position, known_signatures=known, **kw)
    assert not result["problems"], result["problems"]
    return result


def test_reads_only_new_whole_lines(tmp_path):
    log = tmp_path / "app.log"
    boom = eh_line("ERROR", "2026-12-02T09:46:05.110Z", "cbt", "UNKNOWN", "boom 1")
    write(log, access("GET", "/health", 200) + "\n" + boom + "\n" + eh_line("WARN", "2026-12-02T09:46:05.2Z", "auth",
                                                                         "AUTH", "slow") + "\n")
    first = scan(log, {})
    assert first["lines"] == 3 and first["errors"] == 1 and first["levels"]["WARN"] == 1
    assert first["new_signatures"] == ["ERROR [cbt] (UNKNOWN) boom <n>"]
    # The last line is still being written.
    write(log, boom.replace("boom 1", "boom 2") + "\n" + eh_line("ERROR", "2026-12-02T09:46:06.000Z", "vad", "UNKNOWN", "half a li"))
    second = scan(log, first["position"], first["new_signatures"])
    assert second["lines"] == 1 and second["errors"] == 1
    assert second["new_signatures"] == [] and second["signatures"][0]["new"] is False
    assert second["backlog"] == {"bytes": 0, "seconds_behind": 0.0, "complete": True}
    write(log, "ne\n")
    third = scan(log, second["position"])
    assert third["lines"] == 1 and third["signatures"][0]["sample"].endswith("(UNKNOWN) half a line")
    assert scan(log, third["position"])["lines"] == 0


@pytest.mark.parametrize("how", ["rename", "rename_compress", "copytruncate"])
def test_rotation_between_runs_loses_and_repeats_nothing(tmp_path, how):
    log = tmp_path / "app.log"
    write(log, "".join(access("GET", "/health", 200) + "\n" for _ in range(5)))
    first = scan(log, {})
    stt = [eh_line("ERROR", "2026-12-02T09:46:0%d.000Z" % i, "stt", "FILE", "before rotation %s" % c) for i, c in enumerate("ab")]
    write(log, "\n".join(stt) + "\n")
    rotate(log, how)
    write(log, eh_line("ERROR", "2026-12-02T09:47:00.000Z", "stt", "FILE", "after rotation") + "\n")
    second = scan(log, first["position"])
    assert second["lines"] == 3 and second["errors"] == 3, second
    assert len(second["rotations"]) == 1 and second["rotations"][0]["lines_from_old"] == 2
    # (A compressed copy's freed inode may be the new file's: then it looks truncated; the lines are the same.)
    assert "app.log.1" in second["rotations"][0]["how"]
    assert scan(log, second["position"])["lines"] == 0


def rotate(log, how):
    if how.startswith("rename"):
        os.rename(log, str(log) + ".1")
        if how == "rename_compress":
            with open(str(log) + ".1", "rb") as src, gzip.open(str(log) + ".1.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.unlink(str(log) + ".1")
        write(log, "", "w")
    else:
        shutil.copyfile(log, str(log) + ".1")
        os.truncate(log, 0)


def log_text(count, seed=1, start=0):
    """``count`` lines of realistic traffic: access lines, errors, a CRITICAL with its stack now and then."""
    rnd = random.Random(seed)
    out = []
    for i in range(start, start + count):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1796204700 + i // 10)) + ".%03dZ" % (i % 1000)
        if i % 97 == 0:
            out.append(eh_line("CRITICAL", stamp, "db", "DATABASE", "database connection lost after %d retries" % (i % 5)))
            out.extend(STACK)
        elif i % 23 == 0:
            out.append(eh_line("ERROR", stamp, "session-end", "UNKNOWN",
                               "세션을 찾을 수 없습니다: sess_%d_%08x" % (1796204570192 + i, rnd.getrandbits(32))))
        elif i % 31 == 0:
            out.append(eh_line("WARN", stamp, "auth", "AUTH", "unauthorized token"))
        else:
            out.append(access("GET", "/health", rnd.choice([200, 200, 200, 304, 404, 500]), str(rnd.randrange(1, 9999)),
                              "%.3f" % rnd.random(), "%032x" % rnd.getrandbits(128)))
    return "\n".join(out) + "\n"


def totals(results):
    sigs = collections.Counter()
    for result in results:
        sigs.update({s["signature"]: s["count"] for s in result["signatures"]})
    keys = ("lines", "requests", "errors", "status_other")
    summed = {k: sum(r[k] for r in results) for k in keys}
    summed["status"] = dict(sum((collections.Counter(r["status"]) for r in results), collections.Counter()))
    summed["levels"] = dict(sum((collections.Counter(r["levels"]) for r in results), collections.Counter()))
    summed["signatures"] = dict(sigs)
    return summed


def whole(result):
    return totals([result])


def test_budget_stops_early_and_the_next_runs_resume_without_loss(tmp_path, monkeypatch):
    monkeypatch.setattr(core, "CHUNK_BYTES", 64 * 1024)
    log = tmp_path / "app.log"
    write(log, log_text(12000))
    size = os.path.getsize(log)
    full = scan(log, {}, budget_s=600)
    assert full["backlog"]["complete"] and full["lines"] > 12000
    runs, position = [], {}
    while True:
        result = scan(log, position, budget_s=0)     # one chunk a run
        runs.append(result)
        position = result["position"]
        offset = position["files"][str(log)]["offset"]
        if result["backlog"]["complete"]:
            break
        assert result["backlog"]["bytes"] == size - offset > 0
        assert result["backlog"]["seconds_behind"] >= 0
        assert len(runs) < 1000
    assert len(runs) >= size // (64 * 1024)
    assert offset == size
    # Every line counted once: the chunks' sums are the whole file's figures.
    assert totals(runs) == whole(full)
    behind = [r["backlog"]["bytes"] for r in runs]
    assert behind == sorted(behind, reverse=True) and behind[-1] == 0


def test_a_growing_backlog_shows_in_the_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(core, "CHUNK_BYTES", 64 * 1024)
    log = tmp_path / "app.log"
    write(log, log_text(6000))
    first = scan(log, {}, budget_s=0)
    write(log, log_text(6000, seed=2, start=6000))      # the app writes faster than a run reads
    second = scan(log, first["position"], budget_s=0)
    assert not second["backlog"]["complete"]
    assert second["backlog"]["bytes"] > first["backlog"]["bytes"] > 0
    assert second["backlog"]["seconds_behind"] > first["backlog"]["seconds_behind"]


@pytest.mark.parametrize("how", ["rename", "rename_compress", "copytruncate"])
def test_a_rotated_copy_is_finished_over_several_runs(tmp_path, monkeypatch, how):
    monkeypatch.setattr(core, "CHUNK_BYTES", 32 * 1024)
    log = tmp_path / "app.log"
    write(log, log_text(100))
    first = scan(log, {})
    write(log, log_text(3000, seed=5, start=100))
    rotate(log, how)
    write(log, log_text(500, seed=6, start=3100))
    expected = whole(scan(log, first["position"], budget_s=600))
    runs, position = [], first["position"]
    while True:
        result = scan(log, position, budget_s=0)
        runs.append(result)
        position = result["position"]
        if result["backlog"]["complete"]:
            break
        assert result["backlog"]["bytes"] > 0 and len(runs) < 500
    assert len(runs) > 2
    assert totals(runs) == expected
    assert sum(r["rotations"][0]["lines_from_old"] for r in runs if r["rotations"]) == len(log_text(3000, 5, 100).splitlines())
    assert scan(log, position)["lines"] == 0


def test_first_run_at_end_missing_and_unreadable_files(tmp_path):
    log = tmp_path / "app.log"
    write(log, eh_line("ERROR", "2026-12-02T09:46:05.110Z", "x", "UNKNOWN", "old") + "\n")
    result = scan(log, {}, first_run="end")
    assert result["lines"] == 0 and result["position"]["files"][str(log)]["offset"] == os.path.getsize(log)
    missing = core.scan_files([str(tmp_path / "nope.log")], {})
    assert missing["problems"] == ["%s does not exist" % (tmp_path / "nope.log")]
    folder = tmp_path / "logs"
    folder.mkdir()
    unreadable = core.scan_files([str(folder), str(log)], {})
    assert len(unreadable["problems"]) == 1 and str(folder) in unreadable["problems"][0]
    assert unreadable["lines"] == 1


def test_a_position_from_elsewhere_is_a_problem_and_a_first_run(tmp_path):
    log = tmp_path / "app.log"
    write(log, log_text(20))
    result = core.scan_files([str(log)], {"files": {str(log): {"offset": "12"}}})
    assert len(result["problems"]) == 1 and "not one this module wrote" in result["problems"][0]
    assert result["lines"] == len(log_text(20).splitlines())
    assert core.scan_files([str(log)], "garbage")["lines"] == result["lines"]
    with pytest.raises(ValueError, match="first_run must be 'start' or 'end', got 'middle'"):
        core.scan_files([str(log)], {}, first_run="middle")


def test_files_not_reached_keep_their_place(tmp_path, monkeypatch):
    monkeypatch.setattr(core, "CHUNK_BYTES", 32 * 1024)
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    write(a, log_text(2000))
    write(b, log_text(100, seed=9))
    first = core.scan_files([str(a), str(b)], {}, budget_s=0)
    files = first["position"]["files"]
    assert files[str(b)]["offset"] == 0 and 0 < files[str(a)]["offset"] < os.path.getsize(a)
    assert first["backlog"]["bytes"] == os.path.getsize(a) + os.path.getsize(b) - files[str(a)]["offset"]
    runs = [first]
    while not runs[-1]["backlog"]["complete"]:
        runs.append(core.scan_files([str(a), str(b)], runs[-1]["position"], budget_s=0))
    assert totals(runs) == whole(core.scan_files([str(a), str(b)], {}))


def test_a_line_longer_than_the_limit_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(core, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(core, "MAX_LINE_BYTES", 8192)
    log = tmp_path / "app.log"
    write(log, access("GET", "/health", 200) + "\n" + "x" * 50000 + "\n" + access("GET", "/x", 500) + "\n")
    result = scan(log, {})
    assert result["lines"] == 3 and result["requests"] == 2 and result["status"]["5xx"] == 1


# ------------------------------------------------------------- journal

# journalctl -u bemore -o export --output-fields=MESSAGE, recorded from the
# real journald (systemd 252) of the testbed image. The unit ran node with the
# backend's own services/ErrorHandler.js: errorHandler.handle() of a plain
# error, a Korean "session not found", a ValidationError (WARN) and a
# "database" error (CRITICAL and its stack), between morgan access lines
# (one unanswered, status "-") and a "⏹️ [CRITICAL]" console.log line.
RECORDED_EXPORT = zlib.decompress(base64.b64decode("""
eNrN2UtvE1cUAOCus++KzSzpYuz7fjh1JQMBRSUxSgxIjZB1H+cWU3ucztgIdl3QCpUFyyJV3fUHdFOJbvpjuiVS/0LPOJQYpJBk
3MpxJNvJXE/G3znnvmY4vH53b7+/1626XHnLhOLWiShkVN5zqwKxSiqhbYDNUZcS7Tnd9N3Ak6IsCGCCi6SjoVKr6CxRSTHgYXPS
DQqkjw42Z12lqJNReCOo45tPukb5JCVJVBhKaIwbw+HeVu/2YHtna1g/7Q96O3e6VFvFqNBMKYJPGlvt9Hf7g/7u9vWlZpxzZYUk
mmwMr/X7g+H2jTMvbwM/vN+7tdXdn7lyNiq+zjxMpiW0KigfjwK0Wq0N/HcXpmHnpUkEGF2iCRzfMKRxFDgR2lsSmEKjM2g051pY
cjqNVloyKxrQ3NoaZO2H4MazhxkjJMMvmOUZaRmuskmVlfDtduwGvEqTiM+jsToXKsTcB0lyGvFbMGosibyRJD+3JCVRkmVJS4VA
ycCkjNYqz6UhwbgzJYWRwnxM0igu2cUlNx59cvy4csDp5GBrb6+/9+DKAZlkVw4smTDCVE5ZTtiAsg5nHaJbnNuv3rbgYnIATw5L
qKp/P8T55Ord3S93+/d3P1v86Z4bj6KbjaZFltxoDLERuTg/OdMiLJM7LwiSe8IsZZRTE+qg6DPJpcTM+hi55YQ0Sd47/X3MXnc4
alcIhzDtqq70TNSJbAkmsmgRa04SOREnuXch11qoXDgucmsk5J6GIGLiCaRopCpXVuUgiTQCItDkoluf6sbPF09kSZYT+W0wciji
qcl89Oz10fevjn55lh399ufi5fmr7OinH45+/P3Ni+dvXvzayerTDBdfmAipCbVsiN0gaEaaZb5aOUY0eYwSpdFxY6gNlyrzT9dq
YyCOa2LRudMWNjmpCesi18RDbi3HmpCB5w5Fc5fw0qJ1Cphu5K1X9oaolSNJYbFGnEX49dXE6KQm+OTgfm9v98ySoMsl4eazh8u1
cK93e/tGb7Ddf1sOMMEePRstYjIflQ37drN6hnNaD5BSeQqaU7Y+8e9OxOXk4Pre9mD7eu/2xdSjXzZH79613v7WsTiOpM67CrIw
LQoIi2F1PK1mmUszKDOOkZiVI6gaBcKuHIjaLZhofEjeEG/WF4hP3wUC0XEmHb7JBqUL0KkZG+m4lXVwOghJskC1l4Ybub6OeKss
p2Xn/80mv7KXxN850AASB65g1pdN3Qwfbpb1/SNUan3uimnxdDKdV19kV9vldDprlxCmZWw9qjpY1Yx+1kgsrCymZcID0krqohQK
1i62M43zMbSGYTo5xMl/drWYRuiMCkyvwo3bk8Xhqh0eVe3x1EUoO5Qr0aGimWBcfUKLqwMbraIiMUIhXBpBeDKDop4zVS1Ms/NA
CsY6lDSDhJUhcV1C8KycBi0S0EuTirXOefQY4Tg8N9NLK+sxZaRPIVHwQkq4PIV8Xj6cyqNhIz4EWLmKDQ4ZyRpc7+Migeq1892c
F4vhtQVPIMxncLeCcquYlU/vTJExO3A4h54XO25UPDhNF48Pcb5dIKtpTEtXprWJKjx1ZBIC5Xb9HeQHWij0jmp4bNdBMGEbebHV
vYIJkVgWKbGCxzV6LTZNz7n4ziQuvK2q192sVb9/t/Am3gJNEnKc5rtcOMly67jPtSeJBQU0UtqImq9MLSwERoMnwCMXDi4BdTE9
BEQ8/nlnqAKNwlnIWUI5nLDF3IBOOXHUs8CjAJkaGa6+TRo8xXbWEQUEpwFkfYZ/vfzj79cvs5NFdLZ/nLdZvTFU7zhANYP4n++4
iQvsigbD7BKiEBjYGlFLTYOwMaiQVDw7Ea3ihn4EUXNB6/XihRHfv3XUyW6Aw3HosUO4rJqHgHRpPh4/bXRLSVxgbzKk8J6U5B7q
3hGAOC6AauUi5eJsKcMXrU6XUjjmN5C6OSpG1UNk+eBu28bGPywK3ws=
"""))


def parse_export(raw):
    """Entries of journalctl's export format, binary fields and all."""
    entries, pos = [], 0
    while pos < len(raw):
        entry = {}
        while True:
            end = raw.index(b"\n", pos)
            line = raw[pos:end]
            if not line:
                pos = end + 1
                break
            if b"=" in line:
                key, value = line.split(b"=", 1)
                pos = end + 1
            else:  # binary: name, newline, 64-bit little-endian length, data, newline
                size = struct.unpack("<Q", raw[end + 1:end + 9])[0]
                key, value = line, raw[end + 9:end + 9 + size]
                pos = end + 9 + size + 1
            entry[key.decode()] = value
        entries.append(entry)
    return entries


def journal_entry(cursor, realtime, message, monotonic=1, boot="c3f612c4e2434f7d81576da906f62e3c", unit="bemore"):
    return {"cursor": cursor, "realtime": realtime, "monotonic": monotonic, "boot": boot, "unit": unit,
            "message": message.decode("latin-1") if isinstance(message, bytes) else message.encode().decode("latin-1")}


def recorded_entries():
    return [journal_entry(e["__CURSOR"].decode(), int(e["__REALTIME_TIMESTAMP"]), e["MESSAGE"],
                          int(e["__MONOTONIC_TIMESTAMP"]), e["_BOOT_ID"].decode())
            for e in parse_export(RECORDED_EXPORT)]


STANDIN = r'''#!%(python)s
"""journalctl stand-in for tests: replays the entries of $FAKE_JOURNAL in
journalctl's export format. Knows -u, -o export, --output-fields,
--after-cursor, --since @EPOCH, -n, --show-cursor, --no-pager."""
import json, os, re, struct, sys

args = sys.argv[1:]
with open(os.environ["FAKE_JOURNAL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
with open(os.environ["FAKE_JOURNAL"]) as handle:
    entries = json.load(handle)
opts, i = {}, 0
while i < len(args):
    arg = args[i]
    if arg in ("-u", "-o", "--after-cursor", "--since", "-n"):
        opts[arg] = args[i + 1]
        i += 2
        continue
    if arg == "--show-cursor":
        opts[arg] = True
    elif not (arg in ("--no-pager", "-q", "-a") or arg.startswith("--output-fields=")):
        sys.stderr.write("journalctl: unrecognized option '%%s'\n" %% arg)
        sys.exit(1)
    i += 1
if opts.get("-o") != "export":
    sys.stderr.write("the stand-in prints -o export only\n")
    sys.exit(1)
unit = [e for e in entries if e["unit"] == opts.get("-u")]
shown, seek = unit, None
if "--after-cursor" in opts:
    seek = opts["--after-cursor"]
    fields = dict(part.split("=", 1) for part in seek.split(";") if "=" in part)
    if "t" not in fields and "i" not in fields:
        sys.stderr.write("Failed to seek to cursor: Invalid argument\n")
        sys.exit(1)
    at = [k for k, e in enumerate(shown) if e["cursor"] == seek]
    shown = shown[at[0] + 1:] if at else [e for e in shown if e["realtime"] > int(fields.get("t", "0"), 16)]
if "--since" in opts:
    since = float(opts["--since"].lstrip("@")) * 1e6
    shown = [e for e in shown if e["realtime"] >= since]
if "-n" in opts:
    count = int(opts["-n"])
    shown = shown[len(shown) - count:] if count else []


CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(data):
    try:
        return not CONTROL.search(data.decode("utf-8"))
    except UnicodeDecodeError:
        return False


out = sys.stdout.buffer
try:
    for e in shown:
        message = e["message"].encode("latin-1")
        block = b"__CURSOR=%%s\n__REALTIME_TIMESTAMP=%%d\n__MONOTONIC_TIMESTAMP=%%d\n_BOOT_ID=%%s\n" %% (
            e["cursor"].encode(), e["realtime"], e["monotonic"], e["boot"].encode())
        if printable(message):
            block += b"MESSAGE=" + message + b"\n\n"
        else:
            block += b"MESSAGE\n" + struct.pack("<Q", len(message)) + message + b"\n\n"
        out.write(block)
    if "--show-cursor" in opts:
        last = shown[-1]["cursor"] if shown else (seek or (unit[-1]["cursor"] if unit and opts.get("-n") == "0" else None))
        if last:
            out.write(b"-- cursor: " + last.encode() + b"\n")
    out.flush()
except BrokenPipeError:
    os._exit(141)
'''


class FakeJournal(object):
    """A journalctl stand-in on PATH and the entries it replays."""

    def __init__(self, tmp_path, monkeypatch):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.db = tmp_path / "journal.json"
        self.log = tmp_path / "journalctl-calls.log"
        self.log.write_text("")
        self.entries = []
        path = self.bin / "journalctl"
        path.write_text(STANDIN % {"python": sys.executable})
        path.chmod(0o755)
        self.journalctl = str(path)
        monkeypatch.setenv("FAKE_JOURNAL", str(self.db))
        monkeypatch.setenv("FAKE_JOURNAL_LOG", str(self.log))
        monkeypatch.setenv("PATH", str(self.bin) + os.pathsep + os.environ["PATH"])
        self.save()

    def add(self, entries):
        self.entries.extend(entries)
        self.save()

    def save(self):
        self.db.write_text(json.dumps(self.entries))

    def calls(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def render(self, entries):
        proc = subprocess.run([self.journalctl, "-u", "bemore", "-o", "export", "--output-fields=MESSAGE"],
                              capture_output=True, check=True, env=dict(os.environ, FAKE_JOURNAL=self._write(entries)))
        return proc.stdout

    def _write(self, entries):
        path = str(self.db) + ".render"
        with open(path, "w") as handle:
            json.dump(entries, handle)
        return path


@pytest.fixture
def journal(tmp_path, monkeypatch):
    return FakeJournal(tmp_path, monkeypatch)


def synthetic(count, start_us, step_us=100000, seed=4, first=0):
    """``count`` journal entries of the backend's stdout, ``step_us`` apart."""
    text = log_text(count, seed=seed, start=first).splitlines()
    return [journal_entry("s=36b924639a4d45d6bb396c09656479ce;i=%x;b=c3f612c4e2434f7d81576da906f62e3c;m=%x;t=%x;x=%016x"
                          % (first + k + 1, first + k + 1, start_us + k * step_us, k), start_us + k * step_us, line,
                          monotonic=first + k + 1)
            for k, line in enumerate(text)]


def test_the_stand_in_prints_what_journalctl_printed(journal):
    assert journal.render(recorded_entries()) == RECORDED_EXPORT


def test_recorded_journal_entries(journal):
    entries = recorded_entries()
    journal.add(entries)
    now = entries[-1]["realtime"] / 1e6 + 1
    result = core.scan_journal("bemore", {}, journalctl=journal.journalctl, now=now)
    assert result["problems"] == [] and result["backlog"]["complete"]
    assert result["lines"] == len(entries) and result["position"] == {"cursor": entries[-1]["cursor"]}
    assert result["requests"] == 5 and result["status"] == {"2xx": 1, "3xx": 0, "4xx": 2, "5xx": 1}
    assert result["status_other"] == 1
    assert result["levels"] == {"INFO": 0, "WARN": 1, "ERROR": 2, "CRITICAL": 1} and result["errors"] == 3
    sigs = {s["signature"]: s for s in result["signatures"]}
    assert set(sigs) == {"ERROR [express] (UNKNOWN) Validation failed",
                         "ERROR [session-end] (UNKNOWN) 세션을 찾을 수 없습니다: <session>",
                         "CRITICAL [db] (DATABASE) database connection lost after <n> retries"}
    assert sigs["CRITICAL [db] (DATABASE) database connection lost after <n> retries"]["sample"].endswith(
        "| at Object.<anonymous> (/root/record.js:12:21)")
    assert result["first_time"] == lines_core.iso_from_us(entries[0]["realtime"])
    assert result["last_time"] == lines_core.iso_from_us(entries[-1]["realtime"])
    assert result["window"] == {"seconds": 300, "since": lines_core.iso_from_us(int((now - 300) * 1e6)), "requests": 5,
                                "errors": 3, "status": result["status"], "complete": True,
                                    "own_requests": 0, "own_errors": 0}
    assert ESC not in json.dumps(result, ensure_ascii=False)
    calls = journal.calls()
    assert len(calls) == 1 and "--since" in calls[0] and "--after-cursor" not in calls[0]
    assert float(calls[0][calls[0].index("--since") + 1].lstrip("@")) == int(now - core.FIRST_RUN_SPAN_S)


def test_the_journal_resumes_after_its_cursor_and_never_rereads(journal):
    start = 1796204700 * 10 ** 6
    journal.add(synthetic(300, start))
    first = core.scan_journal("bemore", {}, journalctl=journal.journalctl, now=start / 1e6 + 3600)
    assert first["lines"] == len(journal.entries) > 300
    again = core.scan_journal("bemore", first["position"], journalctl=journal.journalctl, now=start / 1e6 + 3600)
    assert again["lines"] == 0 and again["position"] == first["position"] and again["signatures"] == []
    before = len(journal.entries)
    journal.add(synthetic(50, start + before * 100000, seed=8, first=before))
    third = core.scan_journal("bemore", again["position"], journalctl=journal.journalctl, now=start / 1e6 + 3600)
    assert third["lines"] == len(journal.entries) - before >= 50 and third["position"]["cursor"] == journal.entries[-1]["cursor"]
    reads = [c for c in journal.calls() if "-n" not in c]
    assert all("--after-cursor" in c for c in reads[1:])


def test_the_journal_budget_stops_early_and_resumes_exactly(journal, monkeypatch):
    monkeypatch.setattr(core, "CHUNK_BYTES", 64 * 1024)
    start = 1796204700 * 10 ** 6
    journal.add(synthetic(3000, start))
    now = journal.entries[-1]["realtime"] / 1e6 + 10
    full = core.scan_journal("bemore", {}, journalctl=journal.journalctl, now=now)
    assert full["backlog"]["complete"] and full["lines"] == len(journal.entries)
    runs, position = [], {}
    while True:
        result = core.scan_journal("bemore", position, budget_s=0, journalctl=journal.journalctl, now=now)
        assert result["problems"] == []
        runs.append(result)
        position = result["position"]
        if result["backlog"]["complete"]:
            break
        last = [e["realtime"] for e in journal.entries if e["cursor"] == position["cursor"]][0]
        assert result["backlog"]["seconds_behind"] == pytest.approx((journal.entries[-1]["realtime"] - last) / 1e6, abs=0.1)
        assert result["backlog"]["bytes"] > 0 and result["backlog"]["bytes_estimated"]
        assert len(runs) < 500
    assert len(runs) > 3
    assert totals(runs) == whole(full)
    # The window comes from its own read when a run stops early: always whole.
    assert all(r["window"] == full["window"] for r in runs)


def test_the_window_is_the_last_minutes_by_journal_time(journal):
    start = 1796204700 * 10 ** 6
    journal.add(synthetic(1200, start, step_us=1000000))      # 20 minutes, a line a second
    now = journal.entries[-1]["realtime"] / 1e6 + 0.5
    result = core.scan_journal("bemore", {}, journalctl=journal.journalctl, now=now)
    inside = "\n".join(e["message"].encode("latin-1").decode() for e in journal.entries
                       if e["realtime"] >= (now - 300) * 1e6) + "\n"
    expected = reference(inside)
    window = result["window"]
    assert (window["requests"], window["errors"], window["status"]) == (expected["requests"], expected["errors"],
                                                                        expected["status"])
    assert 0 < window["requests"] < result["requests"]
    # A run a minute after the previous one reads the window's earlier part
    # on its own: the same window.
    halfway = [e for e in journal.entries if e["realtime"] <= (now - 60) * 1e6][-1]
    later = core.scan_journal("bemore", {"cursor": halfway["cursor"]}, journalctl=journal.journalctl, now=now)
    assert later["window"] == window and later["lines"] == 60


def test_a_first_journal_run_at_the_end(journal):
    start = 1796204700 * 10 ** 6
    journal.add(synthetic(100, start))
    result = core.scan_journal("bemore", {}, first_run="end", journalctl=journal.journalctl, now=start / 1e6 + 20)
    assert result["lines"] == 0 and result["position"] == {"cursor": journal.entries[-1]["cursor"]}
    assert result["window"]["requests"] > 0 and result["window"]["complete"]


def test_a_refused_cursor_and_a_missing_journalctl_are_problems(journal, tmp_path):
    journal.add(synthetic(40, 1796204700 * 10 ** 6))
    now = journal.entries[-1]["realtime"] / 1e6 + 1
    result = core.scan_journal("bemore", {"cursor": "garbage"}, journalctl=journal.journalctl, now=now)
    assert len(result["problems"]) == 1 and "refused the saved cursor" in result["problems"][0]
    assert result["lines"] == len(journal.entries) and result["position"]["cursor"] == journal.entries[-1]["cursor"]
    missing = core.scan_journal("bemore", {}, journalctl=str(tmp_path / "no-journalctl"), now=now)
    assert missing["problems"] and "cannot run" in missing["problems"][0]
    assert missing["lines"] == 0 and missing["window"] is None and missing["position"] == {"cursor": None}


# ------------------------------------------------- real journald (testbed)

EMITTER = r"""
import sys
colours = {"INFO": 36, "WARN": 33, "ERROR": 31, "CRITICAL": 35}
def handler(level, module, kind, message, stack=None):   # services/ErrorHandler.js log()
    print("\x1b[%dm[%s]\x1b[0m \x1b[90m2026-12-02T09:46:05.110Z\x1b[0m \x1b[34m[%s]\x1b[0m \x1b[33m(%s)\x1b[0m %s"
          % (colours[level], level, module, kind, message))
    if stack:
        print("\x1b[90mStack Trace:\x1b[0m")
        print(stack)
n = int(sys.argv[1])
for i in range(n):
    print("GET /health %s 107 - 0.%03d ms reqId=f0a53bac-7746-4a34-985e-%012d" % ((200, 200, 404, 500)[i % 4], i % 1000, i))
    if i % 10 == 0:
        handler("ERROR", "session-end", "UNKNOWN", "세션을 찾을 수 없습니다: sess_%d_%08x" % (1796204570192 + i, i))
    if i % 100 == 0:
        handler("CRITICAL", "db", "DATABASE", "database connection lost", "Error: database connection lost\n    at connect (/srv/app/db.js:3:9)")
"""

DRIVER = r"""
import importlib.util, json, sys
for name in ("bemore_log_lines", "bemore_logs"):  # as Ansible ships them: bemore_logs imports the other
    spec = importlib.util.spec_from_file_location("ansible.module_utils." + name, "/root/%s.py" % name)
    core = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)
core.CHUNK_BYTES = 64 * 1024
full = core.scan_journal("bemore-logs-test", {})
runs, position = [], {}
while True:
    result = core.scan_journal("bemore-logs-test", position, budget_s=0)
    runs.append({k: result[k] for k in ("lines", "requests", "errors", "status", "levels", "backlog", "problems")})
    position = result["position"]
    if result["backlog"]["complete"] or len(runs) > 500:
        break
print(json.dumps({"full": {k: full[k] for k in ("lines", "requests", "errors", "status", "levels", "problems", "window")},
                  "runs": runs}))
"""


def _testbed_image():
    try:
        with open(os.path.join(REPO, ".testbed-image")) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def test_the_real_journald_in_the_testbed_container(tmp_path):
    # journald does not run on this machine: the testbed container's does.
    require(shutil.which("podman"), "podman", "apt-get install -y podman, or make deps")
    require(_testbed_image(), "the testbed image (.testbed-image)", "make testbed")
    env = dict(os.environ, CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", os.path.join(REPO, "containers", "containers.conf")))
    name = "test-bemore-logs-%d" % os.getpid()

    def sh(script):
        return subprocess.run(["podman", "exec", "-i", name, "bash", "-c", script], env=env, capture_output=True,
                              check=True, timeout=300).stdout

    try:
        subprocess.run(["podman", "run", "-d", "--name", name, "--systemd=always", _testbed_image(), "/sbin/init"],
                       env=env, capture_output=True, check=True, timeout=120)
        for _ in range(60):
            if sh("systemctl is-system-running || true").strip() in (b"running", b"degraded"):
                break
            time.sleep(0.5)
        (tmp_path / "emitter.py").write_text(EMITTER)
        for src, dst in ((os.path.join(REPO, "module_utils", "bemore_logs.py"), "/root/bemore_logs.py"),
                         (os.path.join(REPO, "module_utils", "bemore_log_lines.py"), "/root/bemore_log_lines.py"),
                         (str(tmp_path / "emitter.py"), "/root/emitter.py")):
            subprocess.run(["podman", "cp", src, "%s:%s" % (name, dst)], env=env, check=True)
        sh("mkdir -p /etc/systemd/journald.conf.d && printf '[Journal]\\nRateLimitBurst=0\\n'"
           " > /etc/systemd/journald.conf.d/test.conf && systemctl restart systemd-journald"
           " && printf '[Service]\\nType=oneshot\\nExecStart=/usr/bin/python3 -u /root/emitter.py 3000\\n'"
           " > /etc/systemd/system/bemore-logs-test.service && systemctl daemon-reload && systemctl start bemore-logs-test"
           " && journalctl --sync")
        data = json.loads(sh("python3 -c %s" % shlex_quote(DRIVER)))
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=env, capture_output=True, check=False, timeout=120)
    full, runs = data["full"], data["runs"]
    assert full["problems"] == []
    assert full["requests"] == 3000 and full["status"] == {"2xx": 1500, "3xx": 0, "4xx": 750, "5xx": 750}
    assert full["levels"]["ERROR"] == 300 and full["levels"]["CRITICAL"] == 30 and full["errors"] == 330
    assert full["window"]["requests"] == 3000 and full["window"]["complete"]
    assert len(runs) > 2 and runs[-1]["backlog"]["complete"]
    for key in ("lines", "requests", "errors"):
        assert sum(r[key] for r in runs) == full[key], key
    assert all(not r["problems"] for r in runs)


def shlex_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"
