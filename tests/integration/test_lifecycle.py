"""The run's lifecycle against the sandbox (issue 24): bad numbers stop it
before anything changes, a run that selects no step fails, a damaged state
file is kept and reported, a step that changed something survives the run's
death, an unreachable host pages."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from tests.conftest import REPO
from tests.integration.test_bad_input import snapshot
from tests.integration.test_interruption import journal_entries, reports, start, wait_for
from tests.integration.test_sandbox_playbooks import files_in, latest, play


@pytest.mark.parametrize("option, value", [("tmp_cleanup_max_age_days", "nan"), ("tmp_cleanup_max_size_mb", "1e400")])
def test_a_number_that_is_not_finite_stops_the_weekly_run_before_the_env_file_changes(sandbox, ansible_env, option, value):
    before = snapshot(sandbox, ansible_env)
    proc = play("weekly.yml", ansible_env, "-e", "%s=%s" % (option, value))
    assert proc.returncode != 0
    assert "%s must be a finite number" % option in proc.stdout, proc.stdout[-3000:]
    assert "nothing was changed" in proc.stdout
    assert snapshot(sandbox, ansible_env) == before


def test_a_damaged_state_file_is_kept_and_the_daily_report_says_so(sandbox, ansible_env):
    state_dir = ansible_env["BEMORE_STATE_DIR"]
    os.makedirs(state_dir, exist_ok=True)
    damaged = b'{"version": 1, "hosts": {"sandbox": {"disk_usage": {"samples": [{"ts": 1'
    with open(os.path.join(state_dir, "state.json"), "wb") as handle:
        handle.write(damaged)
    proc = play("daily.yml", ansible_env, "--tags", "health,disk")
    assert proc.returncode == 0, proc.stdout[-3000:]
    kept = [n for n in os.listdir(state_dir) if n.startswith("state.json.corrupt-")]
    assert len(kept) == 1
    with open(os.path.join(state_dir, kept[0]), "rb") as handle:
        assert handle.read() == damaged
    report = latest(ansible_env, "daily")
    assert len(report["warnings"]) == 1 and os.path.join(state_dir, "state.json") in report["warnings"][0]
    assert kept[0] in report["warnings"][0] and "WARNING: the state file" in proc.stdout
    # The run committed a new state file beside the kept one.
    assert os.path.exists(os.path.join(state_dir, "state.json"))


def test_a_run_whose_tags_select_no_step_fails_and_names_the_tags(sandbox, ansible_env):
    proc = play("daily.yml", ansible_env, "--tags", "helth")
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "the run selected no step: --tags helth (helth is not a tag of this playbook)" in proc.stdout
    assert "step tags are: disk, errors, health, logs, tmp_cleanup" in proc.stdout
    assert "BeMore daily run: OK" not in proc.stdout
    report = latest(ansible_env, "daily")
    assert report["worst_status"] == "failed" and report["problems"]


# --- interruptions: what was changed survives, a killed module is named -------------------------------

def _changes(report, host="sandbox"):
    return dict((s["step"], s) for s in report["hosts"][host]["steps"] if s["step"].startswith("changed: "))


def _children():
    out = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid, encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    args = [a for a in handle.read().split(b"\0") if a]
            except OSError:
                continue
            out[int(pid)] = (int(fields[1]), int(fields[19]), args)
    return out


def _sampling_module(root):
    """The pid of a pipelined module (a bare python under the run) that has run for 3 s: the host readings,
    which sample the app's CPU for 30 s here; every other module of the run takes well under that."""
    procs = _children()
    ticks, uptime = os.sysconf("SC_CLK_TCK"), float(open("/proc/uptime").read().split()[0])
    for pid, (ppid, started, args) in procs.items():
        chain, parent = set(), ppid
        while parent > 1 and parent not in chain:
            chain.add(parent)
            parent = procs.get(parent, (0,))[0]
        if root in chain and len(args) == 1 and b"python" in os.path.basename(args[0]) \
                and uptime - started / ticks >= 3:
            return pid
    return None


def test_a_cancel_right_after_the_cleanup_reports_what_it_deleted_and_notifies(sandbox, ansible_env):
    from tests.integration.test_runbooks import Webhook  # pylint: disable=import-outside-toplevel

    before = len(files_in(os.path.join(sandbox.app_dir, "tmp")))
    hook = Webhook()
    try:
        proc = start("weekly.yml", ansible_env, "-e", "bemore_webhook_url=" + hook.url)
        wait_for(lambda: any(e.get("step", {}).get("step") == "changed: Clean the temp folder"
                             for e in journal_entries(ansible_env)), what="the cleanup to finish")
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        hook.stop()
    assert len(hook.received) == 1 and "(interrupted: SIGTERM" in hook.received[0]["body"]["text"]
    (report,) = reports(ansible_env, "weekly")
    assert report["interrupted"] is True
    cleaned = _changes(report)["changed: Clean the temp folder"]
    after = len(files_in(os.path.join(sandbox.app_dir, "tmp")))
    assert cleaned["figures"]["files_deleted"] == before - after > 0
    assert "files_deleted %d" % (before - after) in cleaned["summary"]


def test_a_killed_host_module_is_named_with_its_exit_code_and_the_cleanup_is_kept(sandbox, ansible_env):
    # The host readings sample the app's CPU for 30 s: time enough to kill them, then nothing else waits.
    proc = start("weekly.yml", ansible_env, "-e", "performance_check_cpu_sample_s=30")
    wait_for(lambda: _sampling_module(proc.pid) or proc.poll() is not None, what="the host readings")
    os.kill(_sampling_module(proc.pid), signal.SIGKILL)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, out[-3000:]
    report = latest(ansible_env, "weekly")
    host = report["hosts"]["sandbox"]
    assert not host["completed"] and "rc 137: killed by signal 9 (SIGKILL)" in host["reason"], host["reason"]
    assert "Read the disk" in host["reason"]
    assert _changes(report)["changed: Clean the temp folder"]["figures"]["files_deleted"] > 0
    assert report["worst_severity"] == "high"


# --- unreachable hosts page -------------------------------------------------------------------------------

def _unreachable_inventory(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing answers there
    inventory = tmp_path / "unreachable.yml"
    inventory.write_text(
        "all:\n  children:\n    bemore:\n      hosts:\n        gone1:\n          ansible_connection: ssh\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: %d\n          bemore_api_from: host\n"
        "          ansible_ssh_common_args: '-o ConnectTimeout=3 -o StrictHostKeyChecking=no'\n" % port)
    return str(inventory)


def test_a_fleet_that_cannot_be_reached_is_critical_and_pages(sandbox, ansible_env, tmp_path):
    from tests.integration.test_runbooks import Webhook  # pylint: disable=import-outside-toplevel

    hook = Webhook()
    try:
        proc = play("daily.yml", ansible_env, "-i", os.path.join(REPO, "inventory", "sandbox"),
                    "-i", _unreachable_inventory(tmp_path), "--limit", "gone1", "-e", "bemore_webhook_url=" + hook.url)
    finally:
        hook.stop()
    assert proc.returncode != 0
    report = latest(ansible_env, "daily")
    host = report["hosts"]["gone1"]
    assert host["unreachable"] and host["worst_severity"] == "critical" and "unreachable at task" in host["reason"]
    assert report["worst_severity"] == "critical"
    assert len(hook.received) == 1 and hook.received[0]["body"]["text"].startswith("[CRITICAL] BeMore daily run")
    assert "notification: sent (HTTP 200)" in proc.stdout + proc.stderr
    assert "s3cr3t-hook-token" not in proc.stdout + proc.stderr


def test_the_report_of_a_killed_run_is_notified_by_the_next_run(sandbox, ansible_env):
    from tests.integration.test_runbooks import Webhook  # pylint: disable=import-outside-toplevel

    proc = start("weekly.yml", ansible_env, "-e", "performance_check_cpu_sample_s=30")
    wait_for(lambda: _sampling_module(proc.pid) or proc.poll() is not None, what="the host readings")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    hook = Webhook()
    try:
        again = play("daily.yml", ansible_env, "--tags", "health", "-e", "bemore_webhook_url=" + hook.url)
    finally:
        hook.stop()
    assert again.returncode == 0, again.stdout[-3000:]
    (killed,) = reports(ansible_env, "weekly")
    assert killed["interrupted"] and killed["interruption"]["signal"] == "KILL"
    texts = [r["body"]["text"] for r in hook.received]
    assert len(texts) == 1 and "BeMore weekly run on sandbox ended failed" in texts[0] and "(interrupted:" in texts[0]
