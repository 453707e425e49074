"""The rules of module_utils/safe_tree.py, pinned one by one: which roots are
refused, which entries a Rule removes at the edges of its age window, the tie
budget, the tallies, and the walk's limits. Real trees in tmp_path; stamps
are set with os.utime, so nothing depends on today's date."""

from __future__ import annotations

import os
import stat

import pytest

from tests.helpers import register_module_utils

register_module_utils()

from ansible.module_utils import safe_tree  # noqa: E402  pylint: disable=wrong-import-position

HI = 1_700_000_000  # the age limit's stamp: an entry stamped before it is old enough


def make(path, size=10, stamp=HI - 100):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (stamp, stamp))
    return path


def sweep(root, rule, background=False, **walker_args):
    walker = safe_tree.Walker(str(root), **walker_args)
    walker.open_root()
    try:
        complete = walker.sweep(rule, background_unlink=background)
    finally:
        walker.close()
    return walker, complete


def names(root):
    return sorted(os.path.relpath(os.path.join(d, f), str(root)) for d, _dirs, files in os.walk(str(root)) for f in files)


# --- roots ----------------------------------------------------------------------------------------

def _real_dir(path):
    return os.path.isdir(path) and not os.path.islink(path)


EXISTING_PROTECTED = sorted(p for p in safe_tree.PROTECTED_ROOTS if p != "/" and _real_dir(p))


@pytest.mark.parametrize("root", EXISTING_PROTECTED)
def test_every_protected_root_is_refused(root):
    """Each protected system directory (/var/lib, /var/log, /usr/local, ...) is refused as a cleanup root."""
    with pytest.raises(safe_tree.UnsafeRoot, match="top-level system directory"):
        safe_tree.check_root(root)


def test_the_root_folder_is_refused():
    """/ itself is refused."""
    with pytest.raises(safe_tree.UnsafeRoot, match="top-level system directory"):
        safe_tree.check_root("/")


def test_the_nested_protected_roots_exist_here():
    """The protected roots below the top level are tried on this machine (a test that tried none would prove nothing)."""
    assert {"/var/lib", "/var/log"} <= set(EXISTING_PROTECTED)


@pytest.mark.parametrize("spelling", ["/var/lib/", "/var//lib", "/var/lib/.", "/usr/../var/lib", "/var/log/../lib"])
def test_a_protected_root_spelt_otherwise_is_refused(spelling):
    """The path is normalised before it is compared: trailing slashes, doubled slashes and .. do not get past."""
    with pytest.raises(safe_tree.UnsafeRoot, match="top-level system directory"):
        safe_tree.check_root(spelling)


TOP_LEVEL = sorted(os.path.join("/", n) for n in os.listdir("/")
                   if _real_dir(os.path.join("/", n)) and os.path.join("/", n) not in safe_tree.PROTECTED_ROOTS
                   and n != "tmp")


@pytest.mark.skipif(not TOP_LEVEL, reason="no unlisted top-level directory on this machine")
@pytest.mark.parametrize("root", TOP_LEVEL[:3])
def test_any_top_level_directory_is_refused(root):
    """A top-level directory that is not in the list (/data, /work, ...) is refused all the same."""
    with pytest.raises(safe_tree.UnsafeRoot, match="top-level system directory"):
        safe_tree.check_root(root)


def test_tmp_itself_may_be_cleaned():
    """/tmp is the one top-level directory that is a cleanup root."""
    assert safe_tree.check_root("/tmp") == os.path.realpath("/tmp")


def _subdir(tree):
    try:
        for entry in sorted(os.listdir(tree)):
            if _real_dir(os.path.join(tree, entry)):
                return os.path.join(tree, entry)
    except OSError:
        pass
    return None


TREES = [(tree, _subdir(tree)) for tree in safe_tree.PROTECTED_TREES if _subdir(tree)]


@pytest.mark.parametrize("tree, inside", TREES, ids=[t[0] for t in TREES])
def test_nothing_inside_a_system_tree_is_a_cleanup_root(tree, inside):
    """A folder below /usr, /etc, /proc, /sys, /dev, ... is refused."""
    with pytest.raises(safe_tree.UnsafeRoot, match="inside the system tree %s$" % tree):
        safe_tree.check_root(inside)


def test_the_system_trees_are_tried_here():
    """At least /usr, /etc and /proc have a folder to try on this machine."""
    assert {"/usr", "/etc", "/proc"} <= set(t[0] for t in TREES)


def test_a_system_tree_reached_through_a_symlinked_parent_is_refused(tmp_path):
    """The resolved path is checked too: tmp/link/share, where link -> /usr, is /usr/share."""
    os.symlink("/usr", str(tmp_path / "usr_link"))
    with pytest.raises(safe_tree.UnsafeRoot, match="'/usr/share': it is inside the system tree /usr"):
        safe_tree.check_root(str(tmp_path / "usr_link" / "share"))
    os.symlink("/var", str(tmp_path / "var_link"))
    with pytest.raises(safe_tree.UnsafeRoot, match="'/var/lib': it is / or a top-level system directory"):
        safe_tree.check_root(str(tmp_path / "var_link" / "lib"))


def test_a_home_directory_is_refused(tmp_path, monkeypatch):
    """The home directory of the user running the cleanup is refused; a folder beside it is not."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "other").mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(safe_tree.UnsafeRoot, match="it is a home directory"):
        safe_tree.check_root(str(home))
    with pytest.raises(safe_tree.UnsafeRoot, match="it is a home directory"):
        safe_tree.check_root(str(home) + "/")
    assert safe_tree.check_root(str(tmp_path / "other")) == os.path.realpath(str(tmp_path / "other"))


@pytest.mark.parametrize("path, reason", [
    ("", "path is empty"), (None, "path is empty"), (b"/tmp", "path is empty"), ("/tmp/a\x00b", "NUL byte"),
    ("tmp", "is relative"), ("./tmp", "is relative")])
def test_a_root_that_is_not_an_absolute_path_is_refused(path, reason):
    """Empty, non-text, NUL-bearing and relative roots are refused before the disk is looked at."""
    with pytest.raises(safe_tree.UnsafeRoot, match=reason):
        safe_tree.check_root(path)


def test_a_root_that_is_not_a_real_directory_is_refused(tmp_path):
    """A missing path, a file and a symlink (with or without a trailing slash) are refused."""
    (tmp_path / "dir").mkdir()
    make(tmp_path / "file")
    os.symlink(str(tmp_path / "dir"), str(tmp_path / "link"))
    with pytest.raises(safe_tree.UnsafeRoot, match="does not exist"):
        safe_tree.check_root(str(tmp_path / "missing"))
    with pytest.raises(safe_tree.UnsafeRoot, match="is not a directory"):
        safe_tree.check_root(str(tmp_path / "file"))
    for spelling in (str(tmp_path / "link"), str(tmp_path / "link") + "/"):
        with pytest.raises(safe_tree.UnsafeRoot, match="is a symlink"):
            safe_tree.check_root(spelling)


def test_a_dangling_symlink_is_refused_as_a_symlink(tmp_path):
    """A symlink that points nowhere is named as a symlink, not as missing."""
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "dangling"))
    with pytest.raises(safe_tree.UnsafeRoot, match="is a symlink"):
        safe_tree.check_root(str(tmp_path / "dangling"))


def test_the_accepted_root_is_returned_resolved(tmp_path):
    """check_root returns the real absolute path the walk will open."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert safe_tree.check_root(str(tmp_path / "a" / "b" / ".." / "b")) == os.path.realpath(str(tmp_path / "a" / "b"))


def test_globs_compile_to_one_pattern_or_none():
    """An empty glob list matches nothing (None: no filter); globs match whole names only."""
    assert safe_tree.compile_globs([]) is None
    assert safe_tree.compile_globs(None) is None
    rx = safe_tree.compile_globs(["*.mp3", "rec-?.wav"])
    assert rx.match("a.mp3") and rx.match("rec-1.wav")
    assert not rx.match("a.mp3.part") and not rx.match("rec-12.wav")


def test_join_makes_paths_relative_to_the_root():
    """The root's own entries have no leading slash."""
    assert safe_tree.join("", "a") == "a"
    assert safe_tree.join("a/b", "c") == "a/b/c"


# --- the age window ----------------------------------------------------------------------------

@pytest.mark.parametrize("background", [False, True])
def test_the_age_window_is_closed_below_and_open_at_the_limit(tmp_path, background):
    """A Rule removes entries stamped in [lo, hi): just under hi goes, exactly hi and just over stay, under lo stays."""
    lo = HI - 1000
    make(tmp_path / "under_lo", stamp=lo - 1)
    make(tmp_path / "at_lo", stamp=lo)
    make(tmp_path / "under_hi", stamp=HI - 1)
    make(tmp_path / "at_hi", stamp=HI)
    make(tmp_path / "over_hi", stamp=HI + 1)
    rule = safe_tree.Rule(HI, lo=lo)
    _walker, complete = sweep(tmp_path, rule, background=background)
    assert complete is True
    assert names(tmp_path) == ["at_hi", "over_hi", "under_lo"]
    assert (rule.removed, rule.removed_bytes, rule.kept, rule.kept_bytes) == (2, 20, 3, 30)


def test_a_tie_budget_of_zero_keeps_files_exactly_at_the_age_limit(tmp_path):
    """Without a tie budget a file stamped exactly at the limit is kept."""
    make(tmp_path / "at_hi", stamp=HI)
    rule = safe_tree.Rule(HI, tie_budget=0)
    sweep(tmp_path, rule)
    assert names(tmp_path) == ["at_hi"] and rule.removed == 0


@pytest.mark.parametrize("background", [False, True])
def test_the_tie_budget_removes_files_at_the_limit_only_while_it_lasts(tmp_path, background):
    """A budget of 10 bytes removes one 10-byte file stamped at the limit, then stops: a spent budget (0) removes no more."""
    for n in range(3):
        make(tmp_path / ("tie%d" % n), size=10, stamp=HI)
    make(tmp_path / "old", size=7, stamp=HI - 5)
    rule = safe_tree.Rule(HI, tie_budget=10)
    sweep(tmp_path, rule, background=background)
    assert rule.removed == 2 and rule.removed_bytes == 17
    assert rule.tie_budget == 0
    assert len([n for n in names(tmp_path) if n.startswith("tie")]) == 2 and "old" not in names(tmp_path)


def test_a_tie_budget_goes_past_zero_with_the_file_that_spends_it(tmp_path):
    """A file at the limit goes while any budget is left, even if it is larger than what is left."""
    for n in range(2):
        make(tmp_path / ("tie%d" % n), size=10, stamp=HI)
    rule = safe_tree.Rule(HI, tie_budget=11)
    sweep(tmp_path, rule)
    assert rule.removed == 2 and rule.tie_budget == -9 and names(tmp_path) == []


def test_the_rule_can_judge_another_stamp(tmp_path):
    """attr picks the stamp: with st_atime an entry is judged by its access time, not its modification time."""
    path = make(tmp_path / "read_long_ago_written_now", stamp=HI + 50)
    os.utime(path, (HI - 50, HI + 50))
    rule = safe_tree.Rule(HI, attr="st_atime")
    sweep(tmp_path, rule)
    assert names(tmp_path) == [] and rule.removed == 1


# --- what a rule looks at ----------------------------------------------------------------------

def test_patterns_limit_the_rule_to_matching_names(tmp_path):
    """With patterns only matching names go; the others are kept and counted as kept."""
    make(tmp_path / "a.mp3", size=3)
    make(tmp_path / "a.txt", size=4)
    rule = safe_tree.Rule(HI, patterns=safe_tree.compile_globs(["*.mp3"]))
    sweep(tmp_path, rule)
    assert names(tmp_path) == ["a.txt"]
    assert (rule.removed, rule.removed_bytes, rule.kept, rule.kept_bytes) == (1, 3, 1, 4)


def test_a_held_file_is_kept_and_counted_as_open(tmp_path):
    """A file in ``held`` (open in some process) is kept however old."""
    path = make(tmp_path / "open.mp3")
    make(tmp_path / "closed.mp3")
    st = os.stat(str(path))
    rule = safe_tree.Rule(HI, held={(st.st_dev, st.st_ino)})
    walker, _complete = sweep(tmp_path, rule)
    assert names(tmp_path) == ["open.mp3"]
    assert walker.skipped["open"] == 1 and rule.removed == 1 and rule.kept == 1


@pytest.mark.parametrize("regular_only, removed", [(False, True), (True, False)])
def test_an_old_symlink_is_removed_as_a_link_unless_only_regular_files_go(tmp_path, regular_only, removed):
    """An old symlink goes as a link (its target stays) unless the rule takes regular files only."""
    target = make(tmp_path / "target", stamp=HI + 100)
    link = tmp_path / "link"
    os.symlink(str(target), str(link))
    os.utime(str(link), (HI - 100, HI - 100), follow_symlinks=False)
    rule = safe_tree.Rule(HI, regular_only=regular_only)
    walker, _complete = sweep(tmp_path, rule)
    assert os.path.lexists(str(link)) is not removed
    assert target.read_bytes() == b"x" * 10
    assert rule.removed == (1 if removed else 0) and rule.removed_bytes == 0
    assert rule.kept == 1  # the target; a kept link is not a kept file
    assert walker.skipped["symlink"] == (0 if removed else 1)


def test_special_files_are_skipped(tmp_path):
    """A FIFO is neither removed nor counted as a file."""
    os.mkfifo(str(tmp_path / "fifo"))
    os.utime(str(tmp_path / "fifo"), (HI - 100, HI - 100))
    rule = safe_tree.Rule(HI)
    walker, _complete = sweep(tmp_path, rule)
    assert stat.S_ISFIFO(os.lstat(str(tmp_path / "fifo")).st_mode)
    assert walker.skipped["special"] == 1 and rule.removed == 0 and rule.kept == 0


def test_excluded_entries_are_kept_and_counted(tmp_path):
    """An excluded name (or relative path) is kept; a regular one counts as kept with its size."""
    make(tmp_path / "keep.lock", size=5)
    make(tmp_path / "keep2.lock", size=4)
    make(tmp_path / "sub" / "pinned.mp3", size=6)
    make(tmp_path / "sub" / "old.mp3", size=7)
    rule = safe_tree.Rule(HI)
    walker, _complete = sweep(tmp_path, rule, excludes=["*.lock", "sub/pinned.mp3"])
    assert names(tmp_path) == ["keep.lock", "keep2.lock", "sub/pinned.mp3"]
    assert walker.skipped["excluded"] == 3
    assert (rule.kept, rule.kept_bytes, rule.removed, rule.removed_bytes) == (3, 15, 1, 7)


def test_the_removed_are_listed_up_to_the_limit_with_their_relative_paths(tmp_path):
    """``listed`` holds (relative path, size, stamp) of the removed, at most list_limit of them."""
    make(tmp_path / "sub" / "deep.mp3", size=9, stamp=HI - 9)
    rule = safe_tree.Rule(HI, list_limit=1)
    sweep(tmp_path, rule)
    assert rule.listed == [("sub/deep.mp3", 9, HI - 9)]
    make(tmp_path / "a", stamp=HI - 1)
    make(tmp_path / "b", stamp=HI - 1)
    rule = safe_tree.Rule(HI, list_limit=1)
    sweep(tmp_path, rule)
    assert rule.removed == 2 and len(rule.listed) == 1
    rule = safe_tree.Rule(HI)
    make(tmp_path / "c", stamp=HI - 1)
    sweep(tmp_path, rule)
    assert rule.removed == 1 and rule.listed == []


def test_collect_gathers_the_kept_candidates_a_size_cap_may_evict(tmp_path):
    """With collect, the kept entries at or after the limit that match and are not held are collected."""
    make(tmp_path / "young.mp3", size=11, stamp=HI + 1)
    make(tmp_path / "at.mp3", size=12, stamp=HI)
    make(tmp_path / "young.txt", size=13, stamp=HI + 1)     # not a candidate: the pattern does not match
    held = make(tmp_path / "held.mp3", size=14, stamp=HI + 1)
    make(tmp_path / "old.mp3", size=15, stamp=HI - 1)       # removed, not collected
    st = os.stat(str(held))
    rule = safe_tree.Rule(HI, patterns=safe_tree.compile_globs(["*.mp3"]), held={(st.st_dev, st.st_ino)}, collect=True)
    sweep(tmp_path, rule)
    assert sorted(zip(rule.stamps, rule.sizes)) == [(HI, 12), (HI + 1, 11)]
    plain = safe_tree.Rule(HI)
    sweep(tmp_path, plain)
    assert list(plain.stamps) == [] and list(plain.sizes) == []


# --- the walk ---------------------------------------------------------------------------------

@pytest.mark.parametrize("check_mode", [False, True])
def test_empty_directories_are_removed_only_when_asked(tmp_path, check_mode):
    """remove_empty_dirs removes the folders the sweep emptied (counted, not removed, in check mode); others stay."""
    make(tmp_path / "emptied" / "old.mp3")
    make(tmp_path / "kept" / "young.mp3", stamp=HI + 1)
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    walker, _complete = sweep(tmp_path, safe_tree.Rule(HI), background=not check_mode, remove_empty_dirs=True,
                              check_mode=check_mode)
    left = sorted(os.listdir(str(tmp_path)))
    if check_mode:
        assert walker.dirs_removed == 3 and left == ["emptied", "empty", "kept"]
        assert names(tmp_path) == ["emptied/old.mp3", "kept/young.mp3"]
    else:
        assert walker.dirs_removed == 3 and left == ["kept"]
    walker, _complete = sweep(tmp_path, safe_tree.Rule(HI))
    assert walker.dirs_removed == 0


def test_check_mode_counts_what_would_go_and_removes_nothing(tmp_path):
    """In check mode the tallies are those of a real run and every file stays."""
    make(tmp_path / "old", size=8)
    rule = safe_tree.Rule(HI)
    sweep(tmp_path, rule, check_mode=True)
    assert names(tmp_path) == ["old"] and (rule.removed, rule.removed_bytes) == (1, 8)


def test_the_walk_stops_at_its_depth_limit(tmp_path, monkeypatch):
    """Folders below MAX_DEPTH levels are not entered, and are counted as too deep."""
    monkeypatch.setattr(safe_tree, "MAX_DEPTH", 2)
    make(tmp_path / "l1" / "old1")
    make(tmp_path / "l1" / "l2" / "old2")
    make(tmp_path / "l1" / "l2" / "l3" / "old3")
    walker, _complete = sweep(tmp_path, safe_tree.Rule(HI), remove_empty_dirs=True)
    assert names(tmp_path) == ["l1/l2/l3/old3", "l1/l2/old2"]
    assert walker.skipped["too_deep"] == 1 and os.path.isdir(str(tmp_path / "l1"))


@pytest.mark.parametrize("background", [False, True])
def test_a_passed_deadline_stops_the_sweep_after_a_block_of_entries(tmp_path, background):
    """The deadline is read every 1024 entries: with it passed, 1023 files go and the sweep says it is incomplete."""
    for n in range(1100):
        make(tmp_path / ("f%04d" % n), size=1)
    rule = safe_tree.Rule(HI)
    walker, complete = sweep(tmp_path, rule, background=background, deadline=0.0)
    assert complete is False and walker.interrupted is True
    assert rule.removed == 1023 and len(names(tmp_path)) == 1100 - 1023


def test_a_deadline_not_reached_lets_the_sweep_finish(tmp_path):
    """With a deadline far ahead (or none) every entry is handled."""
    for n in range(1100):
        make(tmp_path / ("f%04d" % n), size=1)
    walker, complete = sweep(tmp_path, safe_tree.Rule(HI), deadline=float("inf"))
    assert complete is True and walker.interrupted is False and names(tmp_path) == []


def test_errors_are_kept_up_to_their_limit(tmp_path):
    """The walker keeps at most max_errors messages, each naming the entry ('.' for the root)."""
    walker = safe_tree.Walker(str(tmp_path), max_errors=2)
    walker.error("", OSError(13, "Permission denied"))
    walker.error("a/b", OSError(2, "No such file"))
    walker.error("c", OSError(5, "I/O error"))
    assert walker.errors == [".: Permission denied", "a/b: No such file"]
    walker.max_errors = 3
    walker.error("d", ValueError("odd"))
    assert walker.errors[-1] == "d: odd"


def test_one_run_at_a_time_per_root(tmp_path):
    """A second walker cannot lock a root another holds; it can once the first has closed it."""
    first, second = safe_tree.Walker(str(tmp_path)), safe_tree.Walker(str(tmp_path))
    first.open_root()
    second.open_root()
    try:
        assert first.lock(0) is True
        assert second.lock(0) is False
        assert second.lock(-5) is False  # a negative wait is no wait
        first.close()
        assert second.lock(0) is True
    finally:
        first.close()
        second.close()
    assert first.root_fd is None and second.root_fd is None


@pytest.mark.parametrize("exc, counter, logged", [
    (FileNotFoundError(2, "No such file"), "vanished", False),
    (PermissionError(13, "Permission denied"), "permission", True),
    (IsADirectoryError(21, "Is a directory"), "permission", True),
    (OSError(5, "I/O error"), None, True)])
def test_a_failed_unlink_is_counted_by_its_cause(tmp_path, exc, counter, logged):
    """A vanished file is counted quietly; a permission problem is counted and logged; another error is logged."""
    walker = safe_tree.Walker(str(tmp_path))
    before = dict(walker.skipped)
    walker.unlink_failed("sub", "f", exc)
    changed = dict((k, v - before[k]) for k, v in walker.skipped.items() if v != before[k])
    assert changed == ({counter: 1} if counter else {})
    assert walker.errors == (["sub/f: %s" % exc.strerror] if logged else [])


# --- the unlink helper and open files -------------------------------------------------------------

def test_the_unlink_helper_removes_batches_and_reports_what_it_could_not(tmp_path):
    """The helper unlinks each batch in the very directory sent; a name it could not remove comes back with its errno."""
    make(tmp_path / "a", size=3)
    make(tmp_path / "b", size=4)
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    unlinker = safe_tree.Unlinker()
    try:
        assert unlinker.pid is not None and unlinker.sock is not None
        unlinker.unlink(fd, "sub", [("a", 3, stat.S_IFREG), ("missing", 5, stat.S_IFREG)])
        unlinker.drain()
        assert names(tmp_path) == ["b"]  # done by the time drain returns
        unlinker.unlink(fd, "sub", [("b", 4, stat.S_IFREG)])
    finally:
        unlinker.stop()
        os.close(fd)
    assert names(tmp_path) == [] and unlinker.lost is False
    assert unlinker.sock is None and unlinker.pid is None
    assert [(b, n, s, k, e.errno) for b, n, s, k, e in unlinker.failures] == [("sub", "missing", 5, stat.S_IFREG, 2)]


def test_without_a_helper_the_batches_are_unlinked_in_place(tmp_path):
    """When the helper is gone the parent unlinks the batch itself and records its failures."""
    make(tmp_path / "a", size=3)
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    unlinker = safe_tree.Unlinker()
    try:
        unlinker.stop()
        unlinker.unlink(fd, "sub", [("a", 3, stat.S_IFREG), ("gone", 1, stat.S_IFLNK)])
        unlinker.drain()  # nothing to wait for
    finally:
        os.close(fd)
    assert names(tmp_path) == []
    assert [(b, n, e.errno) for b, n, _s, _k, e in unlinker.failures] == [("sub", "gone", 2)]


def test_settling_takes_back_what_the_helper_failed_to_remove(tmp_path):
    """A file the helper could not remove is counted kept again, out of the removed and the listed."""
    walker = safe_tree.Walker(str(tmp_path))
    rule = safe_tree.Rule(HI)
    rule.removed, rule.removed_bytes, rule.kept, rule.kept_bytes = 3, 30, 1, 1
    rule.listed = [("sub/f", 10, HI - 1), ("g", 10, HI - 1)]
    walker._settle(rule, [("sub", "f", 10, stat.S_IFREG, FileNotFoundError(2, "gone")),
                          ("sub2", "link", 0, stat.S_IFLNK, PermissionError(13, "Permission denied"))])
    assert (rule.removed, rule.removed_bytes, rule.kept, rule.kept_bytes) == (1, 20, 2, 11)
    assert rule.listed == [("g", 10, HI - 1)]
    assert walker.skipped["vanished"] == 1 and walker.skipped["permission"] == 1
    assert walker.errors == ["sub2/link: Permission denied"]  # named by its path from the root


MAPPER = """
import mmap, os, sys
with open(sys.argv[1], "rb") as source:
    region = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
os.closerange(3, 4096)  # mmap keeps a duplicate descriptor: only the mapping may hold the file
print("mapped", flush=True)
sys.stdin.read()
"""


def test_open_and_mapped_files_are_seen_on_their_filesystem_only(tmp_path):
    """open_files lists the (dev, ino) of files held open or only mapped by a process, on the root's filesystem only;
    a mapped file whose path is not ASCII or holds spaces is seen too (a maps line must not hide its file)."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    opened = make(tmp_path / "opened")
    # maps lists the path as it is: not ASCII, with spaces (a line is split on its first five fields only)
    mapped = make(tmp_path / "mapped - \u00e9t\u00e9.bin", size=4096)
    closed = make(tmp_path / "closed")
    dev = os.stat(str(tmp_path)).st_dev
    child = subprocess.Popen([sys.executable, "-c", MAPPER, str(mapped)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "mapped"
        with open(str(opened), "rb"):
            held = safe_tree.open_files(dev)
    finally:
        child.communicate("", timeout=60)
    assert (dev, os.stat(str(opened)).st_ino) in held
    assert (dev, os.stat(str(mapped)).st_ino) in held
    assert (dev, os.stat(str(closed)).st_ino) not in held
    assert [(d, i) for d, i in held if d != dev] == []
    assert (dev, os.stat(str(mapped)).st_ino) not in safe_tree.open_files(dev)


SHM_MAPPER = """
import mmap, os, sys
with open(sys.argv[1], "rb") as source:
    on_shm = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
anonymous = os.memfd_create("bemore-test")  # a file of the kernel's internal tmpfs, device 00:01
os.write(anonymous, b"x" * 4096)
in_memory = mmap.mmap(anonymous, 4096)
print(os.fstat(anonymous).st_ino, flush=True)
os.closerange(3, 4096)
sys.stdin.read()
"""


def _shm_dev():
    """The device of /dev/shm when it is a tmpfs of its own whose minor number needs hex to read, else None."""
    try:
        dev = os.stat("/dev/shm").st_dev
    except OSError:
        return None
    if dev == os.stat("/").st_dev or os.major(dev) != 0 or os.minor(dev) < 10 or not os.access("/dev/shm", os.W_OK):
        return None
    return dev


@pytest.mark.skipif(_shm_dev() is None, reason="no tmpfs /dev/shm with a two-digit minor number here")
def test_a_mapping_is_matched_on_its_whole_device_number(tmp_path):
    """maps gives a device as hex major:minor. A file mapped on the root's filesystem (/dev/shm here, 00:1b) is held;
    a file mapped on another filesystem with the same major number (a memfd, 00:01) is not."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    dev = _shm_dev()
    with tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="bemore-test-") as handle:
        handle.write(b"x" * 4096)
        handle.flush()
        ino = os.fstat(handle.fileno()).st_ino
        child = subprocess.Popen([sys.executable, "-c", SHM_MAPPER, handle.name], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            memfd_ino = int(child.stdout.readline())
            handle.close()  # deleted: only the child's mapping holds it now
            held = safe_tree.open_files(dev)
        finally:
            child.communicate("", timeout=60)
    assert (dev, ino) in held
    on_shm = set(os.lstat(os.path.join(d, n)).st_ino for d, dirs, files in os.walk("/dev/shm") for n in dirs + files)
    if memfd_ino not in on_shm:  # an inode of that number on /dev/shm itself could be held by someone else
        assert (dev, memfd_ino) not in held


def test_a_helper_that_died_is_replaced_by_unlinking_in_place(tmp_path):
    """When the helper is gone, the batch that found it gone and every later one are unlinked by the parent."""
    import signal  # pylint: disable=import-outside-toplevel
    make(tmp_path / "a")
    make(tmp_path / "b")
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    unlinker = safe_tree.Unlinker()
    try:
        os.kill(unlinker.pid, signal.SIGKILL)
        unlinker.drain()  # the helper cannot answer: lost
        assert unlinker.lost is True and unlinker.sock is None
        unlinker.unlink(fd, "", [("a", 10, stat.S_IFREG)])
        unlinker.unlink(fd, "", [("b", 10, stat.S_IFREG)])
    finally:
        unlinker.stop()
        os.close(fd)
    assert names(tmp_path) == [] and unlinker.failures == [] and unlinker.pid is None


def test_a_child_folder_that_changed_since_it_was_listed_is_skipped(tmp_path):
    """Opening a listed folder: gone, a symlink, a file, or another folder by now are each skipped and counted once."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "other").mkdir()
    os.symlink(str(tmp_path / "dir"), str(tmp_path / "link"))
    make(tmp_path / "file")
    walker = safe_tree.Walker(str(tmp_path))
    fd = walker.open_root()
    try:
        st = os.lstat(str(tmp_path / "dir"))
        cases = [("missing", "vanished"), ("link", "symlink"), ("file", "symlink"), ("other", "vanished")]
        for name, counter in cases:
            before = dict(walker.skipped)
            assert walker._open_child(fd, name, st, name) is None
            assert dict((k, v - before[k]) for k, v in walker.skipped.items() if v != before[k]) == {counter: 1}, name
        child = walker._open_child(fd, "dir", st, "dir")
        assert child is not None
        os.close(child)
    finally:
        walker.close()
    assert walker.errors == []


def test_closing_a_walker_that_never_opened_is_harmless(tmp_path):
    """close() without open_root() does nothing, and closing twice is fine."""
    walker = safe_tree.Walker(str(tmp_path))
    walker.close()
    walker.open_root()
    walker.close()
    walker.close()
    assert walker.root_fd is None


def test_an_unlink_that_fails_in_place_is_counted_not_removed(tmp_path, monkeypatch):
    """Unlinking in place: a file whose unlink failed (it vanished first) is counted as vanished and as left, not removed."""
    make(tmp_path / "a", size=5)
    real_unlink = os.unlink

    def vanish_first(name, dir_fd=None):
        real_unlink(name, dir_fd=dir_fd)
        real_unlink(name, dir_fd=dir_fd)  # the second one fails as a racing cleanup would make it

    monkeypatch.setattr(safe_tree.os, "unlink", vanish_first)
    rule = safe_tree.Rule(HI)
    walker, _complete = sweep(tmp_path, rule, background=False)
    assert (rule.removed, rule.removed_bytes, rule.kept, rule.kept_bytes) == (0, 0, 1, 5)
    assert walker.skipped["vanished"] == 1 and walker.errors == []


def _fds():
    return len(os.listdir("/proc/self/fd"))


def test_the_unlink_helper_loop_answers_syncs_and_reports_every_failure_once(tmp_path):
    """The helper's own loop, run in this process (a thread) so that what it does is seen here: it unlinks each batch
    in the directory whose descriptor came with it and closes that descriptor, answers every sync only after the
    batches before it are done, and at the end reports each name it could not remove exactly once, with its errno,
    in messages of at most 500 rows (so a report of any length fits the socket)."""
    import pickle  # pylint: disable=import-outside-toplevel
    import socket  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel
    make(tmp_path / "a", size=3)
    make(tmp_path / "b", size=4)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent.settimeout(60)  # a helper that never answers fails the test instead of hanging it
    before = _fds()
    helper = threading.Thread(target=safe_tree._unlink_helper, args=(child, safe_tree.Unlinker._BUF), daemon=True)
    helper.start()
    try:
        fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
        socket.send_fds(parent, [pickle.dumps(("sub", [("a", 3, stat.S_IFREG)]))], [fd])
        os.close(fd)  # the helper holds its own duplicate
        parent.send(b"sync")
        assert parent.recv(16) == b"synced"
        assert names(tmp_path) == ["b"]
        missing = [("m%03d" % n, n, stat.S_IFLNK) for n in range(501)]
        fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
        socket.send_fds(parent, [pickle.dumps(("", [("b", 4, stat.S_IFREG)] + missing))], [fd])
        os.close(fd)
        parent.send(b"sync")
        assert parent.recv(16) == b"synced"
        assert names(tmp_path) == []
        parent.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = parent.recv(safe_tree.Unlinker._BUF)
            if not chunk:
                break
            chunks.append(pickle.loads(chunk))
    finally:
        helper.join(60)
        parent.close()
    assert not helper.is_alive()
    assert [len(c) for c in chunks] == [500, 1]
    rows = [row for c in chunks for row in c]
    assert rows == [("", name, size, kind, 2, os.strerror(2)) for name, size, kind in missing]
    assert _fds() == before - 2  # both ends of the socket are closed (the helper's by the helper), and every
    # descriptor it was sent


@pytest.mark.parametrize("name", ["link", "linkX", "link/"])
def test_a_symlinked_root_is_refused_whatever_its_name_ends_with(tmp_path, name):
    """Only the trailing slashes are stripped before the symlink test: a link whose name ends in a letter is still a link."""
    (tmp_path / "dir").mkdir()
    os.symlink(str(tmp_path / "dir"), str(tmp_path / name.rstrip("/")))
    with pytest.raises(safe_tree.UnsafeRoot, match="is a symlink"):
        safe_tree.check_root(str(tmp_path / name.rstrip("/")) + ("/" if name.endswith("/") else ""))


def test_a_folder_held_open_is_not_a_held_file(tmp_path):
    """open_files lists regular files only: a folder some process holds open (its descriptor) is not a file to keep."""
    folder = tmp_path / "held_open"
    folder.mkdir()
    fd = os.open(str(folder), os.O_RDONLY | os.O_DIRECTORY)
    try:
        st = os.stat(str(folder))
        held = safe_tree.open_files(st.st_dev)
    finally:
        os.close(fd)
    assert (st.st_dev, st.st_ino) not in held


def test_a_descriptor_that_closes_while_it_is_read_hides_none_after_it(tmp_path):
    """A descriptor gone by the time it is looked at (here the one the listing of /proc/self/fd itself used) is
    skipped, and the descriptors after it are still read: the file held open behind it is seen."""
    gap = os.open(os.devnull, os.O_RDONLY)
    path = make(tmp_path / "held_behind_a_gap")
    handle = open(str(path), "rb")  # pylint: disable=consider-using-with
    os.close(gap)  # the lowest free number, below the held file's: the listing's own descriptor takes it
    try:
        assert handle.fileno() > gap
        st = os.stat(str(path))
        held = safe_tree.open_files(st.st_dev)
    finally:
        handle.close()
    assert (st.st_dev, st.st_ino) in held


NOBODY = 65534


def unprivileged(fn):
    """fn() run in a forked child as an unprivileged user (nobody when this runs as root, which no permission stops);
    its result comes back pickled. The child runs the same (possibly mutated) code as this process."""
    import pickle  # pylint: disable=import-outside-toplevel
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                result = ("ok", fn())
            except Exception as exc:  # pylint: disable=broad-except
                result = ("raised", repr(exc))
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(result, out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    _pid, status = os.waitpid(pid, 0)
    assert status == 0 and data, "the unprivileged child failed"
    outcome, value = pickle.loads(data)
    assert outcome == "ok", value
    return value


def test_a_folder_the_walk_may_not_open_is_counted_as_a_permission_problem(tmp_path):
    """Opening a listed folder that the user may not read: skipped as 'permission' and logged with its path
    (an unreadable folder is a finding, not a folder that vanished)."""
    top = tmp_path / "top"
    (top / "locked").mkdir(parents=True)
    os.chmod(str(top), 0o755)
    os.chmod(str(top / "locked"), 0o000)

    walker = safe_tree.Walker(str(top))
    fd = walker.open_root()  # here, as the user the folders above tmp_path let in
    st = os.lstat(str(top / "locked"))

    # mutmut learns which tests reach a function in this process only: reach _open_child here too (as root it
    # opens the folder; that answer is not what this test is about).
    reached = safe_tree.Walker(str(top))
    reached_fd = reached.open_root()
    try:
        opened = reached._open_child(reached_fd, "locked", st, "locked")
        if opened is not None:
            os.close(opened)
    finally:
        reached.close()

    def open_locked():
        child = walker._open_child(fd, "locked", st, "sub/locked")
        return child, dict((k, v) for k, v in walker.skipped.items() if v), walker.errors

    try:
        assert unprivileged(open_locked) == (None, {"permission": 1}, ["sub/locked: Permission denied"])
    finally:
        walker.close()
        os.chmod(str(top / "locked"), 0o755)


@pytest.mark.parametrize("background", [False, True])
def test_what_the_user_may_not_remove_is_kept_counted_and_logged(tmp_path, background):
    """Swept by a user without the rights: a file in a read-only folder is not removed (kept, counted under
    'permission', logged), an old symlink there is not removed either (logged, not a kept file), an entry of a
    folder that may be listed but not searched cannot even be looked at (logged), an empty folder that may not be
    removed stays (logged), and the folders holding what stayed are not offered for removal."""
    top = tmp_path / "top"
    make(top / "ro" / "old.mp3", size=6)
    os.symlink("/nowhere", str(top / "ro" / "link"))
    os.utime(str(top / "ro" / "link"), (HI - 100, HI - 100), follow_symlinks=False)
    (top / "ro" / "empty").mkdir()
    make(top / "nosearch" / "old.mp3", size=7)
    make(top / "free" / "old.mp3", size=8)
    os.chmod(str(top), 0o777)
    os.chmod(str(top / "free"), 0o777)
    os.chmod(str(top / "ro"), 0o555)
    os.chmod(str(top / "nosearch"), 0o444)

    walker = safe_tree.Walker(str(top), remove_empty_dirs=True)
    walker.open_root()  # here, as the user the folders above tmp_path let in
    # mutmut learns which tests reach a function in this process only: a check-mode sweep and a helper started and
    # stopped here (they change nothing) make the child's work count for the walk's and the helper's code.
    sweep(top, safe_tree.Rule(HI), check_mode=True, remove_empty_dirs=True)
    safe_tree.Unlinker().stop()

    def sweep_unprivileged():
        rule = safe_tree.Rule(HI)
        complete = walker.sweep(rule, background_unlink=background)
        return (complete, (rule.removed, rule.removed_bytes, rule.kept, rule.kept_bytes),
                dict((k, v) for k, v in walker.skipped.items() if v), sorted(walker.errors), walker.dirs_removed)

    try:
        complete, tallies, skipped, errors, dirs_removed = unprivileged(sweep_unprivileged)
    finally:
        walker.close()
        os.chmod(str(top / "ro"), 0o755)
        os.chmod(str(top / "nosearch"), 0o755)
    assert complete is True
    assert tallies == (1, 8, 1, 6)  # free/old.mp3 removed; ro/old.mp3 kept
    assert skipped == {"permission": 3}
    assert errors == ["nosearch/old.mp3: Permission denied", "ro/empty: Permission denied",
                      "ro/link: Permission denied", "ro/old.mp3: Permission denied"]
    assert dirs_removed == 1  # free/, emptied; ro/ and nosearch/ are not empty
    assert sorted(os.listdir(str(top))) == ["nosearch", "ro"]
    assert sorted(os.listdir(str(top / "ro"))) == ["empty", "link", "old.mp3"]


def test_each_skip_and_failure_adds_to_its_counter(tmp_path):
    """The counters add up over a walk: two folders that vanished count 2, two permission failures count 2."""
    (tmp_path / "dir").mkdir()
    walker = safe_tree.Walker(str(tmp_path))
    fd = walker.open_root()
    try:
        st = os.lstat(str(tmp_path / "dir"))
        assert walker._open_child(fd, "gone1", st, "gone1") is None
        assert walker._open_child(fd, "gone2", st, "gone2") is None
    finally:
        walker.close()
    walker.unlink_failed("", "a", PermissionError(13, "Permission denied"))
    walker.unlink_failed("", "b", PermissionError(13, "Permission denied"))
    assert walker.skipped["vanished"] == 2 and walker.skipped["permission"] == 2


def test_a_folder_that_cannot_be_opened_for_another_reason_is_logged(tmp_path):
    """An error opening a listed folder that is neither 'gone', 'replaced' nor 'not allowed' (here a name too long)
    is counted as vanished and logged with its path each time, never dropped silently."""
    (tmp_path / "dir").mkdir()
    walker = safe_tree.Walker(str(tmp_path))
    fd = walker.open_root()
    try:
        st = os.lstat(str(tmp_path / "dir"))
        for n in (1, 2):
            assert walker._open_child(fd, "x" * 300, st, "sub/long%d" % n) is None
    finally:
        walker.close()
    assert dict((k, v) for k, v in walker.skipped.items() if v) == {"vanished": 2}
    assert walker.errors == ["sub/long1: File name too long", "sub/long2: File name too long"]


def test_a_folder_rmdir_cannot_remove_is_kept_and_logged_unless_it_is_merely_not_empty(tmp_path):
    """_rmdir says False and logs nothing for a folder that filled up again or vanished (a race, not a fault), and
    False with a logged error for any other failure; only a folder really removed is counted."""
    make(tmp_path / "refilled" / "new.mp3")
    make(tmp_path / "a_file")
    (tmp_path / "empty").mkdir()
    walker = safe_tree.Walker(str(tmp_path))
    fd = walker.open_root()
    try:
        assert walker._rmdir(fd, "refilled", "sub/refilled") is False
        assert walker._rmdir(fd, "vanished", "sub/vanished") is False
        assert walker.errors == [] and walker.dirs_removed == 0
        assert walker._rmdir(fd, "a_file", "sub/a_file") is False
        assert walker.errors == ["sub/a_file: Not a directory"] and walker.dirs_removed == 0
        assert walker._rmdir(fd, "empty", "sub/empty") is True
        assert walker.dirs_removed == 1
    finally:
        walker.close()
    assert sorted(os.listdir(str(tmp_path))) == ["a_file", "refilled"]


@pytest.mark.parametrize("background", [False, True])
def test_when_no_helper_process_can_be_started_the_sweep_unlinks_in_place(tmp_path, background):
    """A user at its process limit cannot fork the unlink helper: the sweep then unlinks in place, with the same
    tallies, and stopping the helper that never started is harmless."""
    import resource  # pylint: disable=import-outside-toplevel
    top = tmp_path / "top"
    make(top / "old.mp3", size=5)
    make(top / "sub" / "old.mp3", size=6)
    make(top / "young.mp3", size=7, stamp=HI + 1)
    for folder in (top, top / "sub"):
        os.chmod(str(folder), 0o777)
    walker = safe_tree.Walker(str(top))
    walker.open_root()
    safe_tree.Unlinker().stop()  # reached in this process too, so that mutmut runs this test for its mutants

    def sweep_without_fork():
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # this user may start no other process
        unlinker = safe_tree.Unlinker()
        unlinker.stop()
        rule = safe_tree.Rule(HI)
        complete = walker.sweep(rule, background_unlink=background)
        return ((unlinker.sock, unlinker.pid, unlinker.lost), complete,
                (rule.removed, rule.removed_bytes, rule.kept, rule.kept_bytes), walker.errors)

    try:
        assert unprivileged(sweep_without_fork) == ((None, None, False), True, (2, 11, 1, 7), [])
    finally:
        walker.close()
    assert names(top) == ["young.mp3"]


_FORKS = []
os.register_at_fork(before=lambda: _FORKS and _FORKS[-1].append(1))  # counts forks while a list is pushed


@pytest.mark.parametrize("check_mode, helpers", [(False, 1), (True, 0)])
def test_a_sweep_unlinks_in_a_helper_process_unless_told_otherwise(tmp_path, check_mode, helpers):
    """By default a sweep forks one unlink helper (deciding and unlinking overlap); in check mode, which unlinks
    nothing, it starts none."""
    make(tmp_path / "old.mp3")
    _FORKS.append([])
    try:
        walker = safe_tree.Walker(str(tmp_path), check_mode=check_mode)
        walker.open_root()
        try:
            assert walker.sweep(safe_tree.Rule(HI)) is True
        finally:
            walker.close()
    finally:
        forks = len(_FORKS.pop())
    assert forks == helpers
    assert names(tmp_path) == ([] if not check_mode else ["old.mp3"])
