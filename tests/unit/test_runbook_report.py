"""library/runbook_report.py."""

from __future__ import annotations

import json
import os

from tests.conftest import load_module

report = load_module("runbook_report")

OK = {"step": "health", "status": "ok", "severity": "none", "summary": "healthy"}
WARN = {"step": "errors", "status": "warning", "severity": "medium", "summary": "1.5 % | errors"}


def test_worst_status_and_severity_over_hosts():
    built = report.build_report([{"host": "a", "completed": True, "steps": [OK]},
                                 {"host": "b", "completed": True, "steps": [OK, WARN]}],
                                "daily", "prod", "r1", False)
    assert built["worst_status"] == "warning" and built["worst_severity"] == "medium"
    assert built["hosts"]["a"]["worst_status"] == "ok"
    assert built["counts"]["ok"] == 2 and built["counts"]["warning"] == 1


def test_a_host_that_did_not_complete_is_failed_even_with_good_steps():
    built = report.build_report([{"host": "a", "completed": False, "steps": [OK]}], "daily", "prod", "r1", False)
    assert built["worst_status"] == "failed" and built["worst_severity"] == "high"


def test_unknown_values_become_problems_not_silence():
    step = report.normalise_step({"step": "x", "status": "great", "severity": "meh"})
    assert step["status"] == "failed" and step["severity"] == "high"
    assert len(step["problems"]) == 2


def test_markdown_escapes_table_cells():
    md = report.render_markdown(report.build_report([{"host": "a", "completed": True, "steps": [WARN]}],
                                                    "daily", "prod", "r1", True))
    assert "1.5 % \\| errors" in md
    assert "check mode: nothing was changed" in md


def test_module_writes_reports_latest_links_and_metrics(run_module, tmp_path):
    prom = tmp_path / "prom" / "bemore.prom"
    result = run_module("runbook_report", {"report_dir": str(tmp_path), "schedule": "weekly", "environment": "prod",
                                           "hosts": [{"host": "a", "completed": True, "steps": [OK, WARN]}],
                                           "run_id": "20260101T000000Z", "prometheus_file": str(prom)})
    assert result["worst_status"] == "warning"
    data = json.loads((tmp_path / "weekly" / "latest.json").read_text())
    assert data["hosts"]["a"]["steps"][1]["summary"] == "1.5 % | errors"
    assert os.readlink(tmp_path / "weekly" / "latest.md") == "20260101T000000Z-weekly.md"
    text = prom.read_text()
    assert 'bemore_runbook_worst_status{schedule="weekly",environment="prod"} 1' in text
    assert 'bemore_runbook_step_status{schedule="weekly",environment="prod",host="a",step="errors"} 1' in text


def test_old_reports_are_pruned(run_module, tmp_path):
    for i in range(4):
        run_module("runbook_report", {"report_dir": str(tmp_path), "schedule": "daily", "keep": 2,
                                      "hosts": [], "run_id": "2026010%dT000000Z" % i})
    names = sorted(os.listdir(tmp_path / "daily"))
    assert names == ["20260102T000000Z-daily.json", "20260102T000000Z-daily.md",
                     "20260103T000000Z-daily.json", "20260103T000000Z-daily.md", "latest.json", "latest.md"]


def test_bad_schedule_names_are_refused(run_module, tmp_path):
    result = run_module("runbook_report", {"report_dir": str(tmp_path), "schedule": "../x", "hosts": []})
    assert result["failed"] is True and "schedule" in result["msg"]
    assert list(tmp_path.iterdir()) == []
