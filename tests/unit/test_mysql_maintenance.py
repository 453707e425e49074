"""library/mysql_maintenance.py against the real MariaDB on 127.0.0.1:3306."""

from __future__ import annotations

import gzip
import subprocess
import uuid

import pymysql
import pytest

from tests.conftest import load_module

mm = load_module("mysql_maintenance")
DB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
LOGIN = {"login_host": "127.0.0.1", "login_port": 3306, "login_user": "root", "login_password": "",
         "config_file": "/nonexistent/.my.cnf"}


def db_or_skip():
    try:
        return pymysql.connect(connect_timeout=3, autocommit=True, **DB)
    except pymysql.MySQLError as exc:
        pytest.skip("no MariaDB on 127.0.0.1:3306 (%s); .ci/run starts one" % exc)


@pytest.fixture
def schema():
    """A throwaway schema: `big` (fragmented on demand), `Session`, `small`, and a FULLTEXT table."""
    conn = db_or_skip()
    name = "bemore_t_" + uuid.uuid4().hex[:8]
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE `%s`" % name)
        cur.execute("CREATE TABLE `%s`.`big` (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB" % name)
        cur.execute("CREATE TABLE `%s`.`Session` (id INT PRIMARY KEY, v INT) ENGINE=InnoDB" % name)
        cur.execute("CREATE TABLE `%s`.`small` (id INT PRIMARY KEY) ENGINE=InnoDB" % name)
        cur.execute("CREATE TABLE `%s`.`notes` (id INT PRIMARY KEY, t TEXT, FULLTEXT KEY ft (t)) ENGINE=InnoDB" % name)
        payload = "x" * 2000
        for start in range(0, 12000, 1000):
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
    ("Nope", "no such table"),
    ("BIG", "no such table"),  # table names are case-sensitive on Linux
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
    sql = subprocess.run(["mysqldump", "-h127.0.0.1", "-uroot", "--single-transaction", name],
                         capture_output=True, check=True).stdout
    dump.write_bytes(gzip.compress(sql))
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name, backup_file=str(dump)))
    assert result["backup"]["tables_found"] == ["Session", "big", "notes", "small"]
    truncated = tmp_path / "truncated.sql.gz"
    truncated.write_bytes(dump.read_bytes()[: len(dump.read_bytes()) // 2])
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name,
                                                  backup_file=str(truncated)))
    assert result["failed"] is True and "not a complete gzip file" in result["msg"]
    partial = tmp_path / "partial.sql.gz"
    partial.write_bytes(gzip.compress(sql.split(b"CREATE TABLE `small`")[0]))
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name,
                                                  backup_file=str(partial)))
    assert result["failed"] is True and "does not create: small" in result["msg"]
    empty = tmp_path / "empty.sql.gz"
    empty.write_bytes(b"")
    result = run_module("mysql_maintenance", dict(LOGIN, action="verify_backup", schema=name, backup_file=str(empty)))
    assert result["failed"] is True and "empty" in result["msg"]


@pytest.mark.parametrize("name", ["ok_name", "User", "a$b", "T1"])
def test_quote_identifier_accepts(name):
    assert mm.quote_identifier(name) == "`%s`" % name


@pytest.mark.parametrize("name", ["", "a b", "x`y", "a;b", "a" * 65, "é"])
def test_quote_identifier_refuses(name):
    with pytest.raises(ValueError):
        mm.quote_identifier(name)
