# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the modules that call the BeMore API (module_utils/bemore_api.py)."""

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  base_url:
    description: Base URL of the API, for example C(https://api.bemore.dev).
    type: str
    required: true
  timeout:
    description: Seconds to wait for one HTTP attempt.
    type: float
    default: 10
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  api_token:
    description: Bearer token sent in the C(Authorization) header.
    type: str
  headers:
    description: Extra request headers.
    type: dict
    default: {}
"""

    RETRIES = r"""
options:
  retries:
    description: Extra attempts after a timeout, a refused connection, a 5xx answer or malformed JSON.
    type: int
    default: 2
  backoff:
    description: Seconds before the first retry; doubled for each further retry.
    type: float
    default: 0.5
"""
