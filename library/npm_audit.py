#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: npm_audit
short_description: Run npm audit, apply the accepted risks and decide the security audit's report step
description:
  - Runs C(npm audit --json) in a Node.js application and returns one entry per
    advisory (package, severity, title, advisory id and URL, dependency paths,
    whether a fix is available), counts by severity, and the split of the
    findings against a list of accepted risks.
  - Decides the run report's C(security_audit) step, RV(step) - the weekly gate
    (I(mode=gate)) or the monthly and quarterly detailed report
    (I(mode=report)), with the accepted risks that expire within
    I(expiry_warning_days) and the acceptances no finding needs any more.
  - Reads both the npm 7+ report (C(auditReportVersion) 2) and the npm 6 report.
  - An audit that could not be done (advisory service unreachable, refusing
    or answering an error, no lockfile, no npm, unreadable output) is a
    C(failed) step of medium severity that says why, with RV(audited) false
    and no counts. It is never reported as zero vulnerabilities.
  - Bad option values (ranges, dates) fail the task before npm runs.
  - Read-only; it never changes the application.
version_added: "1.0.0"
options:
  omit:
    description:
      - Dependency types left out of the audit (npm C(--omit)); C([dev])
        audits what runs in production only.
    type: list
    elements: str
    choices: [dev, optional, peer]
    default: []
  audit_level:
    description:
      - Lowest severity of an unaccepted finding that fails the gate
        (RV(above_level); also passed to npm as C(--audit-level)). The
        guide's gate is C(high), no critical or high issues.
    type: str
    choices: [info, low, moderate, high, critical]
    default: low
  mode:
    description:
      - C(gate) (weekly, predeploy) - unaccepted findings at or above
        I(audit_level) make the step C(critical), which fails the run.
      - C(report) (monthly, quarterly) - the same findings make the step a
        C(warning) of high severity (notified, reviewed) and the step's
        figures carry every finding in detail.
    type: str
    choices: [gate, report]
    default: gate
  expiry_warning_days:
    description:
      - An accepted risk whose acceptance expires within this many days
        (today included) is a warning, so it is assessed again in time. The
        quarterly review passes C(92). From 0 to 3650.
    type: int
    default: 14
  accepted_risks:
    description:
      - Findings the team has assessed and accepted. An entry matches an
        advisory of the named package by its numeric id, its URL or the
        advisory identifier at the end of the URL (for example C(GHSA-9965-vmph-33xx)).
      - An acceptance past its expiry date counts as unaccepted, so each one
        is looked at again.
      - Every field must be set and I(expires) must be a date C(YYYY-MM-DD);
        otherwise the task fails before npm runs.
    type: list
    elements: dict
    default: []
    suboptions:
      package:
        description: Name of the vulnerable package.
        type: str
        required: true
      advisory:
        description: Advisory id, URL or GHSA identifier.
        type: str
        required: true
      reason:
        description: Why the risk is accepted (shown in reports).
        type: str
        required: true
      expires:
        description: Last day the acceptance holds, C(YYYY-MM-DD).
        type: str
        required: true
  today:
    description:
      - The date acceptances are judged on, C(YYYY-MM-DD); default the target's
        current date.
    type: str
extends_documentation_fragment:
  - npm_cli
  - bemore_attributes.readonly
seealso:
  - module: npm_outdated
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Gate on the npm audit, with the accepted validator.js risk
  npm_audit:
    app_dir: /srv/bemore/app
    audit_level: high
    mode: gate
    accepted_risks:
      - package: validator
        advisory: GHSA-9965-vmph-33xx
        reason: isURL is not used on user input; indirect through Sequelize
        expires: "2026-12-31"
  # The runbook report reads the step under security_audit_result.step.
  register: security_audit_result

- name: Quarterly review - flag acceptances that expire within the quarter
  npm_audit:
    app_dir: /srv/bemore/app
    audit_level: high
    mode: report
    expiry_warning_days: 92
    accepted_risks: "{{ bemore_accepted_risks }}"
  register: security_audit_result
"""

RETURN = r"""
step:
  description:
    - The run report's step, C({step, status, severity, summary, figures, problems}).
    - C(failed)/medium when the audit could not be done; C(critical)/high (gate)
      or C(warning)/high (report) for unaccepted findings at or above
      I(audit_level); C(warning)/low for lesser unaccepted findings and for
      acceptances expiring within I(expiry_warning_days); C(ok)/low when only
      unused acceptances remain; C(ok)/none otherwise.
  returned: always
  type: dict
  sample:
    step: security_audit
    status: ok
    severity: none
    summary: "1 advisory: 1 accepted, 0 unaccepted, 0 at or above high"
    figures: {audited: true, mode: gate, blocking: [], expiring_acceptances: []}
    problems: []
audited:
  description: Whether npm audit produced a report. False means the findings are unknown, not zero.
  returned: always
  type: bool
error:
  description: Why the audit could not be done (npm's own message, credentials removed); null when it was.
  returned: always
  type: str
audit_level:
  description: The gate's severity (I(audit_level)).
  returned: always
  type: str
findings:
  description: One entry per advisory and vulnerable package, most severe first.
  returned: when audited
  type: list
  elements: dict
  sample:
    - package: validator
      severity: moderate
      title: validator.js has a URL validation bypass vulnerability in its isURL function
      id: "1109491"
      url: https://github.com/advisories/GHSA-9965-vmph-33xx
      vulnerable_versions: "<=13.12.0"
      installed: ["13.9.0"]
      paths: ["sequelize > validator"]
      direct: false
      fix_available: false
      fix: null
      accepted: true
      acceptance_expired: false
      accepted_reason: isURL is not used on user input
      expires: "2026-12-31"
      days_to_expiry: 32
counts:
  description: Findings (advisories) by severity.
  returned: when audited
  type: dict
  sample: {"info": 0, "low": 0, "moderate": 1, "high": 0, "critical": 0, "total": 1}
package_counts:
  description: npm's own count of vulnerable packages by severity (a package affected only through a dependency counts too).
  returned: when audited
  type: dict
accepted:
  description: Findings covered by an acceptance that has not expired.
  returned: when audited
  type: list
  elements: dict
unaccepted:
  description: Findings with no acceptance, or whose acceptance expired.
  returned: when audited
  type: list
  elements: dict
unaccepted_counts:
  description: Unaccepted findings by severity.
  returned: when audited
  type: dict
above_level:
  description: Unaccepted findings at or above I(audit_level).
  returned: when audited
  type: list
  elements: dict
expiring_acceptances:
  description: Accepted findings whose acceptance expires within I(expiry_warning_days).
  returned: when audited
  type: list
  elements: dict
unused_acceptances:
  description:
    - Accepted risks that match no finding any more, for example because a
      patched release is installed. Remove them from the inventory.
  returned: when audited
  type: list
  elements: dict
report_format:
  description: Which npm report was read, C(npm7) or C(npm6).
  returned: when audited
  type: str
npm_version:
  description: Version of the npm that ran; null when there is no npm.
  returned: always
  type: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_steps import step
from ansible.module_utils.npm_cli import (
    SEVERITIES, SEVERITY_RANK, NpmError, app_dir_problem, audit_option_problems, npm_command, npm_environment,
    npm_argument_spec, parse_date, parse_json_output, refuse_bad_options,
)
from ansible.module_utils.runbook_clock import today as clock_today

STEP = "security_audit"
MAX_PATHS = 5


def _name_of(lock_key):
    return lock_key.rsplit("node_modules/", 1)[-1]


def lock_parents(lock):
    """Map package name -> names of packages (or '' for the app) that depend on it, from a v2/v3 lockfile."""
    parents = {}
    for key, entry in (lock.get("packages") or {}).items():
        if not isinstance(entry, dict):
            continue
        name = "" if key == "" else _name_of(key)
        for field in ("dependencies", "optionalDependencies", "peerDependencies", "devDependencies"):
            if key != "" and field == "devDependencies":
                continue  # a dependency's dev deps are never installed
            for dep in (entry.get(field) or {}):
                parents.setdefault(dep, set()).add(name)
    return parents


def dependency_paths(name, parents, limit=MAX_PATHS, max_depth=25):
    """Chains from the app's own dependencies down to ``name``: ['sequelize > validator']."""
    paths = []
    stack = [[name]]
    while stack and len(paths) < limit:
        chain = stack.pop()
        ups = sorted(parents.get(chain[0], ()))
        if not ups or len(chain) > max_depth:
            continue
        for up in ups:
            if up == "":
                paths.append(" > ".join(chain))
            elif up not in chain:
                stack.append([up] + chain)
    return sorted(set(paths), key=lambda p: (p.count(">"), p))[:limit]


def _fix(fix):
    if isinstance(fix, dict):
        return True, {"package": fix.get("name"), "version": fix.get("version"),
                      "semver_major": bool(fix.get("isSemVerMajor"))}
    return bool(fix), None


def findings_npm7(report, parents):
    vulns = report.get("vulnerabilities") or {}
    out = {}
    for pkg, vuln in vulns.items():
        for via in vuln.get("via") or []:
            if not isinstance(via, dict):
                continue  # a package name: this package is affected through another one
            adv_pkg = via.get("name") or pkg
            key = (adv_pkg, str(via.get("source") or via.get("url")))
            if key in out:
                continue
            fix_available, fix = _fix(vuln.get("fixAvailable"))
            paths = dependency_paths(adv_pkg, parents) if parents else []
            if not paths:
                paths = _effect_paths(adv_pkg, vulns)
            out[key] = {
                "package": adv_pkg,
                "severity": via.get("severity") or vuln.get("severity") or "info",
                "title": via.get("title") or "",
                "id": str(via.get("source")) if via.get("source") is not None else None,
                "url": via.get("url"),
                "vulnerable_versions": via.get("range"),
                "installed": [],  # filled from the lockfile by the caller
                "nodes": vuln.get("nodes") or [],
                "paths": paths,
                "direct": bool(vulns.get(adv_pkg, vuln).get("isDirect")),
                "fix_available": fix_available,
                "fix": fix,
                "cvss_score": (via.get("cvss") or {}).get("score"),
            }
    return list(out.values())


def _effect_paths(name, vulns, max_depth=25):
    """Fallback when there is no lockfile to read: follow npm's ``effects`` up to a direct dependency."""
    paths, stack = [], [[name]]
    while stack and len(paths) < MAX_PATHS:
        chain = stack.pop()
        entry = vulns.get(chain[0]) or {}
        if entry.get("isDirect"):
            paths.append(" > ".join(chain))
        if len(chain) > max_depth:
            continue
        for up in sorted(entry.get("effects") or []):
            if up not in chain:
                stack.append([up] + chain)
    return sorted(set(paths))


def findings_npm6(report):
    resolved = {}
    for action in report.get("actions") or []:
        for res in action.get("resolves") or []:
            resolved.setdefault(str(res.get("id")), action)
    out = []
    for adv_id, adv in (report.get("advisories") or {}).items():
        adv_id = str(adv.get("id", adv_id))
        findings = adv.get("findings") or []
        paths = sorted({p.replace(">", " > ") for f in findings for p in (f.get("paths") or [])},
                       key=lambda p: (p.count(">"), p))[:MAX_PATHS]
        action = resolved.get(adv_id)
        fix = None
        if action:
            fix = {"package": action.get("module"), "version": action.get("target"),
                   "semver_major": bool(action.get("isMajor"))}
        out.append({
            "package": adv.get("module_name"),
            "severity": adv.get("severity") or "info",
            "title": adv.get("title") or "",
            "id": adv_id,
            "url": adv.get("url"),
            "vulnerable_versions": adv.get("vulnerable_versions"),
            "installed": sorted({f.get("version") for f in findings if f.get("version")}),
            "nodes": [],
            "paths": paths,
            "direct": any(" > " not in p for p in paths),
            "fix_available": action is not None,
            "fix": fix,
            "cvss_score": (adv.get("cvss") or {}).get("score") if isinstance(adv.get("cvss"), dict) else None,
        })
    return out


def validate_acceptances(accepted, today):
    """Check every acceptance; return them with a parsed date. Raise ValueError naming the bad one."""
    out = []
    for index, acc in enumerate(accepted):
        label = "accepted_risks[%d]" % index
        for field in ("package", "advisory", "reason", "expires"):
            if not str(acc.get(field) or "").strip():
                raise ValueError("%s: %s is required and must not be empty" % (label, field))
        try:
            expires = parse_date(acc["expires"])
        except ValueError:
            raise ValueError("%s (%s): expires must be a date YYYY-MM-DD, got %r"
                             % (label, acc["package"], acc["expires"]))
        out.append(dict(acc, expires_date=expires, days_to_expiry=(expires - today).days))
    return out


def advisory_matches(finding, advisory):
    advisory = str(advisory).strip().rstrip("/")
    if not advisory:
        return False
    if finding.get("id") is not None and advisory == str(finding["id"]):
        return True
    url = (finding.get("url") or "").rstrip("/")
    if url and (advisory == url or url.rsplit("/", 1)[-1].lower() == advisory.lower()):
        return True
    return False


def classify(findings, acceptances, audit_level="low"):
    """Attach the acceptance state to each finding and build the summary fields."""
    used = set()
    accepted, unaccepted = [], []
    for finding in findings:
        match = None
        for index, acc in enumerate(acceptances):
            if acc["package"] == finding["package"] and advisory_matches(finding, acc["advisory"]):
                match = (index, acc)
                break
        finding.update(accepted=False, acceptance_expired=False, accepted_reason=None, expires=None, days_to_expiry=None)
        if match:
            index, acc = match
            used.add(index)
            expired = acc["days_to_expiry"] < 0
            finding.update(accepted=not expired, acceptance_expired=expired, accepted_reason=acc["reason"],
                           expires=acc["expires_date"].isoformat(), days_to_expiry=acc["days_to_expiry"])
        (accepted if finding["accepted"] else unaccepted).append(finding)
    level = SEVERITY_RANK[audit_level]
    unused = [{"package": a["package"], "advisory": a["advisory"], "reason": a["reason"],
               "expires": a["expires_date"].isoformat(), "days_to_expiry": a["days_to_expiry"]}
              for i, a in enumerate(acceptances) if i not in used]
    return {
        "accepted": accepted,
        "unaccepted": unaccepted,
        "counts": count_by_severity(findings),
        "unaccepted_counts": count_by_severity(unaccepted),
        "above_level": [f for f in unaccepted if SEVERITY_RANK.get(f["severity"], 0) >= level],
        "unused_acceptances": unused,
    }


def count_by_severity(findings):
    counts = {s: 0 for s in SEVERITIES}
    for f in findings:
        counts[f["severity"] if f["severity"] in counts else "info"] += 1
    counts["total"] = len(findings)
    return counts


def sort_findings(findings):
    return sorted(findings, key=lambda f: (-SEVERITY_RANK.get(f["severity"], 0), f["package"] or "", f["id"] or ""))


def read_report(report, parents):
    """(format, findings, npm's package counts) of an audit report of either format."""
    if "auditReportVersion" in report or "vulnerabilities" in report:
        findings, fmt = findings_npm7(report, parents), "npm7"
    else:
        findings, fmt = findings_npm6(report), "npm6"
    meta = (report.get("metadata") or {}).get("vulnerabilities") or {}
    package_counts = {s: int(meta.get(s, 0)) for s in SEVERITIES}
    package_counts["total"] = int(meta.get("total", sum(package_counts.values())))
    return fmt, sort_findings(findings), package_counts


def load_lock(app_dir):
    for name in ("npm-shrinkwrap.json", "package-lock.json"):
        try:
            with open(os.path.join(app_dir, name)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            continue
    return {}


def installed_versions(lock, package):
    return sorted({e.get("version") for k, e in (lock.get("packages") or {}).items()
                   if k and _name_of(k) == package and isinstance(e, dict) and e.get("version")})


# --- the report step: decision table ----------------------------------------------------------------
#
# audit done | unaccepted >= level | mode   | other findings                     | status   | severity
# -----------+---------------------+--------+------------------------------------+----------+---------
# no         | -                   | -      | -                                  | failed   | medium
# yes        | yes                 | gate   | -                                  | critical | high
# yes        | yes                 | report | -                                  | warning  | high
# yes        | no                  | -      | unaccepted below level, or an      | warning  | low
#            |                     |        | acceptance expiring within N days  |          |
# yes        | no                  | -      | only acceptances matching nothing  | ok       | low
# yes        | no                  | -      | none                               | ok       | none
#
# High, not critical, for a blocking advisory: the escalation table keeps
# critical for an outage or a breach, and a known vulnerable dependency is a
# deploy blocker to fix within the hour. An audit that could not be done is
# an error (the gate is unknown), never "0 vulnerabilities".

def expiring(accepted, warning_days):
    """Accepted findings whose acceptance ends within ``warning_days`` days (today counts: 0)."""
    return [f for f in accepted if f.get("days_to_expiry") is not None and 0 <= f["days_to_expiry"] <= warning_days]


def _plural(count, word, plural=None):
    return "%d %s" % (count, word if count == 1 else (plural or word + "s"))


def finding_line(finding):
    text = "%s %s: %s" % (finding["severity"], finding["package"], finding.get("title") or "no title")
    if finding.get("url"):
        text += " (%s)" % finding["url"]
    if finding.get("acceptance_expired"):
        text += "; acceptance expired %s" % finding["expires"]
    return text


def finding_detail(finding):
    """A finding as the detailed (report mode) step lists it."""
    if finding.get("accepted"):
        state = "accepted until %s" % finding["expires"]
    elif finding.get("acceptance_expired"):
        state = "acceptance expired %s" % finding["expires"]
    else:
        state = "unaccepted"
    return {"package": finding["package"], "severity": finding["severity"], "title": finding.get("title"),
            "url": finding.get("url"), "installed": finding.get("installed") or [], "paths": finding.get("paths") or [],
            "direct": finding.get("direct"), "fix_available": finding.get("fix_available"), "fix": finding.get("fix"),
            "state": state, "days_to_expiry": finding.get("days_to_expiry")}


def audit_step(audit, mode="gate", level="high", warning_days=14, error=None, npm_version=None):
    """The security_audit step from a classified audit (``classify``), or from ``error`` when it could not be done."""
    if error is not None:
        reason = "npm audit could not be done: %s" % error
        return step(STEP, "failed", "medium", reason + " (the findings are unknown, not zero)",
                    {"audited": False, "mode": mode, "fail_level": level, "error": error, "npm_version": npm_version},
                    [reason])
    blocking = audit["above_level"]
    lesser = [f for f in audit["unaccepted"] if f not in blocking]
    soon = expiring(audit["accepted"], warning_days)
    unused = audit["unused_acceptances"]
    problems = [finding_line(f) for f in blocking + lesser]
    problems += ["acceptance of %s %s expires in %s (%s); assess it again"
                 % (f["package"], f.get("url") or f.get("id"), _plural(f["days_to_expiry"], "day"), f["expires"])
                 for f in soon]
    problems += ["acceptance of %s %s matches no finding any more; remove it from bemore_accepted_risks"
                 % (a["package"], a["advisory"]) for a in unused]
    if blocking:
        status, severity = ("critical" if mode == "gate" else "warning"), "high"
    elif lesser or soon:
        status, severity = "warning", "low"
    elif unused:
        status, severity = "ok", "low"
    else:
        status, severity = "ok", "none"
    total = audit["counts"]["total"]
    summary = "%s: %d accepted, %d unaccepted, %d at or above %s" % (
        _plural(total, "advisory", "advisories"), len(audit["accepted"]),
        len(audit["unaccepted"]), len(blocking), level)
    if blocking:
        names = ", ".join(sorted({f["package"] for f in blocking}))
        summary = ("gate failed: %s (%s)" if mode == "gate" else "to fix: %s (%s)") % (summary, names)
    if soon:
        summary += "; acceptance expiring: %s" % ", ".join(
            "%s in %s" % (f["package"], _plural(f["days_to_expiry"], "day")) for f in soon)
    if unused:
        summary += "; unused acceptance: %s" % ", ".join(a["package"] for a in unused)
    figures = {
        "audited": True, "mode": mode, "fail_level": level, "counts": audit["counts"],
        "unaccepted_counts": audit["unaccepted_counts"], "accepted": len(audit["accepted"]),
        "unaccepted": len(audit["unaccepted"]), "blocking": sorted({f["package"] for f in blocking}),
        "expiring_acceptances": [f["package"] for f in soon], "expiry_warning_days": warning_days,
        "unused_acceptances": [a["package"] for a in unused], "npm_version": npm_version,
    }
    if mode == "report":
        figures["findings"] = [finding_detail(f) for f in sort_findings(audit["accepted"] + audit["unaccepted"])]
        figures["acceptances"] = (
            [{"package": f["package"], "advisory": f.get("url") or f.get("id"), "expires": f["expires"],
              "days_to_expiry": f["days_to_expiry"], "matches": True}
             for f in audit["accepted"] + audit["unaccepted"] if f.get("expires")]
            + [{"package": a["package"], "advisory": a["advisory"], "expires": a["expires"],
                "days_to_expiry": a["days_to_expiry"], "matches": False} for a in unused])
    return step(STEP, status, severity, summary, figures, problems)


def run_audit(module, p, env):
    """(npm version, report) of one npm audit run; NpmError when it could not be done."""
    reason = app_dir_problem(p["app_dir"], need_lock=True)
    if reason:
        raise NpmError(reason)
    extra = ["--audit-level=%s" % p["audit_level"]] + ["--omit=%s" % o for o in p["omit"]]
    argv = npm_command(module, "audit", extra)
    _vrc, vout, _verr = module.run_command([argv[0], "--version"], environ_update=env)
    rc, out, err = module.run_command(argv, cwd=p["app_dir"], environ_update=env)
    return vout.strip() or None, parse_json_output(rc, out, err, ("vulnerabilities", "advisories", "auditReportVersion"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            npm_argument_spec(),
            omit=dict(type="list", elements="str", choices=["dev", "optional", "peer"], default=[]),
            audit_level=dict(type="str", choices=list(SEVERITIES), default="low"),
            mode=dict(type="str", choices=["gate", "report"], default="gate"),
            expiry_warning_days=dict(type="int", default=14),
            accepted_risks=dict(type="list", elements="dict", default=[], options=dict(
                package=dict(type="str", required=True),
                advisory=dict(type="str", required=True),
                reason=dict(type="str", required=True),
                expires=dict(type="str", required=True),
            )),
            today=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # Bad values stop the task before npm runs; they are the inventory's to fix.
    refuse_bad_options(module, audit_option_problems(p))
    today = parse_date(p["today"]) if p["today"] else clock_today()
    try:
        acceptances = validate_acceptances(p["accepted_risks"], today)
        env = npm_environment(p["registry"], p["registry_token"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    level, mode, days = p["audit_level"], p["mode"], p["expiry_warning_days"]
    npm_version = None
    try:
        npm_version, report = run_audit(module, p, env)
    except NpmError as exc:
        # From here on a failure is the host's: the step says why, and the
        # result carries no findings or counts that could read as zero.
        error = str(exc)
        module.exit_json(changed=False, audited=False, error=error, audit_level=level, npm_version=npm_version,
                         step=audit_step(None, mode, level, days, error=error, npm_version=npm_version))

    lock = load_lock(p["app_dir"])
    fmt, findings, package_counts = read_report(report, lock_parents(lock))
    for finding in findings:
        if not finding["installed"]:
            finding["installed"] = installed_versions(lock, finding["package"])
    result = classify(findings, acceptances, level)
    module.exit_json(changed=False, audited=True, error=None, audit_level=level, findings=findings,
                     package_counts=package_counts, report_format=fmt, npm_version=npm_version,
                     expiring_acceptances=expiring(result["accepted"], days),
                     step=audit_step(result, mode, level, days, npm_version=npm_version), **result)


if __name__ == "__main__":
    main()
