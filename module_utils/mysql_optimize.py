# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OPTIMIZE, ANALYZE and CHECK TABLE for mysql_maintenance: which tables are
worth a rebuild (fragmented enough, and room on the data directory's disk
for the copy), and the statements, never run in check mode.
"""

from __future__ import annotations

import os

from ansible.module_utils.mysql_connect import local_server
from ansible.module_utils.mysql_schema import IDENTIFIER, MB, fragmented, public


def free_disk_mb(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / MB


def optimize_tables(m, p, names, before, check_mode, min_free_mb, min_fragmentation=0.0):
    """OPTIMIZE the fragmented ones of ``names``; return (optimized, passed over)."""
    optimized, passed_over = [], []
    datadir = m.datadir() if p["disk_check"] else None
    for name in names:
        row = before[name]
        if not IDENTIFIER.match(name):
            # Only reachable with every table of a schema that holds an odd name.
            passed_over.append({"table": name, "reason": "the name does not look like an identifier, so it is "
                                "never put into a statement; optimize it by hand"})
            continue
        if not fragmented(row, min_free_mb, min_fragmentation):
            passed_over.append({"table": name, "reason": "not fragmented: %.2f MB free (%.0f %%), below %s MB or %.0f %%"
                                % (row["free_mb"], 100 * row["fragmentation"], min_free_mb, 100 * min_fragmentation)})
            continue
        if p["disk_check"]:
            needed = row["_bytes"] / MB + p["disk_margin_mb"]
            if not local_server(p) or not datadir or not os.path.isdir(datadir):
                passed_over.append({"table": name, "reason": "cannot check the free disk of the data directory %s "
                                    "from this host; run on the database host or set disk_check=false" % datadir})
                continue
            available = free_disk_mb(datadir)
            if available < needed:
                passed_over.append({"table": name, "reason": "not enough free disk in %s for the rebuild: "
                                    "%.0f MB free, %.0f MB needed" % (datadir, available, needed)})
                continue
        entry = {"table": name, "before": public(row)}
        if not check_mode:
            entry["messages"], entry["ok"] = m.run_table_statement("OPTIMIZE", name, p["no_write_to_binlog"])
        optimized.append(entry)
    if optimized and not check_mode:
        after = dict((r["table"], r) for r in m.report())
        for entry in optimized:
            entry["after"] = public(after[entry["table"]])
    return optimized, passed_over


def table_statements(m, action, names, check_mode):
    """ANALYZE or CHECK (``action``) each of ``names``; one result per table, ``would_run`` in check mode."""
    results = []
    for name in names:
        if not IDENTIFIER.match(name):
            results.append({"table": name, "ok": False, "messages": [
                {"op": action, "type": "error", "text": "the name does not look like an identifier; not run"}]})
            continue
        if check_mode:
            results.append({"table": name, "would_run": True})
            continue
        messages, ok = m.run_table_statement(action.upper(), name)
        results.append({"table": name, "messages": messages, "ok": ok})
    return results
