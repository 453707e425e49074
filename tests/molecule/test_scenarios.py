"""Every role's Molecule scenario (roles/<role>/molecule/default), one test each.

`make test` runs them in the same pytest session as the unit and integration
suites, so that xdist's workers take a scenario or an integration test as
they free up: a scenario keeps about one core busy and the integration tests
a worker's share less, and run one after the other the two stages left the
machine a quarter idle (measured in the note of issue 23). `make molecule`
runs these tests alone. Each scenario runs in its own container, named after
the role, with its own Molecule folder; its whole log is kept in
.cache/molecule-<role>.log and the end of it is shown on failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import VENV_BIN
from tests.helpers import REPO, require

ROLES = sorted(role for role in os.listdir(os.path.join(REPO, "roles"))
               if os.path.isfile(os.path.join(REPO, "roles", role, "molecule", "default", "molecule.yml")))
# A scenario that stops short of its end is stopped here: the slowest takes about 3 minutes alone.
TIMEOUT_S = 1800


def _testbed_image():
    try:
        with open(os.path.join(REPO, ".testbed-image"), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def test_every_role_has_a_scenario():
    roles = sorted(d for d in os.listdir(os.path.join(REPO, "roles")) if os.path.isdir(os.path.join(REPO, "roles", d)))
    assert ROLES == roles


@pytest.mark.molecule
@pytest.mark.parametrize("role", ROLES)
def test_the_roles_molecule_scenario_passes(role):
    require(shutil.which("podman"), "podman", "make deps")
    molecule = os.path.join(VENV_BIN, "molecule")
    require(os.access(molecule, os.X_OK), "molecule", "make venv")
    image = _testbed_image()
    require(image, "the testbed image (.testbed-image)", "make testbed")
    env = dict(os.environ, BEMORE_TESTBED_IMAGE=image, BEMORE_MOLECULE_INSTANCE=role,
               CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF") or os.path.join(REPO, "containers", "containers.conf"))
    log_path = os.path.join(REPO, ".cache", "molecule-%s.log" % role)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run([molecule, "test"], cwd=os.path.join(REPO, "roles", role), env=env,
                              stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = log.read().splitlines()[-60:]
        pytest.fail("molecule test of %s failed (rc %d); the end of %s:\n%s"
                    % (role, proc.returncode, log_path, "\n".join(tail)), pytrace=False)
