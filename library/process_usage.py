#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: process_usage
short_description: Read the memory and CPU use of a process from /proc
description:
  - Finds a process by PID, PID file, systemd unit (its C(MainPID)) or a
    regular expression on its command line, and reports its resident memory
    and its CPU use averaged over a short sampling interval.
  - Linux only (reads /proc).
version_added: "1.0.0"
options:
  pid:
    description: Process ID.
    type: int
  pid_file:
    description: File holding the process ID.
    type: path
  systemd_unit:
    description: systemd unit whose main process is measured.
    type: str
  cmdline_regex:
    description: Regular expression searched in the command line; the oldest matching process is measured.
    type: str
  sample_s:
    description: Seconds over which the CPU use is averaged.
    type: float
    default: 2
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: linux
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Measure the BeMore unit
  process_usage:
    systemd_unit: bemore
"""

RETURN = r"""
found:
  description: Whether the process was found.
  returned: always
  type: bool
pid:
  description: The process measured.
  returned: when found
  type: int
rss_mb:
  description: Resident memory in MiB.
  returned: when found
  type: float
cpu_percent:
  description: CPU use over the sampling interval, in percent of one core.
  returned: when found
  type: float
reason:
  description: Why no process was found.
  returned: when not found
  type: str
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_rss_kb(pid):
    with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def find_by_regex(pattern):
    regex = re.compile(pattern)
    best = None
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            started = os.stat("/proc/" + entry).st_mtime
        except OSError:
            continue
        if cmdline and regex.search(cmdline) and (best is None or started < best[1]):
            best = (int(entry), started)
    return best[0] if best else None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pid=dict(type="int"),
            pid_file=dict(type="path"),
            systemd_unit=dict(type="str"),
            cmdline_regex=dict(type="str"),
            sample_s=dict(type="float", default=2.0),
        ),
        required_one_of=[("pid", "pid_file", "systemd_unit", "cmdline_regex")],
        mutually_exclusive=[("pid", "pid_file", "systemd_unit", "cmdline_regex")],
        supports_check_mode=True,
    )
    p = module.params
    if not 0 < p["sample_s"] <= 60:
        module.fail_json(msg="sample_s must be between 0 and 60 seconds")
    pid, reason = p["pid"], None
    if p["pid_file"]:
        try:
            with open(p["pid_file"], encoding="ascii") as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError) as exc:
            reason = "cannot read a PID from %s: %s" % (p["pid_file"], exc)
    elif p["systemd_unit"]:
        systemctl = module.get_bin_path("systemctl")
        if not systemctl:
            reason = "systemctl is not available to find unit %s" % p["systemd_unit"]
        else:
            rc, out, err = module.run_command([systemctl, "show", "--property", "MainPID", "--value",
                                               p["systemd_unit"]])
            pid = int(out.strip() or 0) if rc == 0 and out.strip().isdigit() else 0
            if not pid:
                reason = "unit %s has no running main process" % p["systemd_unit"]
    elif p["cmdline_regex"]:
        try:
            pid = find_by_regex(p["cmdline_regex"])
        except re.error as exc:
            module.fail_json(msg="cmdline_regex is not a valid regular expression: %s" % exc)
        if not pid:
            reason = "no process matches %r" % p["cmdline_regex"]
    if reason is None and (not pid or not os.path.exists("/proc/%d" % pid)):
        reason = "process %s is not running" % pid
    if reason:
        module.exit_json(changed=False, found=False, reason=reason)
    try:
        first, started = cpu_ticks(pid), time.monotonic()
        time.sleep(p["sample_s"])
        second, elapsed = cpu_ticks(pid), time.monotonic() - started
        rss_kb = read_rss_kb(pid)
    except (OSError, ValueError, IndexError) as exc:
        module.exit_json(changed=False, found=False, reason="process %d vanished while measured: %s" % (pid, exc))
    module.exit_json(changed=False, found=True, pid=pid, rss_mb=round(rss_kb / 1024.0, 1),
                     cpu_percent=round(100.0 * (second - first) / CLOCK_TICKS / elapsed, 1))


if __name__ == "__main__":
    main()
