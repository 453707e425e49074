"""library/tmp_cleanup.py and module_utils/safe_tree.py on real, hostile trees."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible.module_utils import safe_tree
from tests.conftest import load_module
from tests.helpers import require

tc = load_module("tmp_cleanup")
DAY = 86400
NOW = time.time()


def make(path, size=1000, age_days=0.0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"x" * size)
    stamp = NOW - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


def snapshot(top):
    """Every entry below top: relative path -> (kind, size, mtime, link target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st_ = os.lstat(full)
            out[os.path.relpath(full, top)] = (st_.st_mode >> 12, st_.st_size, int(st_.st_mtime),
                                               os.readlink(full) if os.path.islink(full) else None)
    return out


def run(root, **kw):
    kw.setdefault("now", NOW)
    return tc.Cleanup(str(root), **kw).run(lock_timeout=5)


def test_age_rule_then_size_cap_oldest_first(tmp_path):
    for i, age in enumerate([10, 8, 6, 5, 4, 3, 2, 1]):
        make(str(tmp_path / ("f%d.wav" % i)), size=100 * 1024, age_days=age)
    # 6 files of 100 KiB survive the age rule; a 0.3 MiB cap keeps the 3 newest.
    result = run(tmp_path, max_age_days=7, max_size_mb=0.3)
    assert result["deleted_by"] == {"age": 2, "size_cap": 3}
    assert sorted(os.listdir(tmp_path)) == ["f5.wav", "f6.wav", "f7.wav"]
    assert result["bytes_remaining"] == 3 * 100 * 1024 == sum(os.path.getsize(tmp_path / n) for n in os.listdir(tmp_path))
    assert result["files_remaining"] == 3 and result["bytes_freed"] == 5 * 100 * 1024
    assert [d["reason"] for d in result["deleted"]].count("size_cap") == 3
    assert not result["over_cap"]


def test_check_mode_reports_the_same_and_deletes_nothing(tmp_path):
    for i, age in enumerate([10, 8, 6, 5, 4, 3]):
        make(str(tmp_path / "d" / ("f%d" % i)), size=50000, age_days=age)
    before = snapshot(tmp_path)
    dry = run(tmp_path, max_age_days=7, max_size_mb=0.1, check_mode=True)
    assert snapshot(tmp_path) == before
    real = run(tmp_path, max_age_days=7, max_size_mb=0.1)
    for key in ("files_deleted", "bytes_freed", "deleted_by", "files_remaining", "bytes_remaining"):
        assert dry[key] == real[key], key


def test_symlinks_are_never_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    make(str(outside / "precious.wav"), age_days=30)
    make(str(outside / "dir" / "old.wav"), age_days=30)
    make(str(root / "keep.wav"), age_days=1)
    os.symlink(str(outside / "precious.wav"), str(root / "old_link"))
    os.utime(str(root / "old_link"), (NOW - 30 * DAY, NOW - 30 * DAY), follow_symlinks=False)
    os.symlink(str(outside / "dir"), str(root / "young_dirlink"))
    outside_before = snapshot(outside)
    result = run(root, max_age_days=7, max_size_mb=0)
    assert snapshot(outside) == outside_before
    assert not os.path.lexists(str(root / "old_link"))  # an old link goes like an old file
    assert os.path.islink(str(root / "young_dirlink"))  # a young one stays, and is never entered
    assert result["skipped_by"]["symlink"] == 1
    assert result["files_deleted"] == 1 and result["bytes_freed"] == 0


class SwappingWalker(safe_tree.Walker):
    """Swaps a directory for a symlink to the outside right before it is opened."""

    outside = None

    def _open_child(self, parent_fd, name, st_, relpath):
        if name == "victim":
            os.rename(name, name + ".moved", src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            os.symlink(self.outside, name, dir_fd=parent_fd)
        return super()._open_child(parent_fd, name, st_, relpath)


def test_a_directory_swapped_for_a_symlink_mid_walk_does_not_lead_outside(tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    make(str(outside / "precious.wav"), age_days=30)
    make(str(root / "victim" / "old.wav"), age_days=30)
    SwappingWalker.outside = str(outside)
    monkeypatch.setattr(tc, "Walker", SwappingWalker)
    before = snapshot(outside)
    result = run(root, max_age_days=7, max_size_mb=0)
    assert snapshot(outside) == before
    assert result["skipped_by"]["symlink"] == 1
    assert os.path.exists(str(root / "victim.moved" / "old.wav"))


def test_files_that_vanish_mid_run_are_counted_not_fatal(tmp_path, monkeypatch):
    for i in range(20):
        make(str(tmp_path / ("f%02d" % i)), age_days=10)
    real_unlink = safe_tree.os.unlink
    calls = []

    def racing_unlink(name, dir_fd=None):
        calls.append(name)
        if len(calls) % 2:
            real_unlink(name, dir_fd=dir_fd)  # someone else removed it first
        return real_unlink(name, dir_fd=dir_fd)

    monkeypatch.setattr(safe_tree.os, "unlink", racing_unlink)
    result = run(tmp_path, max_age_days=7, max_size_mb=0)
    assert result["files_deleted"] == 10 and result["skipped_by"]["vanished"] == 10
    assert os.listdir(tmp_path) == []


def test_open_files_are_never_deleted(tmp_path):
    path = make(str(tmp_path / "recording.wav"), age_days=30)
    make(str(tmp_path / "done.wav"), age_days=30)
    with open(path, "ab"):
        result = run(tmp_path, max_age_days=7, max_size_mb=0)
    assert os.path.exists(path) and not os.path.exists(str(tmp_path / "done.wav"))
    assert result["skipped_by"]["open"] == 1


def test_an_open_file_in_another_process_is_seen(tmp_path):
    path = make(str(tmp_path / "held.wav"), age_days=30)
    holder = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1]); print('ok', flush=True); time.sleep(30)",
                               path], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"ok"
        result = run(tmp_path, max_age_days=0, max_size_mb=0)
    finally:
        holder.kill()
    assert os.path.exists(path) and result["skipped_by"]["open"] == 1


def test_never_crosses_a_mount_point(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "none", str(mnt)], capture_output=True, text=True)
    require(mounted.returncode == 0, "a tmpfs mount", "needs root with CAP_SYS_ADMIN: %s" % mounted.stderr.strip())
    try:
        make(str(mnt / "other_fs.wav"), age_days=30)
        make(str(tmp_path / "same_fs.wav"), age_days=30)
        result = run(tmp_path, max_age_days=7, max_size_mb=0)
        assert os.path.exists(str(mnt / "other_fs.wav"))
        assert result["skipped_by"]["other_filesystem"] == 1 and result["files_deleted"] == 1
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_patterns_excludes_and_empty_dirs(tmp_path):
    make(str(tmp_path / "a.wav"), age_days=30)
    make(str(tmp_path / "a.txt"), age_days=30)
    make(str(tmp_path / "keep" / "b.wav"), age_days=30)
    make(str(tmp_path / "gone" / "c.wav"), age_days=30)
    result = run(tmp_path, max_age_days=7, max_size_mb=0, patterns=["*.wav"], excludes=["keep"],
                 remove_empty_dirs=True)
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "keep"]
    assert os.path.exists(str(tmp_path / "keep" / "b.wav"))
    assert result["dirs_removed"] == 1 and result["skipped_by"]["excluded"] == 1


@pytest.mark.parametrize("path, reason", [
    ("/", "top-level"), ("/etc", "top-level"), ("/usr/lib", "system tree"), ("/var", "top-level"),
    ("/root", "top-level"), ("/home", "top-level"), ("relative/tmp", "relative"),
    ("/nonexistent/bemore/tmp", "does not exist"), ("", "empty"),
])
def test_unsafe_roots_are_refused(path, reason):
    with pytest.raises(safe_tree.UnsafeRoot, match=reason):
        safe_tree.check_root(path)


def test_a_symlinked_root_or_a_file_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    with pytest.raises(safe_tree.UnsafeRoot, match="symlink"):
        safe_tree.check_root(str(tmp_path / "link"))
    make(str(tmp_path / "file"))
    with pytest.raises(safe_tree.UnsafeRoot, match="not a directory"):
        safe_tree.check_root(str(tmp_path / "file"))


def test_two_runs_at_once_do_not_double_count(tmp_path):
    for i in range(3000):
        make(str(tmp_path / ("d%d" % (i % 10)) / ("f%d" % i)), size=10, age_days=10)
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(tmp_path, max_age_days=7, max_size_mb=0)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["files_deleted"] for r in results) == [0, 3000]
    assert all(not r["errors"] for r in results)


def test_a_held_lock_times_out_with_a_clear_message(tmp_path):
    walker = safe_tree.Walker(str(tmp_path))
    walker.open_root()
    assert walker.lock(1)
    try:
        with pytest.raises(RuntimeError, match="another cleanup"):
            tc.Cleanup(str(tmp_path)).run(lock_timeout=0.2)
    finally:
        walker.close()


def test_max_runtime_stops_cleanly(tmp_path):
    for i in range(20000):
        make(str(tmp_path / ("f%05d" % i)), size=1, age_days=10)
    cleanup = tc.Cleanup(str(tmp_path), max_age_days=7, max_size_mb=0, max_runtime_s=0.05)
    result = cleanup.run()
    assert result["interrupted"] is True
    assert 0 < result["files_deleted"] < 20000
    assert result["files_deleted"] + len(os.listdir(tmp_path)) == 20000


@pytest.mark.parametrize("stamps, sizes, excess, expected", [
    ([1, 2, 3, 4], [10, 10, 10, 10], 15, (2, 5)),
    ([1, 2, 3, 4], [10, 10, 10, 10], 10, (1, 10)),
    ([5, 5, 5], [10, 10, 10], 25, (5, 25)),
    ([1, 2], [10, 10], 100, (3.0, 0)),
    # Found by the property test: the newest bucket alone cannot cover it either.
    ([0, 86400, 86400], [0, 1, 1], 3, (86401.0, 0)),
    ([1, 2], [10, 10], 0, None),
])
def test_eviction_threshold(stamps, sizes, excess, expected):
    assert tc.eviction_threshold(stamps, sizes, excess) == expected


# --- property test -----------------------------------------------------------

entry = st.tuples(
    st.sampled_from(["", "a", "a/b", "c"]),               # directory
    st.sampled_from(["x.wav", "y.wav", "z.tmp", "k.keep"]),  # name
    st.integers(min_value=0, max_value=40000),             # size
    st.floats(min_value=0, max_value=20),                  # age in days
    st.sampled_from(["file", "file", "file", "link_out", "dirlink_out"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(entry, max_size=25), cap_kb=st.integers(min_value=0, max_value=200),
       max_age=st.sampled_from([0.0, 3.0, 7.0]))
def test_random_trees_keep_the_promises(tmp_path_factory, entries, cap_kb, max_age):
    base = tmp_path_factory.mktemp("prop")
    root, outside = base / "root", base / "outside"
    make(str(outside / "target.wav"), 5000, 30)
    os.makedirs(str(root))
    for index, (dirname, name, size, age, kind) in enumerate(entries):
        path = os.path.join(str(root), dirname, "%d_%s" % (index, name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if kind == "file":
            make(path, size, age)
        elif kind == "link_out":
            os.symlink(str(outside / "target.wav"), path)
        else:
            os.symlink(str(outside), path)
    outside_before = snapshot(outside)
    before = snapshot(root)
    excludes = ["*.keep"]
    result = tc.Cleanup(str(root), max_age_days=max_age, max_size_mb=cap_kb / 1024.0, excludes=excludes,
                        now=NOW + 1).run()
    after = snapshot(root)
    assert snapshot(outside) == outside_before, "something outside the root changed"
    removed = set(before) - set(after)
    for rel in removed:
        kind, size, mtime, _ = before[rel]
        assert not rel.endswith(".keep"), "an excluded file was deleted"
    files_after = {k: v for k, v in after.items() if v[0] == 0o10}
    total_after = sum(v[1] for v in files_after.values())
    assert total_after == result["bytes_remaining"]
    cap = cap_kb * 1024
    deleted_by_cap = result["deleted_by"]["size_cap"]
    # What the age rule leaves: young files, plus excluded files of any age
    # (they are never deleted but take space).
    left_by_age = sum(v[1] for k, v in before.items()
                      if v[0] == 0o10 and (k.endswith(".keep") or NOW + 1 - v[2] <= max_age * DAY - 1))
    if not cap or left_by_age <= cap:
        # Under the cap after the age rule: nothing young may go.
        assert deleted_by_cap == 0
        for rel in removed:
            assert NOW + 1 - before[rel][2] > max_age * DAY - 1, "a file newer than the threshold was deleted"
    if cap:
        protected = sum(v[1] for k, v in files_after.items() if k.endswith(".keep"))
        assert total_after <= cap or total_after == protected, "over the cap with deletable files left"


# --- the unlink helper process ------------------------------------------------

def hostile_tree(root, outside):
    """Old and young files in nested folders, links out, an excluded file and ties for the cap."""
    make(str(outside / "target.wav"), 5000, 30)
    for i in range(600):
        make(str(root / ("d%d" % (i % 7)) / ("e%d" % (i % 3)) / ("f%04d.wav" % i)), size=100 + i,
             age_days=(i % 20) * 0.75)
    for i in range(5):
        make(str(root / "tie" / ("t%d.wav" % i)), size=1000, age_days=3)  # same stamp: a tie at the threshold
    make(str(root / "d1" / "keep.me"), size=50000, age_days=30)
    os.symlink(str(outside / "target.wav"), str(root / "d2" / "link_out.wav"))
    os.symlink(str(outside), str(root / "d3" / "dirlink"))


@pytest.mark.parametrize("cap_mb", [0, 0.15])
def test_the_helper_process_and_unlinking_in_place_agree(tmp_path, cap_mb):
    outcomes = []
    for background in (True, False):
        root, outside = tmp_path / ("root%d" % background), tmp_path / ("out%d" % background)
        hostile_tree(root, outside)
        before_outside = snapshot(outside)
        result = run(root, max_age_days=7, max_size_mb=cap_mb, excludes=["keep.*"], remove_empty_dirs=True,
                     background_unlink=background)
        assert snapshot(outside) == before_outside
        result.pop("root")
        # Listing order is each directory's own; compare the deleted entries as a set.
        result["deleted"] = sorted((os.path.relpath(d["path"], str(root)), d["size"], d["reason"])
                                   for d in result["deleted"])
        kinds = {0o04: "dir", 0o12: "link"}  # their own stamps differ between the two trees
        left = sorted((rel, kinds.get(v[0], v)) for rel, v in snapshot(root).items())
        outcomes.append((result, left))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0]["files_deleted"] > 0
    if cap_mb:
        assert outcomes[0][0]["deleted_by"]["size_cap"] > 0 and not outcomes[0][0]["over_cap"]


def test_a_dead_helper_is_reported_and_the_next_run_finishes(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    root = tmp_path / "root"
    hostile_tree(root, outside)
    before_outside = snapshot(outside)
    monkeypatch.setattr(safe_tree, "_unlink_helper", lambda sock, bufsize: os._exit(3))
    first = run(root, max_age_days=7, max_size_mb=0)
    assert any("helper process stopped early" in e for e in first["errors"])
    assert snapshot(outside) == before_outside
    monkeypatch.undo()
    second = run(root, max_age_days=7, max_size_mb=0)
    assert not second["errors"]
    old = [p for p, v in snapshot(root).items() if v[0] == 0o10 and NOW - v[2] > 7 * DAY and "keep" not in p]
    assert old == []
    assert second["files_remaining"] == sum(1 for v in snapshot(root).values() if v[0] == 0o10)


def test_no_helper_process_is_left_behind(tmp_path, monkeypatch):
    started = []

    class Recording(safe_tree.Unlinker):
        def __init__(self):
            super().__init__()
            started.append(self.pid)

    monkeypatch.setattr(safe_tree, "Unlinker", Recording)
    for i in range(300):
        make(str(tmp_path / ("f%03d" % i)), size=1, age_days=10)
    result = run(tmp_path, max_age_days=7, max_size_mb=0)
    assert result["files_deleted"] == 300 and not result["errors"]
    assert len(started) == 1 and started[0]
    with pytest.raises(ChildProcessError):
        os.waitpid(started[0], os.WNOHANG)  # already reaped: no helper and no zombie is left
