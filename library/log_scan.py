#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: log_scan
short_description: Review the BeMore backend's log lines written since the last run, across rotations
description:
  - Reads what the backend wrote to stdout/stderr since the previous run, from
    log files or from a systemd unit's journal, and counts lines, requests
    (morgan's access lines) by status class, and the ErrorHandler's lines by
    level (C(INFO), C(WARN), C(ERROR), C(CRITICAL)).
  - Groups the C(ERROR) and C(CRITICAL) lines by signature, "LEVEL [module] (TYPE) message"
    without colour codes and with ids, uuids, hex, numbers, e-mails, IP
    addresses, paths and quoted values replaced by placeholders. A C(CRITICAL)
    line's stack trace belongs to it (its first frame goes into the sample);
    a level word in any other line (the backend prints many, such as
    C(⏹️ [CRITICAL] Session end requested)) does not make an error.
  - Returns the position reached (I(position) for the next run) and which
    signatures were not seen before (I(known_signatures)), so a daily review
    never re-reports old lines.
  - A run stops after I(budget_s) seconds and keeps the offset or journal
    cursor it reached; RV(backlog) says how much is left, so a caller can tell
    a backlog that grows from one run to the next.
  - Follows rotations of files. A file renamed away (logrotate's default) is
    finished from the old position through its inode, also when the rotated
    copy was compressed; a file truncated in place (C(copytruncate)) is
    finished from the copy. Only whole lines are read; a line still being
    written is read next time.
  - Reads the journal with C(journalctl -u UNIT -o export --output-fields=MESSAGE)
    after the saved cursor; export prints every entry's cursor, so a run cut
    short resumes exactly after the last entry it counted. A unit read for
    the first time starts one day back (I(first_run=start)) or at the end of
    its journal (I(first_run=end)).
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
    description: The RV(position) this module returned in the previous run; empty for the first run.
    type: dict
    default: {}
  known_signatures:
    description: Error signatures seen in earlier runs.
    type: list
    elements: str
    default: []
  first_run:
    description:
      - Where a file or journal never read before starts.
      - C(start) reads a file from its beginning and a journal from one day back; C(end) reads only what is
        written from now on.
    type: str
    choices: [start, end]
    default: start
  budget_s:
    description:
      - Seconds a run may read for. A run that stops early keeps the position it reached and reports the rest
        in RV(backlog); the next run goes on from there. At least one chunk (8 MiB) is read per run.
      - For the journal, the separate read of RV(window) may take up to 10 s more.
    type: float
    default: 60
  window_s:
    description: Length of the journal's RV(window), the latest seconds by the journal's own timestamps.
    type: int
    default: 300
  max_bytes:
    description: Deprecated and ignored; I(budget_s) limits a run by time.
    type: int
  error_pattern:
    description:
      - Deprecated and ignored. The backend's error lines are recognised by their layout (level, time, module
        and type), which a pattern over the line cannot tell from other lines.
    type: str
  warn_pattern:
    description: Deprecated and ignored, like I(error_pattern).
    type: str
  top:
    description: Number of signatures in RV(top_signatures).
    type: int
    default: 10
  probe_origin:
    description:
      - The runbook's CORS probe origin (C(api_security_foreign_origin)). The backend's error line refusing exactly this
        origin is left out of the errors and counted apart; an origin that only starts alike is counted.
      - Null is the runbook's default probe origin C(https://bemore-runbook-probe.invalid).
    type: str
extends_documentation_fragment:
  - bemore_attributes.readonly
notes:
  - The journal needs C(journalctl) on the host and a user that may read the unit's entries (root, or the
    C(systemd-journal) or C(adm) group).
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Review the log lines since the last run
  log_scan:
    files: [/srv/bemore/app/logs/app.log]
    position: "{{ previous.data.position | default({}) }}"
    known_signatures: "{{ previous.data.signatures | default([]) }}"
  register: review

- name: Review the backend's journal, at most 30 seconds a run
  log_scan:
    journal_unit: bemore
    position: "{{ previous.data.position | default({}) }}"
    budget_s: 30
  register: review

- name: Say when the review falls further behind
  ansible.builtin.debug:
    msg: "{{ review.backlog.bytes }} bytes ({{ review.backlog.seconds_behind }} s) left to read"
  when: not review.backlog.complete
"""

RETURN = r"""
source:
  description: Where the lines came from, C(files) or C(journal).
  returned: always
  type: str
  sample: journal
lines:
  description: Whole lines read in this run (journal entries for the journal), stack traces included.
  returned: always
  type: int
  sample: 41230
bytes:
  description: Bytes read in this run (of C(journalctl)'s export output for the journal).
  returned: always
  type: int
requests:
  description: morgan access lines, one per request.
  returned: always
  type: int
status:
  description: Access lines by status class. A request closed before its response is in RV(status_other).
  returned: always
  type: dict
  sample: {"2xx": 40110, "3xx": 12, "4xx": 96, "5xx": 3}
status_other:
  description: Access lines with a 1xx status or none (C(-), the client went away first).
  returned: always
  type: int
levels:
  description: ErrorHandler lines by level.
  returned: always
  type: dict
  sample: {"INFO": 0, "WARN": 4, "ERROR": 11, "CRITICAL": 1}
errors:
  description: ERROR and CRITICAL lines.
  returned: always
  type: int
signatures:
  description: Every error signature of this run with its count, one sample line and whether it is new.
  returned: always
  type: list
  elements: dict
  contains:
    signature:
      description: The line as "LEVEL [module] (TYPE) message", variable parts as placeholders.
      type: str
    level:
      description: C(ERROR) or C(CRITICAL).
      type: str
    module:
      description: The module the backend named.
      type: str
    type:
      description: The backend's error type (C(NETWORK), C(VALIDATION), C(AUTH), C(DATABASE), ...).
      type: str
    count:
      description: Lines with this signature.
      type: int
    sample:
      description: The first such line without colour codes (at most 500 characters); a CRITICAL's with its first stack frame.
      type: str
    new:
      description: Whether the signature is not in I(known_signatures).
      type: bool
    last_time:
      description: The backend's time of the last such line.
      type: str
  sample: [{"signature": "ERROR [session-end] (UNKNOWN) 세션을 찾을 수 없습니다: <session>", "level": "ERROR",
            "module": "session-end", "type": "UNKNOWN", "count": 2, "new": true,
            "sample": "[ERROR] 2026-12-02T09:46:05.179Z [session-end] (UNKNOWN) 세션을 찾을 수 없습니다: sess_1796204570192_374e720d",
            "last_time": "2026-12-02T09:46:07.003Z"}]
top_signatures:
  description: The most frequent signatures of this run (I(top) of RV(signatures)).
  returned: always
  type: list
  elements: dict
new_signatures:
  description: Signatures not in I(known_signatures).
  returned: always
  type: list
  elements: str
signatures_overflow:
  description: Error lines not grouped because the run already held 1000 distinct signatures.
  returned: always
  type: int
first_time:
  description: Earliest time read, from the backend's error lines (files) or the journal's timestamps; null when none.
  returned: always
  type: str
  sample: "2026-12-02T09:46:05.110Z"
last_time:
  description: Latest time read, like RV(first_time).
  returned: always
  type: str
error_rate:
  description:
    - The guide's error rate in percent, errors per request (module_utils C(bemore_steps.log_error_rate)) over
      RV(window) where there is one, else over all lines read; the ERROR/CRITICAL lines, or the 5xx access lines
      where the log holds none. Null without a request.
  returned: always
  type: float
  sample: 0.0586
window:
  description:
    - For the journal, the requests, ERROR/CRITICAL lines and status classes of the last I(window_s) seconds by
      the journal's timestamps, C(complete) false when that read ran out of time; null for files, whose access
      lines carry no time.
  returned: always
  type: dict
  sample: {"seconds": 300, "since": "2026-12-02T09:41:05.000Z", "requests": 5120, "errors": 3,
           "status": {"2xx": 5100, "3xx": 0, "4xx": 17, "5xx": 3}, "complete": true}
rotations:
  description: Files found rotated since the previous run, and how they were finished.
  returned: always
  type: list
  elements: dict
  sample: [{"file": "/srv/bemore/app/logs/app.log", "how": "rotated, renamed to app.log.1", "lines_from_old": 2}]
position:
  description: Position reached, to pass as I(position) next time (C(files) with offsets by path, or C(cursor)).
  returned: always
  type: dict
backlog:
  description:
    - What is left to read because the run ran out of time. C(bytes) (estimated from the rate read for the
      journal, C(bytes_estimated)), C(seconds_behind) (log time between the last line read and the newest),
      C(complete) true when everything was read.
  returned: always
  type: dict
  sample: {"bytes": 0, "seconds_behind": 0.0, "complete": true}
elapsed_s:
  description: Seconds the scan took.
  returned: always
  type: float
problems:
  description: Files or a journal that could not be read, one sentence each.
  returned: always
  type: list
  elements: str
lines_read:
  description: Same as RV(lines), for playbooks written for the earlier version of this module.
  returned: always
  type: int
counts:
  description: C(error) (RV(errors)) and C(warn) (WARN lines), for playbooks written for the earlier version.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_logs import scan_files, scan_journal
from ansible.module_utils.bemore_steps import log_error_rate
from ansible.module_utils.runbook_clock import now as clock_now


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="path", default=[]),
            journal_unit=dict(type="str"),
            position=dict(type="dict", default={}),
            known_signatures=dict(type="list", elements="str", default=[], no_log=False),
            first_run=dict(type="str", choices=["start", "end"], default="start"),
            budget_s=dict(type="float", default=60.0),
            window_s=dict(type="int", default=300),
            max_bytes=dict(type="int"),
            error_pattern=dict(type="str"),
            warn_pattern=dict(type="str"),
            top=dict(type="int", default=10),
            probe_origin=dict(type="str"),
        ),
        # Not required_one_of: files defaults to [], so only the check below sees an empty pair.
        mutually_exclusive=[("files", "journal_unit")],
        supports_check_mode=True,
    )
    p = module.params
    if not p["files"] and not p["journal_unit"]:
        module.fail_json(msg="log_scan needs files (log file paths) or journal_unit (a systemd unit); both are empty")
    for path in p["files"]:
        if not os.path.isabs(path):
            module.fail_json(msg="files must be absolute paths, got %r" % path)
    if p["budget_s"] < 0:
        module.fail_json(msg="budget_s must be 0 or more seconds, got %s" % p["budget_s"])
    if p["window_s"] <= 0:
        module.fail_json(msg="window_s must be a positive number of seconds, got %s" % p["window_s"])
    if p["top"] < 0:
        module.fail_json(msg="top must be 0 or more, got %s" % p["top"])
    if p["max_bytes"] is not None:
        module.deprecate("log_scan ignores max_bytes: budget_s limits a run by time instead", version="3.0.0")
    for name in ("error_pattern", "warn_pattern"):
        if p[name] is not None:
            module.deprecate("log_scan ignores %s: the backend's error lines are recognised by their layout" % name,
                             version="3.0.0")
    if p["journal_unit"]:
        # A missing journalctl is reported in problems, like an unreadable file.
        journalctl = module.get_bin_path("journalctl") or "journalctl"
        result = scan_journal(p["journal_unit"], p["position"], first_run=p["first_run"], budget_s=p["budget_s"],
                              window_s=p["window_s"], known_signatures=p["known_signatures"], top=p["top"],
                              journalctl=journalctl, now=clock_now(), probe_origin=p["probe_origin"])
    else:
        result = scan_files(p["files"], p["position"], first_run=p["first_run"], budget_s=p["budget_s"],
                            known_signatures=p["known_signatures"], top=p["top"], now=clock_now(),
                            probe_origin=p["probe_origin"])
    result["error_rate"] = log_error_rate(result.get("window") or result)[0]
    result["lines_read"] = result["lines"]
    result["counts"] = {"error": result["errors"], "warn": result["levels"]["WARN"]}
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
