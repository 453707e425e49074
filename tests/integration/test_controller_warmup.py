"""plugins/callback/controller_warmup.py: the caches the task workers inherit are filled, and a failure to
fill them never fails a run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, VENV_BIN

PLUGIN = os.path.join(REPO, "plugins", "callback", "controller_warmup.py")
ACTIONS = os.path.join(REPO, "plugins", "action")


def _load_plugin():
    spec = importlib.util.spec_from_file_location("controller_warmup_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout, expected", [
    ({"light_module.py": "file", "a.py": "link", "b.py": "link"}, ["a", "b"]),
    # A plain action plugin, a link to something else and a non-Python link are not light modules.
    ({"light_module.py": "file", "a.py": "link", "plain.py": "file", "other.py": "link:plain.py",
      "notes.txt": "link"}, ["a"]),
    # Without the light-module plugin in the folder nothing is one.
    ({"a.py": "file", "b.py": "link:a.py"}, []),
])
def test_light_module_names(tmp_path, layout, expected):
    for name, kind in layout.items():
        if kind == "file":
            (tmp_path / name).write_text("# plugin\n")
    for name, kind in layout.items():
        if kind.startswith("link"):
            os.symlink(kind.partition(":")[2] or "light_module.py", tmp_path / name)
    assert _load_plugin().light_module_names([str(tmp_path), str(tmp_path / "missing")]) == expected


def test_the_project_light_modules_are_found():
    links = sorted(name[:-3] for name in os.listdir(ACTIONS)
                   if os.path.islink(os.path.join(ACTIONS, name)) and os.readlink(os.path.join(ACTIONS, name)) == "light_module.py")
    assert len(links) >= 7
    assert _load_plugin().light_module_names([ACTIONS]) == links


PROBE = r"""
import json, sys
from ansible.plugins.loader import action_loader, callback_loader, filter_loader, test_loader
from ansible._internal._templating._jinja_bits import AnsibleEnvironment
plugin = callback_loader.get("controller_warmup")
before = {"filters": len(filter_loader._cached_non_collection_wrappers), "lexers": len(AnsibleEnvironment._lexer_cache)}
plugin.v2_playbook_on_play_start(None)
plans = {}
for name in sys.argv[1:]:
    module = sys.modules[action_loader.get(name, class_only=True).__module__]
    plans[name] = [p[0] for p in module._PLANS]
print(json.dumps({"before": before, "filters": len(filter_loader._cached_non_collection_wrappers),
                  "tests": len(test_loader._cached_non_collection_wrappers),
                  "lexers": len(AnsibleEnvironment._lexer_cache), "plans": plans}))
"""


def test_warm_up_fills_the_caches_in_the_main_process():
    names = _load_plugin().light_module_names([ACTIONS])
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    out = subprocess.run([os.path.join(VENV_BIN, "python"), "-c", PROBE] + names, cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout
    state = json.loads(out.strip().splitlines()[-1])
    assert state["before"] == {"filters": 0, "lexers": 0}
    assert state["filters"] > 50 and state["tests"] > 20
    assert state["lexers"] >= 1
    # Every light module has its plan, made from its own file in library/.
    assert sorted(state["plans"]) == names
    for name, paths in state["plans"].items():
        assert paths == [os.path.join(REPO, "library", name + ".py")], name


def test_a_failing_warm_up_does_not_fail_the_run(tmp_path):
    """A light module that cannot be planned (here: a syntax error) leaves the caches cold; the run goes on."""
    actions, library = tmp_path / "action", tmp_path / "library"
    actions.mkdir()
    library.mkdir()
    os.symlink(os.path.join(ACTIONS, "light_module.py"), actions / "light_module.py")
    os.symlink("light_module.py", actions / "broken_check.py")
    (library / "broken_check.py").write_text("def main(:\n")
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug: {msg: ran}\n")
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\nlibrary = %s\naction_plugins = %s\ncallback_plugins = %s\n"
        % (library, actions, os.path.dirname(PLUGIN)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
               PATH=VENV_BIN + os.pathsep + os.environ["PATH"])
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-vvv", "play.yml",
                           "-e", "ansible_python_interpreter=" + sys.executable],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert '"msg": "ran"' in proc.stdout
    assert "controller_warmup: caches not warmed" in proc.stdout
