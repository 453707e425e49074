"""Docs cannot drift: every runbook citation exists and every playbook tag
has a runbook step (runbook_docs, the module the quarterly review runs)."""

from __future__ import annotations

import datetime
import os
import shutil
import textwrap

import pytest

from tests.helpers import REPO, load_module

docs = load_module("runbook_docs")


def test_the_repository_runbooks_match_the_playbooks():
    result = docs.check(REPO)
    assert result["problems"] == []
    files = {rb["file"] for rb in result["runbooks"]}
    assert {"runbooks/daily.md", "runbooks/weekly.md", "runbooks/monthly.md", "runbooks/quarterly.md",
            "runbooks/deployment.md"} <= files
    assert {f for f in files if f.startswith("runbooks/incident-")} == {
        "runbooks/incident-service-down.md", "runbooks/incident-high-error-rate.md",
        "runbooks/incident-disk-space.md", "runbooks/incident-memory.md"}
    for rb in result["runbooks"]:
        assert rb["owner"] and rb["last_reviewed"] and rb["next_review"], rb["file"]
        assert rb["steps"], rb["file"]


@pytest.fixture
def project(tmp_path):
    """A copy of the repository's playbooks, roles, inventories and runbooks to break."""
    for name in ("playbooks", "roles", "inventory", "runbooks"):
        shutil.copytree(os.path.join(REPO, name), tmp_path / name,
                        ignore=shutil.ignore_patterns("molecule", "__pycache__"))
    return tmp_path


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("breakage,expected", [
    (("runbooks/daily.md", "--tags health", "--tags helth"),
     "runbooks/daily.md step 1 cites tag 'helth', which playbooks/daily.yml does not have"),
    (("runbooks/daily.md", "playbooks/daily.yml --tags errors", "playbooks/dialy.yml --tags errors"),
     "runbooks/daily.md step 2 cites playbooks/dialy.yml, which does not exist"),
    (("runbooks/weekly.md", "`tmp_cleanup_max_size_mb`", "`tmp_cleanup_max_size_gb`"),
     "runbooks/weekly.md cites variable tmp_cleanup_max_size_gb, which no role, playbook or inventory defines"),
    (("runbooks/incident-memory.md", "-e incident_response_restart=true", "-e incident_response_reboot=true"),
     "runbooks/incident-memory.md cites variable incident_response_reboot"),
    (("playbooks/daily.yml", "tags: [disk]", "tags: [disk_space]"),
     "playbooks/daily.yml tag 'disk_space' has no runbook step citing it"),
    (("runbooks/monthly.md", "owner: Backend lead\n", ""), "runbooks/monthly.md: front matter lacks owner"),
    (("runbooks/quarterly.md", "next_review: 2027-02-28", "next_review: soon"),
     "runbooks/quarterly.md: next_review is not a date YYYY-MM-DD: 'soon'"),
])
def test_drift_is_found(project, breakage, expected):
    path, old, new = breakage
    edit(project / path, old, new)
    problems = docs.check(str(project))["problems"]
    assert any(p.startswith(expected) for p in problems), problems


def test_a_runbook_without_front_matter_and_an_empty_folder(project):
    (project / "runbooks" / "new.md").write_text("# New\n\n1. Do it.\n")
    assert "runbooks/new.md: no YAML front matter" in docs.check(str(project))["problems"]
    assert docs.check(str(project), runbooks_dir="nowhere")["problems"][0].startswith("no runbooks in")


def test_reviews_due_are_listed(project):
    result = docs.check(str(project), today=datetime.date(2027, 2, 10), warning_days=30)
    due = {d["runbook"]: d["days"] for d in result["reviews_due"]}
    assert due["runbooks/daily.md"] == 18
    assert docs.check(str(project), today=datetime.date(2026, 12, 1))["reviews_due"] == []


def test_playbook_tags_are_read_through_blocks_and_includes(tmp_path):
    (tmp_path / "p.yml").write_text(textwrap.dedent("""\
        - hosts: all
          tasks:
            - block:
                - ansible.builtin.include_role: {name: x}
                  tags: [one]
              always:
                - ansible.builtin.debug: {msg: hi}
                  tags: "two, always"
          roles:
            - {role: y, tags: [three]}
        """))
    assert docs.playbook_tags(str(tmp_path / "p.yml")) == {"one", "two", "three"}


def test_only_top_level_names_of_a_vars_file_define_a_variable(project):
    """A name nested inside a playbook vars file (the old inputs.yml spec) is not a variable a run reads."""
    (project / "playbooks" / "vars" / "extra.yml").write_text(
        "bemore_extra_top: 1\nsome_spec:\n  bemore_only_nested:\n    type: str\n")
    edit(project / "runbooks/weekly.md", "`tmp_cleanup_max_size_mb`",
         "`tmp_cleanup_max_size_mb`, `bemore_extra_top` and `bemore_only_nested`")
    problems = docs.check(str(project))["problems"]
    assert [p for p in problems if "bemore_" in p] == [
        "runbooks/weekly.md cites variable bemore_only_nested, which no role, playbook or inventory defines"], problems
