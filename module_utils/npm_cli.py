# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the npm CLI from modules: environment, JSON output, errors, semver.

npm prints its --json report on stdout and exits non-zero both when it found
something (audit findings, outdated packages) and when it failed, so the exit
code alone says nothing. ``parse_json_output`` tells the two apart: a report
has the keys the caller expects; a failure is a JSON object with ``error`` (or
``message``) or no JSON at all.

The option rules (``*_option_problems``) are the ranges the argument specs
cannot express. The modules apply them before they do anything, and the
runbook preflight applies the same rules to the roles' options
(``role_option_problems``) before anything in the run changes.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import urllib.parse

SEVERITIES = ("info", "low", "moderate", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@")
_TOKEN_PARAM = re.compile(r"(?i)(_authToken|_auth|_password|token)=\S+")


class NpmError(Exception):
    """npm ran but failed (no report); the message is safe to show."""


def redact(text):
    """Remove credentials from URLs and npm auth settings in ``text``."""
    if not text:
        return text
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return _TOKEN_PARAM.sub(r"\1=***", text)


def npm_argument_spec():
    return dict(
        app_dir=dict(type="path", required=True),
        registry=dict(type="str"),
        registry_token=dict(type="str", no_log=True),
        npm_path=dict(type="path"),
        fetch_timeout=dict(type="int", default=60),
        fetch_retries=dict(type="int", default=1),
    )


def npm_environment(registry=None, registry_token=None):
    """Environment for an npm run: quiet, non-interactive, token out of argv.

    The token goes into the per-registry ``_authToken`` setting through the
    environment, so neither ``ps`` nor Ansible's logged command line shows it.
    """
    env = {
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_progress": "false",
        "npm_config_yes": "false",
        "NO_COLOR": "1",
    }
    if registry and "@" in urllib.parse.urlsplit(registry).netloc:
        raise ValueError("registry must not carry credentials in its URL (it would be shown in logs); "
                         "give the token in registry_token")
    if registry_token:
        if not registry:
            raise ValueError("registry_token needs registry: the token is bound to one registry")
        parts = urllib.parse.urlsplit(registry)
        scope = "//%s%s" % (parts.netloc.split("@")[-1], parts.path if parts.path.endswith("/") else parts.path + "/")
        env["npm_config_%s:_authToken" % scope] = registry_token
    return env


def find_npm(module):
    """Path of the npm to run; NpmError (the audit or check could not be done) when there is none."""
    path = module.params.get("npm_path")
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise NpmError("npm_path %s is not an executable file on the host" % path)
        return path
    found = module.get_bin_path("npm")
    if not found:
        raise NpmError("npm is not installed on the host or not on its PATH (install Node.js with npm, or set npm_path)")
    return found


def npm_command(module, subcommand, extra=()):
    """argv for ``npm SUBCOMMAND --json`` with the module's common options."""
    p = module.params
    argv = [find_npm(module), subcommand, "--json"]
    if p.get("registry"):
        argv.append("--registry=%s" % p["registry"])
    argv += ["--fetch-timeout=%d" % (p["fetch_timeout"] * 1000), "--fetch-retries=%d" % p["fetch_retries"]]
    return argv + list(extra)


def app_dir_problem(app_dir, need_lock=False):
    """Why the npm project in ``app_dir`` (an absolute path) cannot be read on this host, or None.

    These are the host's state, not bad options: the caller reports the
    check as not done and says why.
    """
    if not os.path.isdir(app_dir):
        return "app_dir %s does not exist or is not a directory" % app_dir
    if not os.path.isfile(os.path.join(app_dir, "package.json")):
        return "app_dir %s has no package.json" % app_dir
    if need_lock and not any(os.path.isfile(os.path.join(app_dir, f)) for f in ("package-lock.json", "npm-shrinkwrap.json")):
        return ("app_dir %s has no package-lock.json; npm audit needs a lockfile "
                "(create it with: npm install --package-lock-only)" % app_dir)
    return None


def error_lines(stderr):
    """The ``npm error`` / ``npm ERR!`` lines of stderr, without the log-file pointer."""
    out = []
    for line in (stderr or "").splitlines():
        m = re.match(r"npm (?:error|ERR!)\s?(.*)", line)
        if m and "complete log of this run" not in m.group(1):
            out.append(m.group(1).strip())
    return [line for line in out if line]


def parse_json_output(rc, stdout, stderr, report_keys):
    """Return the report dict, or raise NpmError when npm failed.

    ``report_keys``: a report is recognised when it is a JSON object with one
    of these keys, or (for ``npm outdated``) an object of package entries.
    """
    text = (stdout or "").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" not in data and "message" not in data:
        if report_keys is None or any(k in data for k in report_keys):
            return data
    reason = []
    if isinstance(data, dict):
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        for part in (data.get("message"), err.get("code"), err.get("summary"), _first_lines(err.get("detail"))):
            if part and part not in reason:
                reason.append(str(part).strip())
    for line in error_lines(stderr):
        if line.startswith("at ") or "stack" in line.lower():
            continue
        if line not in reason and not any(line in r for r in reason):
            reason.append(line)
    if not reason:
        reason.append("npm exited %s without a report%s" % (rc, (": " + text[:300]) if text and data is None else ""))
    message = "; ".join(reason)
    raise NpmError(redact(message if len(message) <= 800 else message[:800] + " ..."))


def _first_lines(text, count=3):
    """The first lines of npm's error detail, without a JavaScript stack."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return "; ".join([line for line in lines if not line.startswith("at ")][:count])


_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def parse_version(text):
    """(major, minor, patch, prerelease) or None for something that is not semver."""
    m = _SEMVER.match((text or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)


def version_gap(current, target):
    """How far ``current`` is behind ``target``: none, patch, minor, major, prerelease, missing, unknown, ahead."""
    if not current:
        return "missing"
    a, b = parse_version(current), parse_version(target)
    if a is None or b is None:
        return "unknown"
    if a[:3] == b[:3]:
        return "none" if a[3] == b[3] else "prerelease"
    if a[:3] > b[:3]:
        return "ahead"
    if a[0] != b[0]:
        return "major"
    if a[1] != b[1]:
        return "minor"
    return "patch"


def is_breaking(current, target):
    """Whether moving from ``current`` to ``target`` leaves the caret (^) range of ``current``.

    npm's caret rule: the left-most non-zero component must stay, so 0.3.x to
    0.4.0 is breaking although semver calls it a minor step.
    """
    a, b = parse_version(current), parse_version(target)
    if a is None or b is None:
        return True
    if a[0] != b[0]:
        return True
    if a[0] == 0 and a[1] != b[1]:
        return True
    if a[0] == 0 and a[1] == 0 and a[2] != b[2]:
        return True
    return False


# --- option rules the argument specs cannot express ---------------------------------------------

MAX_FETCH_TIMEOUT_S = 600
MAX_FETCH_RETRIES = 10
# The quarterly review looks 92 days ahead; ten years is surely a typo.
MAX_EXPIRY_WARNING_DAYS = 3650
MAX_TEST_TIMEOUT_S = 86400
ACCEPTANCE_FIELDS = ("package", "advisory", "reason", "expires")

_PACKAGE_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$", re.I)
_AUTHOR = re.compile(r"^\s*([^<>@\s][^<>]*?)\s*<([^<>\s@]+@[^<>\s@]+)>\s*$")


def whole_number_problem(value, low, high):
    """What is wrong with ``value`` as a whole number in [low, high], or None."""
    if isinstance(value, bool):
        return "must be a whole number, got %r" % (value,)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "must be a whole number, got %r" % (value,)
    if not math.isfinite(number) or number != int(number):
        return "must be a whole number, got %r" % (value,)
    if number < low or number > high:
        return "must be between %d and %d, got %d" % (low, high, int(number))
    return None


def registry_problem(url):
    """What is wrong with a registry URL (empty: the app's .npmrc decides), or None. Never echoes credentials."""
    if not url:
        return None
    if not isinstance(url, str):
        return "must be a URL, got %s" % type(url).__name__
    parts = urllib.parse.urlsplit(url.strip())
    if "@" in parts.netloc:
        return ("must not carry credentials in its URL (they would be shown in logs); give the token in the "
                "registry token option")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL such as https://registry.npmjs.org/, got %r" % (url,)
    return None


def absolute_path_problem(value, required=True):
    if value in (None, ""):
        return "must be set" if required else None
    if not isinstance(value, str) or not value.startswith("/"):
        return "must be an absolute path, got %r" % (value,)
    if os.path.normpath(value) == "/":
        return "must not be the root folder"
    return None


def parse_date(text):
    """A datetime.date from C(YYYY-MM-DD); ValueError otherwise (also for 2026-1-5 or a datetime)."""
    text = str(text).strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        raise ValueError(text)
    return datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))


def acceptance_problems(risks, name="accepted_risks"):
    """[(option, problem)] of a list of accepted risks: every field set, a real expiry date."""
    out = []
    if risks in (None, ""):
        return out
    if not isinstance(risks, list):
        return [(name, "must be a list of accepted risks, got %s" % type(risks).__name__)]
    for index, risk in enumerate(risks):
        label = "%s[%d]" % (name, index)
        if not isinstance(risk, dict):
            out.append((label, "must be a dict with package, advisory, reason and expires, got %r" % (risk,)))
            continue
        for field in ACCEPTANCE_FIELDS:
            if not str(risk.get(field) or "").strip():
                out.append(("%s.%s" % (label, field), "is required and must not be empty"))
        expires = risk.get("expires")
        if str(expires or "").strip():
            try:
                parse_date(expires)
            except ValueError:
                out.append(("%s.expires" % label, "must be a date YYYY-MM-DD, got %r (%s)"
                            % (str(expires), risk.get("package") or "no package")))
    return out


def package_name_problem(name):
    if not isinstance(name, str) or not _PACKAGE_NAME.match(name) or len(name) > 214:
        return "must be npm package names such as express or @scope/name, got %r" % (name,)
    return None


def branch_problem(name):
    """What git's check-ref-format would refuse in a branch name, or None."""
    if not isinstance(name, str) or not name.strip():
        return "must name a branch"
    bad = None
    if name.startswith("-") or name.startswith("/") or name.endswith("/") or name.endswith("."):
        bad = "must not start with '-' or '/' or end with '/' or '.'"
    elif name == "@" or any(s in name for s in ("..", "//", "@{")):
        bad = "must not be '@' or contain '..', '//' or '@{'"
    elif re.search(r"[\x00-\x20\x7f~^:?*\[\\]", name):
        bad = "must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    elif any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        bad = "must not have a part that starts with '.' or ends with '.lock'"
    return None if bad is None else "%s, got %r" % (bad, name)


def parse_author(text):
    """(name, email) from C(Name <email>); ValueError naming the problem."""
    m = _AUTHOR.match(text or "") if isinstance(text, str) else None
    if not m:
        raise ValueError("must be 'Name <email>', got %r" % (text,))
    return m.group(1), m.group(2)


def command_problem(argv):
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or not argv[0].strip():
        return "must be the command as a non-empty list of strings (argv), got %r" % (argv,)
    return None


def _add(out, option, problem):
    if problem:
        out.append((option, problem))


def common_option_problems(params):
    """[(option, problem)] of the options every npm module has (module option names)."""
    out = []
    _add(out, "app_dir", absolute_path_problem(params.get("app_dir")))
    _add(out, "registry", registry_problem(params.get("registry")))
    if params.get("registry_token") and not params.get("registry"):
        out.append(("registry_token", "needs registry: the token is bound to one registry"))
    _add(out, "npm_path", absolute_path_problem(params.get("npm_path"), required=False))
    for name, low, high in (("fetch_timeout", 1, MAX_FETCH_TIMEOUT_S), ("fetch_retries", 0, MAX_FETCH_RETRIES)):
        if params.get(name) is not None:
            _add(out, name, whole_number_problem(params[name], low, high))
    return out


def audit_option_problems(params):
    """[(option, problem)] of npm_audit's options."""
    out = common_option_problems(params)
    if params.get("expiry_warning_days") is not None:
        _add(out, "expiry_warning_days", whole_number_problem(params["expiry_warning_days"], 0,
                                                              MAX_EXPIRY_WARNING_DAYS))
    out += acceptance_problems(params.get("accepted_risks"))
    if params.get("today"):
        try:
            parse_date(params["today"])
        except ValueError:
            out.append(("today", "must be a date YYYY-MM-DD, got %r" % (params["today"],)))
    return out


def commit_problems(commit, names=("commit.branch", "commit.subject", "commit.author")):
    """[(option, problem)] of a commit request {branch, subject, author}."""
    out = []
    commit = commit or {}
    _add(out, names[0], branch_problem(commit.get("branch")))
    if not str(commit.get("subject") or "").strip():
        out.append((names[1], "must not be empty"))
    try:
        parse_author(commit.get("author"))
    except ValueError as exc:
        out.append((names[2], str(exc)))
    return out


def outdated_option_problems(params):
    """[(option, problem)] of npm_outdated's options."""
    out = common_option_problems(params)
    for name in params.get("exclude") or []:
        _add(out, "exclude", package_name_problem(name))
    if params.get("commit") is not None:
        out += commit_problems(params["commit"])
    return out


def role_option_problems(role, values):
    """[(option, problem)] of the security_audit or dependency_updates role.

    ``values``: the role's options without the role prefix (``fetch_timeout``
    for ``security_audit_fetch_timeout``); options that are not set are not
    checked. The returned option names are without the prefix as well.
    """
    out = []
    _add(out, "app_dir", absolute_path_problem(values.get("app_dir"), required="app_dir" in values))
    _add(out, "registry", registry_problem(values.get("registry")))
    _add(out, "npm_path", absolute_path_problem(values.get("npm_path"), required=False))
    if values.get("fetch_timeout") is not None:
        _add(out, "fetch_timeout", whole_number_problem(values["fetch_timeout"], 1, MAX_FETCH_TIMEOUT_S))
    out += acceptance_problems(values.get("accepted_risks"))
    if role == "security_audit":
        if values.get("expiry_warning_days") is not None:
            _add(out, "expiry_warning_days", whole_number_problem(values["expiry_warning_days"], 0,
                                                                  MAX_EXPIRY_WARNING_DAYS))
        if "report_dir" in values and not str(values.get("report_dir") or "").strip():
            out.append(("report_dir", "must be set (the detailed report's folder on the control node)"))
    elif role == "dependency_updates":
        for name in values.get("exclude") or []:
            _add(out, "exclude", package_name_problem(name))
        if "test_command" in values:
            _add(out, "test_command", command_problem(values.get("test_command")))
        if values.get("test_timeout") is not None:
            _add(out, "test_timeout", whole_number_problem(values["test_timeout"], 1, MAX_TEST_TIMEOUT_S))
        if values.get("git_commit"):
            out += commit_problems({"branch": values.get("git_branch"), "subject": values.get("commit_message"),
                                    "author": values.get("git_author")},
                                   names=("git_branch", "commit_message", "git_author"))
    return out


def refuse_bad_options(module, problems):
    """Fail the module, before it does anything, listing every bad option."""
    if problems:
        module.fail_json(msg="invalid options, nothing was done: " + "; ".join("%s %s" % p for p in problems),
                         problems=["%s: %s" % p for p in problems])
