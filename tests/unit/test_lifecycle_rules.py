"""The run's lifecycle rules of issue 24: what a run that cannot do its work
says (no backup, no step selected, a corrupt state file, an unreachable
host), inputs that are not finite numbers, the lock's wait and the report's
files on a failed write."""

from __future__ import annotations

import os

import yaml

from tests.conftest import REPO


def _yaml(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


# --- 5. an unreachable database is no backup -------------------------------------------

def test_an_unreachable_database_is_no_backup_rated_high_by_default(run_module, tmp_path):
    backups = tmp_path / "backups"
    result = run_module("mysql_maintenance", {"action": "maintain", "schema": "bemore", "login_host": "127.0.0.1",
                                              "login_port": 1, "login_user": "root", "connect_timeout": 2,
                                              "backup_dir": str(backups)})
    step = result["step"]
    assert (step["status"], step["severity"]) == ("failed", "high")
    assert step["summary"].startswith("no backup: ") and "127.0.0.1:1" in step["summary"]
    assert result["changed"] is False and not backups.exists()


def test_skipping_an_unreachable_database_is_an_inventory_choice():
    default = _yaml("roles", "db_maintenance", "defaults", "main.yml")["db_maintenance_skip_unreachable"]
    spec = _yaml("roles", "db_maintenance", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert default is False and spec["db_maintenance_skip_unreachable"]["default"] is False
    # The sandbox's database is optional; a real environment's is not.
    assert _yaml("inventory", "sandbox", "group_vars", "bemore", "app.yml")["db_maintenance_skip_unreachable"] is True
    for env in ("production", "staging"):
        for root, _dirs, files in os.walk(os.path.join(REPO, "inventory", env)):
            for name in files:
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    assert "skip_unreachable" not in handle.read(), os.path.join(root, name)
