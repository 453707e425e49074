"""The per-host maintenance lock (library/maintenance_lock.py): one run at a
time per host, a lock whose run is gone taken over at once, a live one
broken only on request, and a message that says how to clear it."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

from tests.helpers import load_module

lock = load_module("maintenance_lock")


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
    assert blocked["failed"] and "test.yml (pytest, run run-a" in blocked["msg"]
    assert "remove %s" % path in blocked["msg"] and "maintenance_lock_break=true" in blocked["msg"]
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
    # Spawned, not forked: pytest-xdist's worker runs threads (execnet), and a child forked while one of them
    # held a lock waited for it for ever (the whole suite stalled on this test under load). The deadline turns
    # any other hang into a failure that names it.
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        winners = [w for w in pool.map_async(_contend, [(path, "run-%d" % i) for i in range(32)]).get(timeout=300)
                   if w]
    assert len(winners) == 1
    assert json.load(open(path))["run_id"] == winners[0]



def dead_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def owner(pid):
    from tests.helpers import register_module_utils  # pylint: disable=import-outside-toplevel
    register_module_utils()
    from ansible.module_utils.runbook_files import controller_identity  # pylint: disable=import-outside-toplevel
    return controller_identity(pid)


def test_a_lock_whose_playbook_process_is_gone_on_this_host_is_taken_over_at_once(tmp_path, run_module):
    path = tmp_path / "api1.lock"
    assert take(run_module, path, "killed", process=owner(dead_process()))["acquired"]
    started = time.monotonic()
    result = take(run_module, path, "next", wait_s=30, poll_s=1)
    assert result["acquired"] and time.monotonic() - started < 5
    assert result["took_over"]["run_id"] == "killed" and "is gone" in result["took_over_reason"]


def test_a_live_runs_lock_is_respected(tmp_path, run_module):
    path = tmp_path / "api1.lock"
    assert take(run_module, path, "alive", process=owner(os.getpid()))["acquired"]
    assert take(run_module, path, "next", wait_s=0.5, poll_s=0.2)["failed"]


def test_a_run_the_control_node_knows_is_dead_loses_its_lock_at_once(tmp_path, run_module):
    path = tmp_path / "api1.lock"
    elsewhere = dict(owner(os.getpid()), controller="another-control-node")
    assert take(run_module, path, "remote-killed", process=elsewhere)["acquired"]
    assert take(run_module, path, "next", wait_s=0.5, poll_s=0.2)["failed"]  # unknown: respected
    result = take(run_module, path, "next", dead_runs=["remote-killed"])
    assert result["acquired"] and "control node found" in result["took_over_reason"]


def test_breaking_a_live_lock_is_recorded(tmp_path, run_module):
    path = tmp_path / "api1.lock"
    assert take(run_module, path, "hung-weekly", process=owner(os.getpid()))["acquired"]
    result = take(run_module, path, "incident", break_lock=True)
    assert result["acquired"] and result["broken"]["run_id"] == "hung-weekly" and result["took_over"] == {}


def test_check_mode_says_a_dead_runs_lock_could_be_taken_and_leaves_it(tmp_path, run_module):
    path = tmp_path / "api1.lock"
    assert take(run_module, path, "killed", process=owner(dead_process()))["acquired"]
    result = run_module("maintenance_lock", {"lock_file": str(path), "run_id": "next"}, check_mode=True)
    assert result["acquired"] and "is gone" in result["took_over_reason"]
    assert json.load(open(path))["run_id"] == "killed"


def test_lock_names_are_encoded_inside_the_folder(tmp_path, run_module):
    for name in ("../../etc/x", "..", ".", "a/b", "host name"):
        result = run_module("maintenance_lock", {"lock_dir": str(tmp_path), "name": name, "run_id": "r-" + name})
        assert result["acquired"], result
        assert os.path.dirname(result["lock_file"]) == str(tmp_path)
    assert len(os.listdir(str(tmp_path))) == 5


def test_a_lock_file_path_with_dotdot_is_refused(tmp_path, run_module):
    result = run_module("maintenance_lock", {"lock_file": str(tmp_path) + "/../x.lock", "run_id": "r"})
    assert result["failed"] and "'..'" in result["msg"]
