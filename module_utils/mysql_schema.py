# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The schema mysql_maintenance works on: which table a name means (the
guide's model names are not the table names), the sizes and fragmentation
of its tables, and the statements run on them, always with names checked
against IDENTIFIER and backtick-quoted.
"""

from __future__ import annotations

import re

from ansible.module_utils.mysql_connect import MySQLError

MB = 1024.0 * 1024.0
IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]{1,64}\Z")
ARROW = u"\u2192"


def quote_identifier(name):
    """Backtick-quote a name already checked against IDENTIFIER."""
    if not IDENTIFIER.match(name or ""):
        raise ValueError("%r does not look like a table name (letters, digits, '_' and '$', at most 64)" % name)
    return "`%s`" % name.replace("`", "``")


def table_key(name):
    """Key of an identifier that ignores case and underscores: UserPreferences and user_preferences agree."""
    return name.lower().replace("_", "")


def name_forms(key):
    """The key and its English singular and plural forms, as Sequelize pluralizes model names."""
    forms = {key, key + "s", key + "es"}
    if key.endswith("y"):
        forms.add(key[:-1] + "ies")
    if key.endswith("ies"):
        forms.add(key[:-3] + "y")
    if key.endswith("es"):
        forms.add(key[:-2])
    if key.endswith("s"):
        forms.add(key[:-1])
    forms.discard("")
    return forms


def resolve_tables(requested, existing, schema):
    """Map each requested name to the one table of ``existing`` that it names.

    A table spelled exactly as given wins (MySQL's own reading on Linux);
    otherwise the name matches the tables whose name agrees ignoring case
    and underscores, in the singular or the plural (the guide's model name
    ``User`` is the table ``users``). Only tables whose names look like
    identifiers can match, so an odd name in the schema is never picked by
    a loose match. Returns {requested: table}; raises ValueError naming the
    schema and its tables when a name matches none, or more than one.
    """
    existing = sorted(existing)
    candidates = [t for t in existing if IDENTIFIER.match(t)]
    mapping, problems = {}, []
    for name in requested:
        if not IDENTIFIER.match(name or ""):
            problems.append("%r does not look like a table name" % (name,))
            continue
        if name in existing:
            mapping[name] = name
            continue
        forms = name_forms(table_key(name))
        matches = [t for t in candidates if table_key(t) in forms]
        if len(matches) == 1:
            mapping[name] = matches[0]
        elif not matches:
            problems.append("%s matches no table" % name)
        else:
            problems.append("%s is ambiguous, it matches %s (name the table exactly)" % (name, " and ".join(matches)))
    if problems:
        shown = ", ".join(existing[:50]) + (" and %d more" % (len(existing) - 50) if len(existing) > 50 else "")
        raise ValueError("refusing the table names for schema %r: %s; the schema's tables are: %s"
                         % (schema, "; ".join(problems), shown or "(none)"))
    return mapping


def mapping_text(mapping):
    """'User → users, Session → sessions' (a name that is the table itself shows once)."""
    return ", ".join(name if name == table else "%s %s %s" % (name, ARROW, table) for name, table in mapping.items())


def table_row(name, engine, rows, data, index, free, fulltext):
    data, index, free = int(data or 0), int(index or 0), int(free or 0)
    allocated = data + index + free
    return {"table": name, "engine": engine, "rows": int(rows or 0), "data_mb": round(data / MB, 2),
            "index_mb": round(index / MB, 2), "total_mb": round((data + index) / MB, 2),
            "free_mb": round(free / MB, 2), "fragmentation": round(free / allocated, 3) if allocated else 0.0,
            "fulltext": fulltext, "_bytes": data + index}


def totals(rows):
    return {"tables": len(rows), "rows": sum(r["rows"] for r in rows),
            "data_mb": round(sum(r["data_mb"] for r in rows), 2), "index_mb": round(sum(r["index_mb"] for r in rows), 2),
            "total_mb": round(sum(r["total_mb"] for r in rows), 2), "free_mb": round(sum(r["free_mb"] for r in rows), 2)}


def public(row):
    return {k: v for k, v in row.items() if not k.startswith("_")}


def fragmented(row, min_free_mb, min_fragmentation):
    """Whether OPTIMIZE is worth a rebuild: enough MB to reclaim and a large enough share of the table."""
    return row["free_mb"] >= min_free_mb and row["fragmentation"] >= min_fragmentation


class Maintenance(object):
    def __init__(self, conn, schema):
        self.conn = conn
        self.schema = schema

    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def version(self):
        return self.query("SELECT VERSION()")[0][0]

    def schema_exists(self):
        return bool(self.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (self.schema,)))

    def base_tables(self):
        return [r[0] for r in self.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (self.schema,))]

    def fulltext_tables(self):
        return sorted(r[0] for r in self.query(
            "SELECT DISTINCT TABLE_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND INDEX_TYPE = 'FULLTEXT'", (self.schema,)))

    def report(self):
        try:  # MySQL 8 caches these figures for a day unless told otherwise.
            self.query("SET SESSION information_schema_stats_expiry = 0")
        except MySQLError:
            pass
        fulltext = set(self.fulltext_tables())
        rows = [table_row(r[0], r[1], r[2], r[3], r[4], r[5], r[0] in fulltext) for r in self.query(
            "SELECT TABLE_NAME, ENGINE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH, DATA_FREE "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (self.schema,))]
        rows.sort(key=lambda r: (-r["_bytes"], r["table"]))
        return rows

    def resolve(self, names):
        """The tables ``names`` mean, in the schema's spelling, without repeats."""
        mapping = resolve_tables(names, self.base_tables(), self.schema)
        return mapping, list(dict.fromkeys(mapping[n] for n in names))

    def run_table_statement(self, statement, table, no_write_to_binlog=False):
        option = " NO_WRITE_TO_BINLOG" if no_write_to_binlog else ""
        sql = "%s%s TABLE %s.%s" % (statement, option, quote_identifier(self.schema), quote_identifier(table))
        rows = self.query(sql)
        messages = [{"op": r[1], "type": r[2], "text": r[3]} for r in rows]
        ok = not any(m["type"].lower() == "error" for m in messages) and any(
            m["type"].lower() == "status" and m["text"].lower() in ("ok", "table is already up to date")
            for m in messages)
        return messages, ok

    def datadir(self):
        return self.query("SELECT @@datadir")[0][0]
