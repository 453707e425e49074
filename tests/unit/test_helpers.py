"""tests/helpers.require: a missing dependency skips a test, and fails it under CI=true."""

from __future__ import annotations

import pytest

from tests.helpers import require


def test_a_present_dependency_lets_the_test_run(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require("/usr/bin/npm", "npm") is None


def test_outside_ci_a_missing_dependency_is_a_skip_that_names_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^MariaDB on 127.0.0.1:3306 is missing \(apt-get install -y mariadb-server\)$"):
        require(False, "MariaDB on 127.0.0.1:3306", "apt-get install -y mariadb-server")


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_under_ci_a_missing_dependency_is_a_failure_that_names_it(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"^CI=true and podman is missing \(make deps\)$"):
        require(None, "podman", "make deps")


def test_ci_false_is_not_ci(monkeypatch):
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require(False, "chromium")
