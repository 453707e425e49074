"""npm_audit and npm_outdated: the decision tables of their report steps and
the option rules (plain functions), and the modules with the real npm CLI
against the fixture registry (sandbox/npm_registry.py) on loopback; one test
reads the public registry, which these machines reach for GET requests."""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import free_port as _free_port, npm_app
from tests.helpers import REPO, load_module, require

npm_cli = __import__("ansible.module_utils.npm_cli", fromlist=["x"])
audit = load_module("npm_audit")
outdated = load_module("npm_outdated")

TODAY = datetime.date.today()
GHSA = "GHSA-9965-vmph-33xx"
APP_DEPS = {"sequelize": "~6.35.0", "express": "~4.18.2", "ws": "8.18.0", "dotenv": "^16.4.5"}
WS_HIGH = {"id": 1098392, "url": "https://github.com/advisories/GHSA-3h5v-q93c-6h6q", "severity": "high",
           "title": "ws affected by a DoS when handling a request with many HTTP headers",
           "vulnerable_versions": ">=8.18.1"}


@pytest.fixture(autouse=True)
def _needs_npm(monkeypatch):
    require(shutil.which("npm"), "npm", "apt-get install -y nodejs npm")
    # The modules' today is the tests' TODAY, even across midnight.
    monkeypatch.setenv("BEMORE_RUNBOOK_NOW", TODAY.isoformat() + "T12:00:00Z")


def acceptance(days=30, advisory=GHSA, package="validator"):
    return {"package": package, "advisory": advisory, "reason": "isURL is not used on user input",
            "expires": (TODAY + datetime.timedelta(days=days)).isoformat()}


def fixture_data():
    with open(os.path.join(REPO, "sandbox", "npm_fixture.json")) as fh:
        return json.load(fh)


# ------------------------------------------------------------------ semver and npm output helpers

@pytest.mark.parametrize("current,target,gap", [
    ("1.2.3", "1.2.4", "patch"), ("1.2.3", "1.3.0", "minor"), ("1.2.3", "2.0.0", "major"),
    ("1.2.3", "1.2.3", "none"), ("2.0.0", "1.9.9", "ahead"), (None, "1.0.0", "missing"),
    ("1.0.0-beta.1", "1.0.0", "prerelease"), ("git+ssh://x", "1.0.0", "unknown"), ("v1.0.0", "1.0.1", "patch"),
])
def test_version_gap(current, target, gap):
    assert npm_cli.version_gap(current, target) == gap


@pytest.mark.parametrize("current,target,breaking", [
    ("1.2.3", "1.9.0", False), ("1.2.3", "2.0.0", True), ("0.3.1", "0.3.9", False),
    ("0.3.1", "0.4.0", True), ("0.0.3", "0.0.4", True), ("bad", "1.0.0", True),
])
def test_caret_breaking(current, target, breaking):
    assert npm_cli.is_breaking(current, target) is breaking


@pytest.mark.parametrize("current,wanted,latest,target", [
    ("4.18.2", "4.18.2", "5.1.0", None),            # only a major is out: nothing safe
    ("4.18.2", "4.21.2", "5.1.0", "4.21.2"),        # wanted is the safe step
    ("8.18.0", "8.18.0", "8.18.3", "8.18.3"),       # exact pin: latest within the caret range
    ("0.3.1", "0.3.1", "0.4.0", None),              # 0.x minor is breaking
    ("1.0.0", "1.0.0", "1.1.0-rc.1", None),         # never onto a prerelease
    (None, "1.0.0", "1.0.0", None),                 # not installed
])
def test_safe_target(current, wanted, latest, target):
    assert outdated.safe_target(current, wanted, latest) == target


@pytest.mark.parametrize("text,leak", [
    ("request to https://bob:hunter2@registry.example/x failed", "hunter2"),
    ("//registry.example/:_authToken=npm_abcdef set", "npm_abcdef"),
])
def test_redact_removes_credentials(text, leak):
    assert leak not in npm_cli.redact(text)


@pytest.mark.parametrize("stdout,stderr,expect", [
    ('{"error": {"code": "ENOLOCK", "summary": "This command requires an existing lockfile.", "detail": "x"}}', "",
     "ENOLOCK"),
    ('{"message": "503 Service Unavailable - POST http://r/-/npm/v1/security/advisories/bulk"}',
     "npm error audit endpoint returned an error\n", "503 Service Unavailable"),
    ("", "npm error code E404\nnpm error A complete log of this run can be found in: /x.log\n", "E404"),
    ("not json at all", "", "without a report"),
    ('{"unrelated": true}', "", "without a report"),
])
def test_parse_json_output_refuses_failures(stdout, stderr, expect):
    with pytest.raises(npm_cli.NpmError) as err:
        npm_cli.parse_json_output(1, stdout, stderr, ("vulnerabilities", "advisories"))
    assert expect in str(err.value)
    assert "complete log" not in str(err.value)


def test_token_goes_to_the_environment_only():
    env = npm_cli.npm_environment("https://registry.example/npm/", "s3cret")
    assert env["npm_config_//registry.example/npm/:_authToken"] == "s3cret"
    with pytest.raises(ValueError, match="needs registry"):
        npm_cli.npm_environment(None, "s3cret")


@pytest.mark.parametrize("advisory,matches", [
    ("1109491", True), (GHSA, True), (GHSA.lower(), True),
    ("https://github.com/advisories/" + GHSA, True), ("GHSA-0000-0000-0000", False), ("110949", False),
])
def test_advisory_matching(advisory, matches):
    finding = {"id": "1109491", "url": "https://github.com/advisories/" + GHSA}
    assert audit.advisory_matches(finding, advisory) is matches


def test_dependency_paths_from_lockfile():
    lock = {"packages": {
        "": {"dependencies": {"sequelize": "^6", "ws": "^8"}, "devDependencies": {"jest": "^29"}},
        "node_modules/sequelize": {"version": "6.35.0", "dependencies": {"validator": "^13", "lodash": "^4"}},
        "node_modules/jest": {"version": "29.0.0", "dependencies": {"lodash": "^4"}},
        "node_modules/lodash": {"version": "4.17.21", "devDependencies": {"validator": "*"}},
        "node_modules/validator": {"version": "13.9.0"},
        "node_modules/a": {"dependencies": {"b": "1"}}, "node_modules/b": {"dependencies": {"a": "1"}},
    }}
    parents = audit.lock_parents(lock)
    assert audit.dependency_paths("validator", parents) == ["sequelize > validator"]
    assert audit.dependency_paths("lodash", parents) == ["jest > lodash", "sequelize > lodash"]
    assert audit.dependency_paths("a", parents) == []  # a cycle that no root reaches ends


NPM6_REPORT = {
    "actions": [{"action": "update", "module": "minimist", "target": "1.2.8", "isMajor": False,
                 "resolves": [{"id": 1179, "path": "mkdirp>minimist"}]}],
    "advisories": {
        "1179": {"id": 1179, "module_name": "minimist", "severity": "low", "title": "Prototype Pollution",
                 "url": "https://npmjs.com/advisories/1179", "vulnerable_versions": "<0.2.1",
                 "findings": [{"version": "0.0.8", "paths": ["mkdirp>minimist"]}]},
        "1500": {"id": 1500, "module_name": "yargs-parser", "severity": "high", "title": "Prototype Pollution",
                 "url": "https://npmjs.com/advisories/1500", "vulnerable_versions": "<13.1.2",
                 "findings": [{"version": "13.1.1", "paths": ["yargs-parser", "mocha>yargs>yargs-parser"]}]},
    },
    "metadata": {"vulnerabilities": {"info": 0, "low": 1, "moderate": 0, "high": 1, "critical": 0}},
}


def test_npm6_report_is_read():
    fmt, findings, package_counts = audit.read_report(NPM6_REPORT, {})
    assert fmt == "npm6"
    assert [f["package"] for f in findings] == ["yargs-parser", "minimist"]  # most severe first
    high, low = findings
    assert high["direct"] is True and high["paths"] == ["yargs-parser", "mocha > yargs > yargs-parser"]
    assert high["fix_available"] is False
    assert low["fix"] == {"package": "minimist", "version": "1.2.8", "semver_major": False}
    assert low["installed"] == ["0.0.8"]
    assert package_counts["total"] == 2


def test_expired_and_unused_acceptances():
    findings = [{"package": "validator", "severity": "moderate", "id": "1", "url": "https://x/" + GHSA},
                {"package": "jsonwebtoken", "severity": "high", "id": "2", "url": "https://x/GHSA-aaaa-bbbb-cccc"}]
    accs = audit.validate_acceptances([acceptance(days=-1), acceptance(package="lodash", advisory="9")], TODAY)
    result = audit.classify(copy.deepcopy(findings), accs, "high")
    assert result["accepted"] == []
    assert [f["package"] for f in result["unaccepted"]] == ["validator", "jsonwebtoken"]
    assert result["unaccepted"][0]["acceptance_expired"] is True
    assert result["unaccepted"][0]["days_to_expiry"] == -1
    assert [f["package"] for f in result["above_level"]] == ["jsonwebtoken"]
    assert [u["package"] for u in result["unused_acceptances"]] == ["lodash"]
    # Expiring today still holds.
    accs = audit.validate_acceptances([acceptance(days=0)], TODAY)
    assert audit.classify(copy.deepcopy(findings), accs)["accepted"][0]["days_to_expiry"] == 0


# ------------------------------------------------------------------ decision table: the security audit step

def _finding(package, severity, number):
    ghsa = "GHSA-%04d-0000-0000" % number
    return {"package": package, "severity": severity, "title": "%s advisory %d" % (package, number),
            "id": str(number), "url": "https://github.com/advisories/" + ghsa, "installed": ["1.0.0"],
            "paths": [package], "direct": True, "fix_available": False, "fix": None}


def _accept(package, number, days):
    return dict(acceptance(days=days, advisory="GHSA-%04d-0000-0000" % number, package=package))


VALIDATOR = ("validator", "moderate", 1)
EXPRESS_HIGH = ("express", "high", 2)
JWT_CRITICAL = ("jsonwebtoken", "critical", 3)


# findings, acceptances (package, advisory number, days left), mode, level, warning days
#   -> status, severity, blocking, expiring, unused, words in the summary
AUDIT_TABLE = [
    ("nothing", [], [], "gate", "high", 14, "ok", "none", [], [], [], "0 advisories"),
    ("accepted, far from expiry", [VALIDATOR], [("validator", 1, 90)], "gate", "high", 14,
     "ok", "none", [], [], [], "1 accepted, 0 unaccepted"),
    ("accepted high does not block", [EXPRESS_HIGH], [("express", 2, 90)], "gate", "high", 14,
     "ok", "none", [], [], [], "0 at or above high"),
    ("unaccepted high fails the gate", [EXPRESS_HIGH, VALIDATOR], [("validator", 1, 90)], "gate", "high", 14,
     "critical", "high", ["express"], [], [], "gate failed"),
    ("unaccepted high in the report is a high warning", [EXPRESS_HIGH], [], "report", "high", 14,
     "warning", "high", ["express"], [], [], "to fix"),
    ("critical finding with the critical level", [JWT_CRITICAL, EXPRESS_HIGH], [], "gate", "critical", 14,
     "critical", "high", ["jsonwebtoken"], [], [], "1 at or above critical"),
    ("moderate below the level", [VALIDATOR], [], "gate", "high", 14, "warning", "low", [], [], [], "1 unaccepted"),
    ("moderate at the level", [VALIDATOR], [], "gate", "moderate", 14,
     "critical", "high", ["validator"], [], [], "gate failed"),
    ("expired acceptance no longer covers", [EXPRESS_HIGH], [("express", 2, -1)], "gate", "high", 14,
     "critical", "high", ["express"], [], [], "0 accepted"),
    ("acceptance expiring within the warning days", [VALIDATOR], [("validator", 1, 10)], "gate", "high", 14,
     "warning", "low", [], ["validator"], [], "acceptance expiring: validator in 10 days"),
    ("acceptance expiring today", [VALIDATOR], [("validator", 1, 0)], "gate", "high", 0,
     "warning", "low", [], ["validator"], [], "validator in 0 days"),
    ("quarterly: 90 days left is within 92", [VALIDATOR], [("validator", 1, 90)], "report", "high", 92,
     "warning", "low", [], ["validator"], [], "validator in 90 days"),
    ("weekly: 90 days left is not within 14", [VALIDATOR], [("validator", 1, 90)], "gate", "high", 14,
     "ok", "none", [], [], [], "1 accepted"),
    ("acceptance matching nothing", [], [("lodash", 9, 30)], "gate", "high", 14,
     "ok", "low", [], [], ["lodash"], "unused acceptance: lodash"),
    ("everything at once, report mode", [EXPRESS_HIGH, VALIDATOR], [("validator", 1, 5), ("lodash", 9, 30)],
     "report", "high", 14, "warning", "high", ["express"], ["validator"], ["lodash"], "to fix"),
]


@pytest.mark.parametrize("label,found,accepted,mode,level,days,status,severity,blocking,expiring,unused,words",
                         AUDIT_TABLE, ids=[row[0] for row in AUDIT_TABLE])
def test_audit_step_table(label, found, accepted, mode, level, days, status, severity, blocking, expiring, unused,
                          words):
    findings = [_finding(*f) for f in found]
    accs = audit.validate_acceptances([_accept(*a) for a in accepted], TODAY)
    stp = audit.audit_step(audit.classify(findings, accs, level), mode, level, days)
    assert (stp["step"], stp["status"], stp["severity"]) == ("security_audit", status, severity)
    figures = stp["figures"]
    assert figures["audited"] is True
    assert (figures["blocking"], figures["expiring_acceptances"], figures["unused_acceptances"]) == \
        (blocking, expiring, unused)
    assert words in stp["summary"]
    # Every unaccepted finding, expiring and unused acceptance is a problem line of its own.
    unaccepted = sum(1 for f in findings if not f["accepted"])
    assert len(stp["problems"]) == unaccepted + len(expiring) + len(unused)
    # The detailed report lists every finding; the gate keeps the step short.
    assert ("findings" in figures) is (mode == "report")
    if mode == "report":
        assert sorted(f["package"] for f in figures["findings"]) == sorted(f[0] for f in found)


def test_audit_step_problem_lines_name_the_finding_and_the_expired_acceptance():
    findings = [_finding(*EXPRESS_HIGH)]
    accs = audit.validate_acceptances([dict(_accept("express", 2, 0), expires="2020-01-31")], TODAY)
    stp = audit.audit_step(audit.classify(findings, accs, "high"), "gate", "high", 14)
    (line,) = stp["problems"]
    assert line.startswith("high express: express advisory 2 (https://github.com/advisories/GHSA-0002")
    assert line.endswith("acceptance expired 2020-01-31")


@pytest.mark.parametrize("mode", ["gate", "report"])
def test_audit_step_that_could_not_be_done_is_an_error_never_zero(mode):
    stp = audit.audit_step(None, mode, "high", 14, error="405 Method Not Allowed - POST http://r/-/npm/v1/...")
    assert (stp["status"], stp["severity"]) == ("failed", "medium")
    assert "could not be done: 405 Method Not Allowed" in stp["summary"]
    assert "not zero" in stp["summary"]
    assert stp["figures"]["audited"] is False
    assert not any(key in stp["figures"] for key in ("counts", "unaccepted", "blocking", "findings"))
    assert stp["problems"] == ["npm audit could not be done: 405 Method Not Allowed - POST http://r/-/npm/v1/..."]


# ------------------------------------------------------------------ decision tables: the dependency updates step

def _pkg(name, current, wanted, latest):
    return {"name": name, "current": current, "wanted": wanted, "latest": latest}


@pytest.mark.parametrize("spec,style", [
    ("8.18.0", "exact"), ("=8.18.0", "exact"), ("v1.2.3", "exact"), ("~6.35.0", "tilde"), ("^16.4.5", "caret"),
    (">=1.0.0", "caret"), ("", "caret"), (None, "caret"), ("latest", "caret"),
])
def test_range_style(spec, style):
    assert outdated.range_style(spec) == style


def test_plan_keeps_each_range_style_and_leaves_out_excluded_and_majors():
    report = {"ws": _pkg("ws", "8.18.0", "8.18.0", "8.18.3"), "sequelize": _pkg("sequelize", "6.35.0", "6.35.0", "6.37.7"),
              "dotenv": _pkg("dotenv", "16.4.5", "16.4.5", "16.6.1"), "express": _pkg("express", "4.18.2", "4.18.2", "5.1.0"),
              "lodash": _pkg("lodash", "4.17.20", "4.17.21", "4.17.21")}
    manifest = {"dependencies": {"ws": "8.18.0", "sequelize": "~6.35.0", "express": "~4.18.2", "lodash": "^4.17.20"},
                "devDependencies": {"dotenv": "^16.4.5"}}
    classified = outdated.classify(report)
    candidates, plan = outdated.plan_updates(classified["packages"], manifest, {"lodash"})
    assert [(c["name"], c["target"], c["gap"], c["style"]) for c in candidates] == [
        ("dotenv", "16.6.1", "minor", "caret"), ("sequelize", "6.37.7", "minor", "tilde"),
        ("ws", "8.18.3", "patch", "exact")]
    assert plan == [{"flags": ["--save-exact"], "specs": ["ws@8.18.3"]},
                    {"flags": ["--save-prefix=~"], "specs": ["sequelize@6.37.7"]},
                    {"flags": [], "specs": ["dotenv@16.6.1"]}]
    stp = outdated.outdated_step(classified, candidates, {"lodash"})
    assert stp["figures"]["excluded"] == ["lodash"] and stp["figures"]["majors"] == ["express"]


# packages, apply, check mode -> status, severity, words in the summary, figure that must be set
OUTDATED_TABLE = [
    ("all current", [], False, False, "ok", "none", "all dependencies are up to date", None),
    ("patch and minor", [_pkg("ws", "8.18.0", "8.18.0", "8.18.3")], False, False, "ok", "low",
     "safe updates: ws 8.18.0 -> 8.18.3", "safe_updates"),
    ("major only", [_pkg("express", "4.18.2", "4.18.2", "5.1.0")], False, False, "ok", "low",
     "majors to plan by hand: express 4.18.2 -> 5.1.0", "majors"),
    ("apply in check mode", [_pkg("ws", "8.18.0", "8.18.0", "8.18.3")], True, True, "ok", "low",
     "would update ws 8.18.0 -> 8.18.3", "would_update"),
    ("check mode without apply", [_pkg("ws", "8.18.0", "8.18.0", "8.18.3")], False, True, "ok", "low",
     "safe updates: ws", "safe_updates"),
]


@pytest.mark.parametrize("label,pkgs,apply,check_mode,status,severity,words,figure", OUTDATED_TABLE,
                         ids=[row[0] for row in OUTDATED_TABLE])
def test_outdated_step_table(label, pkgs, apply, check_mode, status, severity, words, figure):
    classified = outdated.classify({p["name"]: p for p in pkgs})
    candidates, _plan = outdated.plan_updates(classified["packages"], {"dependencies": {p["name"]: p["current"]
                                                                                         for p in pkgs}})
    stp = outdated.outdated_step(classified, candidates, (), apply, check_mode)
    assert (stp["step"], stp["status"], stp["severity"]) == ("dependency_updates", status, severity)
    assert words in stp["summary"]
    if figure:
        assert stp["figures"][figure]
    assert ("would_update" in stp["figures"]) is (apply and check_mode)
    assert stp["figures"]["counts"]["total"] == len(pkgs)


def test_outdated_step_that_could_not_check_says_why():
    stp = outdated.outdated_step(None, [], error="request to http://127.0.0.1:9/ws failed, reason: connect ECONNREFUSED")
    assert (stp["status"], stp["severity"]) == ("warning", "medium")
    assert "could not check: npm outdated failed" in stp["summary"] and "ECONNREFUSED" in stp["summary"]
    assert "up to date" not in stp["summary"] and "counts" not in stp["figures"]


CANDIDATES = [{"name": "sequelize", "current": "6.35.0", "target": "6.37.7", "gap": "minor", "style": "tilde"},
              {"name": "ws", "current": "8.18.0", "target": "8.18.3", "gap": "patch", "style": "exact"}]
INSTALLED = {"sequelize": "6.37.7", "ws": "8.18.3"}
INSTALL_OK = [{"rc": 0, "stderr": "", "item": {"flags": [], "specs": ["ws@8.18.3"]}}]
TESTS_OK = {"rc": 0, "stdout": "ok", "stderr": "", "cmd": ["npm", "test"]}
AUDIT_OK = {"audited": True, "above_level": [], "audit_level": "high"}

# install, installed versions, tests, audit, error -> kept, words of the first reason
VERDICT_TABLE = [
    ("everything passes", INSTALL_OK, INSTALLED, TESTS_OK, AUDIT_OK, None, True, None),
    ("interrupted", INSTALL_OK, INSTALLED, TESTS_OK, AUDIT_OK, "Run the tests: Task failed: Timed out after 900 second(s).",
     False, "the update was interrupted: Run the tests: Task failed: Timed out"),
    ("npm install failed",
     [{"rc": 1, "stderr": "npm error code ETARGET\nnpm error notarget No matching version for ws@8.18.3\n",
       "item": {"flags": ["--save-exact"], "specs": ["ws@8.18.3"]}}], {"sequelize": "6.35.0", "ws": "8.18.0"},
     TESTS_OK, AUDIT_OK, None, False, "npm install of ws@8.18.3 failed (rc 1): notarget No matching version"),
    ("installed version differs from the plan", INSTALL_OK, {"sequelize": "6.37.7", "ws": "8.18.1"}, TESTS_OK, AUDIT_OK,
     None, False, "ws is at 8.18.1 after npm install, planned 8.18.3"),
    ("tests failed", INSTALL_OK, INSTALLED,
     {"rc": 1, "stdout": "running", "stderr": "2 tests failed\n", "cmd": ["npm", "test"]}, AUDIT_OK, None,
     False, "tests failed (npm test, rc 1): 2 tests failed"),
    ("tests did not run", INSTALL_OK, INSTALLED, {"msg": "[Errno 2] No such file or directory: b'npx'"}, AUDIT_OK, None,
     False, "the tests did not run: [Errno 2] No such file"),
    ("audit could not be done", INSTALL_OK, INSTALLED, TESTS_OK,
     {"audited": False, "error": "503 Service Unavailable - POST http://r/-/npm/v1/security/advisories/bulk"}, None,
     False, "the audit could not be done: 503 Service Unavailable"),
    ("audit without a result at all", INSTALL_OK, INSTALLED, TESTS_OK, {}, None,
     False, "the audit could not be done: no result"),
    ("audit finds a new high", INSTALL_OK, INSTALLED, TESTS_OK,
     {"audited": True, "audit_level": "high", "above_level": [{"package": "ws"}, {"package": "ws"}]}, None,
     False, "the audit has unaccepted findings at or above high: ws"),
]


@pytest.mark.parametrize("label,install,installed,tests,audit_result,error,kept,words", VERDICT_TABLE,
                         ids=[row[0] for row in VERDICT_TABLE])
def test_update_verdict_table(label, install, installed, tests, audit_result, error, kept, words):
    reasons = outdated.update_verdict(CANDIDATES, install, tests, audit_result, installed, error)
    assert (not reasons) is kept
    before = {"packages": [dict(_pkg("express", "4.18.2", "4.18.2", "5.1.0"), behind="major", safe_target=None,
                                type="dependencies")],
              "counts": {"major": 1, "minor": 1, "patch": 1, "total": 3}}
    commit = outdated.commit_request({"branch": "chore/deps", "subject": "chore(deps): update",
                                      "author": "BeMore runbooks <runbooks@bemore.invalid>"}, CANDIDATES) if kept else None
    stp = outdated.update_step(before, CANDIDATES, reasons, commit)
    if kept:
        assert (stp["status"], stp["severity"]) == ("ok", "low")
        assert stp["figures"]["applied"] == ["sequelize", "ws"] and stp["figures"]["rolled_back"] is False
        assert "committed on chore/deps" in stp["summary"] and stp["figures"]["branch"] == "chore/deps"
        assert "majors to plan by hand: express" in stp["summary"]
    else:
        assert (stp["status"], stp["severity"]) == ("warning", "medium")
        assert reasons[0].startswith(words) or words in reasons[0]
        assert stp["summary"].startswith("update rolled back: " + reasons[0])
        assert stp["figures"]["rolled_back"] is True and stp["figures"]["applied"] == []
        assert len(stp["problems"]) == len(reasons)


def test_update_verdict_lists_every_failure_first_one_first():
    reasons = outdated.update_verdict(CANDIDATES, INSTALL_OK, {"rc": 1, "stderr": "boom", "cmd": ["npm", "test"]},
                                      {"audited": True, "audit_level": "high", "above_level": [{"package": "ws"}]},
                                      INSTALLED)
    assert [r.split(" ", 2)[:2] for r in reasons] == [["tests", "failed"], ["the", "audit"]]


def test_commit_request_lists_each_package_and_splits_the_author():
    commit = outdated.commit_request({"branch": "chore/deps", "subject": "chore(deps): update minor and patch\n",
                                      "author": "BeMore runbooks <runbooks@bemore.invalid>"}, CANDIDATES)
    assert commit["message"] == ("chore(deps): update minor and patch\n\n- sequelize 6.35.0 -> 6.37.7 (minor)\n"
                                 "- ws 8.18.0 -> 8.18.3 (patch)\n")
    assert (commit["author_name"], commit["author_email"]) == ("BeMore runbooks", "runbooks@bemore.invalid")


# ------------------------------------------------------------------ option rules (the preflight's and the modules')

@pytest.mark.parametrize("value,low,high,problem", [
    (60, 1, 600, None), ("60", 1, 600, None), (1, 1, 600, None), (600, 1, 600, None),
    (0, 1, 600, "between 1 and 600, got 0"), (601, 1, 600, "between 1 and 600, got 601"),
    (-1, 0, 3650, "between 0 and 3650, got -1"), (1.5, 0, 10, "whole number"), ("soon", 0, 10, "whole number"),
    (True, 0, 10, "whole number"), (None, 0, 10, "whole number"), (float("nan"), 0, 10, "whole number"),
])
def test_whole_number_rule(value, low, high, problem):
    found = npm_cli.whole_number_problem(value, low, high)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("url,problem", [
    ("", None), (None, None), ("https://registry.npmjs.org/", None), ("http://127.0.0.1:4873", None),
    ("https://bob:hunter2@registry.example/", "must not carry credentials"),
    ("registry.npmjs.org", "http or https URL"), ("ftp://registry.example/", "http or https URL"),
])
def test_registry_rule(url, problem):
    found = npm_cli.registry_problem(url)
    assert (found is None) if problem is None else (problem in found)
    assert "hunter2" not in (found or "")


@pytest.mark.parametrize("name,ok", [
    ("chore/dependency-updates-20261202", True), ("deps", True), ("feature/x.y", True),
    ("", False), ("-x", False), ("a..b", False), ("a b", False), ("a~1", False), ("x.lock", False),
    ("a/.hidden", False), ("end/", False), ("end.", False), ("@", False), ("a@{1}", False), ("a:b", False),
    ("a//b", False), ("a\\b", False),
])
def test_branch_rule_follows_git(name, ok, tmp_path):
    assert (npm_cli.branch_problem(name) is None) is ok
    if name and name != "@":
        # git itself agrees (outside a repository; "@" is HEAD's shorthand there).
        proc = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, cwd=tmp_path)
        assert (proc.returncode == 0) is ok


@pytest.mark.parametrize("text,expected", [
    ("BeMore runbooks <runbooks@bemore.invalid>", ("BeMore runbooks", "runbooks@bemore.invalid")),
    ("  Ana <ana@example.test>  ", ("Ana", "ana@example.test")),
    ("runbooks@bemore.invalid", None), ("Ana <not-an-email>", None), ("<a@b.c>", None), ("", None), (None, None),
])
def test_author_rule(text, expected):
    if expected is None:
        with pytest.raises(ValueError, match="Name <email>"):
            npm_cli.parse_author(text)
    else:
        assert npm_cli.parse_author(text) == expected


@pytest.mark.parametrize("risk,option,problem", [
    ({"package": "validator", "advisory": GHSA, "reason": "", "expires": "2030-01-01"},
     "accepted_risks[1].reason", "is required"),
    ({"package": "validator", "advisory": GHSA, "reason": "r", "expires": "next year"},
     "accepted_risks[1].expires", "must be a date YYYY-MM-DD, got 'next year' (validator)"),
    ({"package": "validator", "advisory": GHSA, "reason": "r", "expires": "2030-02-30"},
     "accepted_risks[1].expires", "must be a date"),
    ({"package": "validator", "advisory": GHSA, "reason": "r", "expires": "2030-1-5"},
     "accepted_risks[1].expires", "must be a date"),
    ({"package": "", "advisory": GHSA, "reason": "r", "expires": "2030-01-01"}, "accepted_risks[1].package", "is required"),
    ("validator", "accepted_risks[1]", "must be a dict"),
])
def test_acceptance_rule(risk, option, problem):
    found = npm_cli.acceptance_problems([acceptance(), risk])
    assert len(found) == 1
    assert found[0][0] == option and problem in found[0][1]


# role, options (without the prefix) -> the options named as bad
ROLE_RULES = [
    ("security_audit", {"app_dir": "/srv/bemore/app", "fetch_timeout": 60, "expiry_warning_days": 92,
                        "accepted_risks": [acceptance()], "report_dir": "/var/reports/security"}, []),
    ("security_audit", {"app_dir": "srv/app", "fetch_timeout": 0, "expiry_warning_days": -1,
                        "registry": "https://u:p@r.example/", "npm_path": "npm", "report_dir": ""},
     ["app_dir", "registry", "npm_path", "fetch_timeout", "expiry_warning_days", "report_dir"]),
    ("security_audit", {"expiry_warning_days": 3651, "accepted_risks": [dict(acceptance(), expires="31.12.2026")]},
     ["accepted_risks[0].expires", "expiry_warning_days"]),
    ("dependency_updates", {"app_dir": "/srv/bemore/app", "test_command": ["npm", "test"], "test_timeout": 900,
                            "exclude": ["express", "@types/node"], "git_commit": False, "git_branch": "bad branch"}, []),
    ("dependency_updates", {"test_command": [], "test_timeout": 0, "exclude": ["Not A Name"], "fetch_timeout": 601},
     ["fetch_timeout", "exclude", "test_command", "test_timeout"]),
    ("dependency_updates", {"git_commit": True, "git_branch": "chore/deps..x", "commit_message": " ",
                            "git_author": "runbooks"}, ["git_branch", "commit_message", "git_author"]),
]


@pytest.mark.parametrize("role,values,bad", ROLE_RULES)
def test_role_option_rules(role, values, bad):
    found = npm_cli.role_option_problems(role, values)
    assert [option for option, _text in found] == bad
    assert all(text for _option, text in found)
    assert "u:p" not in json.dumps(found)


# ------------------------------------------------------------------ the real npm CLI, local registry

@pytest.fixture
def app(tmp_path, npm_registry):
    reg = npm_registry()
    app_dir = npm_app(str(tmp_path / "app"), reg.url, APP_DEPS)
    return app_dir, reg


@pytest.mark.parametrize("module,args,option", [
    ("npm_audit", {"fetch_timeout": 0}, "fetch_timeout"),
    ("npm_audit", {"expiry_warning_days": 4000}, "expiry_warning_days"),
    ("npm_audit", {"fetch_retries": 11}, "fetch_retries"),
    ("npm_audit", {"accepted_risks": [dict(acceptance(), expires="2026-13-01")]}, "accepted_risks[0].expires"),
    ("npm_audit", {"today": "yesterday"}, "today"),
    ("npm_outdated", {"exclude": ["no spaces allowed"]}, "exclude"),
    ("npm_outdated", {"commit": {"branch": "a..b", "subject": "m", "author": "A <a@b.c>"}}, "commit.branch"),
    ("npm_outdated", {"commit": {"branch": "deps", "subject": "m", "author": "nobody"}}, "commit.author"),
])
def test_modules_refuse_bad_values_before_npm_runs(app, run_module, module, args, option):
    app_dir, reg = app
    # A registry that answers nothing: had npm run, the result would say so.
    before = os.path.getmtime(os.path.join(app_dir, "package-lock.json"))
    result = run_module(module, dict({"app_dir": app_dir, "registry": reg.url}, **args))
    assert result["failed"] is True
    assert result["msg"].startswith("invalid options, nothing was done: " + option + " ")
    assert [p.split(":")[0] for p in result["problems"]] == [option]
    assert reg.registry.audit_requests == [] and "step" not in result
    assert os.path.getmtime(os.path.join(app_dir, "package-lock.json")) == before


def test_relative_app_dir_is_refused(run_module):
    result = run_module("npm_audit", {"app_dir": "srv/app"})
    assert result["failed"] is True and "app_dir must be an absolute path" in result["msg"]


def test_audit_finds_the_indirect_validator_advisory(app, run_module):
    app_dir, reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "audit_level": "high"})
    assert not result.get("failed"), result.get("msg")
    assert result["audited"] is True and result["error"] is None and result["report_format"] == "npm7"
    (finding,) = result["findings"]
    assert finding["package"] == "validator" and finding["severity"] == "moderate"
    assert finding["url"].endswith(GHSA) and finding["id"] == "1109491"
    assert finding["paths"] == ["sequelize > validator"]
    assert finding["direct"] is False and finding["fix_available"] is False
    assert finding["installed"] and finding["installed"][0].startswith("13.")
    assert result["counts"]["moderate"] == 1 and result["counts"]["total"] == 1
    # npm counts sequelize too (affected through validator); findings count advisories.
    assert result["package_counts"]["moderate"] == 2
    assert result["changed"] is False
    stp = result["step"]
    # An unaccepted moderate finding is below the gate: a low warning.
    assert (stp["step"], stp["status"], stp["severity"]) == ("security_audit", "warning", "low")
    assert stp["problems"] == ["moderate validator: %s (https://github.com/advisories/%s)" % (finding["title"], GHSA)]
    assert reg.registry.audit_requests  # the advisory service was asked


@pytest.mark.parametrize("days,warning_days,status,expiring", [
    (10, 14, "warning", ["validator"]),    # weekly: expires within two weeks
    (90, 14, "ok", []),                    # weekly: far off
    (90, 92, "warning", ["validator"]),    # quarterly: within the quarter
])
def test_audit_accepts_the_known_risk_and_warns_before_it_expires(app, run_module, days, warning_days, status,
                                                                  expiring):
    app_dir, reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "audit_level": "high",
                                      "accepted_risks": [acceptance(days=days)], "expiry_warning_days": warning_days})
    assert result["unaccepted"] == [] and result["accepted"][0]["days_to_expiry"] == days
    assert result["step"]["status"] == status
    assert result["step"]["figures"]["expiring_acceptances"] == expiring
    assert [f["package"] for f in result["expiring_acceptances"]] == expiring


def test_audit_with_an_expired_acceptance(app, run_module):
    app_dir, reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url,
                                      "accepted_risks": [acceptance(days=-3)]})
    assert result["accepted"] == [] and result["unaccepted"][0]["acceptance_expired"] is True
    expired_on = (TODAY - datetime.timedelta(days=3)).isoformat()
    assert result["step"]["problems"][0].endswith("acceptance expired %s" % expired_on)


@pytest.fixture
def high_app(tmp_path, npm_registry):
    """An app with an unaccepted high advisory (jsonwebtoken) and the validator advisory patched."""
    fixture = fixture_data()
    fixture["packages"]["validator"]["versions"]["13.15.20"] = {}
    fixture["packages"]["jsonwebtoken"] = {"versions": {"8.5.1": {}, "9.0.2": {}}}
    fixture["advisories"]["validator"][0]["vulnerable_versions"] = "<13.15.20"
    fixture["advisories"]["jsonwebtoken"] = [{
        "id": 1097690, "url": "https://github.com/advisories/GHSA-8cf7-32gw-wr33", "severity": "high",
        "title": "jsonwebtoken unrestricted key type could lead to legacy keys usage",
        "vulnerable_versions": "<9.0.0"}]
    reg = npm_registry(fixture)
    return npm_app(str(tmp_path / "app"), reg.url, dict(APP_DEPS, jsonwebtoken="^8.5.1")), reg


def test_audit_gate_fails_on_a_high_finding_and_flags_the_unused_acceptance(high_app, run_module):
    app_dir, reg = high_app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "audit_level": "high",
                                      "accepted_risks": [acceptance()]})
    assert [f["package"] for f in result["unaccepted"]] == ["jsonwebtoken"]
    jwt = result["unaccepted"][0]
    assert jwt["direct"] is True and jwt["fix_available"] is True
    assert jwt["fix"]["semver_major"] is True and jwt["fix"]["version"] == "9.0.2"
    # The patched validator is installed, so the acceptance is no longer needed.
    assert [u["package"] for u in result["unused_acceptances"]] == ["validator"]
    stp = result["step"]
    assert (stp["status"], stp["severity"]) == ("critical", "high")
    assert stp["figures"]["blocking"] == ["jsonwebtoken"] and stp["figures"]["unused_acceptances"] == ["validator"]
    assert stp["summary"].startswith("gate failed: ")
    # --omit=dev audits production dependencies only; the same prod finding stays.
    prod = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "omit": ["dev"], "audit_level": "high"})
    assert prod["counts"]["high"] == 1 and prod["step"]["status"] == "critical"


def test_audit_report_mode_lists_every_finding_without_failing_the_run(high_app, run_module):
    app_dir, reg = high_app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "audit_level": "high",
                                      "mode": "report"})
    stp = result["step"]
    assert (stp["status"], stp["severity"]) == ("warning", "high")
    (detail,) = stp["figures"]["findings"]
    assert detail["package"] == "jsonwebtoken" and detail["state"] == "unaccepted"
    assert detail["fix"] == {"package": "jsonwebtoken", "version": "9.0.2", "semver_major": True}


def test_audit_runs_the_same_in_check_mode(app, run_module):
    app_dir, reg = app
    normal = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url})
    checked = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url}, check_mode=True)
    assert checked["step"] == normal["step"] and checked["changed"] is False


@pytest.mark.parametrize("status", [405, 500, 503, 403])
def test_refusing_audit_service_is_an_error_step_not_zero(app, run_module, status):
    app_dir, reg = app
    reg.registry.audit_status = status
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "fetch_retries": 0})
    # The service was asked and refused; the task itself does not fail (the
    # report carries the error), and nothing in the result reads as zero.
    assert reg.registry.audit_requests
    assert not result.get("failed") and result["audited"] is False
    assert str(status) in result["error"]
    assert not any(key in result for key in ("findings", "counts", "unaccepted", "above_level", "accepted"))
    stp = result["step"]
    assert (stp["status"], stp["severity"]) == ("failed", "medium")
    assert "npm audit could not be done: %d" % status in stp["summary"]
    assert stp["figures"]["audited"] is False and "counts" not in stp["figures"]


def test_unreachable_audit_service_is_an_error_step(app, run_module):
    app_dir, _reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": "http://127.0.0.1:%d/" % _free_port(),
                                      "fetch_retries": 0})
    assert result["audited"] is False and "ECONNREFUSED" in result["error"]
    assert result["step"]["status"] == "failed" and "ECONNREFUSED" in result["step"]["summary"]


@pytest.mark.parametrize("setup,message", [
    ("no_lock", "no package-lock.json"),
    ("no_package", "has no package.json"),
    ("missing", "does not exist"),
    ("no_npm", "is not an executable file"),
])
def test_audit_that_cannot_start_on_the_host_is_an_error_step(tmp_path, run_module, setup, message):
    target = tmp_path / "app"
    target.mkdir()
    args = {"app_dir": str(target)}
    if setup in ("no_lock", "no_npm"):
        (target / "package.json").write_text("{}")
    if setup == "no_npm":
        (target / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {}}')
        args["npm_path"] = str(tmp_path / "bin" / "npm")
    if setup == "missing":
        args["app_dir"] = str(tmp_path / "nope")
    result = run_module("npm_audit", args)
    assert not result.get("failed") and result["audited"] is False
    assert message in result["error"] and message in result["step"]["summary"]
    assert result["step"]["status"] == "failed"


def test_registry_token_is_not_returned(app, run_module):
    app_dir, reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "registry_token": "tok-s3cret-123"})
    assert result["audited"] is True
    assert "tok-s3cret-123" not in json.dumps(result)


def test_outdated_classifies_plans_and_decides(app, run_module):
    app_dir, reg = app
    result = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url})
    by_name = {p["name"]: p for p in result["packages"]}
    assert set(by_name) == {"express", "sequelize", "ws"}  # dotenv is current
    assert by_name["express"]["behind"] == "major" and by_name["express"]["safe_target"] is None
    assert by_name["sequelize"]["behind"] == "minor" and by_name["sequelize"]["safe_target"] == "6.37.7"
    assert by_name["ws"]["behind"] == "patch" and by_name["ws"]["wanted"] == "8.18.0"
    assert result["counts"] == {"major": 1, "minor": 1, "patch": 1, "prerelease": 0, "missing": 0,
                                "unknown": 0, "total": 3}
    assert result["safe_updates"] == ["sequelize@6.37.7", "ws@8.18.3"]
    # package.json pins ws exactly and gives sequelize a ~ range: the plan keeps both styles.
    assert result["plan"] == [{"flags": ["--save-exact"], "specs": ["ws@8.18.3"]},
                              {"flags": ["--save-prefix=~"], "specs": ["sequelize@6.37.7"]}]
    assert result["update_now"] is False  # apply is off
    stp = result["step"]
    assert (stp["step"], stp["status"], stp["severity"]) == ("dependency_updates", "ok", "low")
    assert "3 outdated (1 major, 1 minor, 1 patch)" in stp["summary"]
    assert stp["figures"]["majors"] == ["express"] and stp["figures"]["safe_updates"] == ["sequelize", "ws"]
    excluded = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url, "exclude": ["ws"]})
    assert excluded["plan"] == [{"flags": ["--save-prefix=~"], "specs": ["sequelize@6.37.7"]}]
    assert excluded["step"]["figures"]["excluded"] == ["ws"]


def test_outdated_in_check_mode_says_what_it_would_update(app, run_module):
    app_dir, reg = app
    result = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url, "apply": True}, check_mode=True)
    assert "would update sequelize 6.35.0 -> 6.37.7, ws 8.18.0 -> 8.18.3" in result["step"]["summary"]
    assert result["changed"] is False and result["update_now"] is False


def test_outdated_up_to_date_and_unreachable(tmp_path, npm_registry, run_module):
    reg = npm_registry()
    app_dir = npm_app(str(tmp_path / "app"), reg.url, {"dotenv": "^16.4.5"})
    result = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url})
    assert result["packages"] == [] and result["counts"]["total"] == 0 and result["plan"] == []
    assert (result["step"]["status"], result["step"]["summary"]) == ("ok", "all dependencies are up to date")
    broken = run_module("npm_outdated", {"app_dir": app_dir, "registry": "http://127.0.0.1:%d/" % _free_port(),
                                         "fetch_retries": 0})
    assert not broken.get("failed") and "ECONNREFUSED" in broken["error"]
    assert "packages" not in broken and broken["plan"] == [] and broken["update_now"] is False
    assert broken["step"]["status"] == "warning" and "up to date" not in broken["step"]["summary"]


def _npm(app_dir, *args):
    proc = subprocess.run(["npm"] + list(args), cwd=app_dir, capture_output=True, text=True, timeout=180)
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "cmd": ["npm"] + list(args)}


def registered(result):
    """A module's result as a playbook registers it: the controller takes its
    warnings and deprecations (structured events on ansible-core 2.19) out."""
    return dict((k, v) for k, v in result.items()
                if k not in ("warnings", "deprecations", "exception") and not k.startswith("_ansible"))


def _apply(app_dir, reg, plan):
    return [dict(_npm(app_dir, "install", "--no-audit", "--no-fund", "--registry=" + reg.url,
                      *(group["flags"] + group["specs"])), item=group) for group in plan]


def test_judge_keeps_an_update_that_passes_with_the_real_npm(app, run_module):
    app_dir, reg = app
    commit = {"branch": "chore/deps", "subject": "chore(deps): update minor and patch dependencies",
              "author": "BeMore runbooks <runbooks@bemore.invalid>"}
    before = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url, "apply": True, "commit": commit})
    assert before["update_now"] is True
    install = _apply(app_dir, reg, before["plan"])
    manifest = json.load(open(os.path.join(app_dir, "package.json")))["dependencies"]
    assert (manifest["ws"], manifest["sequelize"], manifest["express"]) == ("8.18.3", "~6.37.7", "~4.18.2")
    tests = _npm(app_dir, "test")
    audited = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "audit_level": "high",
                                       "accepted_risks": [acceptance()]})
    verdict = run_module("npm_outdated", {"app_dir": app_dir, "commit": commit, "outcome": {
        "before": registered(before), "install": install, "tests": tests, "audit": registered(audited)}})
    assert verdict["keep"] is True and verdict["changed"] is False
    assert verdict["step"]["status"] == "ok" and verdict["step"]["figures"]["applied"] == ["sequelize", "ws"]
    assert "- ws 8.18.0 -> 8.18.3 (patch)" in verdict["commit"]["message"]
    assert verdict["commit"]["branch"] == "chore/deps"
    # Idempotence: after the kept update nothing safe is left to plan.
    again = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url, "apply": True})
    assert again["plan"] == [] and again["update_now"] is False
    assert again["step"]["figures"]["majors"] == ["express"]


def test_judge_rolls_back_an_update_the_audit_refuses_with_the_real_npm(app, run_module):
    app_dir, reg = app
    reg.registry.advisories = dict(reg.registry.advisories, ws=[WS_HIGH])
    before = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url, "apply": True,
                                         "commit": {"branch": "chore/deps", "subject": "m",
                                                    "author": "A <a@example.test>"}})
    install = _apply(app_dir, reg, before["plan"])
    audited = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "audit_level": "high",
                                       "accepted_risks": [acceptance()]})
    failing_tests = _npm(app_dir, "exec", "--", "node", "-e", "console.error('2 tests failed'); process.exit(1)")
    verdict = run_module("npm_outdated", {"app_dir": app_dir, "commit": {"branch": "chore/deps", "subject": "m",
                                                                         "author": "A <a@example.test>"},
                                          "outcome": {"before": registered(before), "install": install,
                                                      "tests": failing_tests, "audit": registered(audited)}})
    assert verdict["keep"] is False and verdict["commit"] is None
    stp = verdict["step"]
    assert (stp["status"], stp["severity"]) == ("warning", "medium")
    assert "2 tests failed" in stp["summary"]
    assert any("unaccepted findings at or above high: ws" in p for p in stp["problems"])


def test_judge_rolls_back_when_the_lock_is_not_what_was_planned(app, run_module):
    app_dir, reg = app
    before = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url, "apply": True})
    # Nothing was installed: the lockfile still has the old versions.
    verdict = run_module("npm_outdated", {"app_dir": app_dir, "outcome": {
        "before": registered(before), "install": [{"rc": 0, "item": before["plan"][0]}], "tests": {"rc": 0, "cmd": "npm test"},
        "audit": {"audited": True, "above_level": []}}})
    assert verdict["keep"] is False
    assert verdict["step"]["problems"][0].endswith("sequelize is at 6.35.0 after npm install, planned 6.37.7")


def test_outdated_against_the_public_registry(tmp_path, run_module):
    """npm outdated is a GET, which the public registry answers here."""
    app_dir = str(tmp_path / "app")
    os.makedirs(app_dir)
    with open(os.path.join(app_dir, "package.json"), "w") as fh:
        json.dump({"name": "t", "version": "1.0.0", "private": True, "dependencies": {"ms": "2.0.0"}}, fh)
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=app_dir, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-500:]
    result = run_module("npm_outdated", {"app_dir": app_dir})
    (ms,) = result["packages"]
    assert ms["current"] == "2.0.0" and ms["wanted"] == "2.0.0"
    assert npm_cli.version_gap("2.0.0", ms["latest"]) == ms["behind"] != "none"
