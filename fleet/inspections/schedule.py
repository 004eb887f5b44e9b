"""When each site's regular inspection falls due, and how many the month calls for. Pure:
values and an injected `now` in, values out; `fleet.inspections.service` feeds it from the
database and `fleet.reports.sla_month` asks it for the month's expected count.

Two schedules, one per site class:

- **centre** (the control centre's equipment): one inspection per calendar period of
  `centre_every_months` months (1: monthly), periods aligned on January in the city's time
  zone. An inspection in one period makes the next one due in the following period, by that
  period's end.
- **field** (a pole in the street): one inspection every `field_every_days` days, counted in
  exact days from the last one; its window opens `field_due_soon_days` before the due time.

Times are epoch ms; `due_at` is exclusive: an inspection is on time strictly before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo

from fleet.inspections.errors import ScheduleConfigError
from fleet.inventory.models import SiteClass

InspectionKind = Literal["field", "centre", "remote"]
INSPECTION_KINDS: Final[tuple[InspectionKind, ...]] = get_args(InspectionKind)
InspectionResult = Literal["pass", "fail", "partial"]
INSPECTION_RESULTS: Final[tuple[InspectionResult, ...]] = get_args(InspectionResult)

DAY_MS: Final = 86_400_000
# Calendar periods of a whole number of months that tile a year, so periods line up year on year.
_MONTH_PERIODS: Final = (1, 2, 3, 4, 6, 12)
_UTC: Final = ZoneInfo("UTC")


class DueState(StrEnum):
    NEVER = "never"  # no inspection on record: due at once
    OK = "ok"  # done recently; the next one's window has not opened
    DUE = "due"  # inside the window of the next one
    OVERDUE = "overdue"  # past the due time without an inspection


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectionSchedule:
    """How often each site class is inspected. Validated at once; `from_settings` reads a
    settings mapping and names an unknown or bad key."""

    field_every_days: int = 90  # ~6,100 field checks a year over ~1,500 poles
    field_due_soon_days: int = 14
    centre_every_months: int = 1

    def __post_init__(self) -> None:
        if not _whole(self.field_every_days, 1, 366):
            raise ScheduleConfigError("field_every_days", self.field_every_days, "whole days from 1 to 366")
        if not _whole(self.field_due_soon_days, 0, self.field_every_days):
            raise ScheduleConfigError(
                "field_due_soon_days",
                self.field_due_soon_days,
                f"whole days from 0 to field_every_days ({self.field_every_days})",
            )
        if self.centre_every_months not in _MONTH_PERIODS or isinstance(self.centre_every_months, bool):
            raise ScheduleConfigError(
                "centre_every_months",
                self.centre_every_months,
                f"one of {', '.join(map(str, _MONTH_PERIODS))} (months that tile a year)",
            )

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> InspectionSchedule:
        known = {f.name for f in fields(cls)}
        for key in settings:
            if key not in known:
                raise ScheduleConfigError(key, settings[key], f"a known key: {', '.join(sorted(known))}")
        values: dict[str, int] = {}
        for key, value in settings.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise ScheduleConfigError(key, value, "a whole number")
            values[key] = value
        return cls(**values)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True, slots=True)
class Due:
    """Where one site's next inspection stands at `now`."""

    site_class: SiteClass
    state: DueState
    last_done_at: int | None
    window_opens_at: int | None  # None: never inspected, due at once
    due_at: int | None  # exclusive; None when never inspected


def zone(time_zone: str) -> ZoneInfo:
    """The IANA zone named `time_zone`, or ScheduleConfigError naming it."""
    try:
        return ZoneInfo(time_zone)
    except (ValueError, KeyError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise ScheduleConfigError("time_zone", time_zone, "an IANA time zone such as 'Asia/Seoul'") from error


def month_start(year: int, month: int, tz: ZoneInfo) -> int:
    """Epoch ms of local midnight on the first of `month` (month 13 is January next year)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return int(datetime(year, month, 1, tzinfo=tz).timestamp()) * 1000


def month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of the local calendar month, epoch ms."""
    return month_start(year, month, tz), month_start(year, month + 1, tz)


def local_month(at_ms: int, tz: ZoneInfo) -> tuple[int, int]:
    local = datetime.fromtimestamp(at_ms / 1000, tz)
    return local.year, local.month


def due(
    site_class: SiteClass, last_done_at: int | None, now: int, *, schedule: InspectionSchedule, tz: ZoneInfo
) -> Due:
    """The next inspection of a `site_class` site last inspected at `last_done_at` (None: never)."""
    if last_done_at is None:
        return Due(site_class, DueState.NEVER, None, None, None)
    if site_class == "field":
        due_at = last_done_at + schedule.field_every_days * DAY_MS
        opens = due_at - schedule.field_due_soon_days * DAY_MS
    else:
        every = schedule.centre_every_months
        year, month = local_month(last_done_at, tz)
        period = (year * 12 + month - 1) // every  # the period the last inspection fell in
        opens = _period_start(period + 1, every, tz)
        due_at = _period_start(period + 2, every, tz)
    if now >= due_at:
        state = DueState.OVERDUE
    elif now >= opens:
        state = DueState.DUE
    else:
        state = DueState.OK
    return Due(site_class, state, last_done_at, opens, due_at)


def _period_start(period: int, every: int, tz: ZoneInfo) -> int:
    months = period * every
    return month_start(months // 12, months % 12 + 1, tz)


def expected_in_month(
    site_class: SiteClass, sites: int, year: int, month: int, *, schedule: InspectionSchedule
) -> int:
    """How many inspections of `site_class` the schedule calls for in the month, over `sites`
    sites of that class.

    centre: one per site in the month a period ends (every month when monthly), else 0.
    field: the pro-rata rate, sites x days in the month / field_every_days, rounded half up
    (4 sites every 90 days in a 30-day month: 1.33 → 1)."""
    if sites < 0:
        raise ValueError(f"sites={sites}: a count, 0 or more")
    if site_class == "centre":
        return sites if (year * 12 + month) % schedule.centre_every_months == 0 else 0
    days = (month_start(year, month + 1, _UTC) - month_start(year, month, _UTC)) // DAY_MS
    every = schedule.field_every_days
    return (2 * sites * days + every) // (2 * every)
