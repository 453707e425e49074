#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bemore_smoke_test
short_description: Run the guide's post-deployment test session and judge the error rate against the baseline
description:
  - Starts a test session (C(POST /api/session/start) with the guide's body)
    and ends it again (C(POST /api/session/{id}/end)), so it does not
    linger; a session it started is always ended, also when something after
    the start failed. The backend takes about 30 seconds to end a session
    (it writes the session's report then); I(end_timeout) allows for it.
  - Compares the error rate the run's checks measured with the baseline the
    pre-deployment run recorded, and returns the finished report step.
version_added: "2.0.0"
options:
  body:
    description: JSON body of the session start.
    type: dict
    default: {userId: test, counselorId: test}
  end_timeout:
    description: Total seconds to wait for the session end (connect, headers and body together).
    type: float
    default: 60
  error_rate:
    description: The error rate in percent the run's checks measured now; null when unknown.
    type: float
  error_rate_judged:
    description:
      - Whether the error-monitoring step judged I(error_rate) as evidence. A rate from fewer requests or errors than its
        minimum sample is reported with its counts and not compared with the baseline.
    type: bool
    default: true
  error_rate_note:
    description: Why the rate was not judged (the error-monitoring step's note), shown in the summary.
    type: str
  baseline:
    description: The error rate in percent recorded before the deployment; null when none was recorded. C(0) is a baseline of 0 %.
    type: float
  baseline_note:
    description:
      - Why there is no judged baseline (the pre-deploy rate was not judged, with its counts and the minimum sample), shown in the
        summary when I(baseline) is null.
    type: str
  error_margin:
    description: Percentage points the rate may exceed the baseline by.
    type: float
    default: 0.5
extends_documentation_fragment:
  - bemore_api
  - bemore_api.retries
attributes:
  check_mode:
    support: partial
    details: The test session is a request that creates data on the backend, so it is not started in check mode.
    description: In check mode only the error rate is compared.
  diff_mode:
    description: Nothing on a host changes; there is no difference to show.
    support: none
  platform:
    description: Runs wherever the API is reachable (usually the control node).
    support: full
    platforms: posix
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Run the test session and compare the error rate with the baseline
  bemore_smoke_test:
    base_url: https://api.bemore.dev
    error_rate: 0.05
    baseline: 0.04
  delegate_to: localhost
  register: smoke_test_result
"""

RETURN = r"""
step:
  description: The finished report step C(smoke_test).
  returned: always
  type: dict
session:
  description: The session id, whether it was ended, and what failed.
  returned: always
  type: dict
  sample: {"session_id": "sess_1796204570192_374e720d", "ended": true, "error": null, "end_error": null}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bemore_api import client_argument_spec, client_from_params
from ansible.module_utils.bemore_checks import run_session
from ansible.module_utils.bemore_steps import smoke_step


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(),
            body=dict(type="dict", default={"userId": "test", "counselorId": "test"}),
            end_timeout=dict(type="float", default=60.0),
            error_rate=dict(type="float"),
            error_rate_judged=dict(type="bool", default=True),
            error_rate_note=dict(type="str"),
            baseline=dict(type="float"),
            baseline_note=dict(type="str"),
            error_margin=dict(type="float", default=0.5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["end_timeout"] <= 0 or p["error_margin"] < 0:
        module.fail_json(msg="end_timeout must be > 0 and error_margin >= 0")
    try:
        client = client_from_params(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if module.check_mode:
        session = {"skipped": True, "session_id": None, "ended": False, "error": None, "end_error": None}
    else:
        session = run_session(client, p["body"], p["end_timeout"])
    stp = smoke_step(session, p["error_rate"], p["baseline"], {"error_margin": p["error_margin"],
                                                               "rate_judged": p["error_rate_judged"],
                                                               "rate_note": p["error_rate_note"],
                                                               "baseline_note": p["baseline_note"]})
    # The session is probe traffic, started and ended again: nothing on a host changed.
    module.exit_json(changed=False, step=stp, session=session)


if __name__ == "__main__":
    main()
