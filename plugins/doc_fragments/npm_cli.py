# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the modules that run the npm CLI (module_utils/npm_cli.py)."""

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  app_dir:
    description:
      - Absolute path of the Node.js application (the folder with C(package.json)).
    type: path
    required: true
  registry:
    description:
      - Registry URL passed to npm with C(--registry). Default is what the
        app's C(.npmrc) and the user's npm configuration say.
    type: str
  registry_token:
    description:
      - Auth token for I(registry). It reaches npm through the environment,
        never the command line, and is never returned.
    type: str
  npm_path:
    description: Path of the npm executable; default the first C(npm) on C(PATH).
    type: path
  fetch_timeout:
    description: Seconds npm waits for one request to the registry.
    type: int
    default: 60
  fetch_retries:
    description: Extra attempts npm makes after a failed request.
    type: int
    default: 1
requirements:
  - npm 7 or later on the target (npm 6 reports are parsed too)
"""
