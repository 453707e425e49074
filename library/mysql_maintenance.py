#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mysql_maintenance
short_description: Back up a MySQL/MariaDB schema, report table sizes and OPTIMIZE fragmented tables safely
description:
  - C(maintain) is the runbook's database step in one run, decided in Python and returned as the
    report step under RV(step) - a verified private backup (C(mysqldump) reading its credentials from a
    0600 option file, never from its command line, compressed to a 0600 file that is renamed into place
    only when complete), old backups pruned to I(backup_keep), the table sizes and fragmentation, and
    C(OPTIMIZE TABLE) on the given tables that are fragmented. Nothing is optimized unless the backup was
    verified first. In check mode it reports what it would back up, prune and optimize and changes nothing.
    Problems of the database (unreachable, wrong credentials, a failed backup, an unknown table) become
    the step's status; only invalid options fail the task, before anything runs.
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
  - Table names name the backend's models or its tables - C(User) finds C(users), C(Session) finds
    C(sessions), C(UserPreferences) finds C(user_preferences) (see I(tables)). Names that do not look like
    identifiers are refused before anything connects, and names reach SQL only quoted as identifiers.
version_added: "1.0.0"
requirements:
  - PyMySQL
  - C(mysqldump) (or C(mariadb-dump)) on the host, for the backup of C(maintain)
options:
  action:
    description: What to do.
    type: str
    choices: [maintain, ping, report, optimize, analyze, check, verify_backup]
    default: report
  schema:
    description: Schema (database) to work on; letters, digits, C(_) and C($), at most 64.
    type: str
    default: bemore
  tables:
    description:
      - Tables for C(maintain), C(optimize), C(analyze) and C(check); empty means every base table of the
        schema (C(optimize) then needs I(min_free_mb)).
      - A table spelled exactly as given is taken; otherwise the one table whose name matches ignoring
        case and underscores, in the singular or the plural (C(User) - C(users), C(Feedback) - C(feedbacks),
        C(UserPreference) - C(user_preferences)). A name matching no table, or two, is refused with the
        schema's tables in the message.
    type: list
    elements: str
    default: []
  optimize:
    description: With C(maintain), run C(OPTIMIZE TABLE) on the fragmented ones of I(tables); false backs up and reports only.
    type: bool
    default: true
  min_free_mb:
    description:
      - With C(optimize), only tables with at least this much free (reclaimable) space in MB.
      - With C(maintain), a table is fragmented when it has at least this much free space (default 1)
        and at least I(min_fragmentation) of its space is free.
    type: float
  min_fragmentation:
    description: With C(maintain), the share of a table's space (data, index and free) that must be free, 0 to 1.
    type: float
    default: 0.1
  disk_margin_mb:
    description: Free disk needed in the data directory beyond the table's size before it is rebuilt.
    type: float
    default: 256
  disk_check:
    description:
      - Check the free disk of the server's data directory before each OPTIMIZE.
      - The directory must be visible where the module runs (the server is reached through a socket or on
        the loopback); otherwise tables are skipped with the reason unless this is false.
    type: bool
    default: true
  no_write_to_binlog:
    description: Add C(NO_WRITE_TO_BINLOG) so replicas do not repeat the statement.
    type: bool
    default: false
  backup:
    description: With C(maintain), back up the schema (and verify it) before anything else.
    type: bool
    default: true
  backup_dir:
    description:
      - With C(maintain), the folder of the backups, an absolute path; created with mode 0700 when missing
        (an existing folder keeps its mode; every backup file is 0600).
    type: path
    default: /var/backups/bemore-db
  backup_stamp_format:
    description:
      - strftime format (UTC) of the time stamp in the backup's name, C(<schema>-<stamp>.sql.gz). It decides
        how often a new backup is taken - one a day by default; a run finding this period's backup verifies
        and reuses it, and takes a new one when it does not verify.
    type: str
    default: "%Y%m%d"
  backup_keep:
    description: With C(maintain), backups of the schema kept in I(backup_dir), newest first; older ones are removed.
    type: int
    default: 7
  skip_unreachable:
    description:
      - With C(maintain), a server that cannot be reached or a schema that does not exist make the step
        C(skipped) (true) or C(failed) (false). Wrong credentials are always C(failed).
      - False by default - a run that should back the database up and cannot has made no backup, which is a
        failure rated high. Skipping is an explicit choice, for an environment whose database is optional.
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
    description: C(maintain), C(optimize), C(analyze) and C(check) report what they would do and change nothing.
  diff_mode:
    support: none
    description: There is no diff of a database rebuild or a dump.
  platform:
    support: full
    description: Runs where the server's client tools are, usually the database or application host.
    platforms: posix
notes:
  - On InnoDB, OPTIMIZE rebuilds the table ("doing recreate + analyze instead"), which needs free disk about the size of the table.
  - Connection errors name host, port, user and schema, never the password.
  - C(mysqldump) reads the credentials from a 0600 option file given with C(--defaults-extra-file), removed
    afterwards; the user's own C(~/.my.cnf) is read after it and wins where both set a value.
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Back up the schema, report table sizes and optimize the guide's User and Session
  mysql_maintenance:
    action: maintain
    schema: bemore
    tables: [User, Session]
    backup_dir: /var/backups/bemore-db
    login_host: 127.0.0.1
    login_user: maint
    login_password: "{{ vault_db_password }}"
  register: db_maintenance_result

- name: Report table sizes of the bemore schema
  mysql_maintenance:
    action: report
    schema: bemore
    login_host: 127.0.0.1
    login_user: maint
    login_password: "{{ vault_db_password }}"
"""

RETURN = r"""
step:
  description:
    - For C(maintain), the finished report step C({step, status, severity, summary, figures, problems}).
    - status C(ok); C(warning) when a table could not be optimized (server error, no disk for the rebuild);
      C(critical) (severity high) when the backup failed or did not verify - nothing is optimized then;
      C(failed) for wrong credentials, a table name matching no table or two, or (without
      I(skip_unreachable)) an unreachable server or missing schema; C(skipped) for those two otherwise.
    - figures include C(table_map) (each name of I(tables) and its table), C(tables), C(totals), C(fragmented), C(optimized),
      C(not_optimized), C(backup_file) and C(backup).
  returned: when action is maintain
  type: dict
  sample: {"step": "db_maintenance", "status": "ok", "severity": "none",
           "summary": "backup verified: /var/backups/bemore-db/bemore-20261202.sql.gz (new, 0.3 MB); 6 tables ...",
           "figures": {"table_map": {"User": "users", "Session": "sessions"}}, "problems": []}
server_version:
  description: Version of the server.
  returned: when the server answered
  type: str
tables:
  description: For C(report), one entry per base table, largest first.
  returned: when action is report or optimize
  type: list
  elements: dict
  sample: [{table: sessions, engine: InnoDB, rows: 1000, data_mb: 1.52, index_mb: 0.03, total_mb: 1.55,
            free_mb: 4.0, fragmentation: 0.72, fulltext: false}]
table_map:
  description: Each name of I(tables) and the table it names.
  returned: when action is optimize, analyze or check with tables
  type: dict
  sample: {"User": "users", "Session": "sessions"}
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
import math
import os
import re
import shlex
import stat
import tempfile
import time
import zlib

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.bemore_steps import step as make_step
from ansible.module_utils.runbook_clock import now as clock_now

try:
    import pymysql
    HAS_PYMYSQL = True
except ImportError:
    HAS_PYMYSQL = False

MB = 1024.0 * 1024.0
IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]{1,64}\Z")
STEP = "db_maintenance"
ARROW = u"\u2192"
# Server error numbers: the credentials are wrong or lack the right to connect.
ACCESS_DENIED = (1044, 1045, 1698)
# The server is not there (no route, refused, unknown host, socket missing, gone at once).
UNREACHABLE = (2002, 2003, 2005, 2006, 2013)
DUMP_OPTIONS = ["--single-transaction", "--quick", "--routines", "--triggers",
                # Dumping tablespaces needs the PROCESS privilege (MySQL 8) that a
                # maintenance user rarely has; InnoDB's per-table files need none.
                "--no-tablespaces"]


def quote_identifier(name):
    """Backtick-quote a name already checked against IDENTIFIER."""
    if not IDENTIFIER.match(name or ""):
        raise ValueError("%r does not look like a table name (letters, digits, '_' and '$', at most 64)" % name)
    return "`%s`" % name.replace("`", "``")


# --- which table a name means ---------------------------------------------------

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


# --- inputs the argument spec cannot check -----------------------------------

def stamp_problem(fmt, now=None):
    """Why ``fmt`` cannot stamp a backup file name, or None."""
    try:
        stamp = time.strftime(fmt, time.gmtime(now))
    except (TypeError, ValueError) as exc:
        return "%r is not a strftime format: %s" % (fmt, exc)
    if not stamp.strip() or "/" in stamp or "\0" in stamp or stamp in (".", ".."):
        return "%r renders to %r, which cannot be part of a file name" % (fmt, stamp)
    if stamp == fmt:
        return "%r has no time field (%%Y, %%m, %%d, ...), so every backup would have the same name" % fmt
    return None


def input_problems(p):
    """Every option outside its range, as 'option: problem' lines (the same rules as the runbook's preflight)."""
    problems = []

    def number(name, low=None, high=None):
        value = p.get(name)
        if value is None:
            return
        if isinstance(value, float) and not math.isfinite(value):
            problems.append("%s must be a finite number, got %s" % (name, value))
            return
        if low is not None and value < low:
            problems.append("%s must be >= %s, got %s" % (name, low, value))
        if high is not None and value > high:
            problems.append("%s must be <= %s, got %s" % (name, high, value))

    if not IDENTIFIER.match(p.get("schema") or ""):
        problems.append("schema %r does not look like a schema name (letters, digits, '_' and '$', at most 64)"
                        % (p.get("schema"),))
    bad = [t for t in p.get("tables") or [] if not IDENTIFIER.match(t or "")]
    if bad:
        problems.append("tables: refusing table name(s) that do not look like identifiers (letters, digits, '_' "
                        "and '$', at most 64): %s" % ", ".join(repr(t) for t in bad))
    number("login_port", 1, 65535)
    number("connect_timeout", 1, 3600)
    number("min_free_mb", 0)
    number("min_fragmentation", 0, 1)
    number("disk_margin_mb", 0)
    socket_path = p.get("login_unix_socket")
    if socket_path and not socket_path.startswith("/"):
        problems.append("login_unix_socket must be an absolute path, got %r" % socket_path)
    if p.get("action") == "maintain" and p.get("backup"):
        number("backup_keep", 1)
        folder = p.get("backup_dir") or ""
        if not folder.startswith("/") or os.path.normpath(folder) == "/":
            problems.append("backup_dir must be an absolute path below /, got %r" % folder)
        why = stamp_problem(p.get("backup_stamp_format") or "")
        if why:
            problems.append("backup_stamp_format: " + why)
    return problems


# --- sizes --------------------------------------------------------------------

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


def free_disk_mb(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / MB


def local_server(p):
    """Whether the server's data directory can be on this host (socket or loopback)."""
    return bool(p["login_unix_socket"]) or p["login_host"] in ("localhost", "127.0.0.1", "::1")


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


# --- the backup -------------------------------------------------------------------

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


def option_value(value):
    """A value for a MySQL option file: double-quoted, with the escapes its parser reads."""
    return '"%s"' % (str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                     .replace("\r", "\\r").replace("\t", "\\t"))


def option_file_text(p):
    """The [client] section mysqldump reads the connection and the credentials from."""
    lines = ["[client]"]
    if p["login_user"]:
        lines.append("user=%s" % option_value(p["login_user"]))
    if p["login_password"]:
        lines.append("password=%s" % option_value(p["login_password"]))
    if p["login_unix_socket"]:
        lines += ["socket=%s" % option_value(p["login_unix_socket"]), "protocol=SOCKET"]
    else:
        lines += ["host=%s" % option_value(p["login_host"]), "port=%d" % p["login_port"], "protocol=TCP"]
    for key, name in (("ca_cert", "ssl-ca"), ("client_cert", "ssl-cert"), ("client_key", "ssl-key")):
        if p[key]:
            lines.append("%s=%s" % (name, option_value(p[key])))
    if p["ca_cert"] and p["check_hostname"]:
        lines.append("ssl-verify-server-cert")
    return "\n".join(lines) + "\n"


def fsync(path):
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def dump_schema(module, binary, path):
    """mysqldump the schema, gzip-compressed, into ``path`` (0600, complete or absent). Return an error or None."""
    p = module.params
    partial = path + ".partial"
    bash = module.get_bin_path("bash")
    if not bash:
        return "bash is needed for the dump pipeline and is not installed"
    # mkstemp creates the file 0600: the credentials are never readable by others.
    fd, cnf = tempfile.mkstemp(prefix="bemore-dump-", suffix=".cnf")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(option_file_text(p))
        try:
            os.unlink(partial)  # left by a run that was killed
        except FileNotFoundError:
            pass
        # --defaults-extra-file must come first; the password stays off the command line.
        argv = [binary, "--defaults-extra-file=" + cnf] + DUMP_OPTIONS + ["--databases", p["schema"]]
        # A pipe streams the dump of any size through gzip; pipefail makes a
        # mysqldump error fail it instead of leaving a short but valid gzip
        # file, noclobber never writes through a file put in its place, and
        # umask 077 keeps the dump its owner's only.
        command = "set -o pipefail -o noclobber; %s | gzip -c > %s" % (
            " ".join(shlex.quote(a) for a in argv), shlex.quote(partial))
        rc, _out, err = module.run_command(command, use_unsafe_shell=True, executable=bash, umask=0o077)
        if rc != 0:
            lines = [line for line in (err or "").strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else "no message"
            if p["login_password"]:
                reason = reason.replace(p["login_password"], "********")
            return "%s exited %d: %s" % (os.path.basename(binary), rc, reason)
        # On disk before it is renamed into place, and the rename too.
        fsync(partial)
        os.rename(partial, path)
        fsync(os.path.dirname(path))
        return None
    except OSError as exc:
        return "cannot write %s: %s" % (partial, exc.strerror or exc)
    finally:
        os.unlink(cnf)
        try:
            os.unlink(partial)
        except OSError:
            pass


def backups_of(folder, schema):
    """(mtime, path) of the regular files <schema>-*.sql.gz in ``folder``, newest first."""
    found = []
    prefix = schema + "-"
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".sql.gz")):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((st.st_mtime, path))
    return sorted(found, reverse=True)


def backup_schema(module, tables):
    """Take (or reuse) this period's backup, verify it, prune old ones. Return the backup facts."""
    p = module.params
    check_mode = module.check_mode
    folder = os.path.normpath(p["backup_dir"])
    path = os.path.join(folder, "%s-%s.sql.gz" % (p["schema"], time.strftime(p["backup_stamp_format"], time.gmtime(clock_now()))))
    facts = {"file": path, "action": None, "verified": False, "size": None, "tables_found": 0, "removed": [],
             "created_dir": False, "error": None}
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        facts["error"] = "cannot read %s: %s" % (path, exc.strerror)
        return facts
    if st is not None and not stat.S_ISREG(st.st_mode):
        facts["error"] = "%s exists and is not a regular file; refusing to write through it" % path
        return facts
    stale = None
    if st is not None:
        ok, found = verify_backup(path, tables)
        if ok:
            facts.update(action="reused", verified=True, size=found["size"], tables_found=len(found["tables_found"]))
        else:
            stale = "; ".join(found["problems"])
    if not facts["verified"]:
        facts["replaced_unverified"] = stale
        if check_mode:
            facts["action"] = "would_take"
        else:
            binary = module.get_bin_path("mysqldump") or module.get_bin_path("mariadb-dump")
            if not binary:
                facts["error"] = "neither mysqldump nor mariadb-dump is installed on this host"
                return facts
            if not os.path.isdir(folder):
                try:
                    os.makedirs(folder, 0o700)
                except OSError as exc:
                    facts["error"] = "cannot create the backup folder %s: %s" % (folder, exc.strerror or exc)
                    return facts
                # makedirs applies the umask; the folder of the dumps is its owner's only.
                os.chmod(folder, 0o700)
                facts["created_dir"] = True
            error = dump_schema(module, binary, path)
            if error:
                facts["error"] = error
                return facts
            ok, found = verify_backup(path, tables)
            facts.update(action="taken", size=found["size"], tables_found=len(found["tables_found"]))
            if not ok:
                facts["error"] = "the new backup %s does not verify: %s" % (path, "; ".join(found["problems"]))
                return facts
            facts["verified"] = True
    keep = p["backup_keep"]
    existing = [f for f in backups_of(folder, p["schema"]) if f[1] != path]
    # The period's backup counts towards what is kept, whether taken now or (check mode) not yet.
    for _mtime, old in existing[max(keep - 1, 0):]:
        if not check_mode:
            try:
                os.unlink(old)
            except OSError as exc:
                facts.setdefault("prune_errors", []).append("%s: %s" % (old, exc.strerror))
                continue
        facts["removed"].append(old)
    return facts


# --- the step -----------------------------------------------------------------------

def connection_step(kind, reason, skip_unreachable):
    """The step when the server or the schema is not usable; kind is denied, unreachable or missing."""
    if kind == "denied":
        return make_step(STEP, "failed", "high", "database maintenance could not log in, nothing was backed up: %s"
                         % reason, {"reason": reason}, [reason])
    if skip_unreachable and kind in ("unreachable", "missing"):
        return make_step(STEP, "skipped", "none", "skipped: no database reachable (%s)" % reason, {"reason": reason})
    return make_step(STEP, "failed", "high", "no backup: database maintenance could not run, nothing was backed up: %s"
                     % reason, {"reason": reason}, [reason])


def _backup_text(backup):
    if backup is None:
        return "no backup (backup off)"
    if backup["action"] == "would_take":
        text = "backup would be taken: %s" % backup["file"]
        if backup.get("replaced_unverified"):
            text += " (this period's file does not verify: %s)" % backup["replaced_unverified"]
        return text
    how = "new" if backup["action"] == "taken" else "reused, taken earlier this period"
    return "backup verified: %s (%s, %s)" % (backup["file"], how, human_size(backup["size"] or 0))


def human_size(size):
    if size < MB:
        return "%.0f KB" % max(size / 1024.0, 1)
    return "%.1f MB" % (size / MB)


def maintenance_step(facts):
    """The finished report step of one maintenance run.

    ``facts``: server, server_version, schema, check_mode, optimize (on or
    off), table_map ({name: table}), before / after (table rows), backup
    (None when off, else backup_schema's facts), optimized, not_optimized,
    fragmented (tables over the thresholds), thresholds, refused (a reason
    when the table names were refused: nothing ran).
    """
    check_mode = facts.get("check_mode")
    mapping = facts.get("table_map") or {}
    rows = facts.get("after") or facts.get("before") or []
    figures = {
        "server": facts.get("server"), "server_version": facts.get("server_version"), "schema": facts.get("schema"),
        "check_mode": bool(check_mode), "table_map": mapping, "tables": [public(r) for r in rows],
        "totals": totals(rows), "fulltext_tables": [r["table"] for r in rows if r.get("fulltext")],
        "fragmented": facts.get("fragmented") or [], "thresholds": facts.get("thresholds") or {},
        "optimize": bool(facts.get("optimize")), "optimized": facts.get("optimized") or [],
        "not_optimized": facts.get("not_optimized") or [], "backup": facts.get("backup"),
        "backup_file": None,
    }
    if facts.get("refused"):
        return make_step(STEP, "failed", "medium", "database maintenance refused, nothing was backed up or optimized: %s"
                         % facts["refused"], figures, [facts["refused"]])
    backup = facts.get("backup")
    parts, problems = [], []
    status, severity = "ok", "none"
    if backup is not None:
        if backup.get("error"):
            figures["backup_file"] = None
            reason = backup["error"]
            return make_step(STEP, "critical", "high", "backup failed, nothing was optimized: %s" % reason,
                             figures, ["backup failed: %s" % reason])
        figures["backup_file"] = backup["file"]
        parts.append(_backup_text(backup))
        if backup.get("removed"):
            parts.append("%s %d old backup(s)" % ("would remove" if check_mode else "removed", len(backup["removed"])))
        for error in backup.get("prune_errors") or []:
            problems.append("could not remove an old backup: %s" % error)
    else:
        parts.append(_backup_text(None))
    total = totals(rows)
    parts.append("%d tables, %.1f MB, %.1f MB free" % (total["tables"], total["total_mb"], total["free_mb"]))
    names_of = {}
    for name, table in mapping.items():
        names_of.setdefault(table, []).append(name)

    def label(table):
        return mapping_text(dict((n, table) for n in names_of.get(table, [table])))

    if facts.get("optimize"):
        done, failed = [], []
        for entry in facts.get("optimized") or []:
            text = label(entry["table"])
            if "after" in entry:
                text += " (%.1f %s %.1f MB free)" % (entry["before"]["free_mb"], ARROW, entry["after"]["free_mb"])
            done.append(text)
            if entry.get("ok") is False:
                texts = "; ".join(m["text"] for m in entry.get("messages") or [] if m["type"].lower() == "error")
                failed.append("OPTIMIZE %s reported an error: %s" % (entry["table"], texts or "no status OK"))
        if done:
            parts.append("%s %s" % ("would optimize" if check_mode else "optimized", ", ".join(done)))
        problems += failed
        quiet = [e["table"] for e in facts.get("not_optimized") or [] if e["reason"].startswith("not fragmented")]
        if quiet:
            parts.append("not fragmented: %s" % ", ".join(label(t) for t in quiet))
        for entry in facts.get("not_optimized") or []:
            if not entry["reason"].startswith("not fragmented"):
                problems.append("%s not optimized: %s" % (label(entry["table"]), entry["reason"]))
        if failed:
            # The backup is safe and the table still works; it stays fragmented (performance: 4 hours).
            status, severity = "warning", "medium"
    else:
        parts.append("OPTIMIZE off")
        if figures["fragmented"]:
            parts.append("fragmented: %s" % ", ".join(figures["fragmented"]))
    if problems and status == "ok":
        status, severity = "warning", "low"
    summary = "; ".join(parts)
    if problems:
        summary += "; " + "; ".join(problems)
    return make_step(STEP, status, severity, summary, figures, problems)


def connect_params(p):
    # PyMySQL sends a str password as latin-1; the mysql clients (and mysqldump
    # here) send what they read as UTF-8, so both must send the same bytes.
    kwargs = {"user": p["login_user"], "password": (p["login_password"] or "").encode("utf-8"),
              "connect_timeout": p["connect_timeout"],
              "autocommit": True, "charset": "utf8mb4"}
    config_file = p["config_file"]
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
    return kwargs


def where(p):
    return p["login_unix_socket"] or "%s:%s" % (p["login_host"], p["login_port"])


def connect(p):
    """(connection, None) or (None, (kind, message)); the message never holds the password."""
    try:
        return pymysql.connect(**connect_params(p)), None
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        if p["login_password"]:
            reason = reason.replace(p["login_password"], "********")
        kind = "denied" if code in ACCESS_DENIED else "unreachable" if code in UNREACHABLE else "error"
        return None, (kind, "cannot connect to MySQL at %s as %s for schema %r: %s"
                      % (where(p), p["login_user"] or "(default user)", p["schema"], reason))


def maintain(module):
    """The whole database step; exits with the step under ``step``."""
    p = module.params
    facts = {"schema": p["schema"], "server": where(p), "check_mode": module.check_mode, "optimize": p["optimize"],
             "thresholds": {"min_free_mb": p["min_free_mb"], "min_fragmentation": p["min_fragmentation"]}}
    if not HAS_PYMYSQL:
        reason = missing_required_lib("PyMySQL")
        module.exit_json(changed=False, step=make_step(STEP, "failed", "high", "database maintenance could not run: "
                                                       + reason, {"reason": reason}, [reason]))
    conn, error = connect(p)
    if error:
        kind, reason = error
        module.exit_json(changed=False, msg=reason, step=connection_step(kind, reason, p["skip_unreachable"]))
    m = Maintenance(conn, p["schema"])
    changed = False
    try:
        facts["server_version"] = m.version()
        if not m.schema_exists():
            reason = "schema %r does not exist on %s" % (p["schema"], where(p))
            module.exit_json(changed=False, msg=reason, server_version=facts["server_version"],
                             step=connection_step("missing", reason, p["skip_unreachable"]))
        names = []
        if p["optimize"]:
            try:
                facts["table_map"], names = m.resolve(p["tables"])
            except ValueError as exc:
                facts["refused"] = str(exc)
                module.exit_json(changed=False, msg=str(exc), server_version=facts["server_version"],
                                 step=maintenance_step(facts))
        before = m.report()
        facts["before"] = before
        facts["fragmented"] = [r["table"] for r in before if fragmented(r, p["min_free_mb"], p["min_fragmentation"])]
        if p["backup"]:
            backup = backup_schema(module, [r["table"] for r in before])
            facts["backup"] = backup
            changed = bool(backup["action"] in ("taken", "would_take") or backup["removed"] or backup["created_dir"])
            if backup.get("error"):
                module.exit_json(changed=changed, msg=backup["error"], server_version=facts["server_version"],
                                 step=maintenance_step(facts))
        if p["optimize"]:
            if not names:
                names = [r["table"] for r in before]
            by_name = dict((r["table"], r) for r in before)
            facts["optimized"], facts["not_optimized"] = optimize_tables(
                m, p, names, by_name, module.check_mode, p["min_free_mb"], p["min_fragmentation"])
            if facts["optimized"]:
                changed = True
                if not module.check_mode:
                    facts["after"] = m.report()
    except pymysql.MySQLError as exc:
        reason = "MySQL error on %s, schema %r: %s" % (where(p), p["schema"], exc)
        module.exit_json(changed=changed, msg=reason, step=make_step(
            STEP, "failed", "high", "database maintenance stopped: %s" % reason, {"reason": reason}, [reason]))
    finally:
        conn.close()
    module.exit_json(changed=changed, server_version=facts["server_version"], step=maintenance_step(facts))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", default="report",
                        choices=["maintain", "ping", "report", "optimize", "analyze", "check", "verify_backup"]),
            schema=dict(type="str", default="bemore"),
            tables=dict(type="list", elements="str", default=[]),
            optimize=dict(type="bool", default=True),
            min_free_mb=dict(type="float"),
            min_fragmentation=dict(type="float", default=0.1),
            disk_margin_mb=dict(type="float", default=256.0),
            disk_check=dict(type="bool", default=True),
            no_write_to_binlog=dict(type="bool", default=False),
            backup=dict(type="bool", default=True),
            backup_dir=dict(type="path", default="/var/backups/bemore-db"),
            backup_stamp_format=dict(type="str", default="%Y%m%d"),
            backup_keep=dict(type="int", default=7),
            skip_unreachable=dict(type="bool", default=False),
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
    p = module.params
    action = p["action"]
    if action == "maintain" and p["min_free_mb"] is None:
        p["min_free_mb"] = 1.0
    problems = input_problems(p)
    if problems:
        msg = "invalid options, nothing was done: " + "; ".join(problems)
        extra = {}
        if action == "maintain":
            # The run's report shows why the step did not run.
            extra["step"] = make_step(STEP, "failed", "high", msg, {}, problems)
        module.fail_json(msg=msg, problems=problems, **extra)
    if action == "maintain":
        maintain(module)
    if not HAS_PYMYSQL:
        module.fail_json(msg=missing_required_lib("PyMySQL"))
    if action == "optimize" and not p["tables"] and p["min_free_mb"] is None:
        module.fail_json(msg="optimize needs tables, or min_free_mb to pick the fragmented ones")
    conn, error = connect(p)
    if error:
        module.fail_json(msg=error[1])
    m = Maintenance(conn, p["schema"])
    result = {"changed": False, "server_version": m.version(), "schema": p["schema"]}
    try:
        if action == "ping":
            result["schema_exists"] = m.schema_exists()
            module.exit_json(**result)
        if not m.schema_exists():
            module.fail_json(msg="schema %r does not exist on %s" % (p["schema"], where(p)), **result)
        try:
            mapping, tables = m.resolve(p["tables"])
        except ValueError as exc:
            module.fail_json(msg=str(exc), **result)
        if mapping:
            result["table_map"] = mapping
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
                if not IDENTIFIER.match(name):
                    result["results"].append({"table": name, "ok": False, "messages": [
                        {"op": action, "type": "error", "text": "the name does not look like an identifier; not run"}]})
                    continue
                if module.check_mode:
                    result["results"].append({"table": name, "would_run": True})
                    continue
                messages, ok = m.run_table_statement(action.upper(), name)
                result["results"].append({"table": name, "messages": messages, "ok": ok})
            result["all_ok"] = all(r.get("ok", True) for r in result["results"])
        elif action == "optimize":
            rows = m.report()
            before = dict((r["table"], r) for r in rows)
            min_free = p["min_free_mb"] if p["min_free_mb"] is not None else 0.0
            optimized, passed_over = optimize_tables(m, p, tables or sorted(before), before, module.check_mode,
                                                     min_free)
            result.update(optimized=optimized, not_optimized=passed_over, tables=[public(r) for r in rows],
                          totals=totals(rows), changed=bool(optimized))
            if any(e.get("ok") is False for e in optimized):
                module.fail_json(msg="OPTIMIZE reported an error for: %s" % ", ".join(
                    e["table"] for e in optimized if e.get("ok") is False), **result)
    except pymysql.MySQLError as exc:
        module.fail_json(msg="MySQL error on %s, schema %r: %s" % (where(p), p["schema"], exc), **result)
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
