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
    description:
      - Total seconds of one HTTP attempt - connect, headers and body together, not per socket read.
      - A request with its retries takes at most O(timeout) * (O(retries) + 1) + O(backoff) * (2^O(retries) - 1) seconds.
    type: float
    default: 10
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the certificate authorities to trust instead of the system's (a private CA), as in
        M(ansible.builtin.uri).
      - The TLS reading of the API security check uses it too.
    type: path
  client_cert:
    description:
      - PEM file of the client certificate presented when the server asks for one (mutual TLS).
      - It may hold the private key as well; otherwise give O(client_key).
    type: path
  client_key:
    description: PEM file of the private key of O(client_cert), when that file does not hold it.
    type: path
  api_token:
    description:
      - Bearer token sent in the C(Authorization) header, only to the origin (scheme, host, port) of O(base_url).
      - A redirect to another origin is not followed and fails the request, naming the origin; redirects within
        the origin are followed, at most 5.
    type: str
  headers:
    description:
      - Extra request headers.
      - Proxies come from the environment as for M(ansible.builtin.uri) (C(https_proxy), C(http_proxy),
        C(no_proxy)).
      - Every request also carries an C(X-Request-Id) starting with C(bemore-runbook-), which the backend logs as
        C(reqId=); the error rate leaves those requests out.
    type: dict
    default: {}
"""

    RETRIES = r"""
options:
  retries:
    description:
      - Extra attempts of a GET after a timeout, a refused connection or a 5xx answer.
      - After a 429 the request is tried again once its C(RateLimit-Reset) (or C(Retry-After)) has passed, when that
        wait and one more attempt fit in the bound of O(timeout); otherwise the 429 is the answer (rate limited).
    type: int
    default: 2
  backoff:
    description: Seconds before the first retry; doubled for each further retry.
    type: float
    default: 0.5
"""
