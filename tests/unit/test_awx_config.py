"""AWX as code: schedules fire on the intended days, every template's
playbook exists, the survey answers real variables, the AWX playbook passes
syntax check, and the execution environment definition builds a context."""

from __future__ import annotations

import datetime
import itertools
import os
import re
import subprocess

import pytest
import yaml
from dateutil import rrule as du_rrule
from dateutil import tz

from tests.conftest import VENV_BIN
from tests.helpers import REPO

AWX = yaml.safe_load(open(os.path.join(REPO, "playbooks", "vars", "awx.yml")))
SCHEDULES = {s["template"]: s["rrule"] for s in AWX["awx_schedules"]}


def occurrences(rule, count=8):
    return list(du_rrule.rrulestr(rule.replace(" RRULE:", "\nRRULE:")))[:count]


@pytest.mark.parametrize("schedule", AWX["awx_schedules"], ids=lambda s: s["name"])
def test_rrules_follow_awx_rules(schedule):
    rule = schedule["rrule"]
    assert re.match(r"^DTSTART;TZID=[A-Za-z_/]+:\d{8}T\d{6} RRULE:", rule), "DTSTART with a time zone first"
    assert "INTERVAL=" in rule
    assert "SECONDLY" not in rule
    assert not re.search(r"BYDAY=[^;]*\d", rule), "numbered BYDAY is refused by AWX"
    assert not ("COUNT=" in rule and "UNTIL=" in rule)
    assert "RDATE" not in rule and "EXDATE" not in rule
    if schedule.get("system_job"):
        # AWX's own system job templates (job cleanup), which exist in every AWX.
        assert schedule["template"] in ("Cleanup Job Details", "Cleanup Activity Stream")
    else:
        assert schedule["template"] in {t["name"] for t in AWX["awx_job_templates"]}


def test_daily_fires_every_day_at_six_seoul_time():
    runs = occurrences(SCHEDULES["BeMore daily checks"])
    assert all(r.hour == 6 and r.minute == 0 for r in runs)
    assert all(r.tzinfo.utcoffset(r) == datetime.timedelta(hours=9) for r in runs)
    assert [(b - a).days for a, b in zip(runs, runs[1:])] == [1] * 7


def test_weekly_fires_on_mondays():
    runs = occurrences(SCHEDULES["BeMore weekly maintenance"])
    assert {r.weekday() for r in runs} == {0}
    assert [(b - a).days for a, b in zip(runs, runs[1:])] == [7] * 7


def test_monthly_fires_on_the_first():
    runs = occurrences(SCHEDULES["BeMore monthly maintenance"], 12)
    assert {r.day for r in runs} == {1} and len({r.month for r in runs}) == 12


def test_quarterly_fires_at_the_start_of_each_quarter():
    runs = occurrences(SCHEDULES["BeMore quarterly review"])
    assert [(r.month, r.day) for r in runs[:4]] == [(1, 1), (4, 1), (7, 1), (10, 1)]
    assert runs[0].astimezone(tz.UTC).hour == 0  # 09:00 in Seoul


def test_every_job_template_runs_an_existing_playbook_with_its_inventory():
    inventories = {i["name"]: i["source_path"] for i in AWX["awx_inventories"]}
    for template in AWX["awx_job_templates"]:
        assert os.path.isfile(os.path.join(REPO, template["playbook"])), template
        assert os.path.isdir(os.path.join(REPO, inventories[template["inventory"]]))
    playbooks = {t["playbook"] for t in AWX["awx_job_templates"]}
    schedules = {"playbooks/%s.yml" % s for s in ("daily", "weekly", "monthly", "quarterly", "predeploy",
                                                    "postdeploy", "incident")}
    assert schedules <= playbooks


def test_the_incident_survey_answers_the_role_confirmation_variables():
    spec = yaml.safe_load(open(os.path.join(REPO, "roles", "incident_response", "meta", "argument_specs.yml")))
    options = spec["argument_specs"]["main"]["options"]
    survey = AWX["awx_surveys"]["incident"]["spec"]
    names = [q["variable"] for q in survey]
    assert set(names) <= set(options)
    for name in names:
        assert options[name]["type"] == "bool"
    for question in survey:
        assert question["default"] == "false", "a destructive action must never be the default"
    # Every action has its confirmation in the survey.
    assert {"incident_response_confirm_emergency_cleanup", "incident_response_confirm_restart",
            "incident_response_confirm_degrade"} <= set(names)


def test_no_secret_is_stored_in_the_awx_configuration():
    text = open(os.path.join(REPO, "playbooks", "vars", "awx.yml")).read().lower()
    assert not re.search(r"\b(password|token|secret)\s*:", text)
    playbook = open(os.path.join(REPO, "playbooks", "awx_configure.yml")).read()
    assert "awx_notification_webhook_url" in playbook and "no_log: true" in playbook


def test_awx_playbook_passes_syntax_check():
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "--syntax-check",
                           os.path.join(REPO, "playbooks", "awx_configure.yml")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_execution_environment_build_context(tmp_path):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-builder"), "create", "-f",
                           os.path.join(REPO, "execution-environment.yml"), "-c", str(tmp_path / "ctx")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text()
    assert "ansible-core==2.19.14 ansible-runner==2.4.3" in containerfile
    build = tmp_path / "ctx" / "_build"
    assert "awx.awx" in (build / "requirements.yml").read_text()
    assert "pymysql" in (build / "requirements.txt").read_text()
    assert "mariadb-client" in (build / "bindep.txt").read_text()


def _job_template_task():
    with open(os.path.join(REPO, "playbooks", "awx_configure.yml"), encoding="utf-8") as handle:
        play = yaml.safe_load(handle)[0]
    return next(t for t in play["tasks"] if "awx.awx.job_template" in t and "loop" in t
                and t["loop"] == "{{ awx_job_templates }}")["awx.awx.job_template"]


def _render(value, variables):
    import jinja2  # pylint: disable=import-outside-toplevel

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["regex_replace"] = lambda text, pattern, repl: re.sub(pattern, repl, text)
    if isinstance(value, dict):
        return dict((k, _render(v, variables)) for k, v in value.items())
    if isinstance(value, str):
        return env.from_string(value).render(**variables)
    return value


def _job_template_vars():
    with open(os.path.join(REPO, "playbooks", "awx_configure.yml"), encoding="utf-8") as handle:
        play = yaml.safe_load(handle)[0]
    return next(t for t in play["tasks"] if "awx.awx.job_template" in t and t.get("loop") == "{{ awx_job_templates }}")["vars"]


def _native(value, variables):
    """A task argument as Ansible templates it: a whole-expression string gives its value (a list, a dict)."""
    from jinja2.nativetypes import NativeEnvironment  # pylint: disable=import-outside-toplevel

    env = NativeEnvironment(undefined=jinja2_strict())
    env.filters["combine"] = lambda a, b: dict(a, **b)
    env.filters["regex_replace"] = lambda text, pattern, repl: re.sub(pattern, repl, text)
    return env.from_string(value).render(**variables) if isinstance(value, str) else value


def jinja2_strict():
    import jinja2  # pylint: disable=import-outside-toplevel

    return jinja2.StrictUndefined


def _template_args(item):
    """The job template's extra vars, credentials and job tags as awx_configure.yml gives them for ``item``."""
    task = _job_template_task()
    variables = dict(AWX, item=item)
    variables["__awx_paths"] = _render(_job_template_vars()["__awx_paths"], variables)
    omit = object()
    variables["omit"] = omit
    tags = _native(task["job_tags"], variables)
    return {"extra_vars": _native(task["extra_vars"], variables), "credentials": _native(task["credentials"], variables),
            "job_tags": None if tags is omit else tags}


def test_every_job_template_slices_its_inventory_and_keeps_state_on_the_volume():
    task = _job_template_task()
    for item in AWX["awx_job_templates"]:
        variables = dict(AWX, item=item)
        slices = int(_render(task["job_slice_count"], variables))
        forks = int(_render(task["forks"], variables))
        assert slices == item.get("job_slice_count", AWX["awx_job_template_defaults"]["job_slice_count"]) >= 1
        assert forks == item.get("forks", AWX["awx_job_template_defaults"]["forks"]) >= 1
        extra = _template_args(item)["extra_vars"]
        env = item["inventory"].replace("BeMore ", "")
        assert extra == dict({"bemore_state_dir": "%s/%s/state" % (AWX["awx_state_root"], env),
                              "bemore_report_dir": "%s/%s/reports" % (AWX["awx_state_root"], env)},
                             **item.get("extra_vars", {}))
        assert _render(task["instance_groups"][0], variables) == AWX["awx_container_group"]["name"]
    incident = next(t for t in AWX["awx_job_templates"] if t["playbook"].endswith("incident.yml"))
    assert incident["job_slice_count"] == 1


def test_the_container_group_mounts_the_state_claim_where_the_jobs_write():
    pod = yaml.safe_load(AWX["awx_container_group"]["pod_spec_override"])
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    volume = dict((v["name"], v) for v in pod["spec"]["volumes"])
    assert any(m["mountPath"] == AWX["awx_state_root"]
               and volume[m["name"]]["persistentVolumeClaim"]["claimName"] == AWX["awx_state_claim"] for m in mounts)


def _configure_task(module, loop=None):
    with open(os.path.join(REPO, "playbooks", "awx_configure.yml"), encoding="utf-8") as handle:
        play = yaml.safe_load(handle)[0]
    return next(t for t in play["tasks"] if module in t and (loop is None or t.get("loop") == loop))[module]


def test_the_watch_fires_every_5_minutes_288_times_a_day():
    # (occurrences() lists the whole rule: an endless 5-minute rule is cut at a day here instead.)
    rule = du_rrule.rrulestr(SCHEDULES["BeMore watch"].replace(" RRULE:", "\nRRULE:"))
    runs = list(itertools.islice(rule, 289))
    assert {(b - a).total_seconds() for a, b in zip(runs, runs[1:])} == {300.0}
    assert runs[288] - runs[0] == datetime.timedelta(days=1)


def test_awx_holds_back_an_overlapping_watch_and_a_failed_watch_job_pages_nobody():
    watch = next(t for t in AWX["awx_job_templates"] if t["playbook"] == "playbooks/watch.yml")
    assert watch["allow_simultaneous"] is False and watch["job_slice_count"] == 1
    task = _job_template_task()
    assert _render(task["allow_simultaneous"], dict(AWX, item=watch)) == "False"
    for template in AWX["awx_notification_templates"]:
        assert watch["name"] not in template["templates_on_failure"]


def test_a_watch_launch_does_not_sync_the_project_or_the_inventory_every_5_minutes():
    assert AWX["awx_project"]["scm_update_cache_timeout"] >= 300
    assert AWX["awx_project"]["inventory_update_cache_timeout"] >= 300
    project = _configure_task("awx.awx.project")
    assert project["scm_update_cache_timeout"] == "{{ awx_project.scm_update_cache_timeout }}"
    source = _configure_task("awx.awx.inventory_source")
    assert source["update_cache_timeout"] == "{{ awx_project.inventory_update_cache_timeout }}"


def test_a_job_cleanup_schedule_keeps_a_week_of_the_288_daily_watch_jobs():
    cleanup = next(s for s in AWX["awx_schedules"] if s["template"] == "Cleanup Job Details")
    assert cleanup["system_job"] and int(cleanup["extra_data"]["days"]) == 7
    runs = occurrences(cleanup["rrule"], 3)
    assert [(b - a).days for a, b in zip(runs, runs[1:])] == [1, 1]
    schedule = _configure_task("awx.awx.schedule")
    assert schedule["extra_data"] == "{{ item.extra_data | default(omit) }}"


def _role_file(*parts):
    with open(os.path.join(REPO, "roles", "bemore_watch", *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_the_watch_job_can_launch_the_identify_template_on_a_critical_incident():
    """From watch to response under AWX: the watch job says AWX runs it, carries the launch credential, and the
    template the role launches runs incident.yml's identify step only, on the hosts the launch names."""
    defaults = _role_file("defaults", "main.yml")
    assert defaults["bemore_watch_start_incident"] is False  # opt-in
    watch = next(t for t in AWX["awx_job_templates"] if t["playbook"] == "playbooks/watch.yml")
    args = _template_args(watch)
    assert args["extra_vars"]["bemore_watch_start_incident_via"] == "awx"
    assert set(AWX["awx_job_credentials"]) < set(args["credentials"])
    assert args["job_tags"] is None
    identify = next(t for t in AWX["awx_job_templates"] if t["name"] == defaults["bemore_watch_incident_template"])
    assert identify["playbook"] == "playbooks/incident.yml" and "survey" not in identify
    assert _template_args(identify)["job_tags"] == "identify"
    assert _job_template_task()["ask_limit_on_launch"] is True
    with open(os.path.join(REPO, "playbooks", "incident.yml"), encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)[0]["tasks"]
    steps = [t for block in tasks for t in block.get("block", [block])]
    assert [t["name"] for t in steps if "identify" in t.get("tags", [])][:1] == ["Identify - check the health endpoint"]
    launch = next(t for t in _role_file("tasks", "main.yml") if "awx.awx.job_launch" in t)
    assert launch["awx.awx.job_launch"]["job_template"] == "{{ bemore_watch_incident_template }}"
    assert "start_incident_hosts" in launch["awx.awx.job_launch"]["limit"]
    assert "__bemore_watch_start_via == 'awx'" in launch["when"]


def test_the_other_templates_run_whole_playbooks_without_the_launch_credential():
    for item in AWX["awx_job_templates"]:
        if item["playbook"] in ("playbooks/watch.yml",) or item.get("job_tags"):
            continue
        args = _template_args(item)
        assert args["job_tags"] is None and args["credentials"] == AWX["awx_job_credentials"], item["name"]
