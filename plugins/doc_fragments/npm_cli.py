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
      - A relative path fails the task before npm runs; a folder that is
        missing on the host, or has no C(package.json) (or, for the audit, no
        lockfile), makes the check "could not be done", with the reason.
    type: path
    required: true
  registry:
    description:
      - Registry URL passed to npm with C(--registry). Default is what the
        app's C(.npmrc) and the user's npm configuration say.
      - An http or https URL without credentials (give a token in I(registry_token)).
      - The audit's advisory service is the registry's C(/-/npm/v1/security/advisories/bulk).
    type: str
  registry_token:
    description:
      - Auth token for I(registry). It reaches npm through the environment,
        never the command line, and is never returned. Needs I(registry).
    type: str
  npm_path:
    description:
      - Absolute path of the npm executable; default the first C(npm) on C(PATH).
      - An npm that is not there makes the check "could not be done", not a task failure.
    type: path
  fetch_timeout:
    description: Seconds npm waits for one request to the registry, from 1 to 600.
    type: int
    default: 60
  fetch_retries:
    description: Extra attempts npm makes after a failed request, from 0 to 10.
    type: int
    default: 1
requirements:
  - npm 7 or later on the target (npm 6 reports are parsed too)
"""
