"""A plain ansible-playbook run prints nothing of the project's own set-up
before its first task: no CryptographyDeprecationWarning (cryptography is
pinned in requirements.txt for that), no deprecation or plugin warning."""

from __future__ import annotations

import os
import re
import subprocess

from tests.helpers import REPO

WARNING = re.compile(r"warning|deprecat", re.I)


def test_a_plain_run_prints_no_warning_before_its_first_task(ansible_env):
    # An API nobody answers: the run fails after its first tasks, which is all this reads.
    env = dict(ansible_env, BEMORE_SANDBOX_PORT="1")
    proc = subprocess.run(["ansible-playbook", os.path.join(REPO, "playbooks", "doctor.yml"), "--check"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert "TASK [" in proc.stdout, output
    before = proc.stderr + proc.stdout.split("TASK [", 1)[0]
    assert [line for line in before.splitlines() if WARNING.search(line)] == [], output
    # Nor later from the callback, which loads the project's module_utils itself.
    assert "Callback dispatch" not in output, output
