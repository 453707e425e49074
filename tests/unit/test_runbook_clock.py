"""The run's wall clock and its test seam, BEMORE_RUNBOOK_NOW."""

from __future__ import annotations

import datetime
import time

import pytest

from ansible.module_utils import runbook_clock

STAMP = 1796204751.548  # 2026-12-02T09:45:51.548Z, the recorded /health answer's time


@pytest.mark.parametrize("value", ["1796204751.548", " 1796204751.548 ", "2026-12-02T09:45:51.548Z",
                                   "2026-12-02T09:45:51.548+00:00", "2026-12-02T10:45:51.548+01:00",
                                   "2026-12-02T09:45:51.548"])
def test_the_seam_takes_epoch_seconds_or_iso_utc(value):
    assert runbook_clock.now({"BEMORE_RUNBOOK_NOW": value}) == pytest.approx(STAMP)


@pytest.mark.parametrize("zone, date", [("UTC", datetime.date(2026, 12, 31)), ("Asia/Seoul", datetime.date(2027, 1, 1))])
def test_today_is_the_local_date_of_now(monkeypatch, zone, date):
    # As datetime.date.today(): 23:30 UTC on Dec 31st is already next year in Seoul.
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert runbook_clock.today({"BEMORE_RUNBOOK_NOW": "2026-12-31T23:30:00Z"}) == date
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("environ", [{}, {"BEMORE_RUNBOOK_NOW": ""}, {"BEMORE_RUNBOOK_NOW": "  "}])
def test_without_the_seam_it_is_the_real_clock(environ):
    before = time.time()
    assert before <= runbook_clock.now(environ) <= time.time()


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "1796204751,5"])
def test_a_bad_value_is_refused_by_name(value):
    with pytest.raises(ValueError, match="BEMORE_RUNBOOK_NOW must be epoch seconds or an ISO-8601 UTC time"):
        runbook_clock.now({"BEMORE_RUNBOOK_NOW": value})
