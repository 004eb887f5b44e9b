"""The inspection schedule with injected time: field checks every N days with a due-soon window,
centre checks once per calendar period in the city's time zone, the month's expected counts,
and settings refused by the name of the bad key."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.inspections.errors import ScheduleConfigError
from fleet.inspections.schedule import (
    DAY_MS,
    DueState,
    InspectionSchedule,
    due,
    expected_in_month,
    local_month,
    month_bounds,
    zone,
)

SEOUL = ZoneInfo("Asia/Seoul")
SCHEDULE = InspectionSchedule(field_every_days=90, field_due_soon_days=14, centre_every_months=1)


def kst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=SEOUL).timestamp()) * 1000


def test_a_field_site_is_ok_then_due_then_overdue() -> None:
    last = kst(2026, 8, 1, 10)
    at = {
        "day 75": last + 75 * DAY_MS,  # window opens at 90 - 14 = 76 days
        "day 76": last + 76 * DAY_MS,
        "just before 90": last + 90 * DAY_MS - 1,
        "day 90": last + 90 * DAY_MS,  # due_at is exclusive: overdue from then
    }
    states = {name: due("field", last, now, schedule=SCHEDULE, tz=SEOUL).state for name, now in at.items()}
    assert states == {
        "day 75": DueState.OK,
        "day 76": DueState.DUE,
        "just before 90": DueState.DUE,
        "day 90": DueState.OVERDUE,
    }
    entry = due("field", last, last, schedule=SCHEDULE, tz=SEOUL)
    assert (entry.window_opens_at, entry.due_at) == (last + 76 * DAY_MS, last + 90 * DAY_MS)


def test_never_inspected_is_due_at_once() -> None:
    entry = due("centre", None, kst(2026, 11, 5), schedule=SCHEDULE, tz=SEOUL)
    assert (entry.state, entry.due_at, entry.last_done_at) == (DueState.NEVER, None, None)


def test_a_monthly_centre_check_is_due_next_month_in_local_time() -> None:
    # 31 Oct 23:30 KST is October's (it is 14:30 UTC): the next check falls due in November.
    last = kst(2026, 10, 31, 23, 30)
    entry = due("centre", last, kst(2026, 10, 31, 23, 45), schedule=SCHEDULE, tz=SEOUL)
    assert (entry.state, entry.window_opens_at, entry.due_at) == (
        DueState.OK,
        kst(2026, 11, 1),
        kst(2026, 12, 1),
    )
    assert due("centre", last, kst(2026, 11, 1), schedule=SCHEDULE, tz=SEOUL).state is DueState.DUE
    assert due("centre", last, kst(2026, 11, 30, 23, 59), schedule=SCHEDULE, tz=SEOUL).state is DueState.DUE
    assert due("centre", last, kst(2026, 12, 1), schedule=SCHEDULE, tz=SEOUL).state is DueState.OVERDUE


def test_a_quarterly_centre_check_follows_calendar_quarters() -> None:
    quarterly = InspectionSchedule(centre_every_months=3)
    # Done in February (Q1): the next is due in Q2 (April-June), overdue from 1 July.
    entry = due("centre", kst(2026, 2, 10), kst(2026, 3, 31), schedule=quarterly, tz=SEOUL)
    assert (entry.state, entry.window_opens_at, entry.due_at) == (
        DueState.OK,
        kst(2026, 4, 1),
        kst(2026, 7, 1),
    )
    # Done in December: the next quarter is the next year's first.
    entry = due("centre", kst(2026, 12, 31, 12), kst(2027, 1, 2), schedule=quarterly, tz=SEOUL)
    assert (entry.state, entry.due_at) == (DueState.DUE, kst(2027, 4, 1))


def test_expected_counts_in_a_month() -> None:
    # Centre, monthly: one per centre site every month.
    assert expected_in_month("centre", 3, 2026, 11, schedule=SCHEDULE) == 3
    # Centre, quarterly: only in the month a quarter ends (March, June, September, December).
    quarterly = InspectionSchedule(centre_every_months=3)
    assert [expected_in_month("centre", 2, 2026, month, schedule=quarterly) for month in range(1, 13)] == [
        0, 0, 2, 0, 0, 2, 0, 0, 2, 0, 0, 2,
    ]  # fmt: skip
    # Field, pro rata rounded half up: 1,500 poles every 90 days in November (30 days):
    # 1500 x 30 / 90 = 500; in December (31 days): 1500 x 31 / 90 = 516.67 -> 517.
    assert expected_in_month("field", 1500, 2026, 11, schedule=SCHEDULE) == 500
    assert expected_in_month("field", 1500, 2026, 12, schedule=SCHEDULE) == 517
    # 3 poles every 60 days in a 30-day month: 1.5 -> 2 (half up); in February 2026 (28): 1.4 -> 1.
    every_60 = InspectionSchedule(field_every_days=60)
    assert expected_in_month("field", 3, 2026, 11, schedule=every_60) == 2
    assert expected_in_month("field", 3, 2026, 2, schedule=every_60) == 1
    assert expected_in_month("field", 0, 2026, 2, schedule=every_60) == 0


def test_month_bounds_are_local_midnights() -> None:
    starts, ends = month_bounds(2026, 12, SEOUL)
    assert (starts, ends) == (kst(2026, 12, 1), kst(2027, 1, 1))
    assert ends - starts == 31 * DAY_MS
    assert local_month(kst(2026, 11, 1) - 1, SEOUL) == (2026, 10)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"field_every_days": 0}, "field_every_days"),
        ({"field_every_days": 400}, "field_every_days"),
        ({"field_every_days": 10, "field_due_soon_days": 11}, "field_due_soon_days"),
        ({"centre_every_months": 5}, "centre_every_months"),
        ({"centre_every_months": True}, "centre_every_months"),
        ({"field_every_days": "90"}, "field_every_days"),
        ({"field_every_dayz": 90}, "field_every_dayz"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ScheduleConfigError) as caught:
        InspectionSchedule.from_settings(settings)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}=")


def test_good_settings_are_taken() -> None:
    schedule = InspectionSchedule.from_settings({"field_every_days": 30, "centre_every_months": 6})
    assert (schedule.field_every_days, schedule.field_due_soon_days, schedule.centre_every_months) == (
        30,
        14,
        6,
    )


def test_an_unknown_zone_is_named() -> None:
    with pytest.raises(ScheduleConfigError, match="time_zone='Asia/Atlantis'"):
        zone("Asia/Atlantis")


TIMES = st.integers(kst(2020, 1, 1), kst(2035, 1, 1))


@given(TIMES, st.integers(0, 400 * DAY_MS), st.integers(1, 366), st.data())
def test_field_state_follows_the_arithmetic(last: int, elapsed: int, every: int, data: st.DataObject) -> None:
    soon = data.draw(st.integers(0, every))
    schedule = InspectionSchedule(field_every_days=every, field_due_soon_days=soon)
    entry = due("field", last, last + elapsed, schedule=schedule, tz=SEOUL)
    if elapsed >= every * DAY_MS:
        assert entry.state is DueState.OVERDUE
    elif elapsed >= (every - soon) * DAY_MS:
        assert entry.state is DueState.DUE
    else:
        assert entry.state is DueState.OK


@given(TIMES, st.sampled_from([1, 2, 3, 4, 6, 12]), st.sampled_from(["Asia/Seoul", "UTC", "Europe/Berlin"]))
def test_a_centre_window_is_the_next_whole_period(last: int, every: int, time_zone: str) -> None:
    tz = ZoneInfo(time_zone)
    entry = due("centre", last, last, schedule=InspectionSchedule(centre_every_months=every), tz=tz)
    assert entry.state is DueState.OK  # just inspected
    assert entry.window_opens_at is not None
    assert entry.due_at is not None
    assert last < entry.window_opens_at < entry.due_at
    opens = datetime.fromtimestamp(entry.window_opens_at / 1000, tz)
    closes = datetime.fromtimestamp(entry.due_at / 1000, tz)
    # Both bounds are local midnights on the 1st of a month starting a period.
    for bound in (opens, closes):
        assert (bound.day, bound.hour, bound.minute) == (1, 0, 0)
        assert (bound.month - 1) % every == 0
    months = (closes.year * 12 + closes.month) - (opens.year * 12 + opens.month)
    assert months == every
    # The last inspection's own period ends exactly where the window opens.
    last_local = datetime.fromtimestamp(last / 1000, tz)
    last_month = last_local.year * 12 + last_local.month - 1
    assert (opens.year * 12 + opens.month - 1) - (last_month - last_month % every) == every


@given(st.integers(1, 366), st.integers(1, 12), st.integers(0, 2000))
def test_field_expectation_is_the_nearest_whole_number(every: int, month: int, sites: int) -> None:
    schedule = InspectionSchedule(field_every_days=every, field_due_soon_days=0)
    starts, ends = month_bounds(2026, month, ZoneInfo("UTC"))
    exact = sites * ((ends - starts) // DAY_MS) / every
    assert abs(expected_in_month("field", sites, 2026, month, schedule=schedule) - exact) <= 0.5
