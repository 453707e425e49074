"""The schedule playbooks end to end against the sandbox simulator."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import REPO


def play(playbook, env, *args):
    proc = subprocess.run(["ansible-playbook", os.path.join(REPO, "playbooks", playbook)] + list(args),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc


def latest(env, schedule):
    with open(os.path.join(env["BEMORE_REPORT_DIR"], schedule, "latest.json"), encoding="utf-8") as handle:
        return json.load(handle)


def steps(report, host="sandbox"):
    return {step["step"]: step for step in report["hosts"][host]["steps"]}


def test_weekly_is_green_against_a_healthy_sandbox(sandbox, ansible_env):
    tmp = os.path.join(sandbox.app_dir, "tmp")
    before = sum(len(files) for _, _, files in os.walk(tmp))
    proc = play("weekly.yml", ansible_env, "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sum(len(files) for _, _, files in os.walk(tmp)) == before, "check mode deleted files"
    assert latest(ansible_env, "weekly")["check_mode"] is True
    proc = play("weekly.yml", ansible_env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = latest(ansible_env, "weekly")
    assert report["worst_status"] == "ok", json.dumps(report["hosts"], indent=1)
    by_step = steps(report)
    assert by_step["health"]["figures"]["commit"] == "abc1234def567"
    cleanup = by_step["tmp_cleanup"]["figures"]
    assert cleanup["deleted_by"]["age"] > 0 and cleanup["deleted_by"]["size_cap"] > 0
    left = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(tmp) for f in files)
    assert left == cleanup["bytes_remaining"] <= 2 * 1024 * 1024


def test_weekly_fails_and_still_reports_when_the_service_is_down(sandbox, ansible_env):
    sandbox.fault(health_down=True)
    proc = play("weekly.yml", ansible_env, "-e", "health_check_retries=0")
    assert proc.returncode != 0
    report = latest(ansible_env, "weekly")
    assert report["worst_status"] == "critical" and report["worst_severity"] == "critical"
    assert "HTTP 503" in steps(report)["health"]["summary"]


def test_a_stalled_app_cleanup_service_is_a_warning(sandbox, ansible_env):
    sandbox.fault(cleanup_stalled=True)
    proc = play("weekly.yml", ansible_env, "--tags", "tmp_cleanup")
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = latest(ansible_env, "weekly")
    assert report["worst_status"] == "warning"
    assert list(steps(report)) == ["tmp_cleanup"]
    assert "more than twice" in steps(report)["tmp_cleanup"]["summary"]


def test_monthly_backs_up_and_optimizes_the_sandbox_database(sandbox, ansible_env, tmp_path):
    import pymysql

    try:
        conn = pymysql.connect(host="127.0.0.1", user="root", password="", connect_timeout=3, autocommit=True)
    except pymysql.MySQLError:
        import pytest
        pytest.skip("no MariaDB on 127.0.0.1:3306")
    schema = "bemore_it_" + os.path.basename(str(tmp_path))[-8:].replace("-", "_")
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE `%s`" % schema)
        cur.execute("CREATE TABLE `%s`.`User` (id INT PRIMARY KEY) ENGINE=InnoDB" % schema)
        cur.execute("CREATE TABLE `%s`.`Session` (id INT AUTO_INCREMENT PRIMARY KEY, t TEXT) ENGINE=InnoDB" % schema)
        for _ in range(10):
            cur.executemany("INSERT INTO `%s`.`Session` (t) VALUES (%%s)" % schema, [("y" * 2000,)] * 1000)
        cur.execute("DELETE FROM `%s`.`Session` WHERE id %% 10 != 0" % schema)
        cur.execute("ANALYZE TABLE `%s`.`Session`" % schema)
        cur.fetchall()
    try:
        backups = tmp_path / "backups"
        args = ["-e", "db_maintenance_schema=" + schema, "-e", "db_maintenance_backup_dir=" + str(backups)]
        proc = play("monthly.yml", ansible_env, "--check", *args)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert not backups.exists(), "check mode took a backup"
        proc = play("monthly.yml", ansible_env, *args)
        assert proc.returncode == 0, proc.stdout[-3000:]
        step = steps(latest(ansible_env, "monthly"))["db_maintenance"]
        assert [o["table"] for o in step["figures"]["optimized"]] == ["Session"]
        assert os.listdir(str(backups)) == [os.path.basename(step["figures"]["backup_file"])]
        assert oct(os.stat(step["figures"]["backup_file"]).st_mode & 0o777) == "0o600"
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS `%s`" % schema)
        conn.close()
