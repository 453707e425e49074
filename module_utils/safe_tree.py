# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Walk and prune a directory tree that other users can write to, safely.

Lessons of the tools that got this wrong (tmpreaper CVE-2019-3461,
systemd-tmpfiles CVE-2018-6954): resolve the root once, then act only
through directory file descriptors. Every child directory is opened with
O_NOFOLLOW relative to its parent's descriptor and checked to be the same
inode that was listed, so swapping a directory for a symlink mid-walk cannot
lead the walk out of the tree; files are unlinked by name relative to the
open directory, which removes a link and never what it points to.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import os
import re
import stat
import pickle
import socket
import time
from array import array

# A root that is one of these, or "/", is refused outright.
PROTECTED_ROOTS = frozenset([
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
    "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/usr", "/var", "/var/lib", "/var/log",
    "/var/cache", "/var/spool", "/var/mail", "/var/backups", "/var/www", "/usr/local", "/snap",
])
# Nothing below these is ever a temp folder of the app.
PROTECTED_TREES = ("/proc", "/sys", "/dev", "/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib64")
MAX_DEPTH = 400  # each level holds one descriptor; containers here allow 1024

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def join(base, name):
    """Relative path of ``name`` in the directory ``base`` ("" is the root)."""
    return base + "/" + name if base else name


class _Interrupted(Exception):
    """The deadline passed; unwinds the walk."""


class UnsafeRoot(ValueError):
    """The requested root must not be cleaned."""


def check_root(path):
    """Validate a cleanup root; return its resolved absolute path or raise UnsafeRoot."""
    if not isinstance(path, str) or not path:
        raise UnsafeRoot("path is empty")
    if "\x00" in path:
        raise UnsafeRoot("path contains a NUL byte")
    if not os.path.isabs(path):
        raise UnsafeRoot("path %r is relative; give an absolute path" % path)
    if os.path.islink(path.rstrip("/") or "/"):
        raise UnsafeRoot("path %r is a symlink; give the real directory" % path)
    if not os.path.lexists(path):
        raise UnsafeRoot("path %r does not exist" % path)
    if not os.path.isdir(path):
        raise UnsafeRoot("path %r is not a directory" % path)
    resolved = os.path.realpath(path)
    for candidate in (os.path.normpath(path), resolved):
        if candidate in PROTECTED_ROOTS or os.path.dirname(candidate) == "/" and candidate not in ("/tmp",):
            raise UnsafeRoot("refusing to clean %r: it is / or a top-level system directory" % candidate)
        for tree in PROTECTED_TREES:
            if candidate == tree or candidate.startswith(tree + "/"):
                raise UnsafeRoot("refusing to clean %r: it is inside the system tree %s" % (candidate, tree))
    home = os.path.expanduser("~")
    if resolved in (os.path.realpath(home),):
        raise UnsafeRoot("refusing to clean %r: it is a home directory" % resolved)
    return resolved


def compile_globs(globs):
    """One regex for a list of shell globs; None when the list is empty."""
    if not globs:
        return None
    return re.compile("|".join("(?:%s)" % fnmatch.translate(g) for g in globs))


def open_files(root_dev):
    """(dev, ino) of every file on ``root_dev`` that a process holds open or mapped.

    Reads /proc/*/fd and /proc/*/maps. It sees only this PID namespace and
    only processes this user may inspect (all of them as root), and it is a
    snapshot: an advisory guard on top of the age rule, not a lock.
    """
    held = set()
    major, minor = os.major(root_dev), os.minor(root_dev)
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return held
    for pid in pids:
        base = "/proc/" + pid
        try:
            fds = os.listdir(base + "/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                st = os.stat("%s/fd/%s" % (base, fd))
            except OSError:
                continue
            if st.st_dev == root_dev and stat.S_ISREG(st.st_mode):
                held.add((st.st_dev, st.st_ino))
        try:
            with open(base + "/maps", encoding="ascii", errors="replace") as handle:
                for line in handle:
                    parts = line.split(None, 5)
                    if len(parts) < 6 or parts[4] == "0":
                        continue
                    dev_major, _colon, dev_minor = parts[3].partition(":")
                    if int(dev_major, 16) == major and int(dev_minor, 16) == minor:
                        held.add((root_dev, int(parts[4])))
        except (OSError, ValueError):
            continue
    return held


class Rule(object):
    """What one sweep removes, applied inline by ``Walker.sweep``.

    A non-directory entry goes when its stamp (``attr`` of its lstat) is in
    [``lo``, ``hi``), its name matches ``patterns`` (None: every name), it is
    not in ``held`` (set of (dev, ino)), and, with ``regular_only``, it is a
    regular file. With a positive ``tie_budget``, entries stamped exactly
    ``hi`` go too while the budget (bytes) lasts. Symlinks are removed as
    links (size 0), never followed.

    After the sweep the rule holds its tallies: ``removed``/``removed_bytes``,
    ``kept``/``kept_bytes`` (regular files left, excluded ones included),
    ``listed`` (up to ``list_limit`` (relpath, size, stamp) of the removed)
    and, with ``collect``, the stamps and sizes of the kept candidates that
    are not older than ``hi`` (what a size cap may evict later).
    """

    def __init__(self, hi, lo=float("-inf"), attr="st_mtime", patterns=None, held=None, regular_only=False,
                 tie_budget=0, collect=False, list_limit=0):
        self.lo, self.hi, self.attr = lo, hi, attr
        self.patterns = patterns
        self.held = held or None
        self.regular_only = regular_only
        self.tie_budget = tie_budget
        self.collect = collect
        self.list_limit = list_limit
        self.removed = self.removed_bytes = self.kept = self.kept_bytes = 0
        self.listed = []
        self.stamps, self.sizes = array("d"), array("q")


class Unlinker(object):
    """Runs a sweep's unlinks in a forked helper process.

    Deciding what goes is Python work; unlinking is kernel work. A thread
    cannot overlap the two (every unlink takes the GIL back, and the hand-offs
    cost more than they save), a second process can. The parent sends
    batches of names over a socketpair with the open directory descriptor
    attached (SCM_RIGHTS), so the helper unlinks relative to the very
    directory the walk checked, never by path. The helper reports the
    entries it could not remove when the sweep ends. When the helper cannot
    be started or dies, the remaining batches are unlinked in the parent.
    """

    BATCH = 128  # names per message; a message stays below the socket's size limit
    _BUF = 1 << 18

    def __init__(self):
        self.failures = []  # (base, name, size, kind, exc)
        self.lost = False
        self.pid = None
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:
            parent.close()
            child.close()
            self.sock = None
            return
        if pid == 0:  # the helper
            code = 1
            try:
                parent.close()
                _unlink_helper(child, self._BUF)
                code = 0
            finally:
                os._exit(code)
        child.close()
        self.sock, self.pid = parent, pid

    def unlink(self, fd, base, batch):
        if self.sock is not None:
            try:
                socket.send_fds(self.sock, [pickle.dumps((base, batch), pickle.HIGHEST_PROTOCOL)], [fd])
                return
            except OSError:
                self._lose()
        _unlink_batch(fd, base, batch, self.failures)

    def drain(self):
        """Wait until every batch sent so far is done."""
        if self.sock is None:
            return
        try:
            self.sock.send(b"sync")
            if self.sock.recv(16) == b"synced":
                return
        except OSError:
            pass
        self._lose()

    def stop(self):
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_WR)
                while True:
                    chunk = self.sock.recv(self._BUF)
                    if not chunk:
                        break
                    for base, name, size, kind, err, text in pickle.loads(chunk):
                        self.failures.append((base, name, size, kind, OSError(err, text)))
            except (OSError, pickle.UnpicklingError, EOFError):
                self.lost = True
            self.sock.close()
            self.sock = None
        if self.pid is not None:
            _pid, status = os.waitpid(self.pid, 0)
            self.pid = None
            if status != 0:
                self.lost = True

    def _lose(self):
        self.lost = True
        self.sock.close()
        self.sock = None


def _unlink_batch(fd, base, batch, failures):
    unlink = os.unlink
    for name, size, kind in batch:
        try:
            unlink(name, dir_fd=fd)
        except OSError as exc:
            failures.append((base, name, size, kind, exc))


def _unlink_helper(sock, bufsize):
    """The helper's loop: unlink each batch in its directory, then report the failures."""
    failures = []
    while True:
        data, fds, _flags, _addr = socket.recv_fds(sock, bufsize, 1)
        if not data:
            break
        if data == b"sync":
            sock.send(b"synced")
            continue
        base, batch = pickle.loads(data)
        try:
            _unlink_batch(fds[0], base, batch, failures)
        finally:
            for fd in fds:
                os.close(fd)
    rows = [(b, n, s, k, e.errno, e.strerror) for b, n, s, k, e in failures]
    for start in range(0, len(rows), 500):
        sock.send(pickle.dumps(rows[start:start + 500], pickle.HIGHEST_PROTOCOL))
    sock.close()


class Walker(object):
    """Depth-first sweep through directory descriptors.

    ``sweep(rule)`` removes what the ``Rule`` selects, deciding and unlinking
    inline in the listing loop (a Python call per entry would cost a quarter
    of the run on a large tree). Entries are seen with lstat, so a symlink is
    a link, and directories are entered only through ``_open_child``.
    Counters of skipped entries and bounded error messages are kept on the
    instance.
    """

    def __init__(self, root, one_file_system=True, excludes=None, remove_empty_dirs=False, check_mode=False,
                 deadline=None, max_errors=50):
        self.root = root
        self.one_file_system = one_file_system
        self.excludes = compile_globs(excludes)
        self.remove_empty_dirs = remove_empty_dirs
        self.check_mode = check_mode
        self.deadline = deadline
        self.max_errors = max_errors
        self.skipped = {"open": 0, "symlink": 0, "other_filesystem": 0, "excluded": 0, "vanished": 0,
                        "permission": 0, "special": 0, "too_deep": 0}
        self.errors = []
        self.dirs_removed = 0
        self.interrupted = False
        self.root_fd = None
        self.root_dev = None
        self._tick = 0
        self._unlinker = None

    def error(self, relpath, exc):
        if len(self.errors) < self.max_errors:
            self.errors.append("%s: %s" % (relpath or ".", getattr(exc, "strerror", None) or exc))

    def open_root(self):
        self.root_fd = os.open(self.root, _O_DIR)
        st = os.fstat(self.root_fd)
        self.root_dev = st.st_dev
        return self.root_fd

    def close(self):
        if self.root_fd is not None:
            os.close(self.root_fd)
            self.root_fd = None

    def lock(self, timeout):
        """Serialise runs on the same root with flock on its descriptor."""
        end = time.monotonic() + max(timeout, 0)
        while True:
            try:
                fcntl.flock(self.root_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= end:
                return False
            time.sleep(0.1)

    def _open_child(self, parent_fd, name, st, relpath):
        try:
            fd = os.open(name, _O_DIR, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT,):
                self.skipped["vanished"] += 1
            elif exc.errno in (errno.ELOOP, errno.ENOTDIR):
                # Replaced by a symlink or a file since it was listed.
                self.skipped["symlink"] += 1
            elif exc.errno in (errno.EACCES, errno.EPERM):
                self.skipped["permission"] += 1
                self.error(relpath, exc)
            else:
                self.skipped["vanished"] += 1
                self.error(relpath, exc)
            return None
        real = os.fstat(fd)
        if (real.st_dev, real.st_ino) != (st.st_dev, st.st_ino):
            # Swapped for another directory between listing and opening.
            os.close(fd)
            self.skipped["vanished"] += 1
            return None
        return fd

    def sweep(self, rule, background_unlink=True):
        """Sweep the whole tree with ``rule``; return False when stopped by the deadline.

        With ``background_unlink`` (and not in check mode) the unlinks run in
        an ``Unlinker`` helper process; the counts are made final once it is done.
        """
        unlinker = self._unlinker = Unlinker() if background_unlink and not self.check_mode else None
        complete = True
        try:
            self._sweep_dir(self.root_fd, "", rule, 1)
        except _Interrupted:
            self.interrupted = True
            complete = False
        finally:
            self._unlinker = None
            if unlinker is not None:
                unlinker.stop()
                self._settle(rule, unlinker.failures)
                if unlinker.lost:
                    self.errors.append("the unlink helper process stopped early; some files counted as "
                                       "deleted may remain (the next run removes them)")
        return complete

    def _settle(self, rule, failures):
        """Take back what a background unlink failed to remove."""
        for base, name, size, kind, exc in failures:
            self.unlink_failed(base, name, exc)
            rule.removed -= 1
            rule.removed_bytes -= size
            if kind == stat.S_IFREG:
                rule.kept += 1
                rule.kept_bytes += size
            relpath = join(base, name)
            rule.listed[:] = [item for item in rule.listed if item[0] != relpath]

    def _sweep_dir(self, fd, base, rule, depth):
        """Handle every entry of the open directory ``fd``; return how many entries remain in it.

        Subdirectories are entered after the listing is closed, so a level
        holds one descriptor while its children are walked.
        """
        skipped, excludes, deadline = self.skipped, self.excludes, self.deadline
        one_fs, root_dev, check_mode = self.one_file_system, self.root_dev, self.check_mode
        lo, hi, attr, patterns, held = rule.lo, rule.hi, rule.attr, rule.patterns, rule.held
        by_mtime = attr == "st_mtime"
        regular_only, collect, tie = rule.regular_only, rule.collect, rule.tie_budget > 0
        listed, list_limit = rule.listed, rule.list_limit
        stamps, sizes = rule.stamps, rule.sizes
        os_unlink, unlinker = os.unlink, self._unlinker
        batch, batch_size = [], Unlinker.BATCH
        IFMT, IFDIR, IFREG, IFLNK = stat.S_IFMT(0o177777), stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK
        removed = removed_bytes = kept = kept_bytes = remaining = 0
        subdirs = []
        try:
            iterator = os.scandir(fd)
        except OSError as exc:
            skipped["permission"] += 1
            self.error(base, exc)
            return 1
        try:
            with iterator:
                for entry in iterator:
                    name = entry.name
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        if exc.errno == errno.ENOENT:
                            skipped["vanished"] += 1
                        else:
                            skipped["permission"] += 1
                            self.error(join(base, name), exc)
                        continue
                    kind = st.st_mode & IFMT
                    if excludes is not None and (excludes.match(name) or excludes.match(join(base, name))):
                        skipped["excluded"] += 1
                        remaining += 1
                        if kind == IFREG:
                            kept += 1
                            kept_bytes += st.st_size
                        continue
                    if one_fs and st.st_dev != root_dev:
                        skipped["other_filesystem"] += 1
                        remaining += 1
                        continue
                    if kind == IFREG:
                        size = st.st_size
                    elif kind == IFDIR:
                        subdirs.append((name, st))
                        continue
                    elif kind == IFLNK:
                        size = 0
                    else:
                        skipped["special"] += 1
                        remaining += 1
                        continue
                    if deadline is not None:
                        self._tick += 1
                        if not self._tick & 1023 and time.monotonic() > deadline:
                            raise _Interrupted()
                    stamp = st.st_mtime if by_mtime else getattr(st, attr)
                    considered = patterns is None or patterns.match(name) is not None
                    if considered and (lo <= stamp < hi or tie and stamp == hi and rule.tie_budget > 0) \
                            and not (regular_only and kind != IFREG):
                        if held is not None and (st.st_dev, st.st_ino) in held:
                            skipped["open"] += 1
                        else:
                            gone = True
                            if unlinker is not None:
                                batch.append((name, size, kind))
                                if len(batch) >= batch_size:
                                    unlinker.unlink(fd, base, batch)
                                    batch = []
                            elif not check_mode:
                                try:
                                    os_unlink(name, dir_fd=fd)
                                except OSError as exc:
                                    self.unlink_failed(base, name, exc)
                                    gone = False
                                    if kind == IFLNK:  # counted as the failure, not as a kept link
                                        remaining += 1
                                        continue
                            if gone:
                                removed += 1
                                removed_bytes += size
                                if stamp == hi:
                                    rule.tie_budget -= size
                                if len(listed) < list_limit:
                                    listed.append((join(base, name), size, stamp))
                                continue
                    remaining += 1
                    if kind == IFLNK:
                        skipped["symlink"] += 1
                        continue
                    kept += 1
                    kept_bytes += size
                    if collect and considered and stamp >= hi and (held is None or (st.st_dev, st.st_ino) not in held):
                        stamps.append(stamp)
                        sizes.append(size)
        except OSError as exc:  # the listing itself failed part-way
            self.error(base, exc)
            remaining += 1
        finally:
            if batch:
                unlinker.unlink(fd, base, batch)
            rule.removed += removed
            rule.removed_bytes += removed_bytes
            rule.kept += kept
            rule.kept_bytes += kept_bytes
        for name, st in subdirs:
            relpath = join(base, name)
            if depth >= MAX_DEPTH:
                skipped["too_deep"] += 1
                remaining += 1
                continue
            child = self._open_child(fd, name, st, relpath)
            if child is None:
                remaining += 1
                continue
            try:
                left = self._sweep_dir(child, relpath, rule, depth + 1)
            finally:
                os.close(child)  # the helper holds its own duplicate for pending batches
            if self.remove_empty_dirs and left == 0:
                if self._unlinker is not None:
                    self._unlinker.drain()  # its files must be gone before rmdir
                if self._rmdir(fd, name, relpath):
                    continue
            remaining += 1
        return remaining

    def _rmdir(self, parent_fd, name, relpath):
        if self.check_mode:
            self.dirs_removed += 1
            return True
        try:
            os.rmdir(name, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                self.error(relpath, exc)
            return False
        self.dirs_removed += 1
        return True

    def unlink_failed(self, base, name, exc):
        """Count an unlink that failed: vanished, permission, or another error."""
        if isinstance(exc, FileNotFoundError):
            self.skipped["vanished"] += 1
        elif isinstance(exc, (PermissionError, IsADirectoryError)):
            self.skipped["permission"] += 1
            self.error(join(base, name), exc)
        else:
            self.error(join(base, name), exc)
