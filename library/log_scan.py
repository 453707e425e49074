#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: log_scan
short_description: Review the app's log lines written since the last run, across rotations
description:
  - Reads the lines the application logged since the previous run, from log
    files or from the systemd journal, counts ERROR and WARN lines, and groups
    the errors by signature (the message with numbers, ids, addresses, paths
    and quoted values replaced by placeholders).
  - Returns the position reached (I(position) for the next run) and which
    signatures were not seen before (I(known_signatures)), so a daily review
    never re-reports old lines.
  - Follows rotations. A file renamed away (logrotate's default) is finished
    from the old position through its inode, also when the rotated copy was
    compressed; a file truncated in place (C(copytruncate)) is finished from
    the copy. Only whole lines are read; a line still being written is read
    next time.
  - Read-only on the host. The caller keeps I(position) (on the control node).
version_added: "1.0.0"
options:
  files:
    description: Absolute paths of the current log files.
    type: list
    elements: path
    default: []
  journal_unit:
    description: Read this systemd unit's journal instead of files.
    type: str
  position:
    description: The C(position) this module returned in the previous run; empty for the first run.
    type: dict
    default: {}
  known_signatures:
    description: Error signatures seen in earlier runs.
    type: list
    elements: str
    default: []
  first_run:
    description: Where a file or journal never read before starts, C(start) (all of it) or C(end) (only new lines).
    type: str
    choices: [start, end]
    default: start
  error_pattern:
    description: Regular expression of an error line.
    type: str
    default: '\b(ERROR|FATAL|CRITICAL)\b'
  warn_pattern:
    description: Regular expression of a warning line.
    type: str
    default: '\bWARN(ING)?\b'
  max_bytes:
    description: Most bytes read in one run per file; the rest is read next time.
    type: int
    default: 67108864
  top:
    description: Number of signatures in RV(top_signatures).
    type: int
    default: 10
extends_documentation_fragment:
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Review the log lines since the last run
  log_scan:
    files: [/srv/bemore/app/logs/app.log]
    position: "{{ previous.data.position | default({}) }}"
    known_signatures: "{{ previous.data.signatures | default([]) }}"
  register: review
"""

RETURN = r"""
lines_read:
  description: Whole lines read in this run.
  returned: always
  type: int
counts:
  description: Error and warning lines among them.
  returned: always
  type: dict
  sample: {"error": 3, "warn": 1}
signatures:
  description: Every error signature of this run with its count, one sample line and whether it is new.
  returned: always
  type: list
  elements: dict
  sample: [{"signature": "ERROR [GEMINI] request to Gemini API timed out after <n>ms (session <hex>)",
            "count": 2, "new": true, "sample": "ERROR [GEMINI] request to Gemini API timed out after 30000ms (session 4f2a91)"}]
top_signatures:
  description: The most frequent signatures of this run.
  returned: always
  type: list
  elements: dict
new_signatures:
  description: Signatures not in I(known_signatures).
  returned: always
  type: list
  elements: str
rotations:
  description: Files found rotated since the previous run, and how they were finished.
  returned: always
  type: list
  elements: dict
position:
  description: Position reached, to pass as I(position) next time.
  returned: always
  type: dict
problems:
  description: Files that could not be read, one sentence each.
  returned: always
  type: list
  elements: str
"""

import glob
import gzip
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

TIMESTAMP = re.compile(r"^\s*(\[?\d{4}-\d{2}-\d{2}[T ][\d:.,]+(Z|[+-]\d{2}:?\d{2})?\]?|[A-Z][a-z]{2} [ \d]\d [\d:]{8})\s*")
REPLACEMENTS = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w<])(/[\w.@-]+)+/?"), "<path>"),
    (re.compile(r"\"[^\"]*\"|'[^']*'"), "<str>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
]
MAX_SIGNATURE = 300


def signature(line):
    """The message of ``line`` with its variable parts replaced by placeholders."""
    text = TIMESTAMP.sub("", line.strip(), count=1)
    for pattern, placeholder in REPLACEMENTS:
        text = pattern.sub(placeholder, text)
    return re.sub(r"\s+", " ", text)[:MAX_SIGNATURE]


def read_from(path, offset, max_bytes, opener=open):
    """Whole lines of ``path`` from ``offset``: (lines, new offset)."""
    with opener(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(max_bytes)
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    chunk = data[:end + 1]
    return chunk.decode("utf-8", "replace").splitlines(), offset + len(chunk)


def rotated_candidates(path):
    """Files logrotate may have moved ``path`` to, newest first."""
    names = set(glob.glob(glob.escape(path) + ".[0-9]*")) | set(glob.glob(glob.escape(path) + "-*"))
    return sorted(names, key=lambda n: os.stat(n).st_mtime if os.path.exists(n) else 0, reverse=True)


def _open_any(name):
    return gzip.open if name.endswith(".gz") else open


def finish_rotated(path, prev, max_bytes):
    """Lines of the previous file after ``prev['offset']``; (lines, how) or ([], reason)."""
    candidates = rotated_candidates(path)
    for name in candidates:  # renamed away: same inode
        try:
            st = os.stat(name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (prev.get("dev"), prev.get("ino")):
            lines, _ = read_from(name, prev.get("offset", 0), max_bytes)
            return lines, "renamed to %s" % os.path.basename(name)
    # Compressed already, or copied (copytruncate): the newest rotated copy
    # that is at least as long as what was read holds the rest.
    for name in candidates:
        try:
            opener = _open_any(name)
            with opener(name, "rb") as fh:
                fh.seek(prev.get("offset", 0))
                probe = fh.read(1)
            if probe or prev.get("offset", 0) == 0:
                lines, _ = read_from(name, prev.get("offset", 0), max_bytes, opener)
                return lines, "finished from %s" % os.path.basename(name)
        except (OSError, EOFError):
            continue
    return [], "rotated copy not found; lines after the last read may be missed"


def scan_file(path, prev, first_run, max_bytes):
    """(lines, new file state, rotation info or None, problem or None)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return [], prev, None, "%s: %s" % (path, exc.strerror)
    lines, rotation = [], None
    offset = prev.get("offset", 0) if prev else None
    if prev and (st is None or (st.st_dev, st.st_ino) != (prev.get("dev"), prev.get("ino"))):
        rest, how = finish_rotated(path, prev, max_bytes)
        lines += rest
        rotation = {"file": path, "how": "rotated, " + how, "lines_from_old": len(rest)}
        offset = 0
    elif prev and st is not None and st.st_size < offset:
        rest, how = finish_rotated(path, dict(prev, ino=None), max_bytes)
        lines += rest
        rotation = {"file": path, "how": "truncated (copytruncate), " + how, "lines_from_old": len(rest)}
        offset = 0
    if st is None:
        return lines, {}, rotation, None if prev else "%s does not exist" % path
    if offset is None:
        offset = 0 if first_run == "start" else st.st_size
    try:
        new_lines, new_offset = read_from(path, offset, max_bytes)
    except OSError as exc:
        return lines, prev, rotation, "%s: %s" % (path, exc.strerror)
    return lines + new_lines, {"dev": st.st_dev, "ino": st.st_ino, "offset": new_offset}, rotation, None


def scan_journal(module, unit, cursor, first_run):
    argv = [module.get_bin_path("journalctl", required=True), "-u", unit, "-o", "json", "--no-pager"]
    if cursor:
        argv += ["--after-cursor", cursor]
    elif first_run == "end":
        argv += ["-n", "0", "--show-cursor"]
    rc, out, err = module.run_command(argv)
    if rc != 0:
        return [], cursor, "journalctl -u %s failed: %s" % (unit, err.strip())
    lines, last = [], cursor
    for raw in out.splitlines():
        if raw.startswith("-- cursor: "):
            last = raw[len("-- cursor: "):].strip()
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        last = entry.get("__CURSOR", last)
        msg = entry.get("MESSAGE")
        if isinstance(msg, list):  # binary message: a list of bytes
            msg = bytes(msg).decode("utf-8", "replace")
        prio = str(entry.get("PRIORITY", "6"))
        level = "ERROR " if prio in ("0", "1", "2", "3") else ("WARN " if prio == "4" else "")
        lines.append(level + str(msg or ""))
    return lines, last, None


def review(lines, known, error_re, warn_re, top):
    counts = {"error": 0, "warn": 0}
    groups = {}
    known = set(known)
    for line in lines:
        if error_re.search(line):
            counts["error"] += 1
            sig = signature(line)
            group = groups.setdefault(sig, {"signature": sig, "count": 0, "sample": line.strip()[:500],
                                            "new": sig not in known})
            group["count"] += 1
        elif warn_re.search(line):
            counts["warn"] += 1
    signatures = sorted(groups.values(), key=lambda g: (-g["count"], g["signature"]))
    return {"counts": counts, "signatures": signatures, "top_signatures": signatures[:top],
            "new_signatures": [g["signature"] for g in signatures if g["new"]]}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="path", default=[]),
            journal_unit=dict(type="str"),
            position=dict(type="dict", default={}),
            known_signatures=dict(type="list", elements="str", default=[]),
            first_run=dict(type="str", choices=["start", "end"], default="start"),
            error_pattern=dict(type="str", default=r"\b(ERROR|FATAL|CRITICAL)\b"),
            warn_pattern=dict(type="str", default=r"\bWARN(ING)?\b"),
            max_bytes=dict(type="int", default=64 * 1024 * 1024),
            top=dict(type="int", default=10),
        ),
        mutually_exclusive=[("files", "journal_unit")],
        required_one_of=[("files", "journal_unit")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        error_re, warn_re = re.compile(p["error_pattern"]), re.compile(p["warn_pattern"])
    except re.error as exc:
        module.fail_json(msg="bad error_pattern or warn_pattern: %s" % exc)
    for path in p["files"]:
        if not os.path.isabs(path):
            module.fail_json(msg="files must be absolute paths, got %r" % path)
    old_state = p["position"] or {}
    new_state, lines, rotations, problems = {}, [], [], []
    if p["journal_unit"]:
        lines, cursor, problem = scan_journal(module, p["journal_unit"], old_state.get("cursor"), p["first_run"])
        new_state["cursor"] = cursor
        if problem:
            problems.append(problem)
    else:
        files_state = {}
        for path in p["files"]:
            got, file_state, rotation, problem = scan_file(path, (old_state.get("files") or {}).get(path),
                                                           p["first_run"], p["max_bytes"])
            lines += got
            if file_state:
                files_state[path] = file_state
            if rotation:
                rotations.append(rotation)
            if problem:
                problems.append(problem)
        new_state["files"] = files_state
    result = review(lines, p["known_signatures"], error_re, warn_re, p["top"])
    module.exit_json(changed=False, lines_read=len(lines), rotations=rotations, problems=problems,
                     position=new_state, **result)


if __name__ == "__main__":
    main()
