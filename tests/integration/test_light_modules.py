"""plugins/action/light_module.py: the light path gives what the standard module path gives.

The same playbook runs three times through ansible-playbook: with
bemore_light_modules=false (AnsiballZ, the reference), true (in the task
worker, as on a local connection) and "subprocess" (the target bootstrap,
as over SSH). Results, failures, validation messages, warnings, check mode
and no_log handling must agree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.conftest import REPO, Sim

TOKEN = "tok-3f9a1c-secret"

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    d: "%(dir)s"
    sim: "%(sim)s"
  tasks:
    - {name: set, runbook_state: {dir: "{{ d }}/state", host: h1, topic: t, action: set, data: {a: 1}}, register: r01}
    - name: append
      runbook_state: {dir: "{{ d }}/state", host: h1, topic: s, action: append, data: {ts: 1, v: 2}, max_items: 2}
      register: r02
    - {name: get, runbook_state: {dir: "{{ d }}/state", host: h1, topic: t}, register: r03}
    - {name: check mode set, runbook_state: {dir: "{{ d }}/state", host: h1, topic: t, action: set, data: {a: 9}},
       check_mode: true, register: r04}
    - {name: bad host, runbook_state: {dir: "{{ d }}/state", host: "../x", topic: t}, register: r05,
       ignore_errors: true}
    - {name: unknown option, runbook_state: {dir: "{{ d }}/state", host: h1, topic: t, bogus: 1}, register: r06,
       ignore_errors: true}
    - {name: missing data, runbook_state: {dir: "{{ d }}/state", host: h1, topic: t, action: set}, register: r07,
       ignore_errors: true}
    - {name: wrong type, runbook_state: {dir: "{{ d }}/state", host: h1, topic: t, max_items: many}, register: r08,
       ignore_errors: true}
    - {name: disk, disk_usage: {filesystem_of: "{{ d }}", folder: "{{ d }}/state"}, register: r09}
    - {name: lock, maintenance_lock: {lock_file: "{{ d }}/locks/x.lock", run_id: r1, owner: me}, register: r10}
    - name: lock held
      maintenance_lock: {lock_file: "{{ d }}/locks/x.lock", run_id: r2, wait_s: 0, poll_s: 0.1}
      register: r11
      ignore_errors: true
    - {name: release by another run, maintenance_lock: {lock_file: "{{ d }}/locks/x.lock", run_id: r2, state: released},
       register: r12}
    - {name: release, maintenance_lock: {lock_file: "{{ d }}/locks/x.lock", run_id: r1, state: released}, register: r13}
    - {name: logs, log_scan: {files: ["{{ d }}/app.log"], known_signatures: []}, register: r14}
    - {name: health, bemore_health: {base_url: "{{ sim }}", api_token: "%(token)s"}, register: r15}
    - {name: errors, bemore_error_stats: {base_url: "{{ sim }}", api_token: "%(token)s"}, register: r16}
    - {name: cleanup stats, bemore_api: {base_url: "{{ sim }}", endpoint: temp_cleanup_stats}, register: r17}
    - {name: unreachable, bemore_health: {base_url: "http://127.0.0.1:9", retries: 0, timeout: 1}, register: r18}
    - name: Keep the results
      ansible.builtin.copy:
        dest: "{{ d }}/results.json"
        content: "{{ [r01, r02, r03, r04, r05, r06, r07, r08, r09, r10, r11, r12, r13, r14, r15, r16, r17, r18]
                     | to_json }}"
        mode: "0600"
"""

# Fields that differ from run to run whatever the path.
VOLATILE = re.compile(r"(^|_)(ts|at|time|timestamp|elapsed|ms|s|uptime|age|bytes|used|avail|free|pct|mtime|"
                      r"files|inode|ino|size|days|growth|start|since|position|sample|previous|holder|"
                      r"filesystem|folder|stats|recent_errors|by_category|error_rate|data|rate|health)$")


STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ?")


def project(value, base):
    """What must agree between paths: outcome, messages, warnings and stable fields."""
    if isinstance(value, dict):
        return {k: project(v, base) for k, v in sorted(value.items())
                if k not in ("invocation", "_ansible_no_log", "deprecations") and not VOLATILE.search(k)}
    if isinstance(value, list):
        return [project(v, base) for v in value]
    if isinstance(value, str):
        return STAMP.sub("<time>", value.replace(base, "<dir>"))
    return value


def run(tmp_path, sim, mode):
    base = str(tmp_path / mode)
    os.makedirs(base)
    with open(os.path.join(base, "app.log"), "w", encoding="utf-8") as handle:
        handle.write("2026-11-29 06:00:00 ERROR GEMINI timeout after 30s\n2026-11-29 06:00:01 INFO ok\n")
    play = os.path.join(base, "play.yml")
    with open(play, "w", encoding="utf-8") as handle:
        handle.write(PLAYBOOK % {"dir": base, "sim": sim.url, "token": TOKEN})
    # Pipelining lets the local connection pass stdin, as SSH does with
    # ansible.cfg's setting; without it the reference run shows its AnsiballZ files.
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PIPELINING="1" if mode == "subprocess" else "0")
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", play,
                           "-e", "bemore_light_modules=%s" % mode, "-vvv"],
                          capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    with open(os.path.join(base, "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    return base, results, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("light")
    sim = Sim(tmp_path)
    try:
        return {mode: run(tmp_path, sim, mode) for mode in ("false", "true", "subprocess")}
    finally:
        sim.stop()


@pytest.mark.parametrize("mode", ["true", "subprocess"])
def test_the_light_path_agrees_with_the_module_path(outcomes, mode):
    ref_base, reference, _ = outcomes["false"]
    base, results, _ = outcomes[mode]
    for index, (want, got) in enumerate(zip(reference, results)):
        assert project(got, base) == project(want, ref_base), "task %d differs" % (index + 1)


@pytest.mark.parametrize("mode", ["false", "true", "subprocess"])
def test_each_path_does_the_work(outcomes, mode):
    base, r, output = outcomes[mode]
    assert r[0]["changed"] is True and r[2]["data"] == {"a": 1}
    assert r[3]["changed"] is True and r[3]["data"] == {"a": 9}  # check mode shows the change ...
    with open(os.path.join(base, "state", "h1", "t.json"), encoding="utf-8") as handle:
        assert json.load(handle) == {"a": 1}  # ... and does not write it
    assert r[4]["failed"] and "host" in r[4]["msg"]
    assert r[5]["failed"] and "bogus" in r[5]["msg"]
    assert r[6]["failed"] and "data" in r[6]["msg"]
    assert r[7]["failed"] and "max_items" in r[7]["msg"]
    assert r[8]["folder"]["bytes"] > 0
    assert r[9]["acquired"] and r[9]["changed"]
    assert r[10]["failed"] and "another runbook holds the maintenance lock" in r[10]["msg"]
    assert "belongs to" in output  # the warning of a release by another run is shown
    assert r[12]["changed"] and not os.path.exists(os.path.join(base, "locks", "x.lock"))
    assert r[13]["lines_read"] == 2 and r[13]["counts"]["error"] == 1
    assert r[14]["healthy"] is True
    assert r[16]["data"]["checksRun"] >= 0 and "last_check_age_s" in r[16]
    assert r[17]["healthy"] is False and r[17]["problems"]
    assert TOKEN not in output and TOKEN not in json.dumps(r)
    # The path really taken: AnsiballZ payloads only on the reference run.
    light_modules = ("runbook_state", "disk_usage", "maintenance_lock", "log_scan", "bemore_health",
                     "bemore_error_stats", "bemore_api")
    wrapped = {name for name in light_modules if "AnsiballZ_%s.py" % name in output}
    assert wrapped == (set(light_modules) if mode == "false" else set())
    bootstraps = len(re.findall(r"EXEC /bin/sh -c '\S+/python -c ", output))
    assert bootstraps == (15 if mode == "subprocess" else 0)  # 18 light tasks, 3 refused by validation first


def test_every_light_action_is_a_link_to_the_one_plugin_for_a_library_module():
    """Only modules with a symlink in plugins/action take the light path; each link points at the one plugin."""
    folder = os.path.join(REPO, "plugins", "action")
    links = sorted(n[:-3] for n in os.listdir(folder) if os.path.islink(os.path.join(folder, n)))
    assert links and all(os.readlink(os.path.join(folder, n + ".py")) == "light_module.py" for n in links)
    for name in links:
        assert os.path.isfile(os.path.join(REPO, "library", name + ".py")), name
