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
import time

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
                    dev_major, _, dev_minor = parts[3].partition(":")
                    if int(dev_major, 16) == major and int(dev_minor, 16) == minor:
                        held.add((root_dev, int(parts[4])))
        except (OSError, ValueError):
            continue
    return held


class Walker(object):
    """Depth-first walk through directory descriptors.

    ``walk(on_file)`` calls ``on_file(dir_fd, name, st, base)`` for every
    non-directory entry (``st`` from lstat, so symlinks are seen as links;
    ``base`` is the relative path of its directory, "" for the root);
    it returns True when the entry was (or in check mode would be) removed.
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
        # Called with the lstat of excluded regular files, which still take space.
        self.on_protected = None

    def error(self, relpath, exc):
        if len(self.errors) < self.max_errors:
            self.errors.append("%s: %s" % (relpath or ".", getattr(exc, "strerror", None) or exc))

    def excluded(self, name, relpath):
        return self.excludes is not None and (self.excludes.match(name) or self.excludes.match(relpath))

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

    def walk(self, on_file):
        """Walk the whole tree; return False when stopped by the deadline."""
        self._tick = 0
        try:
            self._walk_dir(self.root_fd, "", on_file, 1)
        except _Interrupted:
            self.interrupted = True
            return False
        return True

    def _walk_dir(self, fd, base, on_file, depth):
        """Handle every entry of the open directory ``fd``; return how many entries remain in it.

        Subdirectories are entered after the listing is closed, so a level
        holds one descriptor while its children are walked.
        """
        skipped, excludes, deadline = self.skipped, self.excludes, self.deadline
        one_fs, root_dev, on_protected = self.one_file_system, self.root_dev, self.on_protected
        IFMT, IFDIR, IFREG, IFLNK = stat.S_IFMT(0o177777), stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK
        remaining = 0
        subdirs = []
        try:
            iterator = os.scandir(fd)
        except OSError as exc:
            skipped["permission"] += 1
            self.error(base, exc)
            return 1
        with iterator:
            try:
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
                        if on_protected is not None and kind == IFREG:
                            on_protected(st)
                        continue
                    if one_fs and st.st_dev != root_dev:
                        skipped["other_filesystem"] += 1
                        remaining += 1
                        continue
                    if kind == IFDIR:
                        subdirs.append((name, st))
                        continue
                    if kind != IFREG and kind != IFLNK:
                        skipped["special"] += 1
                        remaining += 1
                        continue
                    if not on_file(fd, name, st, base):
                        remaining += 1
                    if deadline is not None:
                        self._tick += 1
                        if not self._tick & 1023 and time.monotonic() > deadline:
                            raise _Interrupted()
            except OSError as exc:  # the listing itself failed part-way
                self.error(base, exc)
                remaining += 1
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
                left = self._walk_dir(child, relpath, on_file, depth + 1)
            finally:
                os.close(child)
            if self.remove_empty_dirs and left == 0 and self._rmdir(fd, name, relpath):
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

    def unlink(self, dir_fd, name, base):
        """Remove one entry by name in its open directory; True when it is gone."""
        if self.check_mode:
            return True
        try:
            os.unlink(name, dir_fd=dir_fd)
            return True
        except OSError as exc:
            self.unlink_failed(base, name, exc)
        return False

    def unlink_failed(self, base, name, exc):
        """Count an unlink that failed: vanished, permission, or another error."""
        if isinstance(exc, FileNotFoundError):
            self.skipped["vanished"] += 1
        elif isinstance(exc, (PermissionError, IsADirectoryError)):
            self.skipped["permission"] += 1
            self.error(join(base, name), exc)
        else:
            self.error(join(base, name), exc)
