# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the BeMore backend's stdout: its log file(s) or its systemd journal.

The backend writes two kinds of lines that matter (services/ErrorHandler.js
and app.js of KUS-CapstoneDesign-II/BeMoreBackend):

* morgan's access line, one per request, without a timestamp::

      POST /api/session/start 400 190 - 4.098 ms reqId=f0a53bac-...

* ErrorHandler.log(), in ANSI colours (INFO cyan, WARN yellow, ERROR red,
  CRITICAL magenta)::

      \\x1b[31m[ERROR]\\x1b[0m \\x1b[90m<ISO time>\\x1b[0m \\x1b[34m[module]\\x1b[0m \\x1b[33m(TYPE)\\x1b[0m message

  A CRITICAL line is followed by ``\\x1b[90mStack Trace:\\x1b[0m`` and the
  error's stack (``Error: ...`` and ``    at ...`` frames).

Other console output (the backend prints many emoji lines with words like
``[CRITICAL]`` in them) is counted as lines only: a level counts only in the
ErrorHandler layout, where a timestamp, a module and a type follow it.

The scan is built for speed: data is read in large chunks, lines are counted
with ``bytes.count``, the regular expressions run over whole chunks and stop
only where a level token or an access line's tail is, and the signatures of
a chunk's error lines are normalised in one pass over all of them. A time
budget replaces a byte cap: a scan that runs out of time keeps the offset
(or journal cursor) it reached and reports how far behind it is.

How a line is classified is bemore_log_lines's part; this file reads the files and
the journal. Standard library only: this runs on the managed host.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import os
import re
import subprocess
import tempfile
import time
import zlib

from ansible.module_utils.bemore_log_lines import LEVEL_LINE, Tally, epoch_of_iso, iso_from_us

# Bytes read per chunk. Large enough that the per-chunk work is noise, small
# enough to keep the scan's memory far below 64 MB.
CHUNK_BYTES = 8 * 1024 * 1024
# A "line" longer than this is skipped (counted, not classified): whatever
# it is, it is not one of the backend's lines.
MAX_LINE_BYTES = 4 * CHUNK_BYTES
# A journal read for the first time (first_run=start) starts this far back:
# one day, the period of the daily review.
FIRST_RUN_SPAN_S = 86400
# The journal is classified in smaller chunks, from a pipe enlarged to hold
# one: journalctl (the slower side) keeps writing while a chunk is
# classified instead of blocking on a full 64 KiB pipe.
JOURNAL_CHUNK_BYTES = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# When the main read ran out of time, the separate read of the rate window
# still gets this long.
WINDOW_MIN_BUDGET_S = 10.0

EXPORT_ENTRY = b"\n\n__CURSOR="
EXPORT_CURSOR = re.compile(rb"__CURSOR=([^\n]*)\n")
EXPORT_REALTIME = re.compile(rb"__REALTIME_TIMESTAMP=(\d+)\n")


# ------------------------------------------------------------------ files

class _Clock(object):
    def __init__(self, budget_s):
        self.started = time.monotonic()
        self.deadline = self.started + max(float(budget_s), 0.0)
        self.fed = 0
        self.stopped = False

    def may_read(self):
        """True while the budget lasts. Until a chunk of data was classified
        it is always true, so that every run makes progress."""
        if self.fed and time.monotonic() >= self.deadline:
            self.stopped = True
            return False
        return True

    def elapsed(self):
        return time.monotonic() - self.started


def _open_any(name):
    return gzip.open if name.endswith(".gz") else open


def _read_lines(handle, offset, tally, clock):
    """Classify whole lines of ``handle`` from ``offset``: (offset reached, read to the end).

    A last line without its newline is still being written: it is left for
    the next run.
    """
    handle.seek(offset)
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    filled = 0
    try:
        while True:
            if not clock.may_read():
                # Out of time; unless all there is left is a line still being written.
                if handle.read(1):
                    return offset, False
                clock.stopped = False
                return offset, True
            got = handle.readinto(view[filled:])
            if not got:
                return offset, True
            total = filled + got
            end = buf.rfind(b"\n", 0, total) + 1
            if end == 0:
                if total < len(buf):
                    filled = total
                    continue
                # Not one of the backend's lines: counted and skipped whole.
                skipped = _skip_line(handle)
                if skipped is None:
                    return offset, True
                tally.lines += 1
                offset += total + skipped
                filled = 0
                continue
            tally.feed(buf, end)
            clock.fed += 1
            offset += end
            filled = total - end
            if filled:
                buf[:filled] = buf[end:total]
    finally:
        view.release()


def _skip_line(handle):
    """Bytes up to and including the next newline of ``handle``, or None at its end."""
    skipped = 0
    while True:
        data = handle.read(CHUNK_BYTES)
        if not data:
            return None
        end = data.find(b"\n")
        if end >= 0:
            handle.seek(end + 1 - len(data), os.SEEK_CUR)
            return skipped + end + 1
        skipped += len(data)


def rotated_candidates(path):
    """Files logrotate may have moved ``path`` to, newest first."""
    names = set(glob.glob(glob.escape(path) + ".[0-9]*")) | set(glob.glob(glob.escape(path) + "-*"))
    return sorted(names, key=lambda n: os.stat(n).st_mtime if os.path.exists(n) else 0, reverse=True)


def _finish_rotated(path, prev, tally, clock):
    """Read the previous file's lines after ``prev['offset']`` from its rotated copy.

    Returns (how, finished, offset reached in the copy, copy name or None).
    """
    offset = prev.get("offset", 0)
    candidates = rotated_candidates(path)
    for name in candidates:  # renamed away: the same inode
        try:
            st = os.stat(name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (prev.get("dev"), prev.get("ino")):
            with open(name, "rb") as handle:
                reached, done = _read_lines(handle, offset, tally, clock)
            return "renamed to %s" % os.path.basename(name), done, reached, name
    # Compressed already, or copied (copytruncate): the newest rotated copy
    # that is at least as long as what was read holds the rest.
    for name in candidates:
        try:
            opener = _open_any(name)
            with opener(name, "rb") as handle:
                handle.seek(offset)
                probe = handle.read(1)
                if not probe and offset:
                    continue
                reached, done = _read_lines(handle, offset, tally, clock)
            return "finished from %s" % os.path.basename(name), done, reached, name
        except (OSError, EOFError):
            continue
    return "rotated copy not found; lines after the last read may be missed", True, offset, None


HOW = {"renamed": "rotated, ", "truncated": "truncated (copytruncate), ",
       "replaced": "rotated (a new file on the old inode), "}
HEAD_BYTES = 4096


def _head(path, length):
    """CRC of the first ``length`` bytes of ``path``: tells a file from a new
    one that got the same inode number (a rotated file deleted, its inode
    reused for the new log) once it has grown past the old offset."""
    with open(path, "rb") as handle:
        return zlib.crc32(handle.read(length))


def _scan_file(path, prev, first_run, tally, clock):
    """(new state, rotation or None, problem or None, backlog bytes, newest time when behind)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return prev, None, "%s: %s" % (path, exc.strerror), 0, None
    rotation = None
    offset = prev.get("offset", 0) if prev else None
    try:
        if prev:
            kind = prev.get("rotated")
            same = st is not None and (st.st_dev, st.st_ino) == (prev.get("dev"), prev.get("ino"))
            if kind:
                pass
            elif not same:
                kind = "renamed"
            elif st.st_size < offset:
                kind = "truncated"
            elif prev.get("head_len") and _head(path, prev["head_len"]) != prev.get("head"):
                kind = "replaced"
            if kind:
                before = tally.lines
                lookup = prev if kind == "renamed" else dict(prev, ino=None)
                how, done, reached, copy = _finish_rotated(path, lookup, tally, clock)
                rotation = {"file": path, "how": HOW[kind] + how, "lines_from_old": tally.lines - before}
                if not done:
                    # Out of time inside the copy: the next run finishes it first.
                    left = _copy_left(copy, reached) + (st.st_size if st is not None else 0)
                    return dict(prev, offset=reached, rotated=kind), rotation, None, left, _newest(path, copy)
                offset = 0
        if st is None:
            return {}, rotation, None if prev else "%s does not exist" % path, 0, None
        if offset is None:
            offset = 0 if first_run == "start" else st.st_size
        with open(path, "rb") as handle:
            reached, done = _read_lines(handle, offset, tally, clock)
            size = os.fstat(handle.fileno()).st_size
        head_len = min(reached, HEAD_BYTES)
        state = {"dev": st.st_dev, "ino": st.st_ino, "offset": reached}
        if head_len:
            state.update(head=_head(path, head_len), head_len=head_len)
    except OSError as exc:
        return prev, rotation, "%s: %s" % (path, exc.strerror), 0, None
    return state, rotation, None, 0 if done else max(size - reached, 0), None if done else _newest(path)


def _copy_left(name, reached):
    if not name:
        return 0
    try:
        size = os.path.getsize(name)
    except OSError:
        return 0
    # A compressed copy's remaining length is unknown without reading it;
    # its compressed size stands in.
    return size if name.endswith(".gz") else max(size - reached, 0)


def _newest(*names):
    """The newest time in the ErrorHandler lines at the end of the first of
    ``names`` that has one (its last 64 KiB), else that file's mtime, as
    seconds since the epoch; None when neither is known."""
    mtime = None
    for name in names:
        if not name:
            continue
        try:
            with _open_any(name)(name, "rb") as handle:
                if not name.endswith(".gz"):
                    handle.seek(max(os.fstat(handle.fileno()).st_size - 65536, 0))
                    tail = handle.read()
                else:
                    tail = b""
                    while True:
                        data = handle.read(CHUNK_BYTES)
                        if not data:
                            break
                        tail = (tail + data)[-65536:]
            if mtime is None:
                mtime = os.path.getmtime(name)
        except (OSError, EOFError):
            continue
        stamps = [m[1] for m in LEVEL_LINE.findall(tail)]
        if stamps:
            return epoch_of_iso(max(stamps).decode())
    return mtime


def _base_result(tally, top, clock, problems, rotations, position, complete, behind_bytes, seconds_behind):
    result = tally.result(top)
    result.update(
        rotations=rotations, problems=list(dict.fromkeys(problems)), position=position, elapsed_s=round(clock.elapsed(), 3),
        backlog={"bytes": int(behind_bytes), "seconds_behind": seconds_behind, "complete": bool(complete)})
    return result


def scan_files(paths, position, first_run="start", budget_s=60.0, known_signatures=(), top=10, now=None, probe_origin=None):
    """Scan the log files ``paths`` from ``position`` (a previous result's ``position``; {} the first time).

    Returns a dict of figures; ``position`` in it is what to pass next time.
    A file that is missing or unreadable is a sentence in ``problems``.
    """
    now = time.time() if now is None else now
    clock = _Clock(budget_s)
    tally = Tally(known_signatures, probe_origin=probe_origin)
    _check_first_run(first_run)
    old = (position or {}).get("files") if isinstance(position, dict) else None
    old = old if isinstance(old, dict) else {}
    files, rotations, problems = {}, [], []
    behind, newest = 0, None
    for path in paths:
        prev = old.get(path)
        if prev is not None and not _valid_state(prev):
            problems.append("the saved position of %s is not one this module wrote (%r); read as a first run"
                            % (path, prev))
            prev = None
        if clock.stopped:
            # Out of time: the file keeps its place (a new one gets its start).
            state, left = _place_untouched(path, prev, first_run)
            if state:
                files[path] = state
            behind += left
            continue
        state, rotation, problem, left, mtime = _scan_file(path, prev, first_run, tally, clock)
        if state:
            files[path] = state
        if rotation:
            rotations.append(rotation)
        if problem:
            problems.append(problem)
        if left:
            behind += left
            if newest is None:
                newest = mtime
    complete = not clock.stopped
    seconds = 0.0 if complete else None
    if not complete and tally.last_time and newest:
        last = epoch_of_iso(tally.last_time)
        if last is not None:
            seconds = round(max(newest - last, 0.0), 1)
    result = _base_result(tally, top, clock, problems, rotations, {"files": files}, complete,
                          0 if complete else behind, seconds)
    result["window"] = None
    result["source"] = "files"
    return result


def _check_first_run(first_run):
    if first_run not in ("start", "end"):
        raise ValueError("first_run must be 'start' or 'end', got %r" % (first_run,))


def _valid_state(state):
    return (isinstance(state, dict) and all(isinstance(state.get(k), int) for k in ("dev", "ino", "offset"))
            and state["offset"] >= 0 and state.get("rotated") in (None, "renamed", "truncated", "replaced"))


def _place_untouched(path, prev, first_run):
    try:
        st = os.stat(path)
    except OSError:
        return prev, 0
    if prev and not prev.get("rotated") and (st.st_dev, st.st_ino) == (prev.get("dev"), prev.get("ino")):
        return prev, max(st.st_size - prev.get("offset", 0), 0)
    if prev:
        return prev, st.st_size
    offset = 0 if first_run == "start" else st.st_size
    return {"dev": st.st_dev, "ino": st.st_ino, "offset": offset}, st.st_size - offset


# ---------------------------------------------------------------- journal

class _Unreadable(Exception):
    pass


class _JournalRead(object):
    """One ``journalctl -o export`` run, classified as it streams."""

    def __init__(self, argv, tally, clock, window_us=None, window_tally=None):
        self.argv = argv
        self.show_cursor = "--show-cursor" in argv
        self.tally = tally
        self.clock = clock
        self.window_us = window_us
        self.window_tally = window_tally
        self.cursor = None
        self.first_us = None
        self.last_us = None
        self.complete = False
        self.started = False
        self.error = None
        self.stderr = ""

    def run(self):
        env = dict(os.environ, SYSTEMD_COLORS="0", SYSTEMD_PAGER="", PAGER="cat", LC_ALL="C")
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=errors, env=env)
            except OSError as exc:
                self.error = "cannot run %s: %s" % (self.argv[0], exc.strerror or exc)
                return self
            self.started = True
            try:
                self._stream(proc)
            except _Unreadable as exc:
                self.error = str(exc)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                rc = proc.wait()
                errors.seek(0)
                self.stderr = errors.read(4096).decode("utf-8", "replace").strip()
            if self.complete and rc != 0:
                self.complete = False
                self.error = "%s exited with %d: %s" % (
                    " ".join(self.argv[:3]), rc, self.stderr.splitlines()[0] if self.stderr else "no message")
        return self

    def _stream(self, proc):
        fd = proc.stdout.fileno()
        chunk = min(CHUNK_BYTES, JOURNAL_CHUNK_BYTES)
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, chunk)
        except OSError:
            pass  # not Linux, or above /proc/sys/fs/pipe-max-size: a slower read, the same result
        buf = bytearray()
        while True:
            if not self.clock.may_read():
                self._take(buf, final=False)
                return
            # Fill a chunk; the pipe hands over at most its capacity at a time.
            eof = False
            while len(buf) < chunk:
                piece = os.read(fd, 1 << 20)
                if not piece:
                    eof = True
                    break
                buf += piece
            if eof:
                self._take(buf, final=True)
                self.complete = True
                return
            buf = self._take(buf, final=False)

    def _take(self, buf, final):
        """Classify the whole entries in ``buf``; returns what is left (an unfinished entry)."""
        if final and self.show_cursor:
            mark = buf.rfind(b"-- cursor: ")
            if mark >= 0 and (mark == 0 or buf[mark - 1] == 0x0A):
                self.cursor = bytes(buf[mark + 11:]).strip().decode("ascii", "replace") or self.cursor
                del buf[mark:]
        if final:
            end = len(buf)
        else:
            end = buf.rfind(EXPORT_ENTRY)
            if end < 0:
                if len(buf) > MAX_LINE_BYTES:
                    raise _Unreadable("journalctl printed an entry longer than %d bytes" % MAX_LINE_BYTES)
                return buf
            end += 2
        if end <= 0:
            return buf
        data = bytes(buf[:end])
        del buf[:end]
        self._classify(data)
        self.clock.fed += 1
        return buf

    def _classify(self, data):
        start = data.rfind(b"__CURSOR=")
        if start < 0:
            return
        last = EXPORT_CURSOR.match(data, start)
        if last:
            self.cursor = last.group(1).decode("ascii", "replace")
        first_us = EXPORT_REALTIME.search(data)
        last_us = EXPORT_REALTIME.search(data, start)
        if first_us and self.first_us is None:
            self.first_us = int(first_us.group(1))
        if last_us:
            self.last_us = int(last_us.group(1))
        self.tally.feed(data)
        if self.window_tally is None or last_us is None or int(last_us.group(1)) < self.window_us:
            return
        if first_us and int(first_us.group(1)) >= self.window_us:
            self.window_tally.feed(data)
            return
        for stamp in EXPORT_REALTIME.finditer(data):
            if int(stamp.group(1)) >= self.window_us:
                entry = data.rfind(b"\n\n__CURSOR=", 0, stamp.start())
                self.window_tally.feed(data[entry + 2 if entry >= 0 else 0:])
                return


def _journal_argv(journalctl, unit, fields=True):
    argv = [journalctl, "-u", unit, "--no-pager", "-o", "export"]
    if fields:
        # Only MESSAGE besides the fields export always prints (__CURSOR,
        # __REALTIME_TIMESTAMP, __MONOTONIC_TIMESTAMP, _BOOT_ID).
        argv.append("--output-fields=MESSAGE")
    return argv


def _cursor_time_us(cursor):
    match = re.search(r"(?:^|;)t=([0-9a-f]+)(?:;|$)", cursor or "")
    return int(match.group(1), 16) if match else None


def scan_journal(unit, position, first_run="start", budget_s=60.0, window_s=300, known_signatures=(), top=10,
                 journalctl="journalctl", now=None, probe_origin=None):
    """Scan systemd unit ``unit``'s journal after ``position['cursor']``.

    Reads ``journalctl -u UNIT -o export --output-fields=MESSAGE`` resumed
    with ``--after-cursor``: export prints every entry's cursor, so a read
    cut short by the budget resumes exactly after the last entry it
    classified (short-iso prints none, and its times are not the ones
    ``--since`` seeks by). A unit never read before starts
    ``FIRST_RUN_SPAN_S`` back (first_run=start) or at the journal's end
    (first_run=end). ``window`` holds the last ``window_s`` seconds by the
    journal's own timestamps; when the main read does not cover them (a run
    less than ``window_s`` after the previous one, a first run at the end, a
    read cut short) they are read on their own with ``--since``, given at
    least ``WINDOW_MIN_BUDGET_S``.
    """
    now = time.time() if now is None else now
    clock = _Clock(budget_s)
    known = tuple(known_signatures)
    problems = []
    _check_first_run(first_run)
    cursor = position.get("cursor") if isinstance(position, dict) else None
    if cursor is not None and not isinstance(cursor, str):
        problems.append("the saved journal cursor is not text (%r); read as a first run" % (cursor,))
        cursor = None
    window_us = int((now - window_s) * 1000000)
    since_first = ["--since", "@%d" % int(now - FIRST_RUN_SPAN_S)]
    options = {"fields": True}

    def read(extra, counts, run_clock, window_tally=None):
        job = _JournalRead(_journal_argv(journalctl, unit, options["fields"]) + extra, counts, run_clock,
                           window_us, window_tally).run()
        if job.error and options["fields"] and "output-fields" in job.stderr:
            options["fields"] = False  # systemd before 236 has no --output-fields
            job = _JournalRead(_journal_argv(journalctl, unit, False) + extra, counts, run_clock,
                               window_us, window_tally).run()
        if "not seeing messages" in job.stderr:
            problems.append("journalctl does not show %s's entries to this user: %s"
                            % (unit, job.stderr.splitlines()[0]))
        return job

    def main_read(tail, start_us):
        counts = Tally(known, export=True, probe_origin=probe_origin)
        # The main read gives the window too when it starts before it.
        covers = start_us is not None and start_us <= window_us
        window_tally = Tally(export=True, probe_origin=probe_origin) if covers else None
        return read(tail, counts, clock, window_tally), counts, window_tally

    if cursor:
        job, tally, window_tally = main_read(["--after-cursor", cursor], _cursor_time_us(cursor))
        if job.error and "cursor" in job.error.lower():
            problems.append("journalctl refused the saved cursor (%s); read from %s instead" % (
                job.error, "the end" if first_run == "end" else "the last %d h" % (FIRST_RUN_SPAN_S // 3600)))
            cursor = None
    if not cursor:
        if first_run == "end":
            job, tally, window_tally = main_read(["-n", "0", "--show-cursor"], None)
        else:
            job, tally, window_tally = main_read(since_first, int(now - FIRST_RUN_SPAN_S) * 1000000)
    if job.error:
        problems.append(job.error)
    complete = job.complete
    window = None
    if job.started:
        if window_tally is not None and complete:
            window = dict(window_tally.window(), complete=True)
        else:
            window_clock = _Clock(max(clock.deadline - time.monotonic(), WINDOW_MIN_BUDGET_S))
            counts = Tally(export=True, probe_origin=probe_origin)
            wjob = read(["--since", "@%.6f" % (window_us / 1000000.0)], counts, window_clock)
            if wjob.error and wjob.error not in problems:
                problems.append(wjob.error)
            window = dict(counts.window(), complete=wjob.complete)
        window.update(seconds=int(window_s), since=iso_from_us(window_us))
    seconds, behind = (0.0, 0) if complete else (None, 0)
    if not complete and job.last_us is not None:
        newest = read(["-n", "1"], Tally(export=True), _Clock(WINDOW_MIN_BUDGET_S)).last_us
        if newest is None:
            newest = int(now * 1000000)
        seconds = round(max(newest - job.last_us, 0) / 1000000.0, 1)
        span = (job.last_us - job.first_us) / 1000000.0
        # The journal does not say how many bytes are left: estimated from
        # the bytes per second of journal time of the part read.
        behind = int(tally.bytes / span * seconds) if span > 0 else tally.bytes
    result = _base_result(tally, top, clock, problems, [], {"cursor": job.cursor or cursor}, complete, behind, seconds)
    result["backlog"]["bytes_estimated"] = not complete
    if job.first_us is not None:
        result["first_time"], result["last_time"] = iso_from_us(job.first_us), iso_from_us(job.last_us)
    else:
        result["first_time"] = result["last_time"] = None
    result["window"] = window
    result["source"] = "journal"
    return result
