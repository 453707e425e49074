# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daily backup of the BeMore schema: taken with mysqldump through gzip
(credentials in a 0600 option file, never on the command line), written
complete or not at all, reused when this period's file verifies, and the
older ones pruned to ``backup_keep``.
"""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
import time

from ansible.module_utils.mysql_connect import option_file_text
from ansible.module_utils.mysql_verify import verify_backup
from ansible.module_utils.runbook_clock import now as clock_now

DUMP_OPTIONS = ["--single-transaction", "--quick", "--routines", "--triggers",
                # Dumping tablespaces needs the PROCESS privilege (MySQL 8) that a
                # maintenance user rarely has; InnoDB's per-table files need none.
                "--no-tablespaces"]


def fsync(path):
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def dump_schema(module, binary, path):
    """mysqldump the schema, gzip-compressed, into ``path`` (0600, complete or absent). Return an error or None."""
    p = module.params
    partial = path + ".partial"
    bash = module.get_bin_path("bash")
    if not bash:
        return "bash is needed for the dump pipeline and is not installed"
    # mkstemp creates the file 0600: the credentials are never readable by others.
    fd, cnf = tempfile.mkstemp(prefix="bemore-dump-", suffix=".cnf")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(option_file_text(p))
        try:
            os.unlink(partial)  # left by a run that was killed
        except FileNotFoundError:
            pass
        # --defaults-extra-file must come first; the password stays off the command line.
        argv = [binary, "--defaults-extra-file=" + cnf] + DUMP_OPTIONS + ["--databases", p["schema"]]
        # A pipe streams the dump of any size through gzip; pipefail makes a
        # mysqldump error fail it instead of leaving a short but valid gzip
        # file, noclobber never writes through a file put in its place, and
        # umask 077 keeps the dump its owner's only.
        command = "set -o pipefail -o noclobber; %s | gzip -c > %s" % (
            " ".join(shlex.quote(a) for a in argv), shlex.quote(partial))
        rc, _out, err = module.run_command(command, use_unsafe_shell=True, executable=bash, umask=0o077)
        if rc != 0:
            lines = [line for line in (err or "").strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else "no message"
            if p["login_password"]:
                reason = reason.replace(p["login_password"], "********")
            return "%s exited %d: %s" % (os.path.basename(binary), rc, reason)
        # On disk before it is renamed into place, and the rename too.
        fsync(partial)
        os.rename(partial, path)
        fsync(os.path.dirname(path))
        return None
    except OSError as exc:
        return "cannot write %s: %s" % (partial, exc.strerror or exc)
    finally:
        os.unlink(cnf)
        try:
            os.unlink(partial)
        except OSError:
            pass


def backups_of(folder, schema):
    """(mtime, path) of the regular files <schema>-*.sql.gz in ``folder``, newest first."""
    found = []
    prefix = schema + "-"
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".sql.gz")):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((st.st_mtime, path))
    return sorted(found, reverse=True)


def backup_schema(module, tables):
    """Take (or reuse) this period's backup, verify it, prune old ones. Return the backup facts."""
    p = module.params
    check_mode = module.check_mode
    folder = os.path.normpath(p["backup_dir"])
    path = os.path.join(folder, "%s-%s.sql.gz" % (p["schema"], time.strftime(p["backup_stamp_format"], time.gmtime(clock_now()))))
    facts = {"file": path, "action": None, "verified": False, "size": None, "tables_found": 0, "removed": [],
             "created_dir": False, "error": None}
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        facts["error"] = "cannot read %s: %s" % (path, exc.strerror)
        return facts
    if st is not None and not stat.S_ISREG(st.st_mode):
        facts["error"] = "%s exists and is not a regular file; refusing to write through it" % path
        return facts
    stale = None
    if st is not None:
        ok, found = verify_backup(path, tables)
        if ok:
            facts.update(action="reused", verified=True, size=found["size"], tables_found=len(found["tables_found"]))
        else:
            stale = "; ".join(found["problems"])
    if not facts["verified"]:
        facts["replaced_unverified"] = stale
        if check_mode:
            facts["action"] = "would_take"
        else:
            binary = module.get_bin_path("mysqldump") or module.get_bin_path("mariadb-dump")
            if not binary:
                facts["error"] = "neither mysqldump nor mariadb-dump is installed on this host"
                return facts
            if not os.path.isdir(folder):
                try:
                    os.makedirs(folder, 0o700)
                except OSError as exc:
                    facts["error"] = "cannot create the backup folder %s: %s" % (folder, exc.strerror or exc)
                    return facts
                # makedirs applies the umask; the folder of the dumps is its owner's only.
                os.chmod(folder, 0o700)
                facts["created_dir"] = True
            error = dump_schema(module, binary, path)
            if error:
                facts["error"] = error
                return facts
            ok, found = verify_backup(path, tables)
            facts.update(action="taken", size=found["size"], tables_found=len(found["tables_found"]))
            if not ok:
                facts["error"] = "the new backup %s does not verify: %s" % (path, "; ".join(found["problems"]))
                return facts
            facts["verified"] = True
    facts["removed"], errors = prune_backups(folder, p["schema"], p["backup_keep"], path, check_mode)
    if errors:
        facts["prune_errors"] = errors
    return facts


def prune_backups(folder, schema, keep, current, check_mode):
    """Remove the oldest backups of ``schema`` beyond ``keep``; return (removed, errors); in check mode remove none.

    The period's backup ``current`` counts towards what is kept, whether taken
    now or (check mode) not yet.
    """
    removed, errors = [], []
    existing = [f for f in backups_of(folder, schema) if f[1] != current]
    for _mtime, old in existing[max(keep - 1, 0):]:
        if not check_mode:
            try:
                os.unlink(old)
            except OSError as exc:
                errors.append("%s: %s" % (old, exc.strerror))
                continue
        removed.append(old)
    return removed, errors
