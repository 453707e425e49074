"""library/runbook_state.py."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_module

state = load_module("runbook_state")


def test_set_then_get_round_trip(run_module, tmp_path):
    args = {"dir": str(tmp_path), "host": "api1", "topic": "health"}
    assert run_module("runbook_state", dict(args, default={}))["data"] == {}
    result = run_module("runbook_state", dict(args, action="set", data={"uptime": 5}))
    assert result["changed"] is True
    assert run_module("runbook_state", dict(args, action="set", data={"uptime": 5}))["changed"] is False
    assert run_module("runbook_state", args)["data"] == {"uptime": 5}
    assert oct((tmp_path / "api1").stat().st_mode & 0o777) == "0o700"


def test_check_mode_writes_nothing(run_module, tmp_path):
    result = run_module("runbook_state", {"dir": str(tmp_path / "s"), "host": "h", "topic": "t",
                                          "action": "set", "data": [1]}, check_mode=True)
    assert result["changed"] is True
    assert not (tmp_path / "s").exists()


def test_append_trims_by_age_and_count():
    samples = [{"ts": 100, "v": 1}, {"ts": 500, "v": 2}, {"ts": 900, "v": 3}]
    assert state.appended(samples, {"ts": 1000, "v": 4}, 500, 600, now=1000) == samples[1:] + [{"ts": 1000, "v": 4}]
    assert state.appended(samples, {"ts": 1000}, 2, 0, now=1000) == [samples[2], {"ts": 1000}]


@pytest.mark.parametrize("host", ["../etc", "a/b", "", "..", "x" * 300, "a b"])
def test_hostile_names_are_refused(run_module, tmp_path, host):
    result = run_module("runbook_state", {"dir": str(tmp_path), "host": host, "topic": "t",
                                          "action": "set", "data": 1})
    assert result["failed"] is True and "may only hold" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_document_starts_afresh(run_module, tmp_path):
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "t.json").write_text("{not json")
    result = run_module("runbook_state", {"dir": str(tmp_path), "host": "h", "topic": "t",
                                          "action": "append", "data": {"ts": 1}})
    assert result["data"] == [{"ts": 1}]
    assert json.loads((tmp_path / "h" / "t.json").read_text()) == [{"ts": 1}]
