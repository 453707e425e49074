#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ``ansible-test sanity`` over library/, module_utils/ and plugins/.

ansible-test only tests collections, and this project is a playbook
repository, so the code is laid out as a throwaway collection in a temporary
directory:

    library/*            -> ansible_collections/NS/NAME/plugins/modules/
    module_utils/*       -> ansible_collections/NS/NAME/plugins/module_utils/
    plugins/<type>/*     -> ansible_collections/NS/NAME/plugins/<type>/

with the project's short references rewritten to the collection form
(imports of ``ansible.module_utils.X``, doc fragments, seealso modules) while
line numbers and the length of import lines stay as they are. It is
committed to a fresh git repository (ansible-test ignores untracked files)
and tested with every default sanity test; compile and import run on each
Python ansible-test supports that is installed here. Paths in the output are
mapped back to the project's files, the temporary directory is removed, and
the exit code is ansible-test's.

Usage: .venv/bin/python tools/sanity.py [--python-versions 3.11,3.12] [--keep]
                                        [--project DIR] [-- ansible-test sanity options]
e.g. ``-- --test pep8`` runs one test.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(REPO, "tools", "sanity")

NAMESPACE = "bemore"
NAME = "runbooks"
# validate-modules compares version_added with the collection's version;
# the modules document themselves as added in 1.0.0.
VERSION = "1.0.0"

# The limit pep8 and pylint apply under ansible-test.
MAX_LINE = 160

# Project folder -> collection folder. plugins/<type> folders are added at run
# time from whatever exists, as some of them come and go.
FIXED_LAYOUT = (("library", "plugins/modules"), ("module_utils", "plugins/module_utils"))


def layout(repo):
    """[(project folder, collection folder)] for the folders present in repo."""
    pairs = [(src, dst) for src, dst in FIXED_LAYOUT if os.path.isdir(os.path.join(repo, src))]
    plugins = os.path.join(repo, "plugins")
    if os.path.isdir(plugins):
        for kind in sorted(os.listdir(plugins)):
            if kind in ("modules", "module_utils"):
                raise SystemExit("plugins/%s would collide with library/ or module_utils/ in the collection layout; "
                                 "move it or teach tools/sanity.py about it" % kind)
            if os.path.isdir(os.path.join(plugins, kind)) and not kind.startswith((".", "__")):
                pairs.append(("plugins/" + kind, "plugins/" + kind))
    return pairs


def to_project_path(collection_path, pairs):
    """Map a path relative to the collection root back to the project's path."""
    for src, dst in pairs:
        if collection_path == dst or collection_path.startswith(dst + "/"):
            return src + collection_path[len(dst):]
    return collection_path


def source_files(repo, folder):
    """Files of folder (relative to repo) that git would track: tracked ones
    still present and untracked ones not ignored (so a new module is tested
    before it is committed, and .pyc/__pycache__ never are)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", folder],
                             cwd=repo, capture_output=True, check=True).stdout.decode("utf-8")
        files = sorted({f for f in out.split("\0") if f and os.path.lexists(os.path.join(repo, f))})
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk(os.path.join(repo, folder)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files.extend(os.path.relpath(os.path.join(root, n), repo) for n in names if not n.endswith(".pyc"))
        files.sort()
    return files


# --- rewriting the project's short references to the collection form -------

def local_names(repo, pairs):
    """{project folder: set of module names} for the folders that are laid out."""
    names = {}
    for src, _dst in pairs:
        folder = os.path.join(repo, src)
        names[src] = {os.path.splitext(n)[0] for n in os.listdir(folder)
                      if n.endswith(".py") and n != "__init__.py"}
    return names


def import_rules(names):
    """[(regex, collection package)] for the imports that must name the collection.

    ``ansible.module_utils.X`` and ``ansible.plugins.<type>.X`` resolve to the
    project's files through ansible's library paths; in the collection they
    are ``plugins/module_utils/X`` and ``plugins/<type>/X``. The regex matches
    the package part of ``from P.X import`` and ``from P import X`` (first
    name the project's). ``import P.X`` has no relative form and is left as
    it is, so the import test reports it."""
    rules = []
    for src, found in sorted(names.items()):
        if not found or src == "library":
            continue
        short = "ansible.module_utils" if src == "module_utils" else "ansible.plugins." + src.split("/", 1)[1]
        package = src.split("/")[-1]
        alternatives = "|".join(sorted(re.escape(n) for n in found))
        rules.append((re.compile(r"^(\s*from\s+)(%s)(?=\.(?:%s)\s+import\b)" % (re.escape(short), alternatives)), package))
        rules.append((re.compile(r"^(\s*from\s+)(%s)(?=\s+import\s+\(?\s*(?:%s)\s*(?:[,)#]|$))"
                                 % (re.escape(short), alternatives)), package))
    return rules


FRAGMENT_KEY = re.compile(r"^(\s*)extends_documentation_fragment:\s*(.*?)\s*$")
SEEALSO_KEY = re.compile(r"^(\s*)seealso:\s*$")
LIST_ITEM = re.compile(r"^(\s*-\s+)([\w.]+)(\s*(?:#.*)?)$")
SEEALSO_MODULE = re.compile(r"^(\s*(?:-\s+)?module:\s+)(\w+)(\s*(?:#.*)?)$")


def _fragment(value, fragments):
    """The collection name of a fragment reference, or None if not the project's."""
    base = value.split(".", 1)[0]
    if base in fragments and value.count(".") <= 1:
        return "%s.%s.%s" % (NAMESPACE, NAME, value)
    return None


def _padding(width, line):
    """width characters to append to line that no checker objects to, or None.

    The relative import is shorter than ``ansible.module_utils``; padding the
    line back to its length keeps pep8's line-too-long verdict the
    project's own (a 161-character import stays 161 characters)."""
    if width <= 0:
        return ""
    if line.rstrip().endswith("\\"):
        return None
    if "#" in line:  # import lines hold no strings, so this is a comment
        return " " + "=" * (width - 1) if width >= 2 else None
    return "  # " + "=" * (width - 4) if width >= 5 else None


def rewrite_source(text, rules, fragments, modules, depth=0):
    """Rewrite one file's references to the collection form.

    Imports of the project's module_utils and plugins become relative
    (``from ..module_utils.bemore_api import``; ``depth`` is how many folders
    the file sits below plugins/<type>/), doc fragments and seealso modules
    get the collection's name. Line numbers never change; lines an import
    rewrite shortens are padded back to their length with a comment, and
    when the import opens a bracket with its first name on the same line
    (visual indent), its continuation lines move by the same amount, so
    pep8's E1xx/E501 verdicts are those of the project's code. Returns
    (new text, {line number: [(column, shift)]}, [line numbers whose length
    changed])."""
    lines = text.split("\n")
    shifts = {}
    resized = []
    dots = "." * (depth + 2)

    def replace(i, start, end, new, pad=True):
        line = lines[i]
        delta = len(new) - (end - start)
        line = line[:start] + new + line[end:]
        padding = _padding(-delta, line) if pad else ""
        if padding is None:
            padding = ""
            resized.append(i + 1)
        elif delta > 0:
            resized.append(i + 1)
        lines[i] = line + padding
        shifts.setdefault(i + 1, []).append((start, delta))
        return delta

    seealso = None
    i = 0
    while i < len(lines):
        line = lines[i]
        for regex, package in rules:
            match = regex.match(line)
            if not match:
                continue
            delta = replace(i, match.start(2), match.end(2), dots + package)
            line = lines[i]
            opened = line.find("(")
            code = line.split("#", 1)[0]
            if opened != -1 and code[opened + 1:].strip() and code.count("(") > code.count(")"):
                depth_open = code.count("(") - code.count(")")
                j = i + 1
                while depth_open > 0 and j < len(lines):
                    current = lines[j]
                    body = current.split("#", 1)[0]
                    depth_open += body.count("(") - body.count(")")
                    if current.strip() and (delta > 0 or current[:-delta].strip() == ""):
                        moved = current[-delta:] if delta < 0 else " " * delta + current
                        padding = _padding(-delta, moved)
                        if padding is None:
                            padding = ""
                            resized.append(j + 1)
                        elif delta > 0:
                            resized.append(j + 1)
                        lines[j] = moved + padding
                        shifts.setdefault(j + 1, []).append((0, delta))
                    j += 1
            break
        match = FRAGMENT_KEY.match(line)
        if match and fragments:
            value = match.group(2)
            if value:
                # single value, or a flow list on the same line
                new_value = re.sub(r"[\w.]+", lambda m: _fragment(m.group(0), fragments) or m.group(0), value)
                if new_value != value:
                    replace(i, match.start(2), match.end(2), new_value, pad=False)
            else:
                j = i + 1
                while j < len(lines):
                    item = LIST_ITEM.match(lines[j])
                    if not item:
                        if lines[j].strip() and not lines[j].strip().startswith("#"):
                            break
                        j += 1
                        continue
                    new = _fragment(item.group(2), fragments)
                    if new:
                        replace(j, item.start(2), item.end(2), new, pad=False)
                    j += 1
                i = j
                continue
        match = SEEALSO_KEY.match(line)
        if match:
            seealso = len(match.group(1))
        elif seealso is not None and line.strip():
            indent = len(line) - len(line.lstrip())
            if indent < seealso or (indent == seealso and not line.lstrip().startswith("-")):
                seealso = None
            else:
                item = SEEALSO_MODULE.match(line)
                if item and item.group(2) in modules:
                    replace(i, item.start(2), item.end(2), "%s.%s.%s" % (NAMESPACE, NAME, item.group(2)), pad=False)
        i += 1
    return "\n".join(lines), shifts, sorted(set(resized))


# --- the throwaway collection -------------------------------------------------

def build_collection(repo, root):
    """Lay the project out as a collection under root/ansible_collections/NS/NAME.

    Returns (collection dir, layout pairs,
    {collection path: {line: ([(column, shift)], length in the project)}},
    [notes about lines whose length the layout changed across the limit])."""
    coll = os.path.join(root, "ansible_collections", NAMESPACE, NAME)
    os.makedirs(os.path.join(coll, "meta"))
    pairs = layout(repo)
    names = local_names(repo, pairs)
    rules = import_rules(names)
    fragments = names.get("plugins/doc_fragments", set())
    modules = names.get("library", set())
    shifts_by_path = {}
    notes = []
    for src, dst in pairs:
        for rel in source_files(repo, src):
            path = os.path.join(repo, rel)
            target_rel = dst + rel[len(src):]
            target = os.path.join(coll, target_rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.islink(path):
                link = os.readlink(path)
                inside = os.path.realpath(os.path.join(os.path.dirname(path), link))
                if not os.path.isabs(link) and inside.startswith(os.path.realpath(os.path.join(repo, src)) + os.sep):
                    # a link within its folder (an action plugin sharing another's code) stays a link
                    os.symlink(link, target)
                    continue
                path = inside
            if not rel.endswith(".py"):
                shutil.copy2(path, target)
                continue
            with open(path, encoding="utf-8") as handle:
                original = handle.read()
            depth = rel[len(src) + 1:].count("/")
            text, shifts, resized = rewrite_source(original, rules, fragments, modules, depth)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
            shutil.copymode(path, target)
            old_lines, new_lines = original.split("\n"), text.split("\n")
            if shifts:
                shifts_by_path[target_rel] = {n: (moves, len(old_lines[n - 1])) for n, moves in shifts.items()}
            for number in resized:
                old, new = len(old_lines[number - 1]), len(new_lines[number - 1])
                if (old > MAX_LINE) != (new > MAX_LINE):
                    notes.append("%s:%d is %d characters in the project and %d in the collection layout, "
                                 "so pep8's line-too-long verdict on it may differ" % (rel, number, old, new))
    with open(os.path.join(coll, "galaxy.yml"), "w", encoding="utf-8") as handle:
        handle.write("namespace: %s\nname: %s\nversion: %s\nreadme: README.md\n"
                     "authors:\n  - BeMore maintenance runbooks contributors\n"
                     "description: BeMore runbooks laid out for ansible-test sanity (tools/sanity.py)\n"
                     "license:\n  - GPL-3.0-or-later\n" % (NAMESPACE, NAME, VERSION))
    with open(os.path.join(coll, "README.md"), "w", encoding="utf-8") as handle:
        handle.write("Generated by tools/sanity.py; removed after the run.\n")
    with open(os.path.join(coll, "meta", "runtime.yml"), "w", encoding="utf-8") as handle:
        handle.write("---\nrequires_ansible: '>=2.19.0'\n")
    git = ["git", "-c", "user.name=tools/sanity.py", "-c", "user.email=sanity@localhost",
           "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "-c", "init.defaultBranch=main"]
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_DATE="2000-01-01T00:00:00Z", GIT_COMMITTER_DATE="2000-01-01T00:00:00Z")
    for cmd in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "--no-verify", "-m", "sanity layout"]):
        subprocess.run(git + cmd, cwd=coll, env=env, check=True, stdout=subprocess.DEVNULL)
    return coll, pairs, shifts_by_path, notes


# --- Pythons ------------------------------------------------------------------

# A usable interpreter runs, has venv and ensurepip (ansible-test makes its
# virtual environments with them), and names its real executable: a pyenv
# shim or a virtual environment's python is not what ansible-test should use.
PROBE = ("import sys, venv, ensurepip; "
         "print('%d.%d' % sys.version_info[:2]); print(getattr(sys, '_base_executable', None) or sys.executable)")


def supported_versions():
    """ansible-test's (remote-only + controller) Python versions, oldest first."""
    from ansible_test._util.target.common import constants  # pylint: disable=import-outside-toplevel
    return list(constants.REMOTE_ONLY_PYTHON_VERSIONS) + list(constants.CONTROLLER_PYTHON_VERSIONS)


def controller_versions():
    from ansible_test._util.target.common import constants  # pylint: disable=import-outside-toplevel
    return list(constants.CONTROLLER_PYTHON_VERSIONS)


def _patch_key(path):
    found = re.search(r"/(\d+)\.(\d+)\.(\d+)[^/]*/bin/", path)
    return tuple(int(x) for x in found.groups()) if found else (0, 0, 0)


def candidates(version):
    """Interpreters that may be Python version: pyenv's installs (newest
    patch first), then PATH. pyenv's shims come up on PATH but fail for a
    version that is not activated, hence the probe in find_pythons."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python" + version)),
                   key=_patch_key, reverse=True)
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", "python" + version)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            found.append(path)
    seen = []
    for path in found:
        if path not in seen:
            seen.append(path)
    return seen


def find_pythons(versions):
    """({version: interpreter}, {version: why not}) for the versions asked."""
    found, missing = {}, {}
    for version in versions:
        tried = []
        for path in candidates(version):
            try:
                proc = subprocess.run([path, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                tried.append("%s (%s)" % (path, exc))
                continue
            answer = proc.stdout.split("\n")
            if proc.returncode == 0 and answer[0] == version and os.path.isabs(answer[1]):
                found[version] = os.path.realpath(answer[1])
                break
            errors = proc.stderr.strip().splitlines() or [proc.stdout.strip() or "exit %d" % proc.returncode]
            # a traceback says what is missing on its last line; pyenv's shim on its first
            reason = errors[-1] if errors[0].startswith("Traceback") else errors[0]
            tried.append("%s (%s)" % (path, reason.strip()[:100]))
        else:
            missing[version] = ("tried " + "; ".join(tried)) if tried else "no python%s found" % version
    return found, missing


# --- the stand-in for get-pip.py ------------------------------------------------

def pinned_pip_version():
    """The pip version ansible-test bootstraps into its virtual environments."""
    import ansible_test  # pylint: disable=import-outside-toplevel
    source = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
    with open(source, encoding="utf-8") as handle:
        found = re.search(r"\bpip\s*=\s*'(\d+(?:\.\d+)*)'", handle.read())
    if not found:
        raise SystemExit("cannot find the pip version ansible-test pins in %s; update tools/sanity.py" % source)
    return found.group(1)


STANDIN_MARKER = b"Offline stand-in for the get-pip.py that ansible-test downloads."


def ensure_get_pip(home=None):
    """Put the get-pip.py stand-in where ansible-test looks first, once.

    ansible-test bootstraps pip into each virtual environment it creates with
    a get-pip.py downloaded from a host outside the package registries, which
    these machines cannot reach; it uses a file already at its cache path
    instead. An existing file is left alone (it may be the real script)
    unless it is an older copy of this stand-in. Returns (path, written)."""
    version = pinned_pip_version()
    cache = os.path.join(home or os.path.expanduser("~"), ".ansible", "test", "cache")
    path = os.path.join(cache, "get_pip_%s.py" % version.replace(".", "_"))
    with open(os.path.join(HERE, "get_pip_standin.py"), "rb") as src:
        content = src.read()
    if os.path.exists(path):
        with open(path, "rb") as existing:
            current = existing.read()
        if STANDIN_MARKER not in current or current == content:
            return path, False
        # an older copy of this stand-in: refresh it
    os.makedirs(cache, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=cache, prefix=".get_pip-", suffix=".py")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temp, 0o644)
        os.replace(temp, path)  # atomic, so a concurrent run never sees half a file
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return path, True


# --- output -------------------------------------------------------------------

class OutputMapper:
    """Rewrites collection paths in ansible-test's output to project paths,
    with line:column adjusted for the columns the rewrite shifted."""

    def __init__(self, coll, pairs, shifts_by_path):
        self.coll = coll
        self.pairs = pairs
        self.shifts = shifts_by_path
        prefixes = "|".join(re.escape(dst) for _src, dst in sorted(pairs, key=lambda p: -len(p[1])))
        self.regex = re.compile(r"(?<![\w/.-])(?P<path>(?:%s)/[\w./-]*[\w-])(?::(?P<line>\d+)(?::(?P<col>\d+))?)?"
                                % prefixes) if prefixes else None
        self.absolute = coll + "/"

    def column(self, path, line, col):
        if line not in self.shifts.get(path, {}):
            return col
        moves, length = self.shifts[path][line]
        total = sum(delta for _start, delta in moves)
        if total < 0 and col > length + total:
            # in the padding that keeps the line's length (where pep8's E501
            # points): the same column of the project's line
            return col
        for start, delta in sorted(moves, reverse=True):
            if col > start:
                col = max(start + 1, col - delta)
        return min(col, length + 1)

    def map(self, text):
        text = text.replace(self.absolute, "")
        if self.regex is None:
            return text

        def repl(match):
            path = match.group("path")
            out = to_project_path(path, self.pairs)
            if match.group("line"):
                out += ":" + match.group("line")
                if match.group("col"):
                    out += ":%d" % self.column(path, int(match.group("line")), int(match.group("col")))
            return out
        return self.regex.sub(repl, text)


def read_results(coll):
    """[(test, python version or '', status, error count or skip reason)] from
    ansible-test's junit files, one per test and Python."""
    results = []
    for path in sorted(glob.glob(os.path.join(coll, "tests", "output", "junit", "*.xml"))):
        for case in ET.parse(path).getroot().iter("testcase"):
            found = re.match(r"^(?P<test>.+?)(?:-python-(?P<version>\d+\.\d+))?$", case.get("name", ""))
            test, version = found.group("test"), found.group("version") or ""
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            skipped = case.find("skipped")
            if failure is not None:
                count = re.search(r"failed with (\d+) errors?", failure.get("message", ""))
                results.append((test, version, "failed", int(count.group(1)) if count else 1))
            elif skipped is not None:
                results.append((test, version, "skipped", (skipped.text or skipped.get("message") or "").strip()))
            else:
                results.append((test, version, "passed", 0))
    return results


def _version_key(version):
    return tuple(int(part) for part in version.split("."))


def summarize(results, missing, seconds, rc):
    """The closing lines: failed tests with their error counts, skipped ones
    with ansible-test's reason, the Pythons that ran, and one summary line."""
    lines = []
    failed = [(t, v, c) for t, v, s, c in results if s == "failed"]
    skipped = {}
    for test, _version, status, reason in results:
        if status == "skipped":
            skipped.setdefault(reason or "no reason given", []).append(test)
    multi = {t for t, v, s, _c in results if v and s != "skipped"}
    versions = sorted({v for t, v, s, _c in results if t in multi and s != "skipped"}, key=_version_key)
    errors = sum(c for _t, _v, c in failed)
    for test, version, count in failed:
        lines.append("sanity: FAILED %s%s: %d error%s" % (test, " on Python %s" % version if version else "",
                                                          count, "" if count == 1 else "s"))
    for reason, tests in sorted(skipped.items()):
        lines.append("sanity: skipped %s: %s" % (", ".join(sorted(set(tests))), reason))
    if missing:
        lines.append("sanity: Python %s: not installed here (or not usable), so nothing ran on it"
                     % ", ".join(sorted(missing, key=_version_key)))
    per_python = "; %s on Python %s" % (", ".join(sorted(multi)), ", ".join(versions)) if multi else ""
    lines.append("sanity: %d tests, %d results%s: %d failed, %d errors, %d skipped; %.0f s; exit %d"
                 % (len({t for t, _v, _s, _c in results}), len(results), per_python, len(failed), errors,
                    sum(len(t) for t in skipped.values()), seconds, rc))
    return lines


# --- main -----------------------------------------------------------------------

def clean_environment(path_dirs):
    """The environment for ansible-test: the project's ansible.cfg, library
    paths and PYTHONPATH must not leak into the collection's tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join(path_dirs + [os.environ.get("PATH", os.defpath)])
    return env


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Run ansible-test sanity over the project laid out as a collection.")
    parser.add_argument("--python-versions", default=os.environ.get("SANITY_PYTHON_VERSIONS", ""),
                        help="comma-separated Python versions for compile/import (default: every version "
                             "ansible-test supports that is installed; env SANITY_PYTHON_VERSIONS)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary collection and print its path")
    parser.add_argument("--project", default=REPO,
                        help="project tree to test (default: this checkout; e.g. an exported commit)")
    parser.add_argument("extra", nargs="*", help="arguments after -- go to ansible-test sanity (e.g. --test pep8)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    supported = supported_versions()
    wanted = [v.strip() for v in args.python_versions.split(",") if v.strip()] or supported
    unknown = [v for v in wanted if v not in supported]
    if unknown:
        print("sanity: ansible-test does not support Python %s (supported: %s)" % (", ".join(unknown), ", ".join(supported)),
              file=sys.stderr)
        return 2
    controller = "%d.%d" % sys.version_info[:2]
    if controller not in controller_versions():
        print("sanity: run this with a controller Python (%s), e.g. .venv/bin/python tools/sanity.py; this is %s"
              % (", ".join(controller_versions()), controller), file=sys.stderr)
        return 2
    pythons, missing = find_pythons(wanted)
    for version in wanted:
        if version in missing:
            print("sanity: skipping Python %s: %s" % (version, missing[version]))
    if not pythons:
        print("sanity: none of Python %s is installed here" % ", ".join(wanted), file=sys.stderr)
        return 2
    get_pip, created = ensure_get_pip()
    if created:
        print("sanity: wrote the offline get-pip stand-in to %s" % get_pip)

    root = tempfile.mkdtemp(prefix="bemore-sanity-")
    rc = 1
    try:
        coll, pairs, shifts, notes = build_collection(os.path.abspath(args.project), root)
        mapper = OutputMapper(coll, pairs, shifts)
        print("sanity: %s laid out as %s.%s; compile/import on Python %s"
              % (", ".join(src + "/" for src, _dst in pairs), NAMESPACE, NAME, ", ".join(sorted(pythons, key=supported.index))))
        for note in notes:
            print("sanity: note: " + note)
        venv_bin = os.path.dirname(sys.executable)
        # ansible-test creates each Python's virtual environments with the
        # first pythonX.Y on PATH, whatever --target-python says: the
        # interpreters found above go first so broken shims are never used.
        dirs = [venv_bin] + [os.path.dirname(pythons[v]) for v in sorted(pythons, key=supported.index)]
        env = clean_environment(list(dict.fromkeys(dirs)))
        # The controller is this Python as it is: each sanity test makes its
        # own cached virtual environment (~/.ansible/test/venv), so --venv
        # would only add a controller venv rebuilt on every run. Each target
        # Python is named with its path; versions not named are not tested.
        cmd = [sys.executable, os.path.join(venv_bin, "ansible-test"), "sanity", "--junit", "--truncate", "0",
               "--color", "yes" if sys.stdout.isatty() else "no", "--controller", "origin:python=default"]
        for version in sorted(pythons, key=supported.index):
            cmd += ["--target-python", "%s@%s" % (version, pythons[version])]
        cmd += args.extra
        proc = subprocess.Popen(cmd, cwd=coll, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            for raw in proc.stdout:
                sys.stdout.write(mapper.map(raw.decode("utf-8", "replace")))
                sys.stdout.flush()
        finally:
            # on Ctrl-C ansible-test gets the signal too; let it stop before
            # its directory is removed
            rc = proc.wait()
        if rc < 0:
            rc = 128 - rc  # killed by a signal: report it the way a shell does
        for line in summarize(read_results(coll), missing, time.monotonic() - started, rc):
            print(line)
    finally:
        if args.keep:
            print("sanity: kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
