#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runbook_state
short_description: Keep small per-host JSON state between runbook runs
description:
  - Reads and writes one JSON document per host and topic under a state
    directory, usually on the control node (with C(delegate_to) localhost), so that
    rules spanning runs work - a restart seen as a smaller uptime, an error
    rate over a 5-minute window, disk growth since earlier runs.
  - Writes are atomic (temporary file and rename) and serialised with a lock,
    so parallel forks for different hosts never corrupt a document.
version_added: "1.0.0"
options:
  dir:
    description: Absolute path of the state directory; created (mode 0700) when missing.
    type: path
    required: true
  host:
    description: Host the state belongs to; letters, digits, C(.), C(_), C(@) and C(-) only.
    type: str
    required: true
  topic:
    description: Name of the document, for example C(health); same character rules as I(host).
    type: str
    required: true
  action:
    description:
      - C(get) returns the document (or I(default) when there is none).
      - C(set) replaces it with I(data).
      - C(append) adds I(data) as one sample to the list in the document,
        drops samples older than I(max_age_s) and keeps at most I(max_items).
    type: str
    choices: [get, set, append]
    default: get
  data:
    description: The document for C(set), the sample for C(append).
    type: raw
  default:
    description: What C(get) returns when no document exists.
    type: raw
  max_items:
    description: With C(append), the most samples kept.
    type: int
    default: 500
  max_age_s:
    description: With C(append), samples whose C(ts) field is older than this many seconds are dropped; 0 keeps all.
    type: float
    default: 0
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; the result shows what would be stored.
  diff_mode:
    description: Shows the document before and after a change.
    support: full
  platform:
    description: Targets where the module runs (usually the control node).
    support: full
    platforms: posix
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

EXAMPLES = r"""
- name: Read the previous health record
  runbook_state:
    dir: /var/lib/bemore-runbooks/state
    host: "{{ inventory_hostname }}"
    topic: health
  delegate_to: localhost

- name: Add an error-rate sample, keeping 10 minutes of history
  runbook_state:
    dir: /var/lib/bemore-runbooks/state
    host: "{{ inventory_hostname }}"
    topic: error_rate
    action: append
    data: {ts: 1735689600, rate: 0.05}
    max_age_s: 600
  delegate_to: localhost
"""

RETURN = r"""
data:
  description: The document after the action (for C(get), as read).
  returned: always
  type: raw
previous:
  description: The document before the action; null when there was none.
  returned: always
  type: raw
state_file:
  description: File that holds the document.
  returned: always
  type: str
damaged:
  description:
    - Why the document could not be read, when it exists but is not valid JSON; null otherwise.
    - C(get) then returns I(default) and warns; C(set) and C(append) keep the damaged file as
      RV(set_aside) before they write, never over it.
  returned: always
  type: str
set_aside:
  description: Where the damaged document was kept (C(<state_file>.corrupt-<UTC time>)); null when nothing was set aside.
  returned: always
  type: str
"""

import json
import math
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.runbook_clock import now as clock_now
from ansible.module_utils.runbook_files import Damaged, Flock, check_name, read_json_checked, set_aside, write_atomic


def state_file(state_dir, host, topic):
    return os.path.join(state_dir, check_name("host", host), check_name("topic", topic) + ".json")


def appended(samples, sample, max_items, max_age_s, now=None):
    """Return the new sample list: old ones trimmed by age and count."""
    now = clock_now() if now is None else now
    samples = list(samples) if isinstance(samples, list) else []
    samples.append(sample)
    if max_age_s and max_age_s > 0:
        samples = [s for s in samples
                   if not isinstance(s, dict) or not isinstance(s.get("ts"), (int, float))
                   or now - s["ts"] <= max_age_s]
    if max_items > 0:
        samples = samples[-max_items:]
    return samples


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            host=dict(type="str", required=True),
            topic=dict(type="str", required=True),
            action=dict(type="str", default="get", choices=["get", "set", "append"]),
            data=dict(type="raw"),
            default=dict(type="raw"),
            max_items=dict(type="int", default=500),
            max_age_s=dict(type="float", default=0),
        ),
        required_if=[("action", "set", ["data"]), ("action", "append", ["data"])],
        supports_check_mode=True,
    )
    p = module.params
    if not os.path.isabs(p["dir"]):
        module.fail_json(msg="dir must be an absolute path, got %r" % p["dir"])
    if not math.isfinite(p["max_age_s"]) or p["max_age_s"] < 0:
        module.fail_json(msg="max_age_s must be a finite number >= 0, got %s" % p["max_age_s"])
    try:
        path = state_file(p["dir"], p["host"], p["topic"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    found = {"damaged": None, "set_aside": None}

    def read():
        try:
            return read_json_checked(path)
        except Damaged as exc:
            found["damaged"] = "%s %s" % (path, exc)
            return None

    if p["action"] == "get":
        # A damaged document reads as the default, so it does not stop a run, but never without a word.
        previous = read()
        if found["damaged"]:
            module.warn("the state document %s; read as empty" % found["damaged"])
        module.exit_json(changed=False, data=p["default"] if previous is None else previous, previous=previous,
                         state_file=path, **found)

    def update():
        previous = read()
        new = p["data"] if p["action"] == "set" else appended(previous, p["data"], p["max_items"], p["max_age_s"])
        if not module.check_mode and found["damaged"]:
            found["set_aside"] = set_aside(path)
        if (new != previous or found["damaged"]) and not module.check_mode:
            write_atomic(path, json.dumps(new, indent=1, sort_keys=True) + "\n")
        return previous, new

    try:
        if module.check_mode:
            previous, new = update()
        else:
            # Serialised with the other hosts' updates (parallel forks); released before exit_json.
            with Flock(os.path.join(p["dir"], ".lock")):
                previous, new = update()
    except OSError as exc:
        module.fail_json(msg="cannot update state file %s: %s" % (path, exc.strerror or exc))
    changed = new != previous or bool(found["damaged"])
    if found["damaged"]:
        kept = "kept as %s" % found["set_aside"] if found["set_aside"] else "left in place (check mode)"
        module.warn("the state document %s; %s" % (found["damaged"], kept))
    diff = {"before": json.dumps(previous, indent=1, sort_keys=True) + "\n",
            "after": json.dumps(new, indent=1, sort_keys=True) + "\n",
            "before_header": path, "after_header": path}
    module.exit_json(changed=changed, data=new, previous=previous, state_file=path, diff=diff, **found)


if __name__ == "__main__":
    main()
