# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip.py that ansible-test downloads.

tools/sanity.py copies this file to ansible-test's cache path
(~/.ansible/test/cache/get_pip_<version>.py) when nothing is there yet.

Why: ansible-test creates every virtual environment without pip and then
bootstraps pip with a get-pip.py fetched from ci-files.testing.ansible.com.
That host is not reachable from these machines (only the package registries
are), so the download fails and no sanity test that needs a virtual
environment can run. Once a file exists at the cache path, ansible-test runs
it instead of downloading (ansible_test/_util/target/setup/requirements.py).

It is run inside the new virtual environment as
``python quiet_pip.py --disable-pip-version-check pip==X.Y [--no-setuptools] [--no-wheel]``.
This does the same job with what CPython ships: ``ensurepip`` installs the
pip wheel bundled with the interpreter (no network), then that pip installs
the exact packages ansible-test asked for (``pip==X.Y``) from the configured
package index, so every environment ends up with the pip ansible-test pins.
"""

from __future__ import annotations

import subprocess
import sys

# get-pip.py understands these; ``pip install`` does not.
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def run(cmd):
    # quiet unless it fails: ansible-test shows this output on every bootstrap
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write("%s\nget-pip stand-in: %s failed with exit code %d\n"
                         % (proc.stdout, " ".join(cmd), proc.returncode))
        sys.exit(proc.returncode)


def main():
    args = sys.argv[1:]
    run([sys.executable, "-m", "ensurepip", "--default-pip"])
    run([sys.executable, "-m", "pip", "install"] + [a for a in args if a not in GET_PIP_ONLY])
    if "--no-setuptools" in args:
        # ensurepip before Python 3.12 also installs setuptools; get-pip.py
        # with --no-setuptools leaves it out, and ansible-test expects that.
        probe = subprocess.call([sys.executable, "-c", "import setuptools"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe == 0:
            run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"])


if __name__ == "__main__":
    main()
