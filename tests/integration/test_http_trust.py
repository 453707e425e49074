"""daily.yml's health step against the real simulator over loopback when the
backend misbehaves at the HTTP level: a 429 from its limiter, a redirect to
another origin, an answer dribbled a byte at a time (issue 24, items 3, 10
and 11)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from tests.conftest import REPO

TOKEN = "tok-51c0ffee-secret"


def daily_health(env, sim, *extra, timeout=600):
    env = dict(env, BEMORE_SANDBOX_PORT=str(sim.port))
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", os.path.join(REPO, "playbooks", "daily.yml"), "--tags", "health",
                           "-e", "bemore_api_retries=0"] + list(extra),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - started
    with open(os.path.join(env["BEMORE_REPORT_DIR"], "daily", "latest.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    health = dict((s["step"], s) for s in report["hosts"]["sandbox"]["steps"])["health"]
    return proc, report, health, elapsed


def sim_state(sim):
    with urllib.request.urlopen(sim.url + "/__sim/state", timeout=5) as resp:
        return json.loads(resp.read())


def test_a_rate_limited_health_is_a_warning_and_no_page(sim_factory, ansible_env):
    sim = sim_factory(extra=["--rate-limit", "2", "--rate-window", "600"])
    for _ in range(3):
        try:
            urllib.request.urlopen(sim.url + "/health", timeout=5).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 429
    proc, report, health, _elapsed = daily_health(ansible_env, sim)
    assert (health["status"], health["severity"]) == ("warning", "medium"), health
    assert health["summary"].startswith("rate limited (HTTP 429, resets in ")
    assert "service down" not in json.dumps(report)
    assert report["worst_severity"] not in ("high", "critical") and proc.returncode == 0, proc.stdout[-2000:]


def test_a_redirect_to_another_origin_keeps_the_token_and_is_not_ok(sim_factory, ansible_env):
    elsewhere = sim_factory()
    sim = sim_factory("redirect=%s" % elsewhere.url)
    proc, report, health, _elapsed = daily_health(ansible_env, sim, "-e", "bemore_api_token=" + TOKEN)
    assert health["status"] != "ok" and "redirected to %s" % elsewhere.url in health["summary"], health
    assert sim_state(elsewhere)["authorizations"] == {}
    assert TOKEN not in json.dumps(report) and TOKEN not in proc.stdout
    assert proc.returncode != 0


def test_a_dribbling_health_answer_is_cut_at_the_deadline(sim_factory, ansible_env):
    # /health's ~110 bytes a byte every 10 s: about 18 minutes a request, so a run that read the whole
    # answer outlasts any start-up a busy machine adds (the bound was 65 s against a two-minute answer,
    # and ansible-playbook's own start and report come near that under load).
    sim = sim_factory("dribble_s=10")
    proc, _report, health, elapsed = daily_health(ansible_env, sim, "-e", "bemore_api_timeout=5")
    assert health["status"] == "critical" and "timed out" in health["summary"], health
    assert "5.0s deadline" in health["summary"]
    assert elapsed < 110 * 10 / 2, elapsed
    assert proc.returncode != 0
