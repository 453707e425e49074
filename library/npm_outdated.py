#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: npm_outdated
short_description: Run npm outdated and classify each package as patch, minor or major behind
description:
  - Runs C(npm outdated --json --long) in a Node.js application and returns,
    for each outdated package, the installed (C(current)), C(wanted) (highest
    allowed by C(package.json)) and C(latest) versions, how far it is behind
    (patch, minor, major), and the version a safe update moves it to.
  - A safe update stays within the caret range of the installed version (the
    left-most non-zero component is kept), so for C(0.x) packages a minor step
    counts as breaking. Major updates are never proposed as safe.
  - A failed npm run (registry unreachable, broken C(package.json)) fails the
    task with npm's message; it is never reported as "all up to date".
  - Read-only; it never changes the application.
version_added: "1.0.0"
options: {}
extends_documentation_fragment:
  - npm_cli
  - bemore_attributes.readonly
seealso:
  - module: npm_audit
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Check the app's dependencies for updates
  npm_outdated:
    app_dir: /srv/bemore/app
  register: outdated

- name: Show the packages a safe (patch/minor) update would move
  ansible.builtin.debug:
    msg: "{{ outdated.safe_updates }}"
"""

RETURN = r"""
packages:
  description: Every outdated package, sorted by name.
  returned: always
  type: list
  elements: dict
  sample:
    - name: express
      current: 4.18.2
      wanted: 4.21.2
      latest: 5.1.0
      behind: major
      behind_wanted: minor
      type: dependencies
      safe_target: 4.21.2
      location: /srv/bemore/app/node_modules/express
counts:
  description: Outdated packages by how far they are behind latest (major, minor, patch, prerelease, missing, unknown).
  returned: always
  type: dict
  sample: {"major": 1, "minor": 1, "patch": 1, "prerelease": 0, "missing": 0, "unknown": 0, "total": 3}
safe_updates:
  description: C(name@version) specs of the non-breaking updates (patch and minor within the caret range).
  returned: always
  type: list
  elements: str
  sample: ["express@4.21.2", "ws@8.18.3"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.npm_cli import (
    NpmError, check_app_dir, is_breaking, npm_argument_spec, npm_command, npm_environment, parse_json_output,
    parse_version, redact, version_gap,
)

GAPS = ("major", "minor", "patch", "prerelease", "missing", "unknown")


def safe_target(current, wanted, latest):
    """The highest of latest/wanted that stays within the caret range of current, or None."""
    if not current:
        return None
    for candidate in (latest, wanted):
        if candidate and parse_version(candidate) and version_gap(current, candidate) in ("patch", "minor", "prerelease") \
                and not is_breaking(current, candidate):
            if parse_version(candidate)[3] and not parse_version(current)[3]:
                continue  # never move a stable install onto a prerelease
            return candidate
    return None


def classify(report):
    """Turn the ``npm outdated --json`` object into sorted entries, counts and safe update specs."""
    packages = []
    for name, entries in sorted(report.items()):
        # With workspaces or --all npm gives a list of entries per package.
        for entry in entries if isinstance(entries, list) else [entries]:
            if not isinstance(entry, dict):
                continue
            current, wanted, latest = entry.get("current"), entry.get("wanted"), entry.get("latest")
            behind = version_gap(current, latest)
            if behind in ("none", "ahead"):
                behind = version_gap(current, wanted)
            packages.append({
                "name": name,
                "current": current,
                "wanted": wanted,
                "latest": latest,
                "behind": behind if behind in GAPS else "unknown",
                "behind_wanted": version_gap(current, wanted),
                "type": entry.get("type"),
                "safe_target": safe_target(current, wanted, latest),
                "location": entry.get("location"),
                "dependent": entry.get("dependent"),
            })
    counts = {gap: 0 for gap in GAPS}
    for pkg in packages:
        counts[pkg["behind"]] += 1
    counts["total"] = len(packages)
    safe = sorted({"%s@%s" % (p["name"], p["safe_target"]) for p in packages if p["safe_target"]})
    return {"packages": packages, "counts": counts, "safe_updates": safe}


def main():
    module = AnsibleModule(argument_spec=npm_argument_spec(), supports_check_mode=True)
    p = module.params
    try:
        check_app_dir(p["app_dir"])
        env = npm_environment(p["registry"], p["registry_token"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    rc, out, err = module.run_command(npm_command(module, "outdated", ["--long"]), cwd=p["app_dir"], environ_update=env)
    if rc == 0 and not out.strip():
        out = "{}"
    try:
        # An empty object is a valid "nothing outdated" report.
        report = parse_json_output(rc, out, err, None)
    except NpmError as exc:
        module.fail_json(msg="npm outdated failed in %s: %s" % (p["app_dir"], exc), rc=rc, stderr=redact(err)[-2000:])
    if rc not in (0, 1):
        module.fail_json(msg="npm outdated exited %d in %s" % (rc, p["app_dir"]), stderr=redact(err)[-2000:])
    module.exit_json(changed=False, **classify(report))


if __name__ == "__main__":
    main()
