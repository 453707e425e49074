#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runbook_docs
short_description: Check that the runbooks and the playbooks they cite agree
description:
  - Reads every runbook (Markdown with a YAML front matter of C(title),
    C(owner), C(last_reviewed), C(next_review)) under I(runbooks_dir) and
    every playbook under I(playbooks_dir).
  - Finds each citation of automation in the runbooks
    (C(playbooks/NAME.yml), C(--tags a,b), C(-e variable=value) and
    backquoted variable names that start with a role name or C(bemore_))
    and checks that the playbook, the tags and the variables exist.
  - Checks coverage the other way round - every tag of a playbook has a
    runbook step that cites it - and whether a review is due.
  - Returns the runbooks with their steps, for a training checklist.
  - Read-only; runs where the repository is (the control node).
version_added: "1.0.0"
options:
  project_dir:
    description: The repository root (playbooks/, roles/, inventory/, runbooks/).
    type: path
    required: true
  runbooks_dir:
    description: Folder of the runbooks, relative to I(project_dir).
    type: str
    default: runbooks
  today:
    description: Date the review dates are judged on, C(YYYY-MM-DD); default today.
    type: str
  review_warning_days:
    description: A review due within this many days is reported as due soon.
    type: int
    default: 30
extends_documentation_fragment:
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Review the runbooks against the playbooks
  runbook_docs:
    project_dir: "{{ playbook_dir }}/.."
  delegate_to: localhost
"""

RETURN = r"""
runbooks:
  description: Every runbook with its metadata, review state and steps.
  returned: always
  type: list
  elements: dict
problems:
  description: Drift between runbooks and automation (missing playbook, tag or variable; a tag with no runbook step; bad front matter).
  returned: always
  type: list
  elements: str
reviews_due:
  description: Runbooks whose next review is past or within I(review_warning_days).
  returned: always
  type: list
  elements: dict
playbook_tags:
  description: Tags of each playbook (without C(always)).
  returned: always
  type: dict
"""

import datetime
import glob
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.runbook_clock import today as clock_today

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

REQUIRED_META = ("title", "owner", "last_reviewed", "next_review")
PLAYBOOK_RE = re.compile(r"playbooks/([A-Za-z0-9_.-]+\.yml)((?:[^`\n]*?)(?=`|$))", re.M)
TAGS_RE = re.compile(r"--tags[ =]([A-Za-z0-9_,-]+)")
EXTRA_VAR_RE = re.compile(r"-e\s+'?\"?([a-z][a-z0-9_]*)=")
BACKTICK_VAR_RE = re.compile(r"`([a-z][a-z0-9]*_[a-z0-9_]+)`")
STEP_RE = re.compile(r"^\s*(\d+)\.\s+(.*)$")


def front_matter(text):
    """(metadata dict, body) of a Markdown file with a --- YAML front matter."""
    if not text.startswith("---\n"):
        return None, text
    end = text.find("\n---\n", 4)
    if end < 0:
        return None, text
    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError:
        return None, text
    return (meta if isinstance(meta, dict) else None), text[end + 5:]


def _walk_tags(node, out):
    if isinstance(node, dict):
        tags = node.get("tags")
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",")]
        for tag in tags or []:
            if isinstance(tag, str) and tag not in ("always", "never"):
                out.add(tag)
        for value in node.values():
            _walk_tags(value, out)
    elif isinstance(node, list):
        for item in node:
            _walk_tags(item, out)


def playbook_tags(path):
    with open(path) as fh:
        data = yaml.safe_load(fh)
    tags = set()
    _walk_tags(data, tags)
    return tags


def _keys_of(path):
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def known_variables(project_dir):
    names = set()
    for path in glob.glob(os.path.join(project_dir, "roles", "*", "defaults", "main.yml")):
        names |= _keys_of(path)
    for path in glob.glob(os.path.join(project_dir, "roles", "*", "meta", "argument_specs.yml")):
        try:
            with open(path) as fh:
                spec = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError):
            continue
        for entry in (spec.get("argument_specs") or {}).values():
            names |= set((entry or {}).get("options") or {})
    for pattern in ("playbooks/vars/*.yml", "inventory/*/group_vars/*/*.yml", "inventory/*/group_vars/*.yml",
                    "inventory/*/host_vars/*/*.yml"):
        for path in glob.glob(os.path.join(project_dir, pattern)):
            names |= _keys_of(path)
    return names


def variable_prefixes(project_dir):
    roles = {os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(project_dir, "roles", "*", "tasks"))}
    return tuple(sorted(r + "_" for r in roles)) + ("bemore_",)


def parse_runbook(path, text):
    meta, body = front_matter(text)
    steps, current = [], None
    for line in body.splitlines():
        m = STEP_RE.match(line)
        if m:
            current = {"number": int(m.group(1)), "text": m.group(2).strip(), "citations": []}
            steps.append(current)
            continue
        if current is not None and line.strip():
            current["text"] += " " + line.strip()
    for step in steps:
        for pm in PLAYBOOK_RE.finditer(step["text"]):
            tags = TAGS_RE.search(pm.group(2) or "")
            step["citations"].append({"playbook": pm.group(1),
                                      "tags": tags.group(1).split(",") if tags else []})
    return meta, body, steps


def check(project_dir, runbooks_dir="runbooks", today=None, warning_days=30):
    today = today or clock_today()
    problems, runbooks, due = [], [], []
    pb_dir = os.path.join(project_dir, "playbooks")
    tags = {os.path.basename(p): playbook_tags(p) for p in sorted(glob.glob(os.path.join(pb_dir, "*.yml")))}
    variables = known_variables(project_dir)
    prefixes = variable_prefixes(project_dir)
    cited_tags = {name: set() for name in tags}
    files = sorted(glob.glob(os.path.join(project_dir, runbooks_dir, "*.md")))
    if not files:
        problems.append("no runbooks in %s" % os.path.join(project_dir, runbooks_dir))
    for path in files:
        name = os.path.relpath(path, project_dir)
        if os.path.basename(path).lower() == "readme.md":
            continue
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        meta, body, steps = parse_runbook(path, text)
        if meta is None:
            problems.append("%s: no YAML front matter" % name)
            meta = {}
        for field in REQUIRED_META:
            if not meta.get(field):
                problems.append("%s: front matter lacks %s" % (name, field))
        review = None
        for field in ("last_reviewed", "next_review"):
            value = meta.get(field)
            if value and not isinstance(value, datetime.date):
                try:
                    meta[field] = datetime.date.fromisoformat(str(value))
                except ValueError:
                    problems.append("%s: %s is not a date YYYY-MM-DD: %r" % (name, field, value))
                    meta[field] = None
        if isinstance(meta.get("next_review"), datetime.date):
            review = (meta["next_review"] - today).days
            if review <= warning_days:
                due.append({"runbook": name, "next_review": meta["next_review"].isoformat(), "days": review,
                            "owner": meta.get("owner")})
        for step in steps:
            for cite in step["citations"]:
                if cite["playbook"] not in tags:
                    problems.append("%s step %d cites playbooks/%s, which does not exist"
                                    % (name, step["number"], cite["playbook"]))
                    continue
                for tag in cite["tags"]:
                    if tag not in tags[cite["playbook"]]:
                        problems.append("%s step %d cites tag %r, which playbooks/%s does not have"
                                        % (name, step["number"], tag, cite["playbook"]))
                    cited_tags[cite["playbook"]].add(tag)
        for var in set(EXTRA_VAR_RE.findall(body)) | {v for v in BACKTICK_VAR_RE.findall(body) if v.startswith(prefixes)}:
            if var not in variables:
                problems.append("%s cites variable %s, which no role, playbook or inventory defines" % (name, var))
        runbooks.append({"file": name, "title": meta.get("title"), "owner": meta.get("owner"),
                         "last_reviewed": meta["last_reviewed"].isoformat() if isinstance(meta.get("last_reviewed"), datetime.date) else None,
                         "next_review": meta["next_review"].isoformat() if isinstance(meta.get("next_review"), datetime.date) else None,
                         "days_to_review": review, "steps": steps})
    for playbook, its_tags in sorted(tags.items()):
        for tag in sorted(its_tags - cited_tags[playbook]):
            problems.append("playbooks/%s tag %r has no runbook step citing it" % (playbook, tag))
    return {"runbooks": runbooks, "problems": problems, "reviews_due": due,
            "playbook_tags": {k: sorted(v) for k, v in tags.items()}}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            runbooks_dir=dict(type="str", default="runbooks"),
            today=dict(type="str"),
            review_warning_days=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    if yaml is None:
        module.fail_json(msg="PyYAML is required")
    p = module.params
    if not os.path.isdir(os.path.join(p["project_dir"], "playbooks")):
        module.fail_json(msg="project_dir %s has no playbooks folder" % p["project_dir"])
    try:
        today = datetime.date.fromisoformat(p["today"]) if p["today"] else None
    except ValueError:
        module.fail_json(msg="today must be a date YYYY-MM-DD, got %r" % p["today"])
    try:
        result = check(p["project_dir"], p["runbooks_dir"], today, p["review_warning_days"])
    except (OSError, yaml.YAMLError) as exc:
        module.fail_json(msg="cannot read the project: %s" % exc)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
