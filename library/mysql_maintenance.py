#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mysql_maintenance
short_description: Report MySQL/MariaDB table sizes, and OPTIMIZE, ANALYZE or CHECK tables safely
description:
  - C(report) lists every base table of a schema with engine, rows, data,
    index, total and free size in MB and its fragmentation, largest first,
    with totals; tables with FULLTEXT indexes (rebuilt by copying) are flagged.
  - C(optimize) runs C(OPTIMIZE TABLE) on the given tables, or on those whose
    free space crosses I(min_free_mb), and returns the sizes before and after
    and the server's own messages. Before each table it checks that the
    data directory has room for the rebuild (the table's size plus
    I(disk_margin_mb)) and skips the table with the reason when it has not.
  - C(analyze) and C(check) run C(ANALYZE TABLE) and C(CHECK TABLE).
  - C(verify_backup) checks a gzip-compressed SQL dump - it is complete gzip,
    not empty, and creates every table of the schema - before anything
    destructive relies on it.
  - C(ping) only connects and returns the server version.
  - Table names must look like identifiers and exist in the schema; anything
    else is refused before a statement runs, and names are always quoted as
    identifiers.
version_added: "1.0.0"
requirements:
  - PyMySQL
options:
  action:
    description: What to do.
    type: str
    choices: [ping, report, optimize, analyze, check, verify_backup]
    default: report
  schema:
    description: Schema (database) to work on.
    type: str
    default: bemore
  tables:
    description: Tables for C(optimize), C(analyze) and C(check); empty means every base table of the schema (C(optimize) then needs I(min_free_mb)).
    type: list
    elements: str
    default: []
  min_free_mb:
    description: With C(optimize), only tables with at least this much free (reclaimable) space in MB.
    type: float
  disk_margin_mb:
    description: Free disk needed in the data directory beyond the table's size before it is rebuilt.
    type: float
    default: 256
  disk_check:
    description:
      - Check the free disk of the server's data directory before each OPTIMIZE.
      - The directory must be visible where the module runs (the database host);
        when it is not, tables are skipped with the reason unless this is false.
    type: bool
    default: true
  no_write_to_binlog:
    description: Add C(NO_WRITE_TO_BINLOG) so replicas do not repeat the statement.
    type: bool
    default: false
  backup_file:
    description: The dump to check, for C(verify_backup).
    type: path
  login_host:
    description: Host of the server.
    type: str
    default: localhost
  login_port:
    description: TCP port of the server.
    type: int
    default: 3306
  login_user:
    description: User to connect as.
    type: str
  login_password:
    description: Password of I(login_user).
    type: str
  login_unix_socket:
    description: Unix socket to connect through instead of TCP.
    type: str
  config_file:
    description: Option file with the client settings (C([client]) section), for example C(~/.my.cnf); used when it exists.
    type: path
    default: ~/.my.cnf
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
  ca_cert:
    description: CA certificate that signs the server's certificate (enables TLS).
    type: path
  client_cert:
    description: Client certificate for TLS.
    type: path
  client_key:
    description: Client key for TLS.
    type: path
  check_hostname:
    description: Check the server's TLS host name.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: C(optimize), C(analyze) and C(check) report what they would run and run nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - On InnoDB, OPTIMIZE rebuilds the table ("doing recreate + analyze instead"), which needs free disk about the size of the table.
  - Connection errors name host, port, user and schema, never the password.
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Report table sizes of the bemore schema
  mysql_maintenance:
    action: report
    schema: bemore
    login_host: 127.0.0.1
    login_user: maint
    login_password: "{{ vault_db_password }}"

- name: Optimize User and Session when they have at least 1 MB to reclaim
  mysql_maintenance:
    action: optimize
    tables: [User, Session]
    min_free_mb: 1
"""

RETURN = r"""
server_version:
  description: Version of the server.
  returned: always
  type: str
tables:
  description: For C(report), one entry per base table, largest first.
  returned: when action is report or optimize
  type: list
  elements: dict
  sample: [{table: Session, engine: InnoDB, rows: 1000, data_mb: 1.52, index_mb: 0.03, total_mb: 1.55,
            free_mb: 4.0, fragmentation: 0.72, fulltext: false}]
totals:
  description: Sums over the tables (rows, data_mb, index_mb, total_mb, free_mb).
  returned: when action is report or optimize
  type: dict
fulltext_tables:
  description: Tables with FULLTEXT indexes.
  returned: when action is report
  type: list
  elements: str
optimized:
  description: Tables optimized (or, in check mode, that would be), with sizes before and after and the server's messages.
  returned: when action is optimize
  type: list
  elements: dict
not_optimized:
  description: Tables passed over, with the reason (no space to reclaim, not enough free disk).
  returned: when action is optimize
  type: list
  elements: dict
results:
  description: For C(analyze) and C(check), the server's messages per table and whether it reported ok.
  returned: when action is analyze or check
  type: list
  elements: dict
backup:
  description: For C(verify_backup), size, tables found and tables missing.
  returned: when action is verify_backup
  type: dict
"""

import gzip
import os
import re
import zlib

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import pymysql
    HAS_PYMYSQL = True
except ImportError:
    HAS_PYMYSQL = False

MB = 1024.0 * 1024.0
IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


def quote_identifier(name):
    """Backtick-quote a name already checked against IDENTIFIER."""
    if not IDENTIFIER.match(name or ""):
        raise ValueError("%r does not look like a table name (letters, digits, '_' and '$', at most 64)" % name)
    return "`%s`" % name.replace("`", "``")


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

    def fulltext_tables(self):
        return sorted(r[0] for r in self.query(
            "SELECT DISTINCT TABLE_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND INDEX_TYPE = 'FULLTEXT'", (self.schema,)))

    def report(self):
        try:  # MySQL 8 caches these figures for a day unless told otherwise.
            self.query("SET SESSION information_schema_stats_expiry = 0")
        except pymysql.MySQLError:
            pass
        fulltext = set(self.fulltext_tables())
        rows = [table_row(r[0], r[1], r[2], r[3], r[4], r[5], r[0] in fulltext) for r in self.query(
            "SELECT TABLE_NAME, ENGINE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH, DATA_FREE "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (self.schema,))]
        rows.sort(key=lambda r: (-r["_bytes"], r["table"]))
        return rows

    def resolve(self, names):
        """Check names against the schema; return them in the schema's spelling."""
        existing = {r[0] for r in self.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (self.schema,))}
        bad = [n for n in names if not IDENTIFIER.match(n or "")]
        if bad:
            raise ValueError("refusing table name(s) that do not look like identifiers: %s"
                             % ", ".join(repr(n) for n in bad))
        missing = [n for n in names if n not in existing]
        if missing:
            raise ValueError("no such table(s) in schema %r: %s" % (self.schema, ", ".join(missing)))
        return list(dict.fromkeys(names))

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


def free_disk_mb(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / MB


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
    wanted = {t: re.compile(r"CREATE TABLE `%s`" % re.escape(t)) for t in tables}
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


def connect(module):
    p = module.params
    kwargs = {"user": p["login_user"], "password": p["login_password"] or "", "connect_timeout": p["connect_timeout"],
              "autocommit": True, "charset": "utf8mb4"}
    config_file = os.path.expanduser(p["config_file"]) if p["config_file"] else None
    if config_file and os.path.exists(config_file):
        kwargs["read_default_file"] = config_file
    if p["login_unix_socket"]:
        kwargs["unix_socket"] = p["login_unix_socket"]
    else:
        kwargs["host"], kwargs["port"] = p["login_host"], p["login_port"]
    if p["ca_cert"] or p["client_cert"]:
        kwargs["ssl"] = {"ca": p["ca_cert"], "cert": p["client_cert"], "key": p["client_key"],
                         "check_hostname": p["check_hostname"]}
    if kwargs["user"] is None:
        del kwargs["user"]
    where = p["login_unix_socket"] or "%s:%s" % (p["login_host"], p["login_port"])
    try:
        return pymysql.connect(**kwargs), where
    except pymysql.MySQLError as exc:
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        if p["login_password"]:
            reason = reason.replace(p["login_password"], "********")
        module.fail_json(msg="cannot connect to MySQL at %s as %s for schema %r: %s"
                         % (where, p["login_user"] or "(default user)", p["schema"], reason))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", default="report",
                        choices=["ping", "report", "optimize", "analyze", "check", "verify_backup"]),
            schema=dict(type="str", default="bemore"),
            tables=dict(type="list", elements="str", default=[]),
            min_free_mb=dict(type="float"),
            disk_margin_mb=dict(type="float", default=256.0),
            disk_check=dict(type="bool", default=True),
            no_write_to_binlog=dict(type="bool", default=False),
            backup_file=dict(type="path"),
            login_host=dict(type="str", default="localhost"),
            login_port=dict(type="int", default=3306),
            login_user=dict(type="str"),
            login_password=dict(type="str", no_log=True),
            login_unix_socket=dict(type="str"),
            config_file=dict(type="path", default="~/.my.cnf"),
            connect_timeout=dict(type="int", default=10),
            ca_cert=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path"),
            check_hostname=dict(type="bool", default=True),
        ),
        required_if=[("action", "verify_backup", ["backup_file"])],
        supports_check_mode=True,
    )
    if not HAS_PYMYSQL:
        module.fail_json(msg=missing_required_lib("PyMySQL"))
    p = module.params
    action = p["action"]
    if not IDENTIFIER.match(p["schema"] or ""):
        module.fail_json(msg="schema %r does not look like a schema name" % p["schema"])
    if action == "optimize" and not p["tables"] and p["min_free_mb"] is None:
        module.fail_json(msg="optimize needs tables, or min_free_mb to pick the fragmented ones")
    conn, where = connect(module)
    m = Maintenance(conn, p["schema"])
    result = {"changed": False, "server_version": m.version(), "schema": p["schema"]}
    try:
        if action == "ping":
            result["schema_exists"] = m.schema_exists()
            module.exit_json(**result)
        if not m.schema_exists():
            module.fail_json(msg="schema %r does not exist on %s" % (p["schema"], where), **result)
        try:
            tables = m.resolve(p["tables"])
        except ValueError as exc:
            module.fail_json(msg=str(exc), **result)
        if action == "report":
            rows = m.report()
            result.update(tables=[public(r) for r in rows], totals=totals(rows),
                          fulltext_tables=[r["table"] for r in rows if r["fulltext"]])
        elif action == "verify_backup":
            expected = tables or [r["table"] for r in m.report()]
            ok, facts = verify_backup(p["backup_file"], expected)
            result["backup"] = facts
            if not ok:
                module.fail_json(msg="backup %s is not usable: %s" % (p["backup_file"], "; ".join(facts["problems"])),
                                 **result)
        elif action in ("analyze", "check"):
            names = tables or [r["table"] for r in m.report()]
            result["results"] = []
            for name in names:
                if module.check_mode:
                    result["results"].append({"table": name, "would_run": True})
                    continue
                messages, ok = m.run_table_statement(action.upper(), name)
                result["results"].append({"table": name, "messages": messages, "ok": ok})
            result["all_ok"] = all(r.get("ok", True) for r in result["results"])
        elif action == "optimize":
            before = {r["table"]: r for r in m.report()}
            names = tables or sorted(before)
            optimized, passed_over = [], []
            datadir = m.datadir() if p["disk_check"] else None
            for name in names:
                row = before[name]
                if p["min_free_mb"] is not None and row["free_mb"] < p["min_free_mb"]:
                    passed_over.append({"table": name, "reason": "only %.2f MB free, below min_free_mb %.2f"
                                        % (row["free_mb"], p["min_free_mb"])})
                    continue
                if p["disk_check"]:
                    needed = row["_bytes"] / MB + p["disk_margin_mb"]
                    if not datadir or not os.path.isdir(datadir):
                        passed_over.append({"table": name, "reason": "cannot check the free disk of the data "
                                            "directory %s from this host; run on the database host or set "
                                            "disk_check=false" % datadir})
                        continue
                    available = free_disk_mb(datadir)
                    if available < needed:
                        passed_over.append({"table": name, "reason": "not enough free disk in %s for the rebuild: "
                                            "%.0f MB free, %.0f MB needed" % (datadir, available, needed)})
                        continue
                entry = {"table": name, "before": public(row)}
                if not module.check_mode:
                    entry["messages"], entry["ok"] = m.run_table_statement(
                        "OPTIMIZE", name, p["no_write_to_binlog"])
                optimized.append(entry)
            if optimized and not module.check_mode:
                after = {r["table"]: r for r in m.report()}
                for entry in optimized:
                    entry["after"] = public(after[entry["table"]])
            rows = sorted(before.values(), key=lambda r: (-r["_bytes"], r["table"]))
            result.update(optimized=optimized, not_optimized=passed_over, tables=[public(r) for r in rows],
                          totals=totals(rows), changed=bool(optimized))
            if any(e.get("ok") is False for e in optimized):
                module.fail_json(msg="OPTIMIZE reported an error for: %s" % ", ".join(
                    e["table"] for e in optimized if e.get("ok") is False), **result)
    except pymysql.MySQLError as exc:
        module.fail_json(msg="MySQL error on %s, schema %r: %s" % (where, p["schema"], exc), **result)
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
