"""The one time stamp reader, status order and median every part of the
runbook uses (module_utils/runbook_common.py), and that the old names are
the same objects."""

from __future__ import annotations

import datetime

import pytest

from ansible.module_utils import bemore_api, bemore_steps, report_files, runbook_clock, runbook_common
from ansible.module_utils.runbook_common import SEVERITIES, STATUS_RANK, iso, median, parse_iso, parse_time, percentile

from tests.helpers import load_module

UTC = datetime.timezone.utc
# 2026-12-02T09:45:51.548Z, the recorded /health answer's time.
STAMP = datetime.datetime(2026, 12, 2, 9, 45, 51, 548000, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "2026-12-02T09:45:51.548Z",            # the backend's toISOString
    "2026-12-02T09:45:51.548z",
    " 2026-12-02T09:45:51.548Z ",
    "2026-12-02T09:45:51.548+00:00",
    "2026-12-02T10:45:51.548+01:00",
    "2026-12-02T10:45:51.548+0100",
    "2026-12-02T04:15:51.548-05:30",
    "2026-12-02 09:45:51.548Z",            # a space for the T
    "2026-12-02T09:45:51.548",             # no offset: UTC
    "2026-12-02T09:45:51.548000999Z",      # nanoseconds: cut to microseconds
])
def test_one_instant_in_every_accepted_form(text):
    assert parse_iso(text) == STAMP
    assert parse_time(text) == pytest.approx(STAMP.timestamp())


@pytest.mark.parametrize("text, expected", [
    ("2026-12-02T09:45:51Z", datetime.datetime(2026, 12, 2, 9, 45, 51, tzinfo=UTC)),  # a report's generated_at
    ("2026-12-02T23:30:00-01:00", datetime.datetime(2026, 12, 3, 0, 30, tzinfo=UTC)),  # the offset crosses midnight
    ("2024-02-29T00:00:00Z", datetime.datetime(2024, 2, 29, tzinfo=UTC)),
])
def test_the_instant_is_in_utc(text, expected):
    got = parse_iso(text)
    assert got == expected and got.utcoffset() == datetime.timedelta(0)


@pytest.mark.parametrize("text", [
    None, 1796204751, "", "yesterday", "2026-12-02", "2026-12-02T09:45Z", "2026-13-01T00:00:00Z",
    "2025-02-29T00:00:00Z", "2026-12-02T24:00:00Z", "2026-12-02T09:45:51+24:00", "2026-12-02T09:45:51+01:60",
    "2026-12-02T09:45:51.Z", "2026-12-02T09:45:51 Z", "2026-12-02T09:45:51Zjunk",
])
def test_anything_else_is_none(text):
    assert parse_iso(text) is None and parse_time(text) is None


@pytest.mark.parametrize("ts, text", [(0, "1970-01-01T00:00:00Z"), (STAMP.timestamp(), "2026-12-02T09:45:51Z")])
def test_iso_writes_utc_to_the_second_and_reads_back(ts, text):
    assert iso(ts) == text and parse_time(text) == int(ts)


def test_statuses_and_severities_rank_from_fine_to_worst():
    assert sorted(STATUS_RANK, key=STATUS_RANK.get)[-3:] == ["warning", "critical", "failed"]
    assert set(k for k, v in STATUS_RANK.items() if v == 0) == {"ok", "skipped", "not_applicable", "not_run"}
    assert SEVERITIES == ("none", "low", "medium", "high", "critical")


@pytest.mark.parametrize("values, pct, expected", [
    ([], 50, None),
    ([7], 50, 7), ([7], 95, 7), ([7], 0, 7),
    ([30, 10], 50, 10),                      # the lower middle of an even count
    ([10, 20, 30], 50, 20),
    ([10, 20, 30, 40], 50, 20), ([10, 20, 30, 40], 75, 30), ([10, 20, 30, 40], 76, 40),
    (list(range(1, 21)), 95, 19), (list(range(1, 21)), 96, 20), (list(range(1, 21)), 100, 20),
])
def test_nearest_rank_percentile(values, pct, expected):
    assert percentile(values, pct) == expected


@pytest.mark.parametrize("values, expected", [([], None), ([5.5], 5.5), ([3, 1, 2], 2), ([4, 1, 3, 2], 2),
                                              ([10.04, 20.06, 30.0], 20.06)])
def test_the_median_is_the_nearest_rank_50th_percentile(values, expected):
    assert median(values) == expected == percentile(values, 50)


def test_the_old_names_are_the_same_objects():
    trend = load_module("report_trend")
    assert bemore_steps.STATUS_RANK is report_files.STATUS_RANK is STATUS_RANK
    assert bemore_steps.SEVERITIES is report_files.SEVERITIES is SEVERITIES
    assert bemore_steps.percentile is percentile
    assert bemore_api.parse_time is bemore_steps.parse_time is runbook_common.parse_time
    assert bemore_api.iso is bemore_steps.iso is runbook_common.iso
    assert trend.parse_time is parse_iso
    assert runbook_clock.parse("2026-12-02T09:45:51.548Z") == pytest.approx(STAMP.timestamp())
