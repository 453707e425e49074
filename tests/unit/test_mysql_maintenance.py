"""library/mysql_maintenance.py against the real MariaDB on 127.0.0.1:3306.

The backend's own tables (roles/db_maintenance/molecule/default/backend_tables.sql,
SHOW CREATE TABLE of the schema the real backend's sequelize.sync() created)
go into a schema of each test's own, dropped afterwards.
"""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import time
import uuid

import pymysql
import pytest

from tests.conftest import REPO, load_module
from tests.helpers import require

mm = load_module("mysql_maintenance")
# The module's helpers live in module_utils, one file per concern.
from ansible.module_utils import mysql_connect, mysql_schema  # noqa: E402
DB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
LOGIN = {"login_host": "127.0.0.1", "login_port": 3306, "login_user": "root", "login_password": "",
         "config_file": "/nonexistent/.my.cnf"}
BACKEND_DDL = os.path.join(REPO, "roles", "db_maintenance", "molecule", "default", "backend_tables.sql")
BACKEND_TABLES = ["counselings", "feedbacks", "reports", "sessions", "user_preferences", "users"]
MB = 1048576


def db_or_skip():
    try:
        return pymysql.connect(connect_timeout=3, autocommit=True, charset="utf8mb4", **DB)
    except pymysql.MySQLError as exc:
        require(False, "MariaDB on 127.0.0.1:3306", "%s; apt-get install -y mariadb-server" % exc)


def sql(conn, statement, args=None):
    with conn.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def backend_statements():
    text = "\n".join(line for line in open(BACKEND_DDL, encoding="utf-8").read().splitlines()
                     if not line.startswith("--"))
    return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";")]


@pytest.fixture
def backend():
    """A schema of the test's own with the backend's real tables and a few users and sessions."""
    conn = db_or_skip()
    name = "bemore_test_" + uuid.uuid4().hex[:10]
    sql(conn, "CREATE DATABASE `%s`" % name)
    sql(conn, "USE `%s`" % name)
    for statement in backend_statements():
        sql(conn, statement)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO users (username, email, password, createdAt, updatedAt) "
                        "VALUES (%s, %s, 'x', NOW(), NOW())", [("u%d" % i, "u%d@example.test" % i) for i in range(20)])
    yield name, conn
    sql(conn, "DROP DATABASE IF EXISTS `%s`" % name)
    conn.close()


def fragment_sessions(conn, name, rows=6000):
    """Fill `sessions` with sessions carrying ~2 KB of emotion data each, then delete nine in ten."""
    sql(conn, "SET SESSION max_recursive_iterations = %d" % (rows + 10))
    sql(conn, "INSERT INTO `%s`.sessions (sessionId, userId, counselorId, status, startedAt, endedAt, duration, "
              "counters, emotionsData, createdAt, updatedAt) "
              "WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %d) "
              "SELECT CONCAT('sess_', 1796212197048 + n, '_', LPAD(HEX(n), 8, '0')), CONCAT('user', n %% 50), "
              "'counselor', 'ended', 1796212197048 + n, 1796212198172 + n, 1124, '{\"emotionCount\":0}', "
              "CONCAT('[', REPEAT('{\"timestamp\":1796212197048,\"emotion\":\"neutral\",\"frameCount\":30},', 30), "
              "'{}]'), NOW(), NOW() FROM seq" % (name, rows))
    sql(conn, "DELETE FROM `%s`.sessions WHERE id %% 10 != 0" % name)
    sql(conn, "ANALYZE TABLE `%s`.sessions" % name)
    deadline = time.time() + 30
    while data_free(conn, name, "sessions") < 2 * MB:
        assert time.time() < deadline, "sessions never showed free space after the delete"
        time.sleep(0.5)


def data_free(conn, name, table):
    return sql(conn, "SELECT DATA_FREE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
               (name, table))[0][0]


def session_count(conn, name):
    return sql(conn, "SELECT COUNT(*) FROM `%s`.sessions" % name)[0][0]


def maintain_args(name, backups, **extra):
    args = dict(LOGIN, action="maintain", schema=name, tables=["User", "Session"], backup_dir=str(backups))
    args.update(extra)
    return args


# --- which table a name means (plain function) ------------------------------------

@pytest.mark.parametrize("requested, table", [
    ("User", "users"),
    ("Session", "sessions"),
    ("UserPreference", "user_preferences"),
    ("UserPreferences", "user_preferences"),  # the model's own name
    ("Feedback", "feedbacks"),
    ("Counseling", "counselings"),
    ("Report", "reports"),
    ("users", "users"),
    ("SESSIONS", "sessions"),
    ("user_preference", "user_preferences"),
])
def test_model_names_resolve_to_the_backends_tables(requested, table):
    assert mysql_schema.resolve_tables([requested], BACKEND_TABLES, "bemore") == {requested: table}


@pytest.mark.parametrize("requested, existing, table", [
    ("Category", ["categories"], "categories"),
    ("Status", ["statuses"], "statuses"),
    ("sessions", ["Session"], "Session"),
    # The spelling MySQL itself would use wins over a looser match.
    ("Session", ["Session", "sessions"], "Session"),
    ("sessions", ["Session", "sessions"], "sessions"),
])
def test_plural_forms_and_exact_spelling(requested, existing, table):
    assert mysql_schema.resolve_tables([requested], existing, "s") == {requested: table}


@pytest.mark.parametrize("requested, existing, message", [
    ("Nope", BACKEND_TABLES, "Nope matches no table"),
    ("Use", BACKEND_TABLES, "Use matches no table"),  # no prefix matching
    ("Sess", BACKEND_TABLES, "Sess matches no table"),
    ("UserPreferenceList", BACKEND_TABLES, "UserPreferenceList matches no table"),
    ("User", ["user", "users"], "User is ambiguous, it matches user and users"),
    ("UserPreference", ["user_preferences", "userpreferences"], "matches user_preferences and userpreferences"),
    # A table whose name only lower-cases to ASCII (KELVIN SIGN) is never picked by a loose match.
    ("Keys", [u"\u212aeys"], "Keys matches no table"),
])
def test_unknown_and_ambiguous_names_are_refused_naming_the_schema_and_its_tables(requested, existing, message):
    with pytest.raises(ValueError) as exc:
        mysql_schema.resolve_tables([requested], existing, "bemore")
    text = str(exc.value)
    assert message in text and "schema 'bemore'" in text
    assert "the schema's tables are: " + ", ".join(sorted(existing)) in text


@pytest.mark.parametrize("hostile", ["users; DROP TABLE users", "`users`", "bemore.users", "users'", "users\"",
                                     u"us\u00e9rs", u"\u212aeys", "a" * 65, "", "users -- x", "users\n"])
def test_hostile_names_never_resolve(hostile):
    with pytest.raises(ValueError) as exc:
        mysql_schema.resolve_tables([hostile], BACKEND_TABLES + [hostile], "bemore")
    assert "does not look like a table name" in str(exc.value)


def test_the_mapping_is_shown_as_arrows():
    assert mysql_schema.mapping_text({"User": "users", "sessions": "sessions"}) == u"User \u2192 users, sessions"


# --- range rules (plain function) ---------------------------------------------------

GOOD = {"action": "maintain", "schema": "bemore", "tables": ["User", "Session"], "login_port": 3306,
        "connect_timeout": 10, "min_free_mb": 1.0, "min_fragmentation": 0.1, "disk_margin_mb": 256.0,
        "login_unix_socket": None, "backup": True, "backup_keep": 7, "backup_dir": "/var/backups/bemore-db",
        "backup_stamp_format": "%Y%m%d"}


def test_the_defaults_are_in_range():
    assert mm.input_problems(GOOD) == []


@pytest.mark.parametrize("option, value, message", [
    ("schema", "bemore.users", "schema 'bemore.users' does not look like a schema name"),
    ("tables", ["User", "x`y"], "tables: refusing table name(s) that do not look like identifiers"),
    ("login_port", 0, "login_port must be >= 1"),
    ("login_port", 70000, "login_port must be <= 65535"),
    ("min_free_mb", -1.0, "min_free_mb must be >= 0"),
    ("min_fragmentation", 1.5, "min_fragmentation must be <= 1"),
    ("min_fragmentation", -0.1, "min_fragmentation must be >= 0"),
    ("disk_margin_mb", -5.0, "disk_margin_mb must be >= 0"),
    ("backup_keep", 0, "backup_keep must be >= 1"),
    ("backup_dir", "backups", "backup_dir must be an absolute path below /"),
    ("backup_dir", "/", "backup_dir must be an absolute path below /"),
    ("backup_stamp_format", "%Y/%m", "cannot be part of a file name"),
    ("backup_stamp_format", "daily", "has no time field"),
    ("login_unix_socket", "mysqld.sock", "login_unix_socket must be an absolute path"),
])
def test_out_of_range_options_are_named(option, value, message):
    problems = mm.input_problems(dict(GOOD, **{option: value}))
    assert len(problems) == 1 and message in problems[0], problems


def test_backup_rules_apply_only_when_backing_up():
    assert mm.input_problems(dict(GOOD, backup=False, backup_keep=0, backup_dir="x")) == []


# --- the decision (plain function) ---------------------------------------------------

ROWS = [mysql_schema.table_row("sessions", "InnoDB", 600, 3 * MB, MB // 4, 5 * MB, False),
        mysql_schema.table_row("users", "InnoDB", 20, 16384, 65536, 0, False)]
BACKUP = {"file": "/b/bemore-20261202.sql.gz", "action": "taken", "verified": True, "size": 40000,
          "tables_found": 6, "removed": [], "created_dir": True, "error": None}


def facts(**extra):
    out = {"schema": "bemore", "server": "127.0.0.1:3306", "check_mode": False, "optimize": True,
           "table_map": {"User": "users", "Session": "sessions"}, "before": ROWS, "backup": dict(BACKUP),
           "fragmented": ["sessions"], "optimized": [], "not_optimized": []}
    out.update(extra)
    return out


def test_a_verified_backup_and_an_optimized_table_are_ok():
    done = [{"table": "sessions", "before": mm.public(ROWS[0]), "ok": True,
             "messages": [{"op": "optimize", "type": "status", "text": "OK"}],
             "after": dict(mm.public(ROWS[0]), free_mb=0.0)}]
    step = mm.maintenance_step(facts(optimized=done, not_optimized=[
        {"table": "users", "reason": "not fragmented: 0.00 MB free"}]))
    assert (step["status"], step["severity"], step["problems"]) == ("ok", "none", [])
    assert u"optimized Session \u2192 sessions (5.0 \u2192 0.0 MB free)" in step["summary"]
    assert u"not fragmented: User \u2192 users" in step["summary"]
    assert "backup verified: /b/bemore-20261202.sql.gz (new, 39 KB)" in step["summary"]
    assert step["figures"]["backup_file"] == BACKUP["file"]


def test_a_failed_backup_is_critical_and_high():
    step = mm.maintenance_step(facts(backup=dict(BACKUP, error="mysqldump exited 2: denied", action=None)))
    assert (step["status"], step["severity"]) == ("critical", "high")
    assert step["summary"] == "backup failed, nothing was optimized: mysqldump exited 2: denied"
    assert step["figures"]["backup_file"] is None


def test_check_mode_says_what_it_would_do():
    step = mm.maintenance_step(facts(check_mode=True, backup=dict(BACKUP, action="would_take", size=None),
                                     optimized=[{"table": "sessions", "before": mm.public(ROWS[0])}]))
    assert step["status"] == "ok"
    assert "backup would be taken: /b/bemore-20261202.sql.gz" in step["summary"]
    assert u"would optimize Session \u2192 sessions" in step["summary"]


@pytest.mark.parametrize("entry, status, severity", [
    ({"table": "sessions", "reason": "not enough free disk in /var/lib/mysql/ for the rebuild: 10 MB free"},
     "warning", "low"),
    ({"table": "sessions", "reason": "cannot check the free disk of the data directory"}, "warning", "low"),
    ({"table": "sessions", "reason": "not fragmented: 0.00 MB free"}, "ok", "none"),
])
def test_tables_passed_over(entry, status, severity):
    step = mm.maintenance_step(facts(not_optimized=[entry]))
    assert (step["status"], step["severity"]) == (status, severity)


def test_an_optimize_error_is_a_medium_warning():
    done = [{"table": "sessions", "before": mm.public(ROWS[0]), "ok": False,
             "messages": [{"op": "optimize", "type": "Error", "text": "Lock wait timeout exceeded"}],
             "after": mm.public(ROWS[0])}]
    step = mm.maintenance_step(facts(optimized=done))
    assert (step["status"], step["severity"]) == ("warning", "medium")
    assert step["problems"] == ["OPTIMIZE sessions reported an error: Lock wait timeout exceeded"]


def test_backup_only_names_the_fragmented_tables():
    step = mm.maintenance_step(facts(optimize=False, table_map={}))
    assert step["status"] == "ok" and "OPTIMIZE off; fragmented: sessions" in step["summary"]


@pytest.mark.parametrize("kind, skip, status", [
    ("denied", True, "failed"), ("unreachable", True, "skipped"), ("unreachable", False, "failed"),
    ("missing", True, "skipped"), ("missing", False, "failed"), ("error", True, "failed"),
])
def test_connection_problems(kind, skip, status):
    assert mm.connection_step(kind, "why", skip)["status"] == status


# --- the whole step against the real database ---------------------------------------

def test_maintain_backs_up_and_optimizes_the_real_tables(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    free_before, rows_before = data_free(conn, name, "sessions"), session_count(conn, name)
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups))
    step = result["step"]
    assert (step["step"], step["status"], step["severity"]) == ("db_maintenance", "ok", "none"), step
    assert result["changed"] is True and "failed" not in result
    assert step["figures"]["table_map"] == {"User": "users", "Session": "sessions"}
    assert u"User \u2192 users" in step["summary"] and u"Session \u2192 sessions" in step["summary"]
    # The backup: private, complete, and it creates every table of the backend.
    path = step["figures"]["backup_file"]
    assert os.path.dirname(path) == str(backups) and os.path.basename(path).startswith(name + "-")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(backups)).st_mode) == 0o700
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        dump = handle.read()
    for table in BACKEND_TABLES:
        assert "CREATE TABLE `%s`" % table in dump
    assert dump.count("INSERT INTO `sessions`") >= 1 and "u19@example.test" in dump
    assert step["figures"]["backup"]["verified"] is True and step["figures"]["backup"]["tables_found"] == 6
    assert os.listdir(str(backups)) == [os.path.basename(path)]
    # sessions was rebuilt, users was not fragmented; no row was lost.
    assert [e["table"] for e in step["figures"]["optimized"]] == ["sessions"]
    assert step["figures"]["optimized"][0]["ok"] is True
    assert data_free(conn, name, "sessions") < free_before
    assert step["figures"]["optimized"][0]["after"]["free_mb"] < step["figures"]["optimized"][0]["before"]["free_mb"]
    assert [e["table"] for e in step["figures"]["not_optimized"]] == ["users"]
    assert session_count(conn, name) == rows_before == 600
    assert step["figures"]["totals"]["tables"] == 6
    # A second run the same day reuses the verified backup and has nothing to rebuild.
    again = run_module("mysql_maintenance", maintain_args(name, backups))
    assert again["changed"] is False and again["step"]["status"] == "ok"
    assert again["step"]["figures"]["backup"]["action"] == "reused"
    assert again["step"]["figures"]["optimized"] == []


def test_check_mode_changes_nothing(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    free_before = data_free(conn, name, "sessions")
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups), check_mode=True)
    step = result["step"]
    assert result["changed"] is True and step["status"] == "ok"
    assert "backup would be taken: %s/%s-" % (backups, name) in step["summary"]
    assert u"would optimize Session \u2192 sessions" in step["summary"]
    assert not backups.exists()
    assert data_free(conn, name, "sessions") == free_before


def test_check_mode_names_old_backups_it_would_remove(run_module, backend, tmp_path):
    name, _ = backend
    backups = tmp_path / "backups"
    backups.mkdir()
    for day in range(1, 6):
        old = backups / ("%s-202601%02d.sql.gz" % (name, day))
        old.write_bytes(gzip.compress(b"-- old"))
        os.utime(str(old), (1767225600 + day * 86400,) * 2)
    result = run_module("mysql_maintenance", maintain_args(name, backups, backup_keep=3), check_mode=True)
    removed = result["step"]["figures"]["backup"]["removed"]
    assert sorted(os.path.basename(p) for p in removed) == ["%s-202601%02d.sql.gz" % (name, d) for d in (1, 2, 3)]
    assert len(os.listdir(str(backups))) == 5, "check mode removed a backup"


def test_retention_keeps_the_newest_backups_of_the_schema_only(run_module, backend, tmp_path):
    name, _ = backend
    backups = tmp_path / "backups"
    backups.mkdir(mode=0o700)
    for day in range(1, 6):
        old = backups / ("%s-202601%02d.sql.gz" % (name, day))
        old.write_bytes(gzip.compress(b"-- old"))
        os.utime(str(old), (1767225600 + day * 86400,) * 2)
    other = backups / "otherschema-20260101.sql.gz"
    other.write_bytes(b"x")
    os.utime(str(other), (1000000000, 1000000000))
    os.symlink(str(other), str(backups / ("%s-link.sql.gz" % name)))
    result = run_module("mysql_maintenance", maintain_args(name, backups, backup_keep=3, optimize=False))
    step = result["step"]
    assert step["status"] == "ok" and "removed 3 old backup(s)" in step["summary"]
    assert sorted(os.listdir(str(backups))) == sorted([
        os.path.basename(step["figures"]["backup_file"]), "%s-20260104.sql.gz" % name, "%s-20260105.sql.gz" % name,
        "otherschema-20260101.sql.gz", "%s-link.sql.gz" % name])


def test_wrong_credentials_give_a_clear_error_and_change_nothing(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    free_before = data_free(conn, name, "sessions")
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups, login_user="nobody_here",
                                                           login_password="hunter2-secret"))
    step = result["step"]
    assert (step["status"], step["severity"]) == ("failed", "high")
    assert ("cannot connect to MySQL at 127.0.0.1:3306 as nobody_here for schema %r: Access denied" % name
            in step["summary"])
    assert "hunter2-secret" not in repr(result)
    assert result["changed"] is False and not backups.exists()
    assert data_free(conn, name, "sessions") == free_before


@pytest.mark.parametrize("extra, status", [
    ({"login_port": 1, "connect_timeout": 2, "skip_unreachable": True}, "skipped"),
    ({"login_port": 1, "connect_timeout": 2}, "failed"),
    ({"schema": "no_such_schema_here", "skip_unreachable": True}, "skipped"),
    ({"schema": "no_such_schema_here"}, "failed"),
])
def test_no_database_is_skipped_or_failed(run_module, tmp_path, extra, status):
    db_or_skip().close()
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args("bemore_unused", backups, **extra))
    assert result["step"]["status"] == status and result["changed"] is False and not backups.exists()
    assert ("127.0.0.1:1" if "login_port" in extra else "'no_such_schema_here' does not exist") in result["step"]["summary"]


@pytest.mark.parametrize("hostile", ["users; DROP TABLE users", "`sessions`", "bemore.sessions", "sessions'",
                                     u"s\u00e9ssions", "s" * 65])
def test_a_hostile_table_name_is_refused_before_anything_runs(run_module, backend, tmp_path, hostile):
    name, conn = backend
    fragment_sessions(conn, name, rows=1000)
    free_before, rows_before = data_free(conn, name, "sessions"), session_count(conn, name)
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups, tables=["User", hostile]))
    assert result["failed"] is True and "do not look like identifiers" in result["msg"]
    assert not backups.exists()
    assert data_free(conn, name, "sessions") == free_before and session_count(conn, name) == rows_before
    assert sorted(r[0] for r in sql(conn, "SHOW TABLES FROM `%s`" % name)) == BACKEND_TABLES


def test_an_unknown_table_is_refused_naming_the_schema_and_its_tables(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    free_before = data_free(conn, name, "sessions")
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups, tables=["User", "Session", "Nope"]))
    step = result["step"]
    assert (step["status"], step["severity"]) == ("failed", "medium")
    assert "refusing the table names for schema %r: Nope matches no table" % name in step["summary"]
    assert "the schema's tables are: " + ", ".join(BACKEND_TABLES) in step["summary"]
    assert result["changed"] is False and not backups.exists()
    assert data_free(conn, name, "sessions") == free_before


def test_an_ambiguous_table_is_refused(run_module, backend, tmp_path):
    name, conn = backend
    sql(conn, "CREATE TABLE `%s`.`user` (id INT PRIMARY KEY) ENGINE=InnoDB" % name)
    result = run_module("mysql_maintenance", maintain_args(name, tmp_path / "backups"))
    assert result["step"]["status"] == "failed"
    assert "User is ambiguous, it matches user and users" in result["step"]["summary"]
    # Named exactly, it is not ambiguous.
    result = run_module("mysql_maintenance", maintain_args(name, tmp_path / "backups", tables=["users", "Session"]))
    assert result["step"]["status"] == "ok" and result["step"]["figures"]["table_map"]["users"] == "users"


def test_a_failed_backup_stops_before_optimize(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    # A view whose table is gone makes the real mysqldump fail (error 1356).
    sql(conn, "CREATE TABLE `%s`.gone (id INT)" % name)
    sql(conn, "CREATE VIEW `%s`.broken AS SELECT id FROM `%s`.gone" % (name, name))
    sql(conn, "DROP TABLE `%s`.gone" % name)
    free_before = data_free(conn, name, "sessions")
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups))
    step = result["step"]
    assert (step["status"], step["severity"]) == ("critical", "high")
    assert step["summary"].startswith("backup failed, nothing was optimized: mysqldump exited 2: ")
    assert "references invalid table" in step["summary"]
    assert os.listdir(str(backups)) == [], "a partial dump was left behind"
    assert data_free(conn, name, "sessions") == free_before


def test_a_backup_folder_that_cannot_be_created_stops_before_optimize(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    free_before = data_free(conn, name, "sessions")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_module("mysql_maintenance", maintain_args(name, blocker / "backups"))
    assert result["step"]["status"] == "critical"
    assert "cannot create the backup folder %s/backups" % blocker in result["step"]["summary"]
    assert data_free(conn, name, "sessions") == free_before


def test_a_backup_of_the_period_that_does_not_verify_is_taken_again(run_module, backend, tmp_path):
    name, _ = backend
    backups = tmp_path / "backups"
    first = run_module("mysql_maintenance", maintain_args(name, backups, optimize=False))
    path = first["step"]["figures"]["backup_file"]
    with open(path, "wb") as handle:
        handle.write(gzip.compress(b"-- cut short\n")[:10])
    again = run_module("mysql_maintenance", maintain_args(name, backups, optimize=False))
    backup = again["step"]["figures"]["backup"]
    assert again["step"]["status"] == "ok" and again["changed"] is True
    assert backup["action"] == "taken" and "not a complete gzip file" in backup["replaced_unverified"]
    ok, found = mm.verify_backup(path, BACKEND_TABLES)
    assert ok and found["tables_found"] == BACKEND_TABLES


def test_a_link_in_place_of_the_backup_is_refused(run_module, backend, tmp_path, monkeypatch):
    name, _ = backend
    # The backup's name carries the module's date: the test's, even across midnight.
    monkeypatch.setenv("BEMORE_RUNBOOK_NOW", "2026-12-02T09:45:00Z")
    backups = tmp_path / "backups"
    backups.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    stamp = "20261202"
    os.symlink(str(target), str(backups / ("%s-%s.sql.gz" % (name, stamp))))
    result = run_module("mysql_maintenance", maintain_args(name, backups))
    assert result["step"]["status"] == "critical" and "is not a regular file" in result["step"]["summary"]
    assert target.read_text() == "keep me"


def test_backup_only_does_not_optimize(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    free_before = data_free(conn, name, "sessions")
    result = run_module("mysql_maintenance", maintain_args(name, tmp_path / "b", optimize=False, tables=["Nope"]))
    step = result["step"]
    assert step["status"] == "ok" and "OPTIMIZE off; fragmented: sessions" in step["summary"]
    assert step["figures"]["backup"]["verified"] is True
    assert data_free(conn, name, "sessions") == free_before


def test_no_disk_for_the_rebuild_is_a_warning(run_module, backend, tmp_path):
    name, conn = backend
    fragment_sessions(conn, name)
    free_before = data_free(conn, name, "sessions")
    result = run_module("mysql_maintenance", maintain_args(name, tmp_path / "b", disk_margin_mb=10.0 ** 9))
    step = result["step"]
    assert (step["status"], step["severity"]) == ("warning", "low")
    assert any(p.startswith(u"Session \u2192 sessions not optimized: not enough free disk") for p in step["problems"])
    assert data_free(conn, name, "sessions") == free_before


@pytest.mark.parametrize("option, value, message", [
    ("min_fragmentation", 2.0, "min_fragmentation must be <= 1"),
    ("backup_keep", 0, "backup_keep must be >= 1"),
    ("backup_stamp_format", "%Y/%m/%d", "cannot be part of a file name"),
])
def test_out_of_range_options_fail_before_anything_runs(run_module, backend, tmp_path, option, value, message):
    name, conn = backend
    fragment_sessions(conn, name, rows=1000)
    free_before = data_free(conn, name, "sessions")
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups, **{option: value}))
    assert result["failed"] is True and message in result["msg"] and "nothing was done" in result["msg"]
    assert not backups.exists() and data_free(conn, name, "sessions") == free_before


@pytest.fixture
def odd_password_user(backend):
    """A user whose password holds every character an option file or a shell could trip on."""
    name, conn = backend
    user = "bm_" + uuid.uuid4().hex[:8]
    password = u"a\"b\\c#d'e f;g$h`i\u00e9 -p"
    for host in ("%", "localhost"):
        sql(conn, "CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
        sql(conn, "GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, ALTER, INSERT ON `%s`.* TO %%s@%%s" % name,
            (user, host))
    yield user, password
    for host in ("%", "localhost"):
        sql(conn, "DROP USER IF EXISTS %s@%s", (user, host))


def test_the_password_never_reaches_a_command_line(run_module, backend, odd_password_user, tmp_path, monkeypatch):
    name, _ = backend
    user, password = odd_password_user
    # A recording wrapper in front of the real mysqldump: what the process saw.
    real = subprocess.run(["sh", "-c", "command -v mysqldump"], capture_output=True, text=True, check=True).stdout.strip()
    shim = tmp_path / "bin"
    shim.mkdir()
    seen = tmp_path / "seen"
    (shim / "mysqldump").write_text(
        "#!/bin/sh\n"
        "printf '%%s\\n' \"$@\" > %(seen)s.argv\n"
        "cnf=${1#--defaults-extra-file=}\n"
        "stat -c %%a \"$cnf\" > %(seen)s.mode\n"
        "env > %(seen)s.env\n"
        "exec %(real)s \"$@\"\n" % {"seen": seen, "real": real})
    (shim / "mysqldump").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (shim, os.environ["PATH"]))
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", maintain_args(name, backups, login_user=user, login_password=password,
                                                           disk_check=False))
    assert result["step"]["status"] == "ok", result["step"]
    assert result["step"]["figures"]["backup"]["action"] == "taken"
    argv = (tmp_path / "seen.argv").read_text().splitlines()
    assert argv[0].startswith("--defaults-extra-file=") and argv[-2:] == ["--databases", name]
    assert not any(password in a for a in argv) and not any("-p" == a[:2] for a in argv)
    assert (tmp_path / "seen.mode").read_text().strip() == "600"
    assert password not in (tmp_path / "seen.env").read_text() and "MYSQL_PWD" not in (tmp_path / "seen.env").read_text()
    assert not os.path.exists(argv[0].split("=", 1)[1]), "the option file was left behind"
    assert password not in repr(result)


def test_the_option_file_quotes_what_the_client_reads():
    text = mysql_connect.option_file_text(dict(GOOD, login_user="maint", login_password='p"w\\x\ny', login_host="db.internal",
                                    login_port=3307, login_unix_socket=None, ca_cert=None, client_cert=None,
                                    client_key=None, check_hostname=True))
    assert text == '[client]\nuser="maint"\npassword="p\\"w\\\\x\\ny"\nhost="db.internal"\nport=3307\nprotocol=TCP\n'


# --- the single actions --------------------------------------------------------------

@pytest.fixture
def schema():
    """A throwaway schema: `big` (fragmented on demand), `Session`, `small`, and a FULLTEXT table."""
    conn = db_or_skip()
    name = "bemore_test_" + uuid.uuid4().hex[:10]
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE `%s`" % name)
        cur.execute("CREATE TABLE `%s`.`big` (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB" % name)
        cur.execute("CREATE TABLE `%s`.`Session` (id INT PRIMARY KEY, v INT) ENGINE=InnoDB" % name)
        cur.execute("CREATE TABLE `%s`.`small` (id INT PRIMARY KEY) ENGINE=InnoDB" % name)
        cur.execute("CREATE TABLE `%s`.`notes` (id INT PRIMARY KEY, t TEXT, FULLTEXT KEY ft (t)) ENGINE=InnoDB" % name)
        payload = "x" * 2000
        for _ in range(12):
            cur.executemany("INSERT INTO `%s`.`big` (body) VALUES (%%s)" % name, [(payload,)] * 1000)
        cur.executemany("INSERT INTO `%s`.`Session` VALUES (%%s, %%s)" % name, [(i, i) for i in range(500)])
        # Persistent InnoDB statistics lag behind bulk inserts; refresh them.
        cur.execute("ANALYZE TABLE `%s`.`big`, `%s`.`Session`, `%s`.`small`, `%s`.`notes`" % ((name,) * 4))
        cur.fetchall()
    yield name, conn
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS `%s`" % name)
    conn.close()


def fragment(name, conn):
    with conn.cursor() as cur:
        cur.execute("DELETE FROM `%s`.`big` WHERE id %% 10 != 0" % name)
        cur.execute("ANALYZE TABLE `%s`.`big`" % name)
        cur.fetchall()


def information_schema(conn, name, table):
    with conn.cursor() as cur:
        cur.execute("SELECT DATA_LENGTH, INDEX_LENGTH, DATA_FREE, ENGINE FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s", (name, table))
        return cur.fetchone()


def test_report_matches_information_schema_largest_first(run_module, schema):
    name, conn = schema
    result = run_module("mysql_maintenance", dict(LOGIN, action="report", schema=name))
    assert [t["table"] for t in result["tables"]][0] == "big"
    assert [t["total_mb"] for t in result["tables"]] == sorted((t["total_mb"] for t in result["tables"]), reverse=True)
    data, index, free, engine = information_schema(conn, name, "big")
    big = result["tables"][0]
    assert big["engine"] == engine == "InnoDB"
    assert big["data_mb"] == round(data / 1048576.0, 2) and big["data_mb"] > 10
    assert big["total_mb"] == round((data + index) / 1048576.0, 2)
    assert big["free_mb"] == round(free / 1048576.0, 2)
    assert result["fulltext_tables"] == ["notes"]
    assert result["totals"]["tables"] == 4 and result["changed"] is False


def test_optimize_reclaims_the_free_space_of_a_fragmented_table(run_module, schema):
    name, conn = schema
    fragment(name, conn)
    free_before = information_schema(conn, name, "big")[2]
    assert free_before > 4 * 1048576, "deleting 90 % of 24 MB should leave reclaimable space"
    dry = run_module("mysql_maintenance", dict(LOGIN, action="optimize", schema=name, min_free_mb=1),
                     check_mode=True)
    assert [e["table"] for e in dry["optimized"]] == ["big"] and dry["changed"] is True
    assert information_schema(conn, name, "big")[2] == free_before, "check mode ran OPTIMIZE"
    result = run_module("mysql_maintenance", dict(LOGIN, action="optimize", schema=name, min_free_mb=1))
    assert result["changed"] is True
    entry = result["optimized"][0]
    assert entry["table"] == "big" and entry["ok"] is True
    assert any("recreate" in m["text"] for m in entry["messages"])  # InnoDB rebuilds
    assert entry["after"]["free_mb"] < entry["before"]["free_mb"]
    assert information_schema(conn, name, "big")[2] < free_before
    assert {p["table"] for p in result["not_optimized"]} == {"Session", "small", "notes"}
    again = run_module("mysql_maintenance", dict(LOGIN, action="optimize", schema=name, min_free_mb=1))
    assert again["changed"] is False and again["optimized"] == []


def test_optimize_resolves_model_names(run_module, schema):
    name, _ = schema
    result = run_module("mysql_maintenance", dict(LOGIN, action="optimize", schema=name, tables=["Bigs", "smalls"],
                                                  disk_margin_mb=10 ** 9))
    assert result["table_map"] == {"Bigs": "big", "smalls": "small"}
    assert [p["table"] for p in result["not_optimized"]] == ["big", "small"]


def test_optimize_skips_a_table_without_disk_for_the_rebuild(run_module, schema):
    name, _ = schema
    result = run_module("mysql_maintenance", dict(LOGIN, action="optimize", schema=name, tables=["Session"],
                                                  disk_margin_mb=10 ** 9))
    assert result["changed"] is False and result["optimized"] == []
    assert "not enough free disk" in result["not_optimized"][0]["reason"]


@pytest.mark.parametrize("table, message", [
    ("User; DROP TABLE big", "do not look like identifiers"),
    ("`big`", "do not look like identifiers"),
    ("../big", "do not look like identifiers"),
    ("Nope", "Nope matches no table"),
])
def test_bad_table_names_are_refused_and_nothing_runs(run_module, schema, table, message):
    name, conn = schema
    before = information_schema(conn, name, "big")
    result = run_module("mysql_maintenance", dict(LOGIN, action="optimize", schema=name, tables=["big", table]))
    assert result["failed"] is True and message in result["msg"]
    assert information_schema(conn, name, "big") == before
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM `%s`.`big`" % name)
        assert cur.fetchone()[0] == 12000


def test_analyze_and_check(run_module, schema):
    name, _ = schema
    result = run_module("mysql_maintenance", dict(LOGIN, action="check", schema=name, tables=["big", "Session"]))
    assert result["all_ok"] is True and [r["table"] for r in result["results"]] == ["big", "Session"]
    result = run_module("mysql_maintenance", dict(LOGIN, action="analyze", schema=name))
    assert result["all_ok"] is True and len(result["results"]) == 4


def test_missing_schema_and_wrong_credentials_are_clear(run_module, schema):
    result = run_module("mysql_maintenance", dict(LOGIN, action="report", schema="no_such_schema_x"))
    assert result["failed"] is True and "schema 'no_such_schema_x' does not exist on 127.0.0.1:3306" in result["msg"]
    result = run_module("mysql_maintenance", dict(LOGIN, action="report", login_user="nobody_here",
                                                  login_password="hunter2-secret"))
    assert result["failed"] is True and "cannot connect to MySQL at 127.0.0.1:3306 as nobody_here" in result["msg"]
    assert "hunter2-secret" not in repr(result)
    result = run_module("mysql_maintenance", dict(LOGIN, action="report", login_port=1, connect_timeout=2))
    assert result["failed"] is True and "127.0.0.1:1" in result["msg"]


def test_verify_backup(run_module, schema, tmp_path):
    name, _ = schema
    dump = tmp_path / "dump.sql.gz"
    sql_text = subprocess.run(["mysqldump", "-h127.0.0.1", "-uroot", "--single-transaction", name],
                              capture_output=True, check=True).stdout
    dump.write_bytes(gzip.compress(sql_text))
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name, backup_file=str(dump)))
    assert result["backup"]["tables_found"] == ["Session", "big", "notes", "small"]
    truncated = tmp_path / "truncated.sql.gz"
    truncated.write_bytes(dump.read_bytes()[: len(dump.read_bytes()) // 2])
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name,
                                                  backup_file=str(truncated)))
    assert result["failed"] is True and "not a complete gzip file" in result["msg"]
    partial = tmp_path / "partial.sql.gz"
    partial.write_bytes(gzip.compress(sql_text.split(b"CREATE TABLE `small`")[0]))
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name,
                                                  backup_file=str(partial)))
    assert result["failed"] is True and "does not create: small" in result["msg"]
    empty = tmp_path / "empty.sql.gz"
    empty.write_bytes(b"")
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name, backup_file=str(empty)))
    assert result["failed"] is True and "empty" in result["msg"]


@pytest.mark.parametrize("name", ["ok_name", "User", "a$b", "T1"])
def test_quote_identifier_accepts(name):
    assert mysql_schema.quote_identifier(name) == "`%s`" % name


@pytest.mark.parametrize("name", ["", "a b", "x`y", "a;b", "a" * 65, u"\u00e9", "a.b", "a'b"])
def test_quote_identifier_refuses(name):
    with pytest.raises(ValueError):
        mysql_schema.quote_identifier(name)
