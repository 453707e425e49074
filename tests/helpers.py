"""Import helpers shared by the tests and the benchmarks: custom modules and
module_utils, importable the way Ansible imports them."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class _ProjectModuleUtils(importlib.abc.MetaPathFinder):
    """Finds module_utils/<name>.py as ansible.module_utils.<name>, in whatever order they import each other."""

    folder = os.path.join(REPO, "module_utils")

    def find_spec(self, fullname, path=None, target=None):
        prefix = "ansible.module_utils."
        if not fullname.startswith(prefix) or "." in fullname[len(prefix):]:
            return None
        candidate = os.path.join(self.folder, fullname[len(prefix):] + ".py")
        if not os.path.exists(candidate):
            return None
        return importlib.util.spec_from_file_location(fullname, candidate)


def register_module_utils():
    """Make module_utils/<name>.py importable as ansible.module_utils.<name>."""
    import ansible.module_utils  # pylint: disable=import-outside-toplevel

    if not any(isinstance(f, _ProjectModuleUtils) for f in sys.meta_path):
        sys.meta_path.insert(0, _ProjectModuleUtils())
    for filename in sorted(os.listdir(os.path.join(REPO, "module_utils"))):
        if filename.endswith(".py") and not filename.startswith("_"):
            name = filename[:-3]
            setattr(ansible.module_utils, name, importlib.import_module("ansible.module_utils." + name))


def role_defaults(role):
    """roles/<role>/defaults/main.yml as the role declares it (the one place a default is set)."""
    import yaml  # pylint: disable=import-outside-toplevel

    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def load_module(name):
    """Import library/<name>.py as a Python module."""
    register_module_utils()
    return _load("library_" + name, os.path.join(REPO, "library", name + ".py"))


def in_ci(environ=None):
    """Whether CI=true (as GitHub Actions, GitLab CI and .ci/run set it)."""
    return (os.environ if environ is None else environ).get("CI", "").strip().lower() in ("true", "1", "yes")


def require(condition, what, hint=""):
    """Skip the calling test when ``condition`` is false; under CI=true fail it instead.

    A CI log shows skips only as a count, so a machine that lost MariaDB or
    podman would pass there without testing what needs them: in CI a missing
    dependency is a failure that names it.
    """
    import pytest  # pylint: disable=import-outside-toplevel

    if condition:
        return
    message = "%s is missing%s" % (what, " (%s)" % hint if hint else "")
    if in_ci():
        pytest.fail("CI=true and " + message, pytrace=False)
    pytest.skip(message)


def serve_tls(tmp_path, handler):
    """A threading HTTPS server on a free loopback port with a self-signed
    certificate for localhost, valid 5 days (made here by openssl); yields its
    base URL and shuts it down afterwards. Use it with ``yield from``."""
    import http.server  # pylint: disable=import-outside-toplevel
    import ssl  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "5", "-subj", "/CN=localhost"], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "https://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
