"""Shared fixtures: the real simulator on a free loopback port, and a runner
for custom modules in the style of ansible-core's and community.general's
unit tests (patch_module_args, SystemExit, JSON read from stdout)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

VENV_BIN = os.path.dirname(sys.executable)


from tests.helpers import REPO, load_module, register_module_utils  # noqa: E402,F401  pylint: disable=unused-import

register_module_utils()


# Fixtures whose tests run playbooks or start containers: tens of seconds each
# (as do the tests under tests/integration).
_SLOW_FIXTURES = {"sandbox", "ansible_env", "testbed"}
# Fixtures whose tests start a process or a server: a second or two each.
_MEDIUM_FIXTURES = {"sim", "sim_factory", "npm_registry", "chromium", "webhook"}


def pytest_configure(config):
    config.addinivalue_line("markers", "molecule: a role's Molecule scenario in its testbed container "
                            "(tests/molecule; `make molecule` runs them alone, `make test-fast` leaves them out)")


def pytest_collection_modifyitems(items):
    """Run the slowest tests first (a stable sort: the order within each kind stays).

    With `-n 3 --dist loadgroup` (make test) each worker takes the next test as
    it frees up, so the run ends on short tests. (xdist's default `load` sent
    each worker an eighth of the collection up front: one worker got every
    integration test and the other idled from the sixth minute on.) The order
    changes no test's outcome: each has its own simulator, ports, folders and
    schema.
    """
    def weight(item):
        names = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("molecule"):
            return -1  # a minute and a half or more each: first, so that the run never ends on one
        if names & _SLOW_FIXTURES or "integration" in item.path.parts:
            return 0
        return 1 if names & _MEDIUM_FIXTURES else 2

    items.sort(key=weight)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sim(object):
    """A running simulator process and helpers to drive its fault injection."""

    def __init__(self, tmp_path, faults=(), extra=()):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_file = str(tmp_path / "app.log")
        cmd = [sys.executable, os.path.join(REPO, "sandbox", "bemore_sim.py"), "--port", str(self.port),
               "--log-file", self.log_file, "--cors-origin", "https://app.bemore.dev"] + list(extra)
        for fault in faults:
            cmd += ["--fault", fault]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("simulator did not start: %s" % self.proc.stderr.read().decode())
                time.sleep(0.05)

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        # A deadline, not an expected time: under two busy loops a fault injection once took over 5 s.
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def fault(self, **faults):
        return self.control("POST", "/__sim/faults", faults)

    def clear(self):
        return self.control("DELETE", "/__sim/faults")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def sim(tmp_path):
    server = Sim(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def sim_factory(tmp_path):
    started = []

    def make(*faults, extra=()):
        server = Sim(tmp_path, faults, extra)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


class ModuleExit(Exception):
    pass


@pytest.fixture
def run_module(capsys):
    """Run library/<name>.py main() with args; return (result dict, failed)."""
    from ansible.module_utils.testing import patch_module_args

    def runner(name, args, check_mode=False):
        module = load_module(name)
        if check_mode:
            args = dict(args, _ansible_check_mode=True)
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exc:
                module.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        assert (exc.value.code != 0) == bool(result.get("failed")), "exit code and 'failed' disagree"
        return result

    return runner


@pytest.fixture
def ansible_env(tmp_path):
    """Environment for ansible-playbook runs from tests: the project's config,
    and state/report folders of the test's own."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
        "BEMORE_STATE_DIR": str(tmp_path / "state"),
        "BEMORE_REPORT_DIR": str(tmp_path / "reports"),
        "BEMORE_SANDBOX_DIR": str(tmp_path / "sandbox"),
        "ANSIBLE_NOCOLOR": "1",
    })
    return env


@pytest.fixture
def sandbox(tmp_path, ansible_env, npm_registry):
    """A full sandbox of the test's own: app directory installed from a fixture
    npm registry, simulator on a free port reading the app's .env, and
    ansible_env pointing at both."""
    sys.path.insert(0, os.path.join(REPO, "sandbox"))
    import sandboxctl  # pylint: disable=import-outside-toplevel

    registry = npm_registry()
    sandboxctl.seed_db()  # the bemore schema the database steps work on (idempotent)
    app = sandboxctl.seed_app(os.path.join(ansible_env["BEMORE_SANDBOX_DIR"], "app"), registry=registry.url,
                              install=True)
    server = Sim(tmp_path, extra=["--env-file", os.path.join(app, ".env"),
                                  "--log-file", os.path.join(app, "logs", "app.log"),
                                  "--session-end-wait", "1", "--cors-origin", "http://localhost:5173",
                                  "--pid-file", os.path.join(ansible_env["BEMORE_SANDBOX_DIR"], "sim.pid")])
    ansible_env["BEMORE_SANDBOX_PORT"] = str(server.port)
    server.app_dir = app
    server.registry = registry
    yield server
    server.stop()


class NpmRegistry:
    """The fixture npm registry (sandbox/npm_registry.py) on a free loopback port, in a thread."""

    def __init__(self, fixture):
        sys.path.insert(0, os.path.join(REPO, "sandbox"))
        import npm_registry  # pylint: disable=import-outside-toplevel

        self.fixture_file = None
        handler_registry = npm_registry.Registry(fixture)
        # hold_audits(): an `npm audit` request waits here until release_audits(), so a
        # test can act while a run is inside its security audit, however busy the machine.
        self.audit_gate = gate = threading.Event()
        self.audit_held = held = threading.Event()
        gate.set()

        class TestHandler(npm_registry.Handler):
            registry = handler_registry

            def do_POST(self):  # pylint: disable=invalid-name
                if "/-/npm/v1/security/" in self.path and not gate.is_set():
                    held.set()
                    gate.wait(300)
                return super().do_POST()

        handler = TestHandler
        self.server = npm_registry.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.registry = handler_registry
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold_audits(self):
        self.audit_held.clear()
        self.audit_gate.clear()

    def release_audits(self):
        self.audit_gate.set()

    def stop(self):
        self.release_audits()
        self.server.shutdown()
        self.server.server_close()


def npm_app(app_dir, registry_url, dependencies, scripts=None, install=True):
    """An npm project in ``app_dir`` installed from ``registry_url`` with the real npm CLI."""
    os.makedirs(app_dir, exist_ok=True)
    with open(os.path.join(app_dir, "package.json"), "w") as fh:
        json.dump({"name": "bemore-test-app", "version": "1.0.0", "private": True,
                   "scripts": scripts or {"test": "node -e \"process.exit(0)\""},
                   "dependencies": dependencies}, fh, indent=2)
    with open(os.path.join(app_dir, ".npmrc"), "w") as fh:
        fh.write("registry=%s\naudit=false\nfund=false\nupdate-notifier=false\n" % registry_url)
    if install:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=app_dir, check=True,
                       capture_output=True, text=True, timeout=120)
    return app_dir


@pytest.fixture
def npm_registry():
    """Start fixture registries: npm_registry(fixture_dict) -> NpmRegistry."""
    started = []

    def make(fixture=None):
        if fixture is None:
            with open(os.path.join(REPO, "sandbox", "npm_fixture.json")) as fh:
                fixture = json.load(fh)
        reg = NpmRegistry(fixture)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()
