"""The input rules of module_utils/runbook_plan.py, pinned at each bound.

Every numeric option is tried just under, at and just over each of its
bounds, and with a fraction where it must be whole: a rule that moves, opens
or closes by one step fails here. The rules that are not ranges (names,
paths, patterns, confirmations) are tried with what they must accept and what
they must refuse. The roles' declared defaults (roles/<role>/defaults/main.yml)
must pass every rule.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import REPO, register_module_utils, role_defaults

register_module_utils()

from ansible.module_utils import runbook_plan as plan  # noqa: E402  pylint: disable=wrong-import-position

HOST = "h1"

# (role, option, low, high, low_open, integer): the bounds check_ranges applies.
RANGES = [
    ("runbook", "bemore_api_timeout", 0, 300, True, False),
    ("runbook", "bemore_api_retries", 0, 10, False, True),
    ("health_check", "health_check_restart_tolerance", 0, None, False, False),
    ("error_monitoring", "error_monitoring_target_rate", 0, 100, False, False),
    ("error_monitoring", "error_monitoring_warning_rate", 0, 100, False, False),
    ("error_monitoring", "error_monitoring_critical_rate", 0, 100, False, False),
    ("error_monitoring", "error_monitoring_window_minutes", 0, 1440, True, False),
    ("error_monitoring", "error_monitoring_min_requests", 1, 1000000, False, True),
    ("error_monitoring", "error_monitoring_min_errors", 1, 1000000, False, True),
    ("error_monitoring", "error_monitoring_recent_limit", 1, 100, False, True),
    ("error_monitoring", "error_monitoring_history_days", 1, 3650, False, False),
    ("log_management", "log_management_budget_s", 0, 3600, True, False),
    ("log_management", "log_management_errors_warning", 1, None, False, True),
    ("log_management", "log_management_errors_critical", 1, None, False, True),
    ("disk_usage", "disk_usage_warning_percent", 0, 100, True, False),
    ("disk_usage", "disk_usage_critical_percent", 0, 100, True, False),
    ("disk_usage", "disk_usage_days_warning", 0, None, False, False),
    ("disk_usage", "disk_usage_days_critical", 0, None, False, False),
    ("disk_usage", "disk_usage_folder_limit_mb", 0, None, True, False),
    ("disk_usage", "disk_usage_folder_warning_ratio", 0, 1, True, False),
    ("disk_usage", "disk_usage_min_span_h", 0, None, False, False),
    ("disk_usage", "disk_usage_history_days", 1, 3650, False, False),
    ("tmp_cleanup", "tmp_cleanup_max_size_mb", 0, None, False, False),
    ("tmp_cleanup", "tmp_cleanup_interval_min", 1, 10080, False, True),
    ("tmp_cleanup", "tmp_cleanup_max_runtime_s", 0, 86400, True, False),
    ("performance_check", "performance_check_samples", 1, 100, False, True),
    ("performance_check", "performance_check_api_target_ms", 0, None, True, False),
    ("performance_check", "performance_check_slowness_factor", 1, None, False, False),
    ("performance_check", "performance_check_memory_target_mb", 0, None, True, False),
    ("performance_check", "performance_check_cpu_target_percent", 0, None, True, False),
    ("performance_check", "performance_check_cpu_sample_s", 0, 60, True, False),
    ("api_security", "api_security_tls_warning_days", 0, None, False, False),
    ("api_security", "api_security_tls_critical_days", 0, None, False, False),
    ("api_security", "api_security_rate_limit_probe_max", 1, 1000, False, True),
    ("maintenance_lock", "maintenance_lock_wait_s", 0, 86400, False, False),
    ("maintenance_lock", "maintenance_lock_poll_s", 0, 3600, True, False),
    ("maintenance_lock", "maintenance_lock_stale_after_s", 60, None, False, False),
    ("report", "report_keep", 1, None, False, True),
    ("db_maintenance", "db_maintenance_login_port", 1, 65535, False, True),
    ("db_maintenance", "db_maintenance_optimize_min_free_mb", 0, None, False, False),
    ("db_maintenance", "db_maintenance_optimize_min_fragmentation", 0, 1, False, False),
    ("db_maintenance", "db_maintenance_disk_margin_mb", 0, None, False, False),
    ("db_maintenance", "db_maintenance_backup_keep", 1, None, False, True),
    ("deploy", "deploy_wait_s", 1, 86400, False, False),
    ("deploy", "deploy_poll_s", 1, 3600, False, False),
    ("incident_response", "incident_response_recent_limit", 1, 100, False, True),
    ("incident_response", "incident_response_settle_s", 0, 3600, False, False),
]


def problems_of(role, cfg, inputs=None):
    found = plan.Problems()
    plan.check_ranges(role, cfg, HOST, found, inputs if inputs is not None else {"bemore_app_dir": "/srv/bemore/app"})
    return found.lines


def about(lines, option):
    return [line for line in lines if line.startswith("%s: %s: " % (HOST, option))]


def _cases():
    for role, option, low, high, low_open, integer in RANGES:
        # A step below a whole bound is still whole, so the integer rule does not mix in.
        step = 1 if integer else 0.5
        yield role, option, low - step, False, "under the low bound"
        yield role, option, low, not low_open, "at the low bound (%s)" % ("open" if low_open else "closed")
        yield role, option, low + step, True, "just over the low bound"
        if high is not None:
            yield role, option, high - step, True, "just under the high bound"
            yield role, option, high, True, "at the high bound"
            yield role, option, high + step, False, "over the high bound"
        if integer:
            yield role, option, low + 1.5, False, "a fraction where a whole number is needed"


CASES = list(_cases())


@pytest.mark.parametrize("role, option, value, accepted, where", CASES,
                         ids=["%s=%s (%s)" % (c[1], c[2], c[4]) for c in CASES])
def test_each_numeric_option_is_refused_exactly_outside_its_bounds(role, option, value, accepted, where):
    """A numeric option is accepted inside its bounds and refused, naming it, just outside them."""
    cfg = {option: value}
    if role == "tmp_cleanup":
        cfg.update(tmp_cleanup_path="/srv/bemore/app/tmp")
    got = about(problems_of(role, cfg), option)
    assert (got == []) is accepted, (where, got)
    if not accepted:
        assert len(got) == 1


@pytest.mark.parametrize("role, option", sorted(set((r[0], r[1]) for r in RANGES)))
def test_a_numeric_option_that_is_not_a_number_is_named(role, option):
    """A value that is not a number is one problem naming the option; an unset option is none."""
    got = about(problems_of(role, {option: "soon"}), option)
    assert got == ["%s: %s: must be a number, got 'soon'" % (HOST, option)]
    assert about(problems_of(role, {option: None}), option) == []


def test_the_bound_is_stated_in_the_problem():
    """The problem says which bound was crossed, open or closed, and the value given."""
    assert about(problems_of("runbook", {"bemore_api_timeout": 0}), "bemore_api_timeout") == [
        "h1: bemore_api_timeout: must be > 0, got 0"]
    assert about(problems_of("runbook", {"bemore_api_timeout": 301}), "bemore_api_timeout") == [
        "h1: bemore_api_timeout: must be <= 300, got 301"]
    assert about(problems_of("runbook", {"bemore_api_retries": -1}), "bemore_api_retries") == [
        "h1: bemore_api_retries: must be >= 0, got -1"]
    assert about(problems_of("runbook", {"bemore_api_retries": 2.5}), "bemore_api_retries") == [
        "h1: bemore_api_retries: must be a whole number, got 2.5"]


# --- the roles' declared defaults ---------------------------------------------------------

@pytest.mark.parametrize("role", sorted(set(r[0] for r in RANGES) - {"runbook"}))
def test_the_roles_declared_defaults_pass_the_range_rules(role):
    """Every numeric default a role declares lies inside its own bounds."""
    defaults = role_defaults(role)
    # A templated default is rendered by Ansible from another input; the rules see it then.
    options = [r[1] for r in RANGES if r[0] == role and r[1] in defaults and "{{" not in str(defaults[r[1]])]
    assert options, "role %s declares none of its numeric options" % role
    lines = problems_of(role, dict((o, defaults[o]) for o in options))
    assert [line for line in lines if any(line.startswith("%s: %s: " % (HOST, o)) for o in options)] == []


# --- order rules between thresholds ---------------------------------------------------------

@pytest.mark.parametrize("target, warning, critical, refused", [
    (0.1, 1.0, 5.0, False),
    (1.0, 1.0, 1.0, False),     # equal thresholds are in order
    (1.01, 1.0, 5.0, True),     # target above warning
    (0.1, 5.01, 5.0, True),     # warning above critical
    (0.1, 6.0, 5.0, True),
])
def test_error_rate_thresholds_must_be_in_order(target, warning, critical, refused):
    """target_rate <= warning_rate <= critical_rate, equal allowed."""
    got = about(problems_of("error_monitoring", {"error_monitoring_target_rate": target, "error_monitoring_warning_rate": warning,
                                                 "error_monitoring_critical_rate": critical}), "error_monitoring_target_rate")
    assert bool(got) is refused
    if refused:
        assert "target_rate <= warning_rate <= critical_rate" in got[0]


def test_error_rate_order_is_not_judged_when_one_threshold_is_unset():
    """With a threshold missing there is no order to check."""
    assert problems_of("error_monitoring", {"error_monitoring_target_rate": 9, "error_monitoring_warning_rate": 1}) == []


@pytest.mark.parametrize("warning, critical, refused", [(10, 100, False), (100, 100, False), (101, 100, True)])
def test_log_error_count_warning_must_not_exceed_critical(warning, critical, refused):
    """log_management_errors_warning <= errors_critical, equal allowed."""
    cfg = {"log_management_source": "none", "log_management_errors_warning": warning,
           "log_management_errors_critical": critical}
    got = about(problems_of("log_management", cfg), "log_management_errors_warning")
    assert bool(got) is refused


@pytest.mark.parametrize("warning, critical, refused", [(80, 90, False), (90, 90, False), (91, 90, True)])
def test_disk_warning_percent_must_not_exceed_critical(warning, critical, refused):
    """disk_usage_warning_percent <= critical_percent, equal allowed."""
    got = about(problems_of("disk_usage", {"disk_usage_warning_percent": warning, "disk_usage_critical_percent": critical}),
                "disk_usage_warning_percent")
    assert bool(got) is refused


@pytest.mark.parametrize("days_warning, days_critical, refused", [(14, 3, False), (3, 3, False), (3, 4, True)])
def test_disk_days_critical_must_not_exceed_days_warning(days_warning, days_critical, refused):
    """disk_usage_days_critical <= days_warning, equal allowed."""
    got = about(problems_of("disk_usage", {"disk_usage_days_warning": days_warning, "disk_usage_days_critical": days_critical}),
                "disk_usage_days_critical")
    assert bool(got) is refused


# --- the temp folder and the emergency cleanup ----------------------------------------------

TMP = {"tmp_cleanup_path": "/srv/bemore/app/tmp"}


@pytest.mark.parametrize("age, emergency, confirm, refused", [
    (1, False, False, False),       # one day is the shortest normal maximum age
    (0.99, False, False, True),     # just under a day is an emergency
    (0, False, False, True),
    (0.5, True, False, True),       # asked for but not confirmed
    (0.5, False, True, True),       # confirmed but not asked for
    (0.5, True, True, False),
    (0, True, True, False),
])
def test_a_maximum_age_below_one_day_needs_the_confirmed_emergency(age, emergency, confirm, refused):
    """max_age_days >= 1, or the emergency cleanup asked for and confirmed."""
    cfg = dict(TMP, tmp_cleanup_max_age_days=age, tmp_cleanup_emergency=emergency, tmp_cleanup_emergency_confirm=confirm)
    got = about(problems_of("tmp_cleanup", cfg), "tmp_cleanup_max_age_days")
    assert bool(got) is refused, got
    if refused:
        assert "below 1 day" in got[0]


def test_a_negative_maximum_age_is_a_range_problem_not_an_emergency():
    """A negative age is refused by its bound, not offered as an emergency cleanup."""
    got = about(problems_of("tmp_cleanup", dict(TMP, tmp_cleanup_max_age_days=-1)), "tmp_cleanup_max_age_days")
    assert got == ["h1: tmp_cleanup_max_age_days: must be >= 0, got -1"]


@pytest.mark.parametrize("run_cleanup, confirm, refused", [(True, False, True), (False, False, False), (True, True, False),
                                                           (None, False, True)])
def test_the_emergency_cleanup_needs_its_confirmation_when_it_runs(run_cleanup, confirm, refused):
    """tmp_cleanup_emergency without its confirmation stops a run that cleans (run_cleanup defaults to true)."""
    cfg = dict(TMP, tmp_cleanup_emergency=True, tmp_cleanup_emergency_confirm=confirm)
    if run_cleanup is not None:
        cfg["tmp_cleanup_run_cleanup"] = run_cleanup
    assert bool(about(problems_of("tmp_cleanup", cfg), "tmp_cleanup_emergency")) is refused


@pytest.mark.parametrize("path, app, refused", [
    ("/srv/bemore/app/tmp", "/srv/bemore/app", False),
    ("/srv/bemore/app", "/srv/bemore/app", True),          # the app folder itself
    ("/srv/bemore/app/", "/srv/bemore/app", True),
    ("/srv/bemore", "/srv/bemore/app", True),               # a folder that holds the app
    ("/srv/bemore/app2", "/srv/bemore/app", False),         # a sibling sharing the prefix
    ("/srv/bemore/app", "/srv/bemore/app/tmp/..", True),     # the app folder, normalised
    ("/", "/srv/bemore/app", True),
    ("/srv/bemore/app", None, False),                       # no app folder to protect
    ("/srv/bemore/app", "relative/app", False),
])
def test_the_temp_folder_is_never_the_app_folder_or_above_it(path, app, refused):
    """tmp_cleanup_path must not be /, the app folder or a folder that holds it."""
    got = about(problems_of("tmp_cleanup", {"tmp_cleanup_path": path}, {"bemore_app_dir": app}), "tmp_cleanup_path")
    assert bool(got) is refused, got


@pytest.mark.parametrize("value, problem", [
    (None, "must be set"), ("", "must be set"), ("tmp", "must be an absolute path, got 'tmp'"),
    (42, "must be an absolute path, got 42")])
def test_the_temp_folder_must_be_an_absolute_path(value, problem):
    """tmp_cleanup_path is required and absolute."""
    assert about(problems_of("tmp_cleanup", {"tmp_cleanup_path": value}), "tmp_cleanup_path") == [
        "h1: tmp_cleanup_path: " + problem]


@pytest.mark.parametrize("manage, env_file, refused", [
    (True, "/srv/bemore/app/.env", False), (True, ".env", True), (False, ".env", False), (True, "", False)])
def test_the_env_file_must_be_absolute_when_it_is_managed(manage, env_file, refused):
    """tmp_cleanup_env_file must be absolute when tmp_cleanup_manage_env is on."""
    cfg = dict(TMP, tmp_cleanup_manage_env=manage, tmp_cleanup_env_file=env_file)
    assert bool(about(problems_of("tmp_cleanup", cfg), "tmp_cleanup_env_file")) is refused


# --- names, paths and patterns ----------------------------------------------------------------

DB = {"db_maintenance_schema": "bemore", "db_maintenance_backup": False}


@pytest.mark.parametrize("schema, accepted", [
    ("bemore", True), ("bemore_prod$1", True), ("a" * 64, True), ("a" * 65, False), ("", False), (None, False),
    ("bemore; DROP TABLE users", False), ("be-more", False), ("bemore\n", False), ("`bemore`", False), (7, False)])
def test_the_schema_is_a_plain_sql_identifier(schema, accepted):
    """db_maintenance_schema: letters, digits, _ and $, 1 to 64 characters, nothing else."""
    got = about(problems_of("db_maintenance", dict(DB, db_maintenance_schema=schema)), "db_maintenance_schema")
    assert (got == []) is accepted, got


@pytest.mark.parametrize("tables, bad", [
    (["users", "Session", "t$1"], []), ([], []), (None, []), (["users", "x y"], ["'x y'"]),
    (["users;--", 5], ["'users;--'", "5"]), (["a" * 65], ["'%s'" % ("a" * 65)])])
def test_the_tables_to_optimize_are_plain_sql_identifiers(tables, bad):
    """db_maintenance_optimize_tables: each a plain identifier; the bad ones are all named."""
    got = about(problems_of("db_maintenance", dict(DB, db_maintenance_optimize_tables=tables)), "db_maintenance_optimize_tables")
    if not bad:
        assert got == []
    else:
        assert len(got) == 1 and got[0].endswith("got " + ", ".join(bad))


@pytest.mark.parametrize("socket_path, refused", [("/run/mysqld/mysqld.sock", False), ("", False), ("mysqld.sock", True)])
def test_the_database_socket_is_absolute_or_empty(socket_path, refused):
    """db_maintenance_login_unix_socket: an absolute path or empty."""
    got = about(problems_of("db_maintenance", dict(DB, db_maintenance_login_unix_socket=socket_path)),
                "db_maintenance_login_unix_socket")
    assert bool(got) is refused


BACKUP = dict(DB, db_maintenance_backup=True, db_maintenance_backup_dir="/var/backups/bemore",
              db_maintenance_backup_stamp_format="%Y%m%dT%H%M%SZ", db_maintenance_backup_keep=7)


def test_a_valid_backup_configuration_has_no_problem():
    """The backup settings of the role's defaults pass."""
    assert problems_of("db_maintenance", BACKUP) == []


@pytest.mark.parametrize("option, value, problem", [
    ("db_maintenance_backup_dir", "/", "must not be the root folder"),
    ("db_maintenance_backup_dir", None, "must be set"),
    ("db_maintenance_backup_stamp_format", "%Y/%m", "cannot be part of a file name"),
    ("db_maintenance_backup_stamp_format", "   ", "cannot be part of a file name"),
    ("db_maintenance_backup_stamp_format", ".", "cannot be part of a file name"),
    ("db_maintenance_backup_stamp_format", "..", "cannot be part of a file name"),
    ("db_maintenance_backup_stamp_format", "latest", "has no time field"),
    ("db_maintenance_backup_keep", 0, "must be >= 1"),
])
def test_a_backup_that_would_be_unsafe_or_overwritten_is_refused(option, value, problem):
    """The backup folder is never /, the stamp makes one distinct file name per run."""
    got = about(problems_of("db_maintenance", dict(BACKUP, **{option: value})), option)
    assert len(got) == 1 and problem in got[0], got


def test_the_backup_rules_apply_only_when_the_backup_runs():
    """With db_maintenance_backup false its folder, stamp and count are not judged."""
    cfg = dict(BACKUP, db_maintenance_backup=False, db_maintenance_backup_dir="/", db_maintenance_backup_keep=0,
               db_maintenance_backup_stamp_format="latest")
    assert problems_of("db_maintenance", cfg) == []
    del cfg["db_maintenance_backup"]  # the backup runs unless switched off
    assert len(problems_of("db_maintenance", cfg)) == 3


@pytest.mark.parametrize("commit, accepted", [
    ("0123abc", True), ("main", True), ("release/v1.2_rc-3", True), ("A", True), ("a" * 100, True),
    ("a" * 101, False), ("", False), (None, False), ("-rf", False), (".hidden", False), ("/abs", False),
    ("main; rm -rf /", False), ("main\n", False), ("ref with space", False), (12345, False)])
def test_the_deploy_commit_is_a_commit_id_or_ref(commit, accepted):
    """deploy_commit: starts with a letter or digit, then letters, digits, . _ / -, at most 100."""
    got = about(problems_of("deploy", {"deploy_commit": commit}), "bemore_deploy_commit")
    assert (got == []) is accepted, got
    if not accepted:
        assert got[0].endswith("got %r; nothing was deployed" % (commit,))


@pytest.mark.parametrize("role, option, base", [
    ("performance_check", "performance_check_paths", {}),
])
def test_api_paths_start_with_a_slash(role, option, base):
    """performance_check_paths: each path starts with '/'."""
    assert about(problems_of(role, dict(base, **{option: ["/health", "/api/errors/stats"]})), option) == []
    assert len(about(problems_of(role, dict(base, **{option: ["/health", "health", 3]})), option)) == 2


@pytest.mark.parametrize("source, extra, option, refused", [
    ("journal", {"log_management_journal_unit": "bemore"}, "log_management_journal_unit", False),
    ("journald", {"log_management_journal_unit": "bemore"}, "log_management_journal_unit", False),
    ("journal", {}, "log_management_journal_unit", True),
    ("file", {"log_management_files": ["/var/log/bemore/app.log"]}, "log_management_files", False),
    ("files", {"log_management_files": ["/var/log/bemore/app.log"]}, "log_management_files", False),
    ("file", {}, "log_management_files", True),
    ("file", {"log_management_files": ["app.log"]}, "log_management_files", True),
    ("none", {}, "log_management_source", False),
    ("syslog", {}, "log_management_source", True),
    (None, {}, "log_management_source", True),
])
def test_the_log_source_needs_what_it_reads(source, extra, option, refused):
    """A journal source names its unit, a file source lists absolute files, other sources are refused."""
    got = about(problems_of("log_management", dict({"log_management_source": source}, **extra)), option)
    assert bool(got) is refused, got


def test_the_disk_paths_are_absolute():
    """disk_usage_filesystem_of is required and absolute; disk_usage_folder is optional but absolute."""
    assert about(problems_of("disk_usage", {}), "disk_usage_filesystem_of") == ["h1: disk_usage_filesystem_of: must be set"]
    assert about(problems_of("disk_usage", {"disk_usage_filesystem_of": "/srv"}), "disk_usage_filesystem_of") == []
    assert about(problems_of("disk_usage", {}), "disk_usage_folder") == []
    assert len(about(problems_of("disk_usage", {"disk_usage_folder": "tmp"}), "disk_usage_folder")) == 1


# --- incident confirmations -----------------------------------------------------------------

@pytest.mark.parametrize("ask, confirm", [("emergency_cleanup", "confirm_emergency_cleanup"), ("restart", "confirm_restart")])
def test_a_destructive_mitigation_needs_its_own_confirmation(ask, confirm):
    """incident_response_<ask> without incident_response_<confirm> is refused; with it, accepted."""
    option = "incident_response_" + ask
    got = about(problems_of("incident_response", {option: True}), option)
    assert len(got) == 1 and ("set incident_response_%s=true" % confirm) in got[0]
    assert about(problems_of("incident_response", {option: True, "incident_response_" + confirm: True}), option) == []
    assert about(problems_of("incident_response", {option: False}), option) == []


@pytest.mark.parametrize("ask", ["read_only", "disable_features"])
def test_degrading_the_service_needs_its_confirmation(ask):
    """read_only or disable_features needs incident_response_confirm_degrade."""
    cfg = {"incident_response_" + ask: True}
    assert len(about(problems_of("incident_response", cfg), "incident_response_read_only")) == 1
    cfg["incident_response_confirm_degrade"] = True
    assert problems_of("incident_response", cfg) == []


# --- group-level inputs -----------------------------------------------------------------------

def host_problems(inputs, roles_cfg=None, info=None):
    found = plan.Problems()
    plan.validate_host(HOST, dict({"bemore_base_url": "https://api.example"}, **inputs), roles_cfg or {}, found, info)
    return found.lines


@pytest.mark.parametrize("inputs, option, refused", [
    ({"bemore_host_access": "full"}, "bemore_host_access", False),
    ({"bemore_host_access": "api_only"}, "bemore_host_access", False),
    ({"bemore_host_access": "ssh"}, "bemore_host_access", True),
    ({"bemore_api_from": "host"}, "bemore_api_from", False),
    ({"bemore_api_from": "elsewhere"}, "bemore_api_from", True),
    ({"bemore_api_from": "host", "bemore_host_access": "api_only"}, "bemore_api_from", True),
    ({"bemore_log_source": "journald"}, "bemore_log_source", False),
    ({"bemore_log_source": ""}, "bemore_log_source", False),
    ({"bemore_log_source": "syslog"}, "bemore_log_source", True),
    ({"bemore_app_dir": "/srv/bemore/app"}, "bemore_app_dir", False),
    ({"bemore_app_dir": "/"}, "bemore_app_dir", True),
    ({"bemore_app_dir": "/srv/.."}, "bemore_app_dir", True),
    ({"bemore_app_dir": "srv/app"}, "bemore_app_dir", True),
    ({"bemore_app_dir": 5}, "bemore_app_dir", True),
])
def test_the_group_level_inputs(inputs, option, refused):
    """bemore_host_access, bemore_api_from, bemore_log_source and bemore_app_dir take only their listed forms."""
    got = about(host_problems(inputs), option)
    assert bool(got) is refused, got


def test_the_runbook_inputs_are_checked_with_the_hosts():
    """validate_host applies the runbook's own ranges (API timeout and retries)."""
    assert about(host_problems({"bemore_api_timeout": 0}), "bemore_api_timeout")
    assert about(host_problems({"bemore_api_retries": 11}), "bemore_api_retries")
    assert host_problems({"bemore_api_timeout": 300, "bemore_api_retries": 10}) == []


def test_the_role_options_are_checked_with_the_group_inputs_merged():
    """A role's rules see the group inputs (the app folder) and its own options."""
    got = host_problems({"bemore_app_dir": "/srv/bemore/app"}, {"tmp_cleanup": {"tmp_cleanup_path": "/srv/bemore"}})
    assert len(about(got, "tmp_cleanup_path")) == 1


@pytest.mark.parametrize("url, connection, api_from, refused", [
    ("http://127.0.0.1:3000", "ssh", None, True),
    ("http://127.0.0.1:3000", "ssh", "controller", True),
    ("http://127.0.0.1:3000", "ssh", "host", False),
    ("http://127.0.0.1:3000", "local", None, False),
    ("http://127.0.0.1:3000", None, None, False),
    ("http://localhost:3000", "ssh", None, True),
    ("http://[::1]:3000", "ssh", None, True),
    ("https://api.example", "ssh", None, False),
])
def test_a_loopback_api_read_from_the_controller_is_refused(url, connection, api_from, refused):
    """A loopback base URL on a remote host must be read by the host itself (bemore_api_from: host)."""
    inputs = {"bemore_base_url": url}
    if api_from:
        inputs["bemore_api_from"] = api_from
    got = about(host_problems(inputs, info={"connection": connection} if connection else None), "bemore_api_from")
    assert bool(got) is refused, got


@pytest.mark.parametrize("url, loopback", [
    ("http://127.0.0.1:3000", True), ("http://127.1.2.3", True), ("http://LOCALHOST:1", True), ("http://[::1]:3", True),
    ("https://api.example", False), ("http://128.0.0.1", False), ("http://localhost.example", False), ("", False), (None, False)])
def test_what_counts_as_loopback(url, loopback):
    """127.0.0.0/8, localhost and ::1 are loopback; nothing else is."""
    assert plan.is_loopback(url) is loopback


# --- the plan -----------------------------------------------------------------------------

def test_the_api_timeout_and_retries_reach_the_plan():
    """The plan carries the API timeout and retries given, 10 s and 2 retries when unset, and 0 retries as 0."""
    base = {"bemore_base_url": "https://api.example"}
    assert plan.build_plan(HOST, base, {}, [])["api"]["timeout"] == 10.0
    assert plan.build_plan(HOST, base, {}, [])["api"]["retries"] == 2
    got = plan.build_plan(HOST, dict(base, bemore_api_timeout=2.5, bemore_api_retries=0), {}, [])["api"]
    assert (got["timeout"], got["retries"]) == (2.5, 0)


def test_the_tls_files_reach_the_plan_and_a_key_needs_its_certificate():
    """The CA bundle, client certificate and key given reach the plan's API options (None when unset or empty)."""
    base = {"bemore_base_url": "https://api.example"}
    got = plan.build_plan(HOST, dict(base, bemore_api_ca_path="/etc/ca.pem", bemore_api_client_cert="/c.pem",
                                     bemore_api_client_key="/k.pem"), {}, [])["api"]
    assert (got["ca_path"], got["client_cert"], got["client_key"]) == ("/etc/ca.pem", "/c.pem", "/k.pem")
    got = plan.build_plan(HOST, dict(base, bemore_api_ca_path=""), {}, [])["api"]
    assert (got["ca_path"], got["client_cert"], got["client_key"]) == (None, None, None)
    assert about(problems_of("runbook", {"bemore_api_client_key": "/k.pem"}), "bemore_api_client_key") == [
        "h1: bemore_api_client_key: is set without bemore_api_client_cert"]
    assert problems_of("runbook", {"bemore_api_client_key": "/k.pem", "bemore_api_client_cert": "/c.pem"}) == []
    assert problems_of("runbook", {"bemore_api_client_cert": "/both.pem"}) == []


# --- what each host's plan reads ---------------------------------------------------------------

BASE = {"bemore_base_url": "https://api.example"}
ALL = ["health_check", "error_monitoring", "log_management", "disk_usage", "tmp_cleanup", "performance_check", "api_security"]


def full_plan(inputs=None, roles=None, selected=ALL):
    roles = roles if roles is not None else {
        "disk_usage": {"disk_usage_filesystem_of": "/srv", "disk_usage_folder": "/srv/app/tmp"},
        "tmp_cleanup": {"tmp_cleanup_path": "/srv/app/tmp"},
        "performance_check": {"performance_check_systemd_unit": "bemore", "performance_check_pid_file": "/run/b.pid",
                              "performance_check_cpu_sample_s": 2},
        "log_management": {"log_management_source": "file", "log_management_files": ["/var/log/app.log"],
                           "log_management_budget_s": 30, "log_management_first_run": "end"},
        "error_monitoring": {"error_monitoring_window_minutes": 2.5}}
    return plan.build_plan(HOST, dict(BASE, **(inputs or {})), roles, selected)


def test_a_full_host_plan_reads_each_selected_check_on_the_host():
    """With shell access the host module reads the disk, the temp folder, the process (its most specific handle) and the log."""
    got = full_plan()
    assert got["host_plan"] == {
        "disk": {"filesystem_of": "/srv", "folder": "/srv/app/tmp"},
        "tmp_folder": "/srv/app/tmp",
        "process": {"systemd_unit": "bemore", "sample_s": 2},
        "log": {"source": "file", "files": ["/var/log/app.log"], "first_run": "end", "budget_s": 30, "window_s": 150,
                "uses": ["review", "errors"], "probe_origin": None}}
    assert got["not_applicable"] == {} and got["access"] == "full" and got["api_from"] == "controller"
    assert got["selected"] == ALL and set(got["cfg"]) == set(ALL)
    assert got["cfg"]["tmp_cleanup"] == {"path": "/srv/app/tmp"}


def test_the_plan_defaults_of_the_host_readings():
    """Unset options take the plan's defaults: no folder, a 1 s CPU sample, start-of-log first run, 60 s budget, 5 min window."""
    roles = {"disk_usage": {"disk_usage_filesystem_of": "/srv"}, "performance_check": {"performance_check_cmdline_regex": "node"},
             "log_management": {}, "tmp_cleanup": {}}
    selected = ["disk_usage", "performance_check", "log_management"]
    got = plan.build_plan(HOST, dict(BASE, bemore_service_name="bemore"), roles, selected)
    assert got["host_plan"]["disk"] == {"filesystem_of": "/srv", "folder": None}
    assert got["host_plan"]["process"] == {"cmdline_regex": "node", "sample_s": 1}
    assert got["host_plan"]["log"] == {"source": "journal", "unit": "bemore", "first_run": "start", "budget_s": 60,
                                       "window_s": 300, "uses": ["review"], "probe_origin": None}


def test_the_process_is_found_by_the_most_specific_handle():
    """systemd unit before pid file before command line; none given means no process reading."""
    perf = {"performance_check_pid_file": "/run/b.pid", "performance_check_cmdline_regex": "node"}
    got = plan.build_plan(HOST, BASE, {"performance_check": perf}, ["performance_check"])
    assert got["host_plan"]["process"] == {"pid_file": "/run/b.pid", "sample_s": 1}
    got = plan.build_plan(HOST, BASE, {"performance_check": {}}, ["performance_check"])
    assert "process" not in got["host_plan"]


def test_no_log_source_makes_the_review_not_applicable():
    """With no log source the log review is not applicable and the error rate has no log to read."""
    got = plan.build_plan(HOST, BASE, {"log_management": {}}, ["log_management", "error_monitoring"])
    assert "log" not in got["host_plan"]
    assert got["not_applicable"] == {"log_management": "no log source is configured (bemore_log_source: none)"}
    got = plan.build_plan(HOST, BASE, {}, ["error_monitoring"])
    assert got["not_applicable"] == {} and "log" not in got["host_plan"]
    got = plan.build_plan(HOST, dict(BASE, bemore_service_name="bemore"), {}, ["error_monitoring"])
    assert got["host_plan"]["log"]["uses"] == ["errors"]


def test_an_api_only_host_reads_nothing_on_the_host():
    """Without a shell the disk and log checks are not applicable, and the API is never read from the host."""
    got = full_plan({"bemore_host_access": "api_only", "bemore_api_from": "host"})
    assert got["host_plan"] == {}
    assert set(got["not_applicable"]) == {"log_management", "disk_usage"}
    assert "provider's log stream" in got["not_applicable"]["log_management"]


def test_a_host_that_reads_its_own_api_gets_the_sweep_in_its_plan():
    """bemore_api_from: host puts the API reading, its wants and settings, into the host's own plan."""
    got = full_plan({"bemore_api_from": "host"})
    assert got["host_plan"]["api"] == {"api": got["api"], "wants": got["wants"], "cfg": got["sweep_cfg"]}
    assert "api" not in full_plan()["host_plan"]


def test_the_sweep_reads_what_the_selected_checks_need():
    """The wants are the union of the selected checks' needs; roles outside the sweep are ignored."""
    got = plan.build_plan(HOST, BASE, {}, ["health_check", "performance_check", "db_maintenance"])
    assert got["wants"] == ["health", "latency", "monitoring"] and got["selected"] == ["health_check", "performance_check"]


@pytest.mark.parametrize("checks, wants", [
    (None, ["cors", "rate", "tls"]), (["tls"], ["tls"]), (["rate_limit", "cors"], ["cors", "rate"]), ([], [])])
def test_api_security_reads_only_its_selected_checks(checks, wants):
    """api_security_checks picks which of TLS, CORS and the rate limit the sweep reads."""
    roles = {"api_security": {} if checks is None else {"api_security_checks": checks}}
    assert plan.build_plan(HOST, BASE, roles, ["api_security"])["wants"] == wants


def test_the_sweep_settings():
    """The sweep's settings come from the roles, with the frontend origin falling back to the group's."""
    roles = {"performance_check": {"performance_check_paths": ["/a"], "performance_check_samples": 3},
             "api_security": {"api_security_foreign_origin": "https://evil.example", "api_security_cors_path": "/c",
                              "api_security_rate_limit_probe": True, "api_security_rate_limit_probe_max": 9,
                              "api_security_rate_limit_path": "/r"}}
    got = plan.build_plan(HOST, dict(BASE, bemore_frontend_origin="https://app.example", bemore_validate_certs=False), roles,
                          [])
    assert got["sweep_cfg"] == {"latency_paths": ["/a"], "latency_samples": 3, "frontend_origin": "https://app.example",
                                "foreign_origin": "https://evil.example", "cors_path": "/c", "rate_limit_probe": True,
                                "rate_limit_probe_max": 9, "rate_limit_path": "/r", "validate_certs": False}
    assert got["api"]["validate_certs"] is False
    bare = plan.build_plan(HOST, BASE, {}, [])
    assert (bare["sweep_cfg"]["latency_paths"], bare["sweep_cfg"]["latency_samples"], bare["sweep_cfg"]["rate_limit_probe_max"],
            bare["sweep_cfg"]["rate_limit_probe"], bare["api"]["validate_certs"]) == (["/health"], 5, 50, False, True)
    assert bare["app_dir"] is None and plan.build_plan(HOST, dict(BASE, bemore_app_dir="/a"), {}, [])["app_dir"] == "/a"


def test_inputs_the_frame_found_undefined_are_dropped():
    """defined() drops the frame's undefined marker; split_inputs separates the runbook's inputs from the roles'."""
    gathered = {"runbook": {"bemore_base_url": "u", "bemore_x": plan.UNDEFINED}, "disk_usage": {"disk_usage_a": 1},
                "__host": {"ignored": True}}
    assert plan.split_inputs(gathered) == ({"bemore_base_url": "u"}, {"disk_usage": {"disk_usage_a": 1}})
    assert plan.split_inputs(None) == ({}, {})
    assert plan.defined(None) == {}


def test_strip_removes_the_role_prefix_only_from_its_own_options():
    """strip('disk_usage', cfg) keeps disk_usage_* options without the prefix and drops the rest."""
    assert plan.strip("disk_usage", {"disk_usage_folder": "/t", "disk_usagefolder": 1, "other_x": 2}) == {"folder": "/t"}


@pytest.mark.parametrize("inputs, log_cfg, expected", [
    ({}, {}, ("none", [], "")),
    ({"bemore_service_name": "bemore"}, {}, ("journal", [], "bemore")),
    ({"bemore_service_name": "bemore"}, {"journal_unit": "api"}, ("journal", [], "api")),
    ({"bemore_log_source": "file", "bemore_log_files": ["/a"]}, {}, ("file", ["/a"], "")),
    ({"bemore_log_source": "file", "bemore_log_files": ["/a"]}, {"source": "journald", "files": ["/b"]}, ("journal", ["/b"], "")),
    ({"bemore_log_source": "syslog"}, {}, ("none", [], ""))])
def test_the_log_source_role_options_first(inputs, log_cfg, expected):
    """log_source: the role's options before the group's; a unit alone means the journal; an unknown source is none."""
    assert plan.log_source(inputs, log_cfg) == expected


def test_a_check_named_by_its_sweep_name_is_kept():
    """api_security_checks may name the sweep's own check names too (rate as well as rate_limit)."""
    assert plan.build_plan(HOST, BASE, {"api_security": {"api_security_checks": ["rate"]}}, ["api_security"])["wants"] == ["rate"]


def test_a_selected_role_without_options_has_an_empty_config():
    """Each selected check gets its options in the plan, {} when none were given."""
    assert plan.build_plan(HOST, BASE, {}, ["health_check"])["cfg"] == {"health_check": {}}


@pytest.mark.parametrize("role", ["security_audit", "dependency_updates"])
def test_the_npm_roles_options_are_checked_with_the_others(role):
    """security_audit_* and dependency_updates_* options go through the npm modules' own rules, named with their prefix."""
    got = problems_of(role, {role + "_fetch_timeout": 0, role + "_app_dir": "relative"})
    assert sorted(line.split(": ")[1] for line in got) == [role + "_app_dir", role + "_fetch_timeout"]
    assert problems_of(role, {role + "_fetch_timeout": 30, role + "_app_dir": "/srv/bemore/app"}) == []


def test_the_problem_texts_carry_the_value_given():
    """A refused value is quoted in its problem, so the reader sees what to change."""
    got = about(problems_of("tmp_cleanup", dict(TMP, tmp_cleanup_max_age_days=0.5)), "tmp_cleanup_max_age_days")
    assert got[0].startswith("h1: tmp_cleanup_max_age_days: 0.5 is below 1 day")
    got = about(problems_of("incident_response", {"incident_response_read_only": True}), "incident_response_read_only")
    assert got == ["h1: incident_response_read_only: read-only mode or disabled features asked for without "
                   "incident_response_confirm_degrade=true"]
    got = about(problems_of("db_maintenance", dict(BACKUP, db_maintenance_backup_stamp_format="%Y\x00")),
                "db_maintenance_backup_stamp_format")
    assert len(got) == 1 and got[0].startswith("h1: db_maintenance_backup_stamp_format: is not a strftime format: ")


def test_an_app_folder_that_is_not_text_protects_nothing_and_breaks_nothing():
    """A non-text bemore_app_dir (refused by validate_host) does not crash the temp folder rule."""
    assert about(problems_of("tmp_cleanup", {"tmp_cleanup_path": "/srv"}, {"bemore_app_dir": 5}), "tmp_cleanup_path") == []


def test_the_roles_frontend_origin_comes_before_the_groups():
    """api_security_frontend_origin, when set, is the origin the CORS check expects, not bemore_frontend_origin."""
    roles = {"api_security": {"api_security_frontend_origin": "https://role.example"}}
    got = plan.build_plan(HOST, dict(BASE, bemore_frontend_origin="https://group.example"), roles, ["api_security"])
    assert got["sweep_cfg"]["frontend_origin"] == "https://role.example"


def test_a_log_source_set_to_none_reads_no_journal_even_with_a_unit():
    """bemore_log_source: none wins over a known service unit: nothing is read, and the review is not applicable."""
    got = plan.build_plan(HOST, dict(BASE, bemore_log_source="none", bemore_service_name="bemore"), {"log_management": {}},
                          ["log_management", "error_monitoring"])
    assert "log" not in got["host_plan"]
    assert set(got["not_applicable"]) == {"log_management"}


def test_the_cors_probe_origin_reaches_the_log_reading():
    """The foreign origin the CORS probe sends is the one the log core leaves out of the refusals it counts."""
    roles = {"api_security": {"api_security_foreign_origin": "https://evil.example"}}
    got = plan.build_plan(HOST, dict(BASE, bemore_service_name="bemore"), roles, ["error_monitoring", "api_security"])
    assert got["host_plan"]["log"]["probe_origin"] == "https://evil.example"


def test_the_plan_names_its_host_and_app_folder():
    """The plan carries the host it is for and the app folder given."""
    got = plan.build_plan(HOST, dict(BASE, bemore_app_dir="/srv/app"), {}, [])
    assert (got["host"], got["app_dir"]) == (HOST, "/srv/app")


@pytest.mark.parametrize("age, refused", [(3649.5, False), (3650, False), (3650.5, True)])
def test_the_maximum_age_has_an_upper_bound_of_ten_years(age, refused):
    """tmp_cleanup_max_age_days is at most 3650 (the low end, below one day, is the emergency rule's)."""
    got = about(problems_of("tmp_cleanup", {"tmp_cleanup_max_age_days": age, "tmp_cleanup_path": "/srv/bemore/app/tmp"}),
                "tmp_cleanup_max_age_days")
    assert got == (["%s: tmp_cleanup_max_age_days: must be <= 3650, got %s" % (HOST, age)] if refused else [])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan"])
def test_a_number_that_is_not_finite_is_refused(value):
    """nan passes every comparison and inf overflows later: both are refused, naming the value."""
    got = about(problems_of("report", {"report_keep": value}), "report_keep")
    assert got == ["%s: report_keep: must be a finite number, got %s" % (HOST, value)]
