"""npm_audit and npm_outdated: pure helpers, and the real npm CLI against the
fixture registry (sandbox/npm_registry.py) on loopback; one test reads the
public registry, which these machines reach for GET requests."""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import free_port as _free_port, npm_app
from tests.helpers import load_module

npm_cli = __import__("ansible.module_utils.npm_cli", fromlist=["x"])
audit = load_module("npm_audit")
outdated = load_module("npm_outdated")

TODAY = datetime.date.today()
GHSA = "GHSA-9965-vmph-33xx"
APP_DEPS = {"sequelize": "~6.35.0", "express": "~4.18.2", "ws": "8.18.0", "dotenv": "^16.4.5"}

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def acceptance(days=30, advisory=GHSA, package="validator"):
    return {"package": package, "advisory": advisory, "reason": "isURL is not used on user input",
            "expires": (TODAY + datetime.timedelta(days=days)).isoformat()}


# ---------------------------------------------------------------- pure helpers

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


def test_registry_with_credentials_is_refused():
    with pytest.raises(ValueError, match="registry_token"):
        npm_cli.npm_environment("https://bob:pw@registry.example/")


def test_token_goes_to_the_environment_only():
    env = npm_cli.npm_environment("https://registry.example/npm/", "s3cret")
    assert env["npm_config_//registry.example/npm/:_authToken"] == "s3cret"
    with pytest.raises(ValueError, match="needs registry"):
        npm_cli.npm_environment(None, "s3cret")


@pytest.mark.parametrize("bad,message", [
    ({"package": "validator", "advisory": GHSA, "reason": "", "expires": "2030-01-01"}, "reason is required"),
    ({"package": "validator", "advisory": GHSA, "reason": "r", "expires": "next year"}, "expires must be a date"),
    ({"package": "", "advisory": GHSA, "reason": "r", "expires": "2030-01-01"}, "package is required"),
])
def test_bad_acceptances_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        audit.validate_acceptances([acceptance(), bad], TODAY)


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


# ------------------------------------------------------ the real npm CLI, local registry

@pytest.fixture
def app(tmp_path, npm_registry):
    reg = npm_registry()
    app_dir = npm_app(str(tmp_path / "app"), reg.url, APP_DEPS)
    app_dir_reg = (app_dir, reg)
    return app_dir_reg


def test_audit_finds_the_indirect_validator_advisory(app, run_module):
    app_dir, reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url})
    assert not result.get("failed"), result.get("msg")
    assert result["report_format"] == "npm7"
    (finding,) = result["findings"]
    assert finding["package"] == "validator" and finding["severity"] == "moderate"
    assert finding["url"].endswith(GHSA) and finding["id"] == "1109491"
    assert finding["paths"] == ["sequelize > validator"]
    assert finding["direct"] is False and finding["fix_available"] is False
    assert finding["installed"] and finding["installed"][0].startswith("13.")
    assert result["counts"]["moderate"] == 1 and result["counts"]["total"] == 1
    # npm counts sequelize too (affected through validator); findings count advisories.
    assert result["package_counts"]["moderate"] == 2
    assert result["unaccepted_counts"]["moderate"] == 1 and result["accepted"] == []
    assert result["changed"] is False


def test_audit_accepts_the_known_risk_until_it_expires(app, run_module):
    app_dir, reg = app
    ok = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "accepted_risks": [acceptance(days=10)]})
    assert ok["unaccepted"] == [] and ok["accepted"][0]["days_to_expiry"] == 10
    expired = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url,
                                       "accepted_risks": [acceptance(days=-3)]})
    assert expired["accepted"] == [] and expired["unaccepted"][0]["acceptance_expired"] is True


def test_audit_with_a_high_finding_and_a_patched_release(tmp_path, npm_registry, run_module):
    fixture = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "sandbox", "npm_fixture.json")))
    fixture["packages"]["validator"]["versions"]["13.15.20"] = {}
    fixture["packages"]["jsonwebtoken"] = {"versions": {"8.5.1": {}, "9.0.2": {}}}
    fixture["advisories"]["validator"][0]["vulnerable_versions"] = "<13.15.20"
    fixture["advisories"]["jsonwebtoken"] = [{
        "id": 1097690, "url": "https://github.com/advisories/GHSA-8cf7-32gw-wr33", "severity": "high",
        "title": "jsonwebtoken unrestricted key type could lead to legacy keys usage",
        "vulnerable_versions": "<9.0.0"}]
    reg = npm_registry(fixture)
    app_dir = npm_app(str(tmp_path / "app"), reg.url, dict(APP_DEPS, jsonwebtoken="^8.5.1"))
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "audit_level": "high",
                                      "accepted_risks": [acceptance()]})
    assert [f["package"] for f in result["unaccepted"]] == ["jsonwebtoken"]
    jwt = result["unaccepted"][0]
    assert jwt["direct"] is True and jwt["fix_available"] is True
    assert jwt["fix"]["semver_major"] is True and jwt["fix"]["version"] == "9.0.2"
    assert result["above_level"][0]["package"] == "jsonwebtoken"
    # The patched validator is installed, so the acceptance is no longer needed.
    assert [u["package"] for u in result["unused_acceptances"]] == ["validator"]
    # --omit=dev audits production dependencies only; the same prod finding stays.
    prod = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "omit": ["dev"]})
    assert prod["counts"]["high"] == 1


@pytest.mark.parametrize("status", [500, 503, 403])
def test_audit_service_error_is_a_failure_not_zero(app, run_module, status):
    app_dir, reg = app
    reg.registry.audit_status = status
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "fetch_retries": 0})
    assert result["failed"] is True
    assert str(status) in result["msg"] and "could not be done" in result["msg"]
    assert "findings" not in result and "counts" not in result


def test_unreachable_audit_service_is_a_failure(app, run_module):
    free_port = _free_port()
    app_dir, _reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": "http://127.0.0.1:%d/" % free_port,
                                      "fetch_retries": 0})
    assert result["failed"] is True and "ECONNREFUSED" in result["msg"]


@pytest.mark.parametrize("setup,message", [
    ("no_lock", "no package-lock.json"),
    ("no_package", "has no package.json"),
    ("relative", "absolute path"),
    ("missing", "does not exist"),
])
def test_audit_bad_app_dir(tmp_path, run_module, setup, message):
    target = tmp_path / "app"
    target.mkdir()
    if setup == "no_lock":
        (target / "package.json").write_text("{}")
    arg = {"relative": "app", "missing": str(tmp_path / "nope")}.get(setup, str(target))
    result = run_module("npm_audit", {"app_dir": arg})
    assert result["failed"] is True and message in result["msg"]


def test_registry_token_is_not_returned(app, run_module):
    app_dir, reg = app
    result = run_module("npm_audit", {"app_dir": app_dir, "registry": reg.url, "registry_token": "tok-s3cret-123"})
    assert "tok-s3cret-123" not in json.dumps(result)


def test_outdated_classifies_patch_minor_major(app, run_module):
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


def test_outdated_up_to_date_and_unreachable(tmp_path, npm_registry, run_module):
    free_port = _free_port()
    reg = npm_registry()
    app_dir = npm_app(str(tmp_path / "app"), reg.url, {"dotenv": "^16.4.5"})
    result = run_module("npm_outdated", {"app_dir": app_dir, "registry": reg.url})
    assert result["packages"] == [] and result["counts"]["total"] == 0
    broken = run_module("npm_outdated", {"app_dir": app_dir, "registry": "http://127.0.0.1:%d/" % free_port,
                                         "fetch_retries": 0})
    assert broken["failed"] is True and "ECONNREFUSED" in broken["msg"]


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
