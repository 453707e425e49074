# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the npm CLI from modules: environment, JSON output, errors, semver.

npm prints its --json report on stdout and exits non-zero both when it found
something (audit findings, outdated packages) and when it failed, so the exit
code alone says nothing. ``parse_json_output`` tells the two apart: a report
has the keys the caller expects; a failure is a JSON object with ``error`` (or
``message``) or no JSON at all.
"""

from __future__ import annotations

import json
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


def npm_command(module, subcommand, extra=()):
    """argv for ``npm SUBCOMMAND --json`` with the module's common options."""
    p = module.params
    npm = p.get("npm_path") or module.get_bin_path("npm", required=True)
    argv = [npm, subcommand, "--json"]
    if p.get("registry"):
        argv.append("--registry=%s" % p["registry"])
    argv += ["--fetch-timeout=%d" % (p["fetch_timeout"] * 1000), "--fetch-retries=%d" % p["fetch_retries"]]
    return argv + list(extra)


def check_app_dir(app_dir, need_lock=False):
    """Raise ValueError with a clear message when ``app_dir`` is not an npm project."""
    if not os.path.isabs(app_dir):
        raise ValueError("app_dir must be an absolute path, got %r" % app_dir)
    if not os.path.isdir(app_dir):
        raise ValueError("app_dir %s does not exist or is not a directory" % app_dir)
    if not os.path.isfile(os.path.join(app_dir, "package.json")):
        raise ValueError("app_dir %s has no package.json" % app_dir)
    if need_lock and not any(os.path.isfile(os.path.join(app_dir, f)) for f in ("package-lock.json", "npm-shrinkwrap.json")):
        raise ValueError("app_dir %s has no package-lock.json; npm audit needs a lockfile "
                         "(create it with: npm install --package-lock-only)" % app_dir)


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
