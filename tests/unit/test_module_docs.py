"""Every custom module documents itself so that ansible-doc renders it."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO, VENV_BIN

MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "library")) if f.endswith(".py"))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-M", os.path.join(REPO, "library"), module],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "check_mode" in proc.stdout and "RETURN VALUES" in proc.stdout
    if module in ("bemore_api", "bemore_smoke_test"):
        # The shared connection options come from plugins/doc_fragments/bemore_api.py.
        assert "base_url" in proc.stdout and "api_token" in proc.stdout
