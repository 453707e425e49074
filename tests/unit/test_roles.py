"""Every role declares each option once in defaults/main.yml and once in
meta/argument_specs.yml; the two must agree, and every playbook is the one
runbook frame around its steps."""

from __future__ import annotations

import glob
import os
import re

import pytest
import yaml

from tests.helpers import REPO

ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
               for p in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml")))
PLAYBOOKS = ["daily", "weekly", "monthly", "quarterly", "predeploy", "postdeploy", "deploy", "incident"]


def load(role, *parts):
    path = os.path.join(REPO, "roles", role, *parts)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def spec_options(role):
    specs = load(role, "meta", "argument_specs.yml")["argument_specs"]
    options = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return options


def test_every_role_has_a_spec():
    assert set(ROLES) == set(os.listdir(os.path.join(REPO, "roles")))


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_declare_the_same_options(role):
    defaults = load(role, "defaults", "main.yml")
    options = spec_options(role)
    own = dict((k, v) for k, v in options.items() if k.startswith(role + "_"))
    assert sorted(defaults) == sorted(own), "defaults/main.yml and meta/argument_specs.yml disagree on the names"
    assert all(k.startswith(role + "_") for k in defaults), "every input is prefixed with the role's name"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_agree_on_every_default(role):
    defaults = load(role, "defaults", "main.yml")
    options = spec_options(role)
    wrong = []
    for name, value in defaults.items():
        opt = options[name]
        templated = isinstance(value, str) and "{{" in value
        if opt.get("required") and ("default" in opt or name in defaults):
            wrong.append("%s: required although a default exists" % name)
        if templated:
            if "default" in opt:
                wrong.append("%s: the spec's default %r shadows the templated default" % (name, opt["default"]))
        elif "default" not in opt:
            wrong.append("%s: the spec lacks the default %r" % (name, value))
        elif opt["default"] != value and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                              and float(opt["default"]) == float(value)):
            wrong.append("%s: defaults say %r, the spec %r" % (name, value, opt["default"]))
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_internal_names_are_prefixed(role):
    text = ""
    for path in glob.glob(os.path.join(REPO, "roles", role, "tasks", "*.yml")):
        text += open(path, encoding="utf-8").read()
    for match in re.finditer(r"^\s+(?:register|set_fact):?\s*(\w+)?", text, re.M):
        pass
    registered = re.findall(r"^\s+register:\s*(\w+)", text, re.M)
    assert all(r.startswith("__%s" % role) or r.startswith(role + "_") or r.startswith("__" + role)
               for r in registered), registered


def playbook(name):
    with open(os.path.join(REPO, "playbooks", name + ".yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def imports(tasks):
    for task in tasks:
        if "block" in task:
            yield from imports(task["block"])
            yield from imports(task.get("rescue") or [])
            yield from imports(task.get("always") or [])
        elif "ansible.builtin.import_role" in task:
            yield task


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_runbook_playbook_is_the_one_frame_around_its_steps(name):
    plays = playbook(name)
    assert len(plays) == 1
    play = plays[0]
    assert play["vars"]["runbook_schedule"] in (name, "deploy")
    tasks = play["tasks"]
    start, block = tasks[0], tasks[1]
    assert start["ansible.builtin.import_role"] == {"name": "runbook", "tasks_from": "start", "rolespec_validate": False}
    assert start["tags"] == ["always"]
    assert [t["ansible.builtin.import_role"] for t in block["always"]] == [
        {"name": "runbook", "tasks_from": "finish", "rolespec_validate": False}]
    steps = list(imports(block["block"]))
    assert any(t["ansible.builtin.import_role"].get("tasks_from") == "checks" for t in steps)
    for task in steps:
        role = task["ansible.builtin.import_role"]
        # Every input is checked once, for all roles, when the run starts.
        assert role["rolespec_validate"] is False, task["name"]
        assert task.get("tags") or name == "deploy", task["name"]


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_checks_run_after_every_role_that_selects_one(name):
    steps = [t["ansible.builtin.import_role"] for t in imports(playbook(name)[0]["tasks"][1]["block"])]
    order = [s["name"] if not s.get("tasks_from") else s["name"] + ":" + s["tasks_from"] for s in steps]
    checks = order.index("runbook:checks")
    check_roles = {"health_check", "error_monitoring", "log_management", "disk_usage", "tmp_cleanup",
                   "performance_check", "api_security"}
    assert all(order.index(r) < checks for r in order if r in check_roles), order


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_step_options_are_set_for_the_whole_play_where_the_run_checks_them(name):
    # The run checks (and the sweep reads) every option when it starts, in the
    # play's context; vars on an import would only reach that role's tasks.
    options = set()
    for role in ROLES:
        options |= set(spec_options(role))
    for task in imports(playbook(name)[0]["tasks"][1]["block"]):
        role = task["ansible.builtin.import_role"]["name"]
        set_here = set(task.get("vars") or {}) & options
        if role == "deploy":  # the deployment's runtime record: the commit live before, the failure
            set_here -= {"deploy_commit", "deploy_previous_commit", "deploy_rolled_back", "deploy_failure",
                         "deploy_rollback_healthy"}
        assert not set_here, (task["name"], set_here)
