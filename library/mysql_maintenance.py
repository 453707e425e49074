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

import math
import os
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.bemore_steps import step as make_step
from ansible.module_utils.mysql_backup import backup_schema
from ansible.module_utils.mysql_connect import HAS_PYMYSQL, MySQLError, connect, where
from ansible.module_utils.mysql_optimize import optimize_tables, table_statements
from ansible.module_utils.mysql_schema import IDENTIFIER, Maintenance, fragmented, public, totals
from ansible.module_utils.mysql_step import STEP, connection_step, maintenance_step
from ansible.module_utils.mysql_verify import verify_backup

# Each concern of the module is a file of module_utils: mysql_connect (connection, credentials), mysql_schema
# (table names, sizes, statements), mysql_backup (dump, reuse, retention), mysql_verify, mysql_optimize
# (OPTIMIZE, ANALYZE, CHECK) and mysql_step (the report step). This file checks the inputs and dispatches.


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


# --- the actions ------------------------------------------------------------------

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
    except MySQLError as exc:
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
            result["results"] = table_statements(m, action, names, module.check_mode)
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
    except MySQLError as exc:
        module.fail_json(msg="MySQL error on %s, schema %r: %s" % (where(p), p["schema"], exc), **result)
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
