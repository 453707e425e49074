# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every part of the runbook reads the same way, defined once: a time
stamp, the order of statuses and severities, and the median.

The API's answers, the reports, the trend and the clock seam all read time
stamps with parse_iso; the decision code, the report and the page all rank
statuses and severities by STATUS_RANK and SEVERITIES; the performance step
and the latency readings take the same median. Nothing here imports the
rest of the project.
"""

from __future__ import annotations

import datetime
import math
import re

# A step's status, from fine to worst. Skipped, not applicable and not run
# raise nothing; an unknown status ranks as failed.
STATUS_RANK = {"ok": 0, "skipped": 0, "not_applicable": 0, "not_run": 0, "warning": 1, "critical": 2, "failed": 3}
# The guide's severities, from none to critical.
SEVERITIES = ("none", "low", "medium", "high", "critical")
SEVERITY_RANK = dict((name, rank) for rank, name in enumerate(SEVERITIES))

UTC = datetime.timezone.utc

# ISO 8601 as the backend (toISOString), the reports and an operator write it: a T or a space between
# date and time, any fraction of a second, Z or an offset (with or without its colon), or none (UTC).
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_iso(text):
    """An aware UTC datetime from an ISO 8601 time stamp (no offset means UTC); None when it is not one."""
    match = _ISO.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        when = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                                 int((fraction or "0")[:6].ljust(6, "0")), tzinfo=UTC)
    except ValueError:
        return None
    if zone and zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            return None
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        when = when - offset if zone[0] == "+" else when + offset
    return when


def parse_time(text):
    """Seconds since the epoch of an ISO 8601 time stamp (parse_iso), or None."""
    when = parse_iso(text)
    return None if when is None else when.timestamp()


def iso(ts):
    """The UTC time stamp of epoch seconds, to the second: 2026-12-02T09:45:51Z."""
    return datetime.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(values, pct):
    """Nearest-rank percentile of a list of numbers: a value of the list, never between two; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(math.ceil(pct / 100.0 * len(ordered))))
    return ordered[min(rank, len(ordered)) - 1]


def median(values):
    """The nearest-rank median (the lower middle of an even count), as the p95 beside it is taken; None for none."""
    return percentile(values, 50)
