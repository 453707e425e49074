#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_usage
short_description: Measure a filesystem and a folder, and estimate the days until the filesystem is full
description:
  - Reports the usage of the filesystem holding I(filesystem_of) (as C(df)
    counts it, from the space available to unprivileged users) and the total
    size of the files under I(folder) (as C(du -s) would, without following
    links or crossing into other filesystems).
  - With I(history) (samples of earlier runs), estimates the growth of the
    used space per day by a least-squares fit and the days until the
    filesystem is full at that rate.
  - Read-only.
version_added: "1.0.0"
options:
  filesystem_of:
    description: A path on the filesystem to measure (the app directory, say).
    type: path
    required: true
  folder:
    description: A folder whose total file size is measured (the app's temp folder).
    type: path
  history:
    description:
      - Earlier samples, each with C(ts) (epoch seconds) and C(used_bytes); the
        current sample is added to them for the estimate.
    type: list
    elements: dict
    default: []
  min_span_h:
    description: Hours the samples must span before a growth rate is estimated.
    type: float
    default: 12
extends_documentation_fragment:
  - bemore_attributes.readonly
author:
  - BeMore maintenance runbooks contributors
"""

EXAMPLES = r"""
- name: Measure the app's filesystem and temp folder
  disk_usage:
    filesystem_of: /srv/bemore/app
    folder: /srv/bemore/app/tmp
    history: "{{ earlier_samples }}"
"""

RETURN = r"""
filesystem:
  description: Usage of the filesystem, in bytes and percent (C(df)'s Use%).
  returned: always
  type: dict
  sample: {"mount": "/", "total_bytes": 10737418240, "used_bytes": 5368709120, "avail_bytes": 4831838208,
           "used_percent": 52.6}
folder:
  description: Files, bytes and the largest files of I(folder); null when no folder was given.
  returned: always
  type: dict
  sample: {"files": 25, "bytes": 2621440, "largest": [{"name": "rec_01.wav", "bytes": 327680}], "missing": false}
growth_bytes_per_day:
  description: Fitted growth of the used space per day; null with too little history.
  returned: always
  type: float
days_until_full:
  description: Days until the available space is used up at that growth; null when it does not grow or is unknown.
  returned: always
  type: float
sample:
  description: This run's sample, to be kept for the next estimate.
  returned: always
  type: dict
"""

import os
import stat
import time

from ansible.module_utils.basic import AnsibleModule

LARGEST = 10


def filesystem_usage(path):
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bfree * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = total - free
    # df's Use%: used over what users can have (root's reserve excluded).
    denominator = used + avail
    return {"mount": mount_point(path), "total_bytes": total, "used_bytes": used, "avail_bytes": avail,
            "used_percent": round(used * 100.0 / denominator, 1) if denominator else 0.0}


def mount_point(path):
    path = os.path.realpath(path)
    dev = os.stat(path).st_dev
    while path != "/":
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            break
        path = parent
    return path


def folder_usage(root):
    """Files and bytes under ``root`` (lstat, one filesystem, no links followed)."""
    try:
        root_st = os.lstat(root)
    except FileNotFoundError:
        return {"files": 0, "bytes": 0, "largest": [], "missing": True}
    if not stat.S_ISDIR(root_st.st_mode):
        raise ValueError("folder %s is not a directory" % root)
    files = total = 0
    largest = []
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue  # vanished or unreadable: measured as far as possible
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev == root_st.st_dev:
                    stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
                largest.append((st.st_size, os.path.relpath(entry.path, root)))
                if len(largest) > 4 * LARGEST:
                    largest = sorted(largest, reverse=True)[:LARGEST]
    largest = [{"name": n, "bytes": s} for s, n in sorted(largest, reverse=True)[:LARGEST]]
    return {"files": files, "bytes": total, "largest": largest, "missing": False}


def growth_per_day(samples, min_span_s):
    """Least-squares slope of used_bytes over time, in bytes per day; None with too little data."""
    points = []
    for s in samples:
        try:
            points.append((float(s["ts"]), float(s["used_bytes"])))
        except (KeyError, TypeError, ValueError):
            continue
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    if max(xs) - min(xs) < min_span_s:
        return None
    n = float(len(points))
    mx = sum(xs) / n
    my = sum(p[1] for p in points) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / var
    return slope * 86400.0


def days_until_full(avail_bytes, growth):
    if growth is None or growth <= 0:
        return None
    return round(avail_bytes / growth, 1)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            filesystem_of=dict(type="path", required=True),
            folder=dict(type="path"),
            history=dict(type="list", elements="dict", default=[]),
            min_span_h=dict(type="float", default=12.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not os.path.exists(p["filesystem_of"]):
        module.fail_json(msg="filesystem_of %s does not exist" % p["filesystem_of"])
    try:
        fs = filesystem_usage(p["filesystem_of"])
        folder = folder_usage(p["folder"]) if p["folder"] else None
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    sample = {"ts": round(time.time(), 1), "used_bytes": fs["used_bytes"],
              "folder_bytes": folder["bytes"] if folder else None}
    growth = growth_per_day(list(p["history"]) + [sample], p["min_span_h"] * 3600.0)
    module.exit_json(changed=False, filesystem=fs, folder=folder, sample=sample,
                     growth_bytes_per_day=round(growth, 1) if growth is not None else None,
                     days_until_full=days_until_full(fs["avail_bytes"], growth))


if __name__ == "__main__":
    main()
