"""The callback plugin loads the project's module_utils itself (a callback
is not shipped with AnsiballZ): every one the report path imports must be
in its list, after those it imports, and load in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers import REPO

PLUGIN = os.path.join(REPO, "plugins", "callback", "runbook_journal.py")
IMPORT = re.compile(r"^\s*from ansible\.module_utils\.(\w+) import", re.M)


def listed():
    with open(PLUGIN, encoding="utf-8") as fh:
        match = re.search(r"^_UTILS = \(([^)]*)\)", fh.read(), re.M)
    return re.findall(r'"(\w+)"', match.group(1))


def test_every_project_module_util_is_listed_after_those_it_imports():
    names = listed()
    wrong = []
    for index, name in enumerate(names):
        with open(os.path.join(REPO, "module_utils", name + ".py"), encoding="utf-8") as fh:
            for used in IMPORT.findall(fh.read()):
                if os.path.exists(os.path.join(REPO, "module_utils", used + ".py")) and used not in names[:index]:
                    wrong.append("%s imports %s, listed %s" % (name, used, "after it" if used in names else "nowhere"))
    assert wrong == []


def test_the_callback_loads_them_in_a_fresh_interpreter():
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('runbook_journal', %r)\n"
            "plugin = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(plugin)\n"
            "utils = plugin._load_utils()\n"
            "missing = [name for name, module in sorted(vars(utils).items()) if module is None]\n"
            "print(utils.report_files.__name__, utils.report_files.STATUS_RANK['failed'], missing)\n" % PLUGIN)
    out = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], capture_output=True, text=True,
                         check=False, cwd="/")
    assert (out.returncode, out.stdout.strip()) == (0, "ansible.module_utils.report_files 3 []"), out.stderr
