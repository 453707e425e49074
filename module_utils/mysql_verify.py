# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a backup of the BeMore schema can be restored: a complete gzip
stream whose SQL creates every table the schema had. Read in chunks, so a
dump of any size is checked in constant memory.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib


def verify_backup(path, tables):
    """Check a gzip-compressed SQL dump; return (ok, facts)."""
    facts = {"file": path, "size": 0, "tables_found": [], "tables_missing": [], "problems": []}
    try:
        facts["size"] = os.path.getsize(path)
    except OSError as exc:
        facts["problems"].append("cannot read %s: %s" % (path, exc.strerror))
        return False, facts
    if facts["size"] == 0:
        facts["problems"].append("the backup file is empty")
        return False, facts
    wanted = {t: re.compile(r"CREATE TABLE `%s`" % re.escape(t.replace("`", "``"))) for t in tables}
    found = set()
    tail = ""
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                text = tail + chunk
                for name, pattern in wanted.items():
                    if name not in found and pattern.search(text):
                        found.add(name)
                tail = text[-200:]
    except (OSError, EOFError, zlib.error) as exc:
        facts["problems"].append("not a complete gzip file: %s" % exc)
        return False, facts
    facts["tables_found"] = sorted(found)
    facts["tables_missing"] = sorted(set(tables) - found)
    if facts["tables_missing"]:
        facts["problems"].append("the dump does not create: %s" % ", ".join(facts["tables_missing"]))
    return not facts["problems"], facts
