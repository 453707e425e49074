#!/usr/bin/env python3
"""Print a short summary of a run report (JSON written by the report role)."""

import json
import os
import sys


def main(argv):
    if len(argv) != 2:
        print("usage: summary.py REPORT.json", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as exc:
        print("no report to summarise (%s): the run stopped before writing it" % exc)
        return 1
    real = os.path.realpath(path)
    print("BeMore %s run on %s: %s (worst severity %s)" % (
        report["schedule"], report["environment"], report["worst_status"].upper(), report["worst_severity"]))
    for host, data in sorted(report["hosts"].items()):
        for step in data["steps"]:
            print("  %-10s %-18s %-14s %s" % (host, step["step"], step["status"], step["summary"][:110]))
        if not data["completed"]:
            print("  %-10s %-18s %-8s %s" % (host, "(run)", "failed", "the run did not complete on this host"))
    base = os.path.splitext(real)[0]
    print("full report: %s.md" % base)
    if os.path.exists(base + ".html"):
        print("html report: %s.html (open it in a browser)" % base)
    print("json report: %s" % real)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
