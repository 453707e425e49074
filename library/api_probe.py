#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: api_probe
short_description: Probe the BeMore API's TLS certificate, CORS policy and rate limiting from outside
description:
  - C(tls) reads the certificate the API serves (an C(https) base URL) and
    returns the days until it expires.
  - C(cors) sends a CORS preflight (C(OPTIONS)) from the production frontend
    origin, which must be answered with exactly that origin, and one from a
    foreign origin, which must not be allowed.
  - C(rate_limit) sends up to I(rate_limit_max_requests) requests to one API
    path and reports after how many the API answered C(429 Too Many
    Requests); no 429 means rate limiting is not active.
  - Sends only GET and OPTIONS requests. The rate-limit probe does use up the
    caller's request budget for a minute, so run it against production only
    when that is acceptable.
version_added: "1.0.0"
options:
  checks:
    description: Which probes to run.
    type: list
    elements: str
    choices: [tls, cors, rate_limit]
    default: [tls, cors]
  frontend_origin:
    description: The production frontend origin the API must allow (the app's C(FRONTEND_URL)).
    type: str
  foreign_origin:
    description: An origin the API must not allow.
    type: str
    default: https://attacker.invalid
  cors_path:
    description: API path the preflight is sent to.
    type: str
    default: /api/session/start
  rate_limit_path:
    description: API path hit by the rate-limit probe.
    type: str
    default: /api/errors/stats
  rate_limit_max_requests:
    description: Most requests the rate-limit probe sends.
    type: int
    default: 400
extends_documentation_fragment:
  - bemore_api
attributes:
  check_mode:
    support: full
    description: Sends the same read-only requests in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Probe TLS, CORS and the rate limiter before a deploy
  api_probe:
    base_url: https://api.bemore.dev
    frontend_origin: https://bemore.dev
    checks: [tls, cors, rate_limit]
"""

RETURN = r"""
tls:
  description: Certificate facts; null when not checked or the URL is not https.
  returned: always
  type: dict
  sample: {"subject": "api.bemore.dev", "not_after": "2027-01-31T12:00:00Z", "days_left": 63, "error": null}
cors:
  description: What the preflights were answered.
  returned: always
  type: dict
  sample: {"allowed_origin": "https://bemore.dev", "frontend_allowed": true, "foreign_allowed": false,
           "allow_methods": "GET,POST", "status": 204}
rate_limit:
  description: Whether a 429 came, after how many requests, and the limit headers seen.
  returned: always
  type: dict
  sample: {"active": true, "requests_until_429": 301, "limit_header": "300", "sent": 301}
problems:
  description: Findings, one sentence each.
  returned: always
  type: list
  elements: str
"""

import datetime
import os
import socket
import ssl
import tempfile
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_api import ApiError, client_argument_spec, client_from_module


def decode_der(der):
    """Fields of a certificate that was not verified (validate_certs=false).

    The ssl module only parses verified certificates; its decoder for PEM
    files is the one way to read the dates without a third-party library.
    """
    if not der:
        return {}
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(ssl.DER_cert_to_PEM_cert(der))
        return ssl._ssl._test_decode_cert(path)  # pylint: disable=protected-access
    except (AttributeError, ssl.SSLError, OSError):
        return {}
    finally:
        os.unlink(path)


def check_tls(base_url, timeout, validate):
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme != "https":
        return None, []
    host, port = parts.hostname, parts.port or 443
    ctx = ssl.create_default_context()
    if not validate:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                cert = tls.getpeercert() or decode_der(tls.getpeercert(binary_form=True))
    except (OSError, ssl.SSLError) as exc:
        return {"error": str(exc), "days_left": None}, ["TLS: cannot verify the certificate of %s: %s" % (host, exc)]
    if not cert:
        return {"error": "certificate not readable", "days_left": None}, ["TLS: cannot read the certificate of %s" % host]
    not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), datetime.timezone.utc)
    days = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400.0
    subject = dict(x[0] for x in cert.get("subject", ()))
    info = {"subject": subject.get("commonName"), "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days_left": round(days, 1), "error": None}
    return info, []


def header(headers, name):
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def check_cors(client, path, frontend, foreign):
    out, problems = {}, []
    if not frontend:
        return None, ["CORS: no frontend_origin given to test with"]
    for label, origin in (("frontend", frontend), ("foreign", foreign)):
        try:
            status, headers, _body, _elapsed = client.request(
                "OPTIONS", path, extra_headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                          "Access-Control-Request-Headers": "content-type"}, parse=False)
        except ApiError as exc:
            return {"error": str(exc)}, ["CORS: the preflight failed: %s" % exc]
        allowed = header(headers, "Access-Control-Allow-Origin")
        out[label + "_status"] = status
        if label == "frontend":
            out["allowed_origin"] = allowed
            out["allow_methods"] = header(headers, "Access-Control-Allow-Methods")
            out["frontend_allowed"] = allowed == origin or allowed == "*"
            if allowed == "*":
                problems.append("CORS: the API allows every origin (*), not just %s" % origin)
            elif allowed != origin:
                problems.append("CORS: a preflight from %s was answered with Access-Control-Allow-Origin %r"
                                % (origin, allowed))
        else:
            out["foreign_allowed"] = allowed in (origin, "*")
            if allowed == origin:
                problems.append("CORS: the API also allows the foreign origin %s" % origin)
    return out, problems


def check_rate_limit(client, path, max_requests):
    limit_header = None
    for sent in range(1, max_requests + 1):
        try:
            status, headers, _body, _elapsed = client.request("GET", path, parse=False)
        except ApiError as exc:
            return {"active": None, "sent": sent, "error": str(exc)}, ["rate limit: the probe failed: %s" % exc]
        limit_header = limit_header or header(headers, "RateLimit-Limit") or header(headers, "X-RateLimit-Limit")
        if status == 429:
            return {"active": True, "requests_until_429": sent, "limit_header": limit_header, "sent": sent,
                    "retry_after": header(headers, "Retry-After")}, []
    return ({"active": False, "requests_until_429": None, "limit_header": limit_header, "sent": max_requests},
            ["rate limit: no 429 after %d requests to %s; rate limiting looks inactive" % (max_requests, path)])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(retries=False),
            checks=dict(type="list", elements="str", choices=["tls", "cors", "rate_limit"], default=["tls", "cors"]),
            frontend_origin=dict(type="str"),
            foreign_origin=dict(type="str", default="https://attacker.invalid"),
            cors_path=dict(type="str", default="/api/session/start"),
            rate_limit_path=dict(type="str", default="/api/errors/stats"),
            rate_limit_max_requests=dict(type="int", default=400),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["rate_limit_max_requests"] < 1:
        module.fail_json(msg="rate_limit_max_requests must be at least 1")
    client = client_from_module(module)
    result = dict(changed=False, tls=None, cors=None, rate_limit=None, problems=[])
    if "tls" in p["checks"]:
        result["tls"], problems = check_tls(p["base_url"], p["timeout"], p["validate_certs"])
        result["problems"] += problems
    if "cors" in p["checks"]:
        result["cors"], problems = check_cors(client, p["cors_path"], p["frontend_origin"], p["foreign_origin"])
        result["problems"] += problems
    if "rate_limit" in p["checks"]:
        result["rate_limit"], problems = check_rate_limit(client, p["rate_limit_path"], p["rate_limit_max_requests"])
        result["problems"] += problems
    module.exit_json(**result)


if __name__ == "__main__":
    main()
