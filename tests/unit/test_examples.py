"""What a new user copies: the secrets example names every secret the
runbooks read, and the CI examples keep the state between runs."""

from __future__ import annotations

import glob
import os
import re

import yaml

from tests.helpers import REPO


def secret_names():
    """Every option marked no_log, by the name an inventory sets: the group variable it defaults from, if any."""
    names = set()
    for path in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml")):
        role = path.split(os.sep)[-3]
        defaults_path = os.path.join(REPO, "roles", role, "defaults", "main.yml")
        defaults = yaml.safe_load(open(defaults_path)) if os.path.exists(defaults_path) else {}
        for entry in yaml.safe_load(open(path))["argument_specs"].values():
            for name, opt in (entry.get("options") or {}).items():
                if not opt.get("no_log"):
                    continue
                default = str((defaults or {}).get(name, ""))
                group = re.search(r"\b(bemore_\w+)", default)
                names.add(group.group(1) if group else name)
    return names


def test_the_secrets_example_names_every_secret():
    example = yaml.safe_load(open(os.path.join(REPO, "inventory", "production", "group_vars", "bemore",
                                               "secrets.yml.example")))
    missing = secret_names() - set(example)
    assert not missing, "secrets.yml.example lacks %s" % sorted(missing)
    assert {"bemore_api_token", "bemore_db_password", "bemore_webhook_url"} <= set(example)
    assert all(value in ("", None) or name.endswith("_user") for name, value in example.items())


def test_every_ci_example_keeps_the_state_between_runs_also_after_a_failure():
    github = yaml.safe_load(open(os.path.join(REPO, "examples", "ci", "github-actions.yml")))
    job = github["jobs"]["runbook"]
    state = job["env"]["BEMORE_STATE_DIR"]
    steps = job["steps"]
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore"))
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save"))
    run = next(i for i, s in enumerate(steps) if "ansible-runner run" in s.get("run", ""))
    assert steps.index(restore) < run < steps.index(save)
    assert save["if"] == "always()" and restore["with"]["path"] == save["with"]["path"]
    assert state.endswith(save["with"]["path"])

    gitlab = yaml.safe_load(open(os.path.join(REPO, "examples", "ci", "gitlab-ci.yml")))
    cache = gitlab["runbook"]["cache"]
    assert cache["when"] == "always"
    assert gitlab["variables"]["BEMORE_STATE_DIR"].endswith(cache["paths"][0])


def test_staging_and_production_never_share_a_state_or_report_folder():
    folders = {}
    for env in ("production", "staging"):
        data = yaml.safe_load(open(os.path.join(REPO, "inventory", env, "group_vars", "all", "runbooks.yml")))
        folders[env] = (data["bemore_state_dir"], data["bemore_report_dir"])
        assert all(env in value for value in folders[env])
    assert not set(folders["production"]) & set(folders["staging"])
