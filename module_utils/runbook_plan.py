# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs of a runbook run, checked before anything changes, and the
per-host plan of its checks.

Argument specs say what type an option is; they cannot say that a maximum
age must be at least one day or that the warning threshold lies below the
critical one. Those rules are written here, once, and the run's first step
applies them, with the specs, to every role of the play on every host, so
bad input stops the run before a lock, a file or a ``.env`` is touched.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import time
from urllib.parse import urlsplit

from ansible.module_utils.bemore_api import check_base_url
from ansible.module_utils.bemore_checks import needed
from ansible.module_utils.bemore_steps import STEP_OF_ROLE
from ansible.module_utils.npm_cli import role_option_problems

# The checks the run's API sweep and host readings carry out.
SWEEP_ROLES = tuple(STEP_OF_ROLE)
DB_IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]{1,64}\Z")
LOG_SOURCES = {"journal": "journal", "journald": "journal", "file": "file", "files": "file", "none": "none"}
ACCESS = ("full", "api_only")
API_FROM = ("controller", "host")


# What the runbook frame gathers for a variable that is not defined.
UNDEFINED = "__runbook_undefined__"


def defined(values):
    """``values`` without the options the frame found undefined."""
    return dict((k, v) for k, v in (values or {}).items() if v != UNDEFINED)


def split_inputs(gathered):
    """(group-level inputs, {role: options}) of one host's gathered inputs."""
    roles = dict((role, defined(values)) for role, values in (gathered or {}).items() if role != "__host")
    return roles.pop("runbook", {}), roles


class Problems(object):
    """Collects 'host: option: problem' lines."""

    def __init__(self):
        self.lines = []

    def add(self, host, option, text):
        self.lines.append("%s: %s: %s" % (host, option, text))


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _range(problems, host, cfg, name, low=None, high=None, low_open=False, integer=False):
    value = _num(cfg.get(name))
    if value is None:
        if cfg.get(name) is not None:
            problems.add(host, name, "must be a number, got %r" % (cfg.get(name),))
        return None
    if not math.isfinite(value):
        # nan passes every comparison below and inf overflows later, after a file was written.
        problems.add(host, name, "must be a finite number, got %s" % (cfg.get(name),))
        return None
    if integer and value != int(value):
        problems.add(host, name, "must be a whole number, got %s" % cfg.get(name))
    if low is not None and (value <= low if low_open else value < low):
        problems.add(host, name, "must be %s %s, got %s" % (">" if low_open else ">=", low, cfg.get(name)))
    if high is not None and value > high:
        problems.add(host, name, "must be <= %s, got %s" % (high, cfg.get(name)))
    return value


def _abs_path(problems, host, cfg, name, required=True):
    value = cfg.get(name)
    if not value:
        if required:
            problems.add(host, name, "must be set")
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        problems.add(host, name, "must be an absolute path, got %r" % (value,))
        return None
    return posixpath.normpath(value)


def check_ranges(role, cfg, host, problems, inputs):
    """Apply the rules of ``role`` to its options (full names) in ``cfg``."""
    p = role + "_"
    if role == "runbook":
        _range(problems, host, cfg, "bemore_api_timeout", 0, 300, low_open=True)
        _range(problems, host, cfg, "bemore_api_retries", 0, 10, integer=True)
        if cfg.get("bemore_api_client_key") and not cfg.get("bemore_api_client_cert"):
            problems.add(host, "bemore_api_client_key", "is set without bemore_api_client_cert")
        return
    if role == "health_check":
        _range(problems, host, cfg, p + "restart_tolerance", 0)
    elif role == "error_monitoring":
        target = _range(problems, host, cfg, p + "target_rate", 0, 100)
        warning = _range(problems, host, cfg, p + "warning_rate", 0, 100)
        critical = _range(problems, host, cfg, p + "critical_rate", 0, 100)
        if None not in (target, warning, critical) and not target <= warning <= critical:
            problems.add(host, p + "target_rate", "thresholds must satisfy target_rate <= warning_rate <= critical_rate "
                         "(%s, %s, %s)" % (target, warning, critical))
        _range(problems, host, cfg, p + "window_minutes", 0, 1440, low_open=True)
        _range(problems, host, cfg, p + "min_requests", 1, 1000000, integer=True)
        _range(problems, host, cfg, p + "min_errors", 1, 1000000, integer=True)
        _range(problems, host, cfg, p + "recent_limit", 1, 100, integer=True)
        _range(problems, host, cfg, p + "history_days", 1, 3650)
    elif role == "log_management":
        source = cfg.get(p + "source")
        if source not in LOG_SOURCES:
            problems.add(host, p + "source", "must be one of journal, file, none, got %r" % (source,))
        elif LOG_SOURCES[source] == "file":
            files = cfg.get(p + "files") or []
            if not files:
                problems.add(host, p + "files", "must list the log files when the source is 'file'")
            for path in files:
                if not isinstance(path, str) or not path.startswith("/"):
                    problems.add(host, p + "files", "must be absolute paths, got %r" % (path,))
        elif LOG_SOURCES[source] == "journal" and not cfg.get(p + "journal_unit"):
            problems.add(host, p + "journal_unit", "must name the systemd unit when the source is 'journal'")
        _range(problems, host, cfg, p + "budget_s", 0, 3600, low_open=True)
        warn = _range(problems, host, cfg, p + "errors_warning", 1, integer=True)
        crit = _range(problems, host, cfg, p + "errors_critical", 1, integer=True)
        if None not in (warn, crit) and warn > crit:
            problems.add(host, p + "errors_warning", "must not be above log_management_errors_critical")
    elif role == "disk_usage":
        warn = _range(problems, host, cfg, p + "warning_percent", 0, 100, low_open=True)
        crit = _range(problems, host, cfg, p + "critical_percent", 0, 100, low_open=True)
        if None not in (warn, crit) and warn > crit:
            problems.add(host, p + "warning_percent", "must not be above disk_usage_critical_percent")
        dw = _range(problems, host, cfg, p + "days_warning", 0)
        dc = _range(problems, host, cfg, p + "days_critical", 0)
        if None not in (dw, dc) and dc > dw:
            problems.add(host, p + "days_critical", "must not be above disk_usage_days_warning")
        _range(problems, host, cfg, p + "folder_limit_mb", 0, low_open=True)
        _range(problems, host, cfg, p + "folder_warning_ratio", 0, 1, low_open=True)
        _range(problems, host, cfg, p + "min_span_h", 0)
        _range(problems, host, cfg, p + "history_days", 1, 3650)
        _abs_path(problems, host, cfg, p + "filesystem_of")
        _abs_path(problems, host, cfg, p + "folder", required=False)
    elif role == "tmp_cleanup":
        emergency = bool(cfg.get(p + "emergency"))
        confirmed = bool(cfg.get(p + "emergency_confirm"))
        age = _range(problems, host, cfg, p + "max_age_days", 0, 3650)
        if age is not None and 0 <= age < 1 and not (emergency and confirmed):
            problems.add(host, p + "max_age_days", "%s is below 1 day: that deletes recordings still in use, so it "
                         "counts as an emergency cleanup; set tmp_cleanup_emergency=true and "
                         "tmp_cleanup_emergency_confirm=true to run it" % cfg.get(p + "max_age_days"))
        if emergency and not confirmed and cfg.get(p + "run_cleanup", True):
            problems.add(host, p + "emergency", "the emergency cleanup deletes every file in the temp folder; set "
                         "tmp_cleanup_emergency_confirm=true (or answer the survey) to run it")
        _range(problems, host, cfg, p + "max_size_mb", 0, 10485760)
        _range(problems, host, cfg, p + "interval_min", 1, 10080, integer=True)
        _range(problems, host, cfg, p + "max_runtime_s", 0, 86400, low_open=True)
        path = _abs_path(problems, host, cfg, p + "path")
        app = inputs.get("bemore_app_dir")
        if path:
            if path == "/":
                problems.add(host, p + "path", "must not be the root folder")
            elif app and isinstance(app, str) and app.startswith("/"):
                app = posixpath.normpath(app)
                if path == app or app.startswith(path.rstrip("/") + "/"):
                    problems.add(host, p + "path", "%s is the app folder %s or holds it; the temp folder is "
                                 "<app>/tmp (a cleanup there would delete .env, package.json and the sources)"
                                 % (path, app))
        env_file = cfg.get(p + "env_file")
        if cfg.get(p + "manage_env") and env_file and not str(env_file).startswith("/"):
            problems.add(host, p + "env_file", "must be an absolute path, got %r" % (env_file,))
    elif role == "performance_check":
        _range(problems, host, cfg, p + "samples", 1, 100, integer=True)
        _range(problems, host, cfg, p + "api_target_ms", 0, low_open=True)
        _range(problems, host, cfg, p + "slowness_factor", 1)
        _range(problems, host, cfg, p + "memory_target_mb", 0, low_open=True)
        _range(problems, host, cfg, p + "cpu_target_percent", 0, low_open=True)
        _range(problems, host, cfg, p + "cpu_sample_s", 0, 60, low_open=True)
        if cfg.get(p + "paths") == []:
            # Never read as "not given": the sweep would time /health instead of what was asked.
            problems.add(host, p + "paths", "must list at least one API path to time, got []")
        for path in cfg.get(p + "paths") or []:
            if not isinstance(path, str) or not path.startswith("/"):
                problems.add(host, p + "paths", "must be API paths starting with '/', got %r" % (path,))
    elif role == "api_security":
        _range(problems, host, cfg, p + "tls_warning_days", 0)
        _range(problems, host, cfg, p + "tls_critical_days", 0)
        _range(problems, host, cfg, p + "rate_limit_probe_max", 1, 1000, integer=True)
        for name in ("cors_path", "rate_limit_path"):
            # An empty path is not "the default": the check would ask another path than the one configured.
            value = cfg.get(p + name)
            if value is not None and (not isinstance(value, str) or not value.startswith("/")):
                problems.add(host, p + name, "must be an API path starting with '/', got %r" % (value,))
        origin = cfg.get(p + "foreign_origin")
        if origin is not None and not re.match(r"^https?://[^/\s]+$", str(origin)):
            problems.add(host, p + "foreign_origin", "must be an origin (scheme://host[:port]), got %r" % (origin,))
    elif role == "maintenance_lock":
        _range(problems, host, cfg, p + "wait_s", 0, 86400)
        _range(problems, host, cfg, p + "poll_s", 0, 3600, low_open=True)
        _range(problems, host, cfg, p + "stale_after_s", 60)
    elif role == "report":
        _range(problems, host, cfg, p + "keep", 1, integer=True)
    elif role in ("security_audit", "dependency_updates"):
        # The same rules npm_audit and npm_outdated apply again before npm runs.
        for option, text in role_option_problems(role, strip(role, cfg)):
            problems.add(host, p + option, text)
    elif role == "db_maintenance":
        _range(problems, host, cfg, p + "login_port", 1, 65535, integer=True)
        _range(problems, host, cfg, p + "optimize_min_free_mb", 0)
        _range(problems, host, cfg, p + "optimize_min_fragmentation", 0, 1)
        _range(problems, host, cfg, p + "disk_margin_mb", 0)
        schema = cfg.get(p + "schema")
        if not isinstance(schema, str) or not DB_IDENTIFIER.match(schema):
            problems.add(host, p + "schema", "must be a schema name (letters, digits, _ and $, at most 64), got %r"
                         % (schema,))
        bad = [t for t in cfg.get(p + "optimize_tables") or [] if not isinstance(t, str) or not DB_IDENTIFIER.match(t)]
        if bad:
            problems.add(host, p + "optimize_tables", "must be table or model names (letters, digits, _ and $, at most "
                         "64), got %s" % ", ".join(repr(t) for t in bad))
        socket_path = cfg.get(p + "login_unix_socket")
        if socket_path and not str(socket_path).startswith("/"):
            problems.add(host, p + "login_unix_socket", "must be an absolute path or empty, got %r" % (socket_path,))
        if cfg.get(p + "backup", True):
            _range(problems, host, cfg, p + "backup_keep", 1, integer=True)
            if _abs_path(problems, host, cfg, p + "backup_dir") == "/":
                problems.add(host, p + "backup_dir", "must not be the root folder")
            fmt = cfg.get(p + "backup_stamp_format")
            try:
                stamp = time.strftime(str(fmt), time.gmtime())
            except (TypeError, ValueError) as exc:
                problems.add(host, p + "backup_stamp_format", "is not a strftime format: %s" % exc)
            else:
                if not stamp.strip() or "/" in stamp or "\0" in stamp or stamp in (".", ".."):
                    problems.add(host, p + "backup_stamp_format", "renders to %r, which cannot be part of a file name"
                                 % (stamp,))
                elif stamp == fmt:
                    problems.add(host, p + "backup_stamp_format", "%r has no time field (%%Y, %%m, %%d, ...), so every "
                                 "backup would have the same name" % (fmt,))
    elif role == "deploy":
        commit = cfg.get(p + "commit")
        if not isinstance(commit, str) or not re.match(r"^[0-9A-Za-z][0-9A-Za-z._/-]{0,99}\Z", commit):
            problems.add(host, "bemore_deploy_commit", "deploy_commit must be a commit id or ref (letters, digits, "
                         ". _ / -), got %r; nothing was deployed" % (commit,))
        _range(problems, host, cfg, p + "wait_s", 1, 86400)
        _range(problems, host, cfg, p + "poll_s", 1, 3600)
    elif role == "incident_response":
        # The destructive mitigations run only when asked for AND confirmed;
        # a request without its confirmation stops the run before anything.
        for ask, confirm in (("emergency_cleanup", "confirm_emergency_cleanup"), ("restart", "confirm_restart")):
            if cfg.get(p + ask) and not cfg.get(p + confirm):
                problems.add(host, p + ask, "asked for without its confirmation; set %s%s=true (or answer the "
                             "survey) to run it" % (p, confirm))
        if (cfg.get(p + "read_only") or cfg.get(p + "disable_features")) and not cfg.get(p + "confirm_degrade"):
            problems.add(host, p + "read_only", "read-only mode or disabled features asked for without "
                         "incident_response_confirm_degrade=true")
        _range(problems, host, cfg, p + "recent_limit", 1, 100, integer=True)
        _range(problems, host, cfg, p + "settle_s", 0, 3600)


def strip(role, cfg):
    """The role's options without its prefix: {"expected_commit": ...}."""
    n = len(role) + 1
    return dict((k[n:], v) for k, v in cfg.items() if k.startswith(role + "_"))


def log_source(inputs, log_cfg):
    """(source, files, unit) of the host's backend log, role overrides first."""
    unit = log_cfg.get("journal_unit") or inputs.get("bemore_service_name") or ""
    default = "journal" if unit else "none"
    source = LOG_SOURCES.get(str(log_cfg.get("source") or inputs.get("bemore_log_source") or default), "none")
    files = list(log_cfg.get("files") or inputs.get("bemore_log_files") or [])
    return source, files, unit


def build_plan(host, inputs, roles_cfg, selected):
    """The plan of one host: what its API sweep reads, what its host module reads, each step's options.

    ``inputs``: the runbook's group-level inputs (bemore_*); ``roles_cfg``:
    {role: {option: value}} with full option names; ``selected``: the
    check roles this run carries out.
    """
    cfg = dict((role, strip(role, values)) for role, values in roles_cfg.items())
    access = inputs.get("bemore_host_access") or "full"
    api_from = inputs.get("bemore_api_from") or "controller"
    selected = [r for r in selected if r in SWEEP_ROLES]
    retries, timeout = inputs.get("bemore_api_retries"), inputs.get("bemore_api_timeout")
    api = {"base_url": check_base_url(inputs.get("bemore_base_url")),
           "timeout": 10.0 if timeout is None else float(timeout), "retries": 2 if retries is None else int(retries),
           "validate_certs": bool(inputs.get("bemore_validate_certs", True)),
           "ca_path": inputs.get("bemore_api_ca_path") or None, "client_cert": inputs.get("bemore_api_client_cert") or None,
           "client_key": inputs.get("bemore_api_client_key") or None}
    perf = cfg.get("performance_check", {})
    sec = cfg.get("api_security", {})
    sweep_cfg = {"latency_paths": perf.get("paths") or ["/health"], "latency_samples": perf.get("samples", 5),
                 "frontend_origin": sec.get("frontend_origin") or inputs.get("bemore_frontend_origin"),
                 "foreign_origin": sec.get("foreign_origin"), "cors_path": sec.get("cors_path"),
                 "rate_limit_probe": bool(sec.get("rate_limit_probe")),
                 "rate_limit_probe_max": sec.get("rate_limit_probe_max", 50),
                 "rate_limit_path": sec.get("rate_limit_path"), "validate_certs": api["validate_certs"]}
    wants = set(needed(selected))
    checks = sec.get("checks")
    if "api_security" in selected and checks is not None:
        wants -= {"tls", "cors", "rate"} - set({"tls": "tls", "cors": "cors", "rate_limit": "rate"}.get(c, c) for c in checks)
    host_plan = {}
    na = {}
    if access == "api_only":
        for role, reason in (("log_management", "the host has no shell (bemore_host_access: api_only); read the "
                                                "provider's log stream"),
                             ("disk_usage", "the host has no shell (bemore_host_access: api_only)")):
            if role in selected:
                na[role] = reason
    else:
        if "disk_usage" in selected:
            disk = cfg["disk_usage"]
            host_plan["disk"] = {"filesystem_of": disk.get("filesystem_of"), "folder": disk.get("folder") or None}
        if "tmp_cleanup" in selected:
            host_plan["tmp_folder"] = cfg["tmp_cleanup"].get("path")
        if "performance_check" in selected:
            proc = dict((k, perf.get(k)) for k in ("systemd_unit", "pid_file", "cmdline_regex") if perf.get(k))
            # One way to find the process, the most specific first.
            for key in ("systemd_unit", "pid_file", "cmdline_regex"):
                if proc.get(key):
                    proc = {key: proc[key]}
                    break
            if proc:
                proc["sample_s"] = perf.get("cpu_sample_s", 1)
                host_plan["process"] = proc
        if "log_management" in selected or "error_monitoring" in selected:
            source, files, unit = log_source(inputs, cfg.get("log_management", {}))
            if source == "file":
                host_plan["log"] = {"source": "file", "files": files}
            elif source == "journal" and unit:
                host_plan["log"] = {"source": "journal", "unit": unit}
            if host_plan.get("log"):
                lm = cfg.get("log_management", {})
                host_plan["log"].update(first_run=lm.get("first_run", "start"), budget_s=lm.get("budget_s", 60),
                                        window_s=int(float(cfg.get("error_monitoring", {}).get("window_minutes", 5)) * 60),
                                        uses=[u for r, u in (("log_management", "review"), ("error_monitoring", "errors"))
                                              if r in selected],
                                        # The CORS probe's origin, matched exactly in the backend's refusal line
                                        # (None: the log core's default, the role's default origin).
                                        probe_origin=sec.get("foreign_origin") or None)
            elif "log_management" in selected:
                na["log_management"] = "no log source is configured (bemore_log_source: none)"
    if api_from == "host" and access != "api_only":
        host_plan["api"] = {"api": api, "wants": sorted(wants), "cfg": sweep_cfg}
    return {
        "host": host, "access": access, "api_from": api_from, "selected": selected,
        "api": api, "wants": sorted(wants), "sweep_cfg": sweep_cfg, "host_plan": host_plan,
        "not_applicable": na, "cfg": dict((r, cfg.get(r, {})) for r in selected),
        "app_dir": inputs.get("bemore_app_dir"),
    }


def is_loopback(url):
    host = (urlsplit(url or "").hostname or "").lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")


def validate_host(host, inputs, roles_cfg, problems, host_info=None):
    """Range rules of every role plus the group-level inputs of one host."""
    try:
        url = check_base_url(inputs.get("bemore_base_url"))
    except ValueError as exc:
        problems.lines.append("%s: %s" % (host, exc))
        url = None
    connection = (host_info or {}).get("connection")
    if url and is_loopback(url) and connection not in (None, "local") and \
            (inputs.get("bemore_api_from") or "controller") == "controller":
        problems.add(host, "bemore_api_from", "bemore_base_url %s answers only on the host itself (connection %s); "
                     "set bemore_api_from: host so the host reads its own API" % (url, connection))
    access = inputs.get("bemore_host_access") or "full"
    if access not in ACCESS:
        problems.add(host, "bemore_host_access", "must be full or api_only, got %r" % (access,))
    api_from = inputs.get("bemore_api_from") or "controller"
    if api_from not in API_FROM:
        problems.add(host, "bemore_api_from", "must be controller or host, got %r" % (api_from,))
    elif api_from == "host" and access == "api_only":
        problems.add(host, "bemore_api_from", "is 'host' but the host has no shell (bemore_host_access: api_only)")
    source = inputs.get("bemore_log_source")
    if source not in (None, "") and source not in LOG_SOURCES:
        problems.add(host, "bemore_log_source", "must be journal, file or none, got %r" % (source,))
    app = inputs.get("bemore_app_dir")
    if app is not None and (not isinstance(app, str) or not app.startswith("/") or os.path.normpath(app) == "/"):
        problems.add(host, "bemore_app_dir", "must be an absolute path below /, got %r" % (app,))
    combined = dict(inputs)
    for values in roles_cfg.values():
        combined.update(values)
    for role, values in roles_cfg.items():
        merged = dict(inputs)
        merged.update(values)
        check_ranges(role, merged, host, problems, combined)
    check_ranges("runbook", inputs, host, problems, combined)
