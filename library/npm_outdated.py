#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: npm_outdated
short_description: Check npm dependencies for updates, plan the safe ones, and judge an applied update
description:
  - Runs C(npm outdated --json --long) in a Node.js application and returns,
    for each outdated package, the installed (C(current)), C(wanted) (highest
    allowed by C(package.json)) and C(latest) versions, how far it is behind
    (patch, minor, major), and the version a safe update moves it to.
  - A safe update stays within the caret range of the installed version (the
    left-most non-zero component is kept), so for C(0.x) packages a minor step
    counts as breaking. Major updates are never proposed as safe.
  - Returns the install plan of the safe updates (RV(plan)) in the range style
    C(package.json) already uses for each package (an exact pin stays exact,
    a C(~) range stays C(~)), and the run report's C(dependency_updates) step.
  - With I(outcome), it does not run npm outdated; it judges an update the
    role applied (npm install, the test suite, npm audit) and returns RV(keep)
    and the step. The update is kept only when every planned package is
    installed at its planned version, the tests passed and the audit was done
    with no unaccepted finding at or above its level.
  - A failed npm run (registry unreachable, broken C(package.json), no npm)
    is a warning step that says why; it is never reported as "all up to date".
  - Bad option values (ranges, package names, branch, author) fail the task
    before npm runs.
  - Read-only; it never changes the application.
version_added: "1.0.0"
options:
  exclude:
    description: Packages never planned for an automatic update.
    type: list
    elements: str
    default: []
  apply:
    description:
      - Whether the caller applies the plan. It changes only the step's words
        (in check mode, what would be updated).
    type: bool
    default: false
  commit:
    description:
      - The commit a kept update goes into. Checked before anything runs; with
        I(outcome), returned as RV(commit) when the update is kept.
    type: dict
    suboptions:
      branch:
        description: Branch name (git's C(check-ref-format) rules).
        type: str
        required: true
      subject:
        description: First line(s) of the commit message; the updated packages follow.
        type: str
        required: true
      author:
        description: Author and committer, C(Name <email>).
        type: str
        required: true
  outcome:
    description:
      - The results of an applied update, to judge it.
    type: dict
    suboptions:
      before:
        description: The result of this module's check run before the update (its RV(candidates) are the plan).
        type: dict
        default: {}
      install:
        description: The registered results of the C(npm install) runs (C(rc), C(stderr)), one per plan group.
        type: list
        elements: dict
        default: []
      tests:
        description: The registered result of the test suite (C(rc), C(stdout), C(stderr), C(cmd)).
        type: dict
        default: {}
      audit:
        description: The registered result of C(npm_audit) after the update.
        type: dict
        default: {}
      error:
        description: Set when a step of the update failed outright (the rescue path); the update is rolled back.
        type: str
extends_documentation_fragment:
  - npm_cli
  - bemore_attributes.readonly
seealso:
  - module: npm_audit
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Check the app's dependencies for updates
  npm_outdated:
    app_dir: /srv/bemore/app
  # The runbook report reads the step under dependency_updates_result.step.
  register: dependency_updates_result

- name: Judge an applied update (the role then restores or commits)
  npm_outdated:
    app_dir: /srv/bemore/app
    outcome:
      before: "{{ dependency_updates_result }}"
      install: "{{ install.results }}"
      tests: "{{ tests }}"
      audit: "{{ audit }}"
  register: dependency_updates_result
"""

RETURN = r"""
step:
  description:
    - The run report's step, C({step, status, severity, summary, figures, problems}).
    - "Check: C(warning)/medium when npm outdated failed; C(ok)/low when packages are behind; C(ok)/none when all are current."
    - "Judge: C(ok)/low when the update is kept; C(warning)/medium when it is rolled back, saying why."
  returned: always
  type: dict
packages:
  description: Every outdated package, sorted by name.
  returned: when npm outdated ran
  type: list
  elements: dict
  sample:
    - name: express
      current: 4.18.2
      wanted: 4.18.2
      latest: 5.1.0
      behind: major
      behind_wanted: none
      type: dependencies
      safe_target: null
      location: /srv/bemore/app/node_modules/express
counts:
  description: Outdated packages by how far they are behind latest (major, minor, patch, prerelease, missing, unknown).
  returned: when npm outdated ran
  type: dict
  sample: {"major": 1, "minor": 1, "patch": 1, "prerelease": 0, "missing": 0, "unknown": 0, "total": 3}
safe_updates:
  description: C(name@version) specs of the non-breaking updates (patch and minor within the caret range).
  returned: when npm outdated ran
  type: list
  elements: str
  sample: ["sequelize@6.37.7", "ws@8.18.3"]
candidates:
  description: The safe updates to apply (not excluded), with their range style in C(package.json).
  returned: when npm outdated ran
  type: list
  elements: dict
  sample: [{"name": "ws", "current": "8.18.0", "target": "8.18.3", "gap": "patch", "style": "exact"}]
plan:
  description: The C(npm install) runs of the update, C({flags, specs}) per range style; empty when nothing is to do.
  returned: when npm outdated ran
  type: list
  elements: dict
  sample: [{"flags": ["--save-exact"], "specs": ["ws@8.18.3"]}, {"flags": ["--save-prefix=~"], "specs": ["sequelize@6.37.7"]}]
update_now:
  description:
    - Whether the caller applies RV(plan) now - I(apply) is true, the plan has
      updates, and this is not check mode (a task-level C(check_mode) counts too).
  returned: when npm outdated ran or failed
  type: bool
error:
  description: Why npm outdated could not run; null when it did.
  returned: always
  type: str
keep:
  description: With I(outcome), whether the update is kept (false - restore the manifests and reinstall).
  returned: with outcome
  type: bool
commit:
  description: With I(outcome) and I(commit), the commit to make when the update is kept (branch, message, author_name, author_email); null otherwise.
  returned: with outcome
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_steps import step, unreadable
from ansible.module_utils.npm_cli import (
    NpmError, app_dir_problem, error_lines, is_breaking, npm_argument_spec, npm_command, npm_environment,
    outdated_option_problems, parse_author, parse_json_output, parse_version, redact, refuse_bad_options, version_gap,
)

STEP = "dependency_updates"
GAPS = ("major", "minor", "patch", "prerelease", "missing", "unknown")
# package.json's range style of a package, and the npm install flags that keep it.
STYLE_FLAGS = (("exact", ["--save-exact"]), ("tilde", ["--save-prefix=~"]), ("caret", []))


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


def range_style(spec):
    """exact, tilde or caret (npm's default, also for anything else) of a package.json version spec."""
    spec = str(spec or "").strip()
    if parse_version(spec.lstrip("=")) is not None:
        return "exact"
    if spec.startswith("~"):
        return "tilde"
    return "caret"


def plan_updates(packages, manifest, exclude=()):
    """(candidates, plan): the safe updates not excluded, and one npm install run per range style.

    npm install writes its default ^ range for a package it installs, so each
    package is installed with the flags that keep the style package.json
    already gives it.
    """
    specs = {}
    for field in ("dependencies", "devDependencies", "optionalDependencies"):
        specs.update((manifest or {}).get(field) or {})
    candidates = []
    for pkg in packages:
        if not pkg.get("safe_target") or pkg["name"] in exclude:
            continue
        candidates.append({"name": pkg["name"], "current": pkg["current"], "target": pkg["safe_target"],
                           "gap": version_gap(pkg["current"], pkg["safe_target"]),
                           "style": range_style(specs.get(pkg["name"]))})
    seen = {}
    for cand in candidates:
        seen.setdefault(cand["name"], cand)  # workspaces may list a package twice
    candidates = [seen[name] for name in sorted(seen)]
    plan = []
    for style, flags in STYLE_FLAGS:
        group = ["%s@%s" % (c["name"], c["target"]) for c in candidates if c["style"] == style]
        if group:
            plan.append({"flags": list(flags), "specs": group})
    return candidates, plan


def _moves(candidates):
    return ", ".join("%s %s -> %s" % (c["name"], c["current"], c["target"]) for c in candidates)


def _majors(packages):
    return [p for p in packages if p["behind"] == "major"]


def _base_figures(classified, candidates, excluded):
    packages = classified["packages"]
    return {
        "counts": classified["counts"],
        "outdated": [{k: p[k] for k in ("name", "current", "wanted", "latest", "behind", "safe_target", "type")}
                     for p in packages],
        "safe_updates": [c["name"] for c in candidates],
        "majors": [p["name"] for p in _majors(packages)],
        "excluded": sorted({p["name"] for p in packages if p["name"] in excluded and p.get("safe_target")}),
        "applied": [], "rolled_back": False,
    }


# --- the report step: decision tables -----------------------------------------------------------------
#
# Check (npm outdated):
# npm outdated ran | packages behind | apply, check mode | status  | severity | summary adds
# -----------------+-----------------+-------------------+---------+----------+-----------------------
# no               | -               | -                 | warning | medium   | could not check: why
# yes              | none            | -                 | ok      | none     | all up to date
# yes              | some            | no                | ok      | low      | safe updates, majors
# yes              | some            | yes, check mode   | ok      | low      | would update ...
#
# Judge (an applied update), first failing row wins; later failures are
# listed in problems too:
# interrupted | npm install | installed = plan | tests | audit done | audit >= level | keep | status  | severity
# ------------+-------------+------------------+-------+------------+----------------+------+---------+---------
# yes         | -           | -                | -     | -          | -              | no   | warning | medium
# no          | failed      | -                | -     | -          | -              | no   | warning | medium
# no          | ok          | no               | -     | -          | -              | no   | warning | medium
# no          | ok          | yes              | fail  | -          | -              | no   | warning | medium
# no          | ok          | yes              | pass  | no         | -              | no   | warning | medium
# no          | ok          | yes              | pass  | yes        | some           | no   | warning | medium
# no          | ok          | yes              | pass  | yes        | none           | yes  | ok      | low

def outdated_step(classified, candidates, excluded=(), apply=False, check_mode=False, error=None):
    """The dependency_updates step of a check run (no update applied)."""
    if error is not None:
        return unreadable(STEP, "npm outdated failed: %s" % error)
    counts = classified["counts"]
    figures = _base_figures(classified, candidates, excluded)
    if counts["total"] == 0:
        return step(STEP, "ok", "none", "all dependencies are up to date", figures)
    summary = "%d outdated (%d major, %d minor, %d patch)" % (counts["total"], counts["major"], counts["minor"],
                                                              counts["patch"])
    if candidates:
        if apply and check_mode:
            summary += "; would update %s" % _moves(candidates)
            figures["would_update"] = [c["name"] for c in candidates]
        else:
            summary += "; safe updates: %s" % _moves(candidates)
    majors = _majors(classified["packages"])
    if majors:
        summary += "; majors to plan by hand: %s" % ", ".join(
            "%s %s -> %s" % (p["name"], p["current"], p["latest"]) for p in majors)
    return step(STEP, "ok", "low", summary, figures)


def _last_line(*texts):
    for text in texts:
        lines = [line.strip() for line in redact(text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return "no output"


def _command_label(cmd):
    if isinstance(cmd, list):
        cmd = " ".join(str(c) for c in cmd)
    cmd = str(cmd or "the test suite")
    return cmd if len(cmd) <= 60 else cmd[:57] + "..."


def update_verdict(candidates, install, tests, audit, installed, error=None):
    """Why the applied update must be rolled back (first reason first); empty: keep it."""
    reasons = []
    if error:
        reasons.append("the update was interrupted: %s" % redact(error))
    for run in install or []:
        if run.get("skipped"):
            continue
        if run.get("rc") != 0:
            specs = " ".join((run.get("item") or {}).get("specs") or []) or "the updates"
            lines = error_lines(run.get("stderr"))
            reasons.append("npm install of %s failed (rc %s): %s" % (
                specs, run.get("rc"), redact(lines[-1]) if lines else _last_line(run.get("stderr"), run.get("msg"))))
    if not error and not any(r.startswith("npm install") for r in reasons):
        for cand in candidates:
            got = installed.get(cand["name"])
            if got != cand["target"]:
                reasons.append("%s is at %s after npm install, planned %s"
                               % (cand["name"], got or "nothing", cand["target"]))
    if not error:
        rc = (tests or {}).get("rc")
        if rc is None:
            reasons.append("the tests did not run: %s" % _last_line((tests or {}).get("msg")))
        elif rc != 0:
            reasons.append("tests failed (%s, rc %s): %s" % (_command_label((tests or {}).get("cmd")), rc,
                                                             _last_line(tests.get("stderr"), tests.get("stdout"))))
        audit = audit or {}
        if not audit.get("audited"):
            reasons.append("the audit could not be done: %s" % (audit.get("error") or audit.get("msg") or "no result"))
        elif audit.get("above_level"):
            reasons.append("the audit has unaccepted findings at or above %s: %s" % (
                audit.get("audit_level") or "the gate", ", ".join(sorted({f["package"] for f in audit["above_level"]}))))
    return reasons


def update_step(before, candidates, reasons, commit=None):
    """The dependency_updates step of an applied update, kept (no reasons) or rolled back."""
    classified = {"packages": before.get("packages") or [], "counts": before.get("counts") or {"total": 0}}
    figures = _base_figures(classified, candidates, ())
    counts = classified["counts"]
    behind = "%d outdated before (%d major, %d minor, %d patch)" % (
        counts.get("total", 0), counts.get("major", 0), counts.get("minor", 0), counts.get("patch", 0))
    if reasons:
        figures.update(rolled_back=True, rollback_reasons=reasons)
        return step(STEP, "warning", "medium",
                    "update rolled back: %s; package.json and package-lock.json restored (%s)" % (reasons[0], behind),
                    figures, ["update of %s rolled back: %s" % (_moves(candidates), r) for r in reasons])
    figures["applied"] = [c["name"] for c in candidates]
    summary = "updated %s; the tests and the audit passed" % ", ".join(
        "%s %s -> %s (%s)" % (c["name"], c["current"], c["target"], c["gap"]) for c in candidates)
    if commit:
        figures["branch"] = commit["branch"]
        summary += "; committed on %s" % commit["branch"]
    majors = figures["majors"]
    if majors:
        summary += "; majors to plan by hand: %s" % ", ".join(majors)
    return step(STEP, "ok", "low", summary, figures)


def commit_request(commit, candidates):
    """The commit of a kept update: branch, message with one line per package, author split."""
    name, email = parse_author(commit["author"])
    lines = ["- %s %s -> %s (%s)" % (c["name"], c["current"], c["target"], c["gap"]) for c in candidates]
    return {"branch": commit["branch"], "message": "%s\n\n%s\n" % (commit["subject"].strip(), "\n".join(lines)),
            "author_name": name, "author_email": email}


def read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def lock_versions(app_dir, names):
    """Installed version of each package per the app's lockfile (v2/v3 ``packages``, v1 ``dependencies``)."""
    lock = read_json(os.path.join(app_dir, "npm-shrinkwrap.json")) or read_json(os.path.join(app_dir, "package-lock.json"))
    out = {}
    for name in names:
        entry = (lock.get("packages") or {}).get("node_modules/" + name) or (lock.get("dependencies") or {}).get(name)
        out[name] = entry.get("version") if isinstance(entry, dict) else None
    return out


def judge(module, p):
    outcome = p["outcome"]
    before = outcome.get("before") or {}
    candidates = [c for c in before.get("candidates") or [] if isinstance(c, dict) and c.get("name")]
    reasons = update_verdict(candidates, outcome.get("install"), outcome.get("tests"), outcome.get("audit"),
                             lock_versions(p["app_dir"], [c["name"] for c in candidates]), outcome.get("error"))
    if not candidates and not reasons:
        reasons = ["no planned update was given to judge (outcome.before has no candidates)"]
    commit = commit_request(p["commit"], candidates) if p["commit"] and not reasons else None
    module.exit_json(changed=False, keep=not reasons, commit=commit, error=None,
                     step=update_step(before, candidates, reasons, commit))


def check(module, p):
    try:
        env = npm_environment(p["registry"], p["registry_token"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        reason = app_dir_problem(p["app_dir"])
        if reason:
            raise NpmError(reason)
        rc, out, err = module.run_command(npm_command(module, "outdated", ["--long"]), cwd=p["app_dir"],
                                          environ_update=env)
        if rc == 0 and not out.strip():
            out = "{}"  # an empty object is a valid "nothing outdated" report
        report = parse_json_output(rc, out, err, None)
        if rc not in (0, 1):
            raise NpmError("npm outdated exited %d: %s" % (rc, _last_line(err)))
    except NpmError as exc:
        error = str(exc)
        module.exit_json(changed=False, error=error, candidates=[], plan=[], update_now=False,
                         step=outdated_step(None, [], error=error))
    classified = classify(report)
    manifest = read_json(os.path.join(p["app_dir"], "package.json"))
    candidates, plan = plan_updates(classified["packages"], manifest, set(p["exclude"]))
    module.exit_json(changed=False, error=None, candidates=candidates, plan=plan,
                     update_now=bool(p["apply"] and plan and not module.check_mode),
                     step=outdated_step(classified, candidates, set(p["exclude"]), p["apply"], module.check_mode),
                     **classified)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            npm_argument_spec(),
            exclude=dict(type="list", elements="str", default=[]),
            apply=dict(type="bool", default=False),
            commit=dict(type="dict", options=dict(
                branch=dict(type="str", required=True),
                subject=dict(type="str", required=True),
                author=dict(type="str", required=True),
            )),
            outcome=dict(type="dict", options=dict(
                before=dict(type="dict", default={}),
                install=dict(type="list", elements="dict", default=[]),
                tests=dict(type="dict", default={}),
                audit=dict(type="dict", default={}),
                error=dict(type="str"),
            )),
        ),
        supports_check_mode=True,
    )
    p = module.params
    refuse_bad_options(module, outdated_option_problems(p))
    if p["outcome"] is not None:
        judge(module, p)
    check(module, p)


if __name__ == "__main__":
    main()
