"""log_scan, disk_usage and maintenance_lock: pure helpers and real files."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import shutil
import time

import pytest

from tests.helpers import load_module

log_scan = load_module("log_scan")
disk_usage = load_module("disk_usage")
lock = load_module("maintenance_lock")


# ------------------------------------------------------------------ log_scan

@pytest.mark.parametrize("line,sig", [
    ("2026-11-29T04:00:00.123Z ERROR [GEMINI] request timed out after 30000ms (session 4f2a91)",
     "ERROR [GEMINI] request timed out after <n>ms (session <hex>)"),
    ("2026-11-29 04:00:00,5 ERROR [WEBSOCKET] client 10.0.0.12:5511 disconnected (code 1006)",
     "ERROR [WEBSOCKET] client <ip> disconnected (code <n>)"),
    ("Nov 29 04:00:00 ERROR [STT] cannot read /srv/bemore/app/tmp/rec_01.wav",
     "ERROR [STT] cannot read <path>"),
    ("ERROR [SESSION] user 'bob@example.test' id 3f2b8c1e-1111-2222-3333-444455556666 not found",
     "ERROR [SESSION] user <str> id <uuid> not found"),
])
def test_signature_normalises_variable_parts(line, sig):
    assert log_scan.signature(line) == sig


def test_signature_groups_lines_that_differ_only_in_values():
    a = log_scan.signature("ERROR [DATABASE] deadlock on table Session; retrying (attempt 2)")
    b = log_scan.signature("ERROR [DATABASE] deadlock on table Session; retrying (attempt 3)")
    c = log_scan.signature("ERROR [DATABASE] connection refused")
    assert a == b != c


def write(path, text, mode="a"):
    with open(path, mode) as fh:
        fh.write(text)


def scan(run_module, log, position, known=(), **extra):
    result = run_module("log_scan", dict({"files": [str(log)], "position": position,
                                          "known_signatures": list(known)}, **extra))
    assert not result.get("failed"), result.get("msg")
    return result


def test_reads_only_new_whole_lines(tmp_path, run_module):
    log = tmp_path / "app.log"
    write(log, "INFO start\nERROR [CBT] boom 1\nWARN slow\n")
    first = scan(run_module, log, {})
    assert first["lines_read"] == 3 and first["counts"] == {"error": 1, "warn": 1}
    assert first["new_signatures"] == ["ERROR [CBT] boom <n>"]
    write(log, "ERROR [CBT] boom 2\nERROR [VAD] half a li")   # the last line is still being written
    second = scan(run_module, log, first["position"], first["new_signatures"])
    assert second["lines_read"] == 1 and second["counts"]["error"] == 1
    assert second["new_signatures"] == [] and second["signatures"][0]["new"] is False
    write(log, "ne\n")
    third = scan(run_module, log, second["position"])
    assert third["lines_read"] == 1 and third["signatures"][0]["sample"] == "ERROR [VAD] half a line"
    assert scan(run_module, log, third["position"])["lines_read"] == 0


@pytest.mark.parametrize("how", ["rename", "rename_compress", "copytruncate"])
def test_rotation_between_runs_loses_and_repeats_nothing(tmp_path, run_module, how):
    log = tmp_path / "app.log"
    write(log, "".join("INFO old %d\n" % i for i in range(5)))
    first = scan(run_module, log, {})
    write(log, "ERROR [STT] before rotation a\nERROR [STT] before rotation b\n")
    if how.startswith("rename"):
        os.rename(log, str(log) + ".1")
        if how == "rename_compress":
            with open(str(log) + ".1", "rb") as src, gzip.open(str(log) + ".1.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.unlink(str(log) + ".1")
        write(log, "", "w")
    else:
        shutil.copyfile(log, str(log) + ".1")
        os.truncate(log, 0)
    write(log, "ERROR [STT] after rotation\n")
    second = scan(run_module, log, first["position"])
    assert second["lines_read"] == 3, second
    assert second["counts"]["error"] == 3
    assert len(second["rotations"]) == 1 and second["rotations"][0]["lines_from_old"] == 2
    assert scan(run_module, log, second["position"])["lines_read"] == 0


def test_first_run_at_end_and_missing_file(tmp_path, run_module):
    log = tmp_path / "app.log"
    write(log, "ERROR old\n")
    result = scan(run_module, log, {}, first_run="end")
    assert result["lines_read"] == 0 and result["position"]["files"][str(log)]["offset"] == 10
    missing = scan(run_module, tmp_path / "nope.log", {})
    assert missing["problems"] == ["%s does not exist" % (tmp_path / "nope.log")]


def test_bad_input_is_refused(run_module):
    assert "absolute" in run_module("log_scan", {"files": ["app.log"]})["msg"]
    assert "bad error_pattern" in run_module("log_scan", {"files": ["/x"], "error_pattern": "("})["msg"]


# ---------------------------------------------------------------- disk_usage

@pytest.mark.parametrize("samples,expected", [
    ([], None),
    ([{"ts": 0, "used_bytes": 100}], None),
    ([{"ts": 0, "used_bytes": 0}, {"ts": 86400, "used_bytes": 1000}], 1000.0),
    ([{"ts": 0, "used_bytes": 0}, {"ts": 43200, "used_bytes": 600}, {"ts": 86400, "used_bytes": 1000}], 1000.0),
    ([{"ts": 0, "used_bytes": 1000}, {"ts": 86400, "used_bytes": 0}], -1000.0),
    ([{"ts": 0, "used_bytes": 0}, {"ts": 600, "used_bytes": 10}], None),      # spans less than min_span
    ([{"ts": "x"}, {"ts": 0, "used_bytes": 0}, {"ts": 86400, "used_bytes": 5}], 5.0),  # a broken sample is skipped
])
def test_growth_fit(samples, expected):
    got = disk_usage.growth_per_day(samples, 3600)
    assert (got is None and expected is None) or got == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("avail,growth,days", [(1000, 100, 10.0), (1000, 0, None), (1000, -5, None), (1000, None, None)])
def test_days_until_full(avail, growth, days):
    assert disk_usage.days_until_full(avail, growth) == days


def test_folder_usage_counts_files_not_links_or_other_trees(tmp_path):
    root = tmp_path / "tmp"
    (root / "chunks").mkdir(parents=True)
    (root / "a.wav").write_bytes(b"x" * 1000)
    (root / "chunks" / "b.webm").write_bytes(b"y" * 300)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"z" * 10_000)
    os.symlink(outside, root / "link.bin")
    os.symlink(tmp_path, root / "loop")
    usage = disk_usage.folder_usage(str(root))
    assert usage == {"files": 2, "bytes": 1300, "missing": False,
                     "largest": [{"name": "a.wav", "bytes": 1000}, {"name": "chunks/b.webm", "bytes": 300}]}
    assert disk_usage.folder_usage(str(tmp_path / "none"))["missing"] is True


def test_disk_usage_module_matches_statvfs(tmp_path, run_module):
    result = run_module("disk_usage", {"filesystem_of": str(tmp_path), "folder": str(tmp_path)})
    st = os.statvfs(str(tmp_path))
    assert result["filesystem"]["total_bytes"] == st.f_blocks * st.f_frsize
    assert 0 <= result["filesystem"]["used_percent"] <= 100
    assert result["days_until_full"] is None and result["changed"] is False
    assert run_module("disk_usage", {"filesystem_of": str(tmp_path / "nope")})["failed"] is True


# ----------------------------------------------------------- maintenance_lock

def take(run_module, path, run_id, **extra):
    return run_module("maintenance_lock", dict({"lock_file": str(path), "run_id": run_id, "owner": "pytest",
                                                "playbook": "test.yml"}, **extra))


def test_lock_blocks_another_run_and_release_is_owner_only(tmp_path, run_module):
    path = tmp_path / "locks" / "api1.lock"
    first = take(run_module, path, "run-a")
    assert first["acquired"] and first["changed"] and json.load(open(path))["run_id"] == "run-a"
    again = take(run_module, path, "run-a")
    assert again["acquired"] and not again["changed"]
    blocked = take(run_module, path, "run-b", wait_s=1, poll_s=0.3)
    assert blocked["failed"] and "test.yml (pytest, run run-a)" in blocked["msg"]
    assert blocked["waited_s"] >= 0.6
    foreign = take(run_module, path, "run-b", state="released")
    assert not foreign["changed"] and path.exists()
    mine = take(run_module, path, "run-a", state="released")
    assert mine["changed"] and not path.exists()


def test_lock_check_mode_changes_nothing(tmp_path, run_module):
    path = tmp_path / "api1.lock"
    result = run_module("maintenance_lock", {"lock_file": str(path), "run_id": "r"}, check_mode=True)
    assert result["acquired"] and result["changed"] and not path.exists()


def test_stale_and_damaged_locks_are_taken_over(tmp_path, run_module):
    path = tmp_path / "api1.lock"
    path.write_text(json.dumps({"run_id": "old", "started": time.time() - 7200, "playbook": "daily.yml"}))
    result = take(run_module, path, "new", stale_after_s=3600)
    assert result["acquired"] and result["took_over"]["run_id"] == "old"
    path.write_text("{garbage")
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert take(run_module, path, "newer", stale_after_s=3600)["acquired"]


def test_lock_refuses_a_symlink(tmp_path, run_module):
    target = tmp_path / "elsewhere"
    os.symlink(target, tmp_path / "api1.lock")
    result = take(run_module, tmp_path / "api1.lock", "r")
    assert result["failed"] and not target.exists()


def _contend(args):
    path, run_id = args
    now = time.time()
    try:
        lock.try_acquire(path, lock.make_record(run_id, "p", "x", now), 3600, now)
        return run_id
    except lock.LockHeld:
        return None


def test_exactly_one_of_many_concurrent_runs_wins(tmp_path):
    path = str(tmp_path / "api1.lock")
    with open(path, "w") as fh:  # a stale lock that every contender wants to take over
        json.dump({"run_id": "dead", "started": time.time() - 86400}, fh)
    with multiprocessing.Pool(8) as pool:
        winners = [w for w in pool.map(_contend, [(path, "run-%d" % i) for i in range(32)]) if w]
    assert len(winners) == 1
    assert json.load(open(path))["run_id"] == winners[0]
