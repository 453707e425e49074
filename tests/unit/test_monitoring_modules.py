"""bemore_error_stats, bemore_latency, bemore_api and process_usage against the real simulator."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ansible.module_utils.bemore_api import CATEGORIES
from tests.conftest import free_port, load_module

stats_mod = load_module("bemore_error_stats")
latency_mod = load_module("bemore_latency")


@pytest.mark.parametrize("stats, rate", [
    ({"totalErrors": 1, "totalRequests": 1000}, 0.1),
    ({"totalErrors": 0, "totalRequests": 0}, 0.0),
    ({"totalErrors": 3, "totalRequests": 0}, None),
    ({"totalErrors": "x", "totalRequests": 10}, None),
    ({}, None),
])
def test_error_rate(stats, rate):
    assert stats_mod.error_rate(stats) == rate


@pytest.mark.parametrize("rate, failures, status", [
    (0.05, 0, "ok"), (1.0, 0, "ok"), (1.01, 0, "warning"), (5.0, 0, "warning"), (5.1, 0, "critical"),
    (0.05, 1, "warning"), (None, 0, "warning"), (7.0, 3, "critical"),
])
def test_classify(rate, failures, status):
    assert stats_mod.classify(rate, 1.0, 5.0, failures) == status


@pytest.mark.parametrize("values, pct, expected", [
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95, 10),
    ([7], 95, 7), ([], 50, None), ([3, 1, 2], 50, 2),
])
def test_percentile(values, pct, expected):
    assert latency_mod.percentile(values, pct) == expected


def test_one_sweep_reads_everything_valid(run_module, sim):
    result = run_module("bemore_error_stats", {"base_url": sim.url})
    assert result["status"] == "ok" and result["failures"] == []
    assert set(result["by_category"]) == set(CATEGORIES)
    assert result["error_rate"] == pytest.approx(100.0 * result["stats"]["totalErrors"] / result["stats"]["totalRequests"],
                                                 abs=1e-3)
    assert len(result["recent_errors"]) == 16  # 2 seeded per category, newest first
    assert result["recent_errors"][0]["timestamp"] >= result["recent_errors"][-1]["timestamp"]


def test_a_spike_is_critical_and_named(run_module, sim):
    sim.fault(error_spike="STT:8")
    result = run_module("bemore_error_stats", {"base_url": sim.url})
    assert result["status"] == "critical" and result["error_rate"] > 5
    assert result["by_category"]["STT"]["count"] == max(c["count"] for c in result["by_category"].values())


def test_the_sweep_is_concurrent(run_module, sim):
    sim.fault(latency_ms=400)
    started = time.monotonic()
    result = run_module("bemore_error_stats", {"base_url": sim.url, "retries": 0})
    elapsed = time.monotonic() - started
    assert result["status"] == "ok"
    assert elapsed < 2.0, "ten requests of 400 ms took %.1f s: not concurrent" % elapsed


def test_a_hanging_api_is_bounded_and_every_endpoint_named(run_module, sim):
    sim.fault(latency_ms=5000)
    started = time.monotonic()
    result = run_module("bemore_error_stats", {"base_url": sim.url, "timeout": 0.5, "retries": 1, "backoff": 0.1})
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 * 2 + 0.1 + 1.0
    assert result["status"] == "warning" and result["error_rate"] is None
    assert len(result["failures"]) == 10
    assert all("timed out" in f["reason"] for f in result["failures"])
    assert {f["endpoint"] for f in result["failures"]} >= {"/api/errors/stats", "/api/monitoring/errors/VAD"}


def test_a_refused_api_is_a_failure_per_endpoint(run_module):
    result = run_module("bemore_error_stats", {"base_url": "http://127.0.0.1:%d" % free_port(), "retries": 0})
    assert result["status"] == "warning" and len(result["failures"]) == 10
    assert "cannot connect" in result["failures"][0]["reason"]


@pytest.mark.parametrize("args, message", [
    ({"recent_limit": 0}, "recent_limit"), ({"recent_limit": 101}, "recent_limit"),
    ({"categories": ["websocket"]}, "value of categories must be one or more of"),
    ({"warning_rate": 9.0}, "thresholds"), ({"base_url": "localhost:3000"}, "base_url"),
])
def test_bad_input_fails_clearly(run_module, args, message):
    result = run_module("bemore_error_stats", dict({"base_url": "http://127.0.0.1:1"}, **args))
    assert result["failed"] is True and message in result["msg"]


def test_latency_meets_and_misses_the_target(run_module, sim):
    result = run_module("bemore_latency", {"base_url": sim.url, "samples": 5})
    assert result["meets_target"] is True and result["endpoints"]["/health"]["samples"] == 5
    sim.fault(latency_ms=250)
    result = run_module("bemore_latency", {"base_url": sim.url, "samples": 3, "paths": ["/health"]})
    assert result["meets_target"] is False and 250 <= result["median_ms"] < 1000


def test_bemore_api_validates_and_reports_the_cleanup_age(run_module, sim):
    result = run_module("bemore_api", {"base_url": sim.url, "endpoint": "temp_cleanup_stats"})
    assert result["data"]["errors"] == 0 and 0 <= result["last_check_age_s"] < 60
    result = run_module("bemore_api", {"base_url": sim.url, "endpoint": "session_start",
                                       "body": {"userId": "test", "counselorId": "test"}})
    assert result["changed"] is True and result["data"]["status"] == "active"
    result = run_module("bemore_api", {"base_url": sim.url, "endpoint": "session_start",
                                       "body": {"userId": "test"}})
    assert result["failed"] is True and "counselorId" in result["msg"]


def test_bemore_api_starts_no_session_in_check_mode(run_module, sim):
    result = run_module("bemore_api", {"base_url": sim.url, "endpoint": "session_start",
                                       "body": {"userId": "t", "counselorId": "t"}}, check_mode=True)
    assert result["skipped"] is True and result["changed"] is False


def test_process_usage_measures_a_busy_process(run_module, tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", "b = bytearray(80 * 1024 * 1024)\nwhile True: pass"])
    try:
        time.sleep(0.5)
        pid_file = tmp_path / "app.pid"
        pid_file.write_text("%d\n" % busy.pid)
        result = run_module("process_usage", {"pid_file": str(pid_file), "sample_s": 0.5})
    finally:
        busy.kill()
    assert result["found"] is True and result["pid"] == busy.pid
    assert result["rss_mb"] >= 80
    # A spinning process has a core to itself unless the machine is loaded
    # (the suite runs on both cores); an idle one stays near 0 either way.
    assert result["cpu_percent"] > 20
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        pid_file.write_text("%d\n" % idle.pid)
        quiet = run_module("process_usage", {"pid_file": str(pid_file), "sample_s": 0.5})
    finally:
        idle.kill()
    assert quiet["found"] is True and quiet["cpu_percent"] < 5 < result["cpu_percent"]


def test_process_usage_reports_a_missing_process(run_module, tmp_path):
    result = run_module("process_usage", {"pid_file": str(tmp_path / "none.pid"), "sample_s": 0.1})
    assert result["found"] is False and "cannot read a PID" in result["reason"]
    result = run_module("process_usage", {"cmdline_regex": "no-such-process-[x]yz", "sample_s": 0.1})
    assert result["found"] is False
    result = run_module("process_usage", {"cmdline_regex": "([", "sample_s": 0.1})
    assert result["failed"] is True and "not a valid regular expression" in result["msg"]
