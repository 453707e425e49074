# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The wall clock a run judges dates, ages and windows by.

One test seam: ``BEMORE_RUNBOOK_NOW`` (epoch seconds, or ISO-8601 in UTC)
fixes "now" for every module, the callback plugin and every process they
start, so a test can put a run a day after the last one without sleeping.
It is not for production. Deadlines, timeouts and durations never read this
clock: they keep time.monotonic(), so a moved "now" cannot stretch them.
"""

from __future__ import annotations

import datetime
import os
import time

from ansible.module_utils.runbook_common import parse_iso

ENV = "BEMORE_RUNBOOK_NOW"


def parse(value):
    """Epoch seconds from epoch seconds or an ISO-8601 time (UTC when it names no offset)."""
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = parse_iso(text)
    if stamp is None:
        raise ValueError("%s must be epoch seconds or an ISO-8601 UTC time (2026-12-02T09:45:00Z), got %r" % (ENV, value))
    return stamp.timestamp()


def now(environ=None):
    """Seconds since the epoch: the real time, or the one ``BEMORE_RUNBOOK_NOW`` fixes."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    if not value.strip():
        return time.time()
    return parse(value)


def today(environ=None):
    """The local date of now(), as datetime.date.today() gives it."""
    return datetime.date.fromtimestamp(now(environ))
