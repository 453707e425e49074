"""Issue 24's acceptance: on a healthy backend (it answers, no error spike,
its database reachable), every schedule in the order a team runs them pages
nothing. A page is a result at high or critical, or a non-zero exit; each
run's own requests (probes, the smoke session, latency samples) are part of
what the next run reads, so the order matters."""

from __future__ import annotations

import json

from tests.integration.test_sandbox_playbooks import latest, play

SEQUENCE = (
    ("daily.yml", "daily", ()),
    ("daily.yml", "daily", ()),
    ("daily.yml", "daily", ()),
    ("quarterly.yml", "quarterly", ()),
    ("predeploy.yml", "predeploy", ()),
    ("postdeploy.yml", "postdeploy", ()),
    # Nothing confirmed: identify and classify only.
    ("incident.yml", "incident", ()),
)


def _pages(report):
    return ["%s/%s %s %s: %s" % (host, stp["step"], stp["status"], stp["severity"], stp["summary"])
            for host, body in report["hosts"].items() for stp in body["steps"]
            if stp.get("severity") in ("high", "critical")]


def test_every_schedule_in_order_pages_nothing_on_a_healthy_backend(sandbox, ansible_env):
    for playbook, schedule, args in SEQUENCE:
        proc = play(playbook, ansible_env, *args)
        report = latest(ansible_env, schedule)
        pages = _pages(report)
        assert pages == [] and report["worst_severity"] not in ("high", "critical"), (playbook, pages)
        assert proc.returncode == 0, (playbook, json.dumps(report.get("problems")), proc.stdout[-3000:])
    incident = {stp["step"]: stp for stp in latest(ansible_env, "incident")["hosts"]["sandbox"]["steps"]}
    assert incident["incident_response"]["figures"]["classification"] == [], incident["incident_response"]
