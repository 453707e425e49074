"""Import helpers shared by the tests and the benchmarks: custom modules and
module_utils, importable the way Ansible imports them."""

from __future__ import annotations

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


def register_module_utils():
    """Make module_utils/<name>.py importable as ansible.module_utils.<name>."""
    import ansible.module_utils  # pylint: disable=import-outside-toplevel

    for filename in sorted(os.listdir(os.path.join(REPO, "module_utils"))):
        if filename.endswith(".py") and not filename.startswith("_"):
            name = filename[:-3]
            if "ansible.module_utils." + name not in sys.modules:
                setattr(ansible.module_utils, name,
                        _load("ansible.module_utils." + name, os.path.join(REPO, "module_utils", filename)))


def load_module(name):
    """Import library/<name>.py as a Python module."""
    register_module_utils()
    return _load("library_" + name, os.path.join(REPO, "library", name + ".py"))
