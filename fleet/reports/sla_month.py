"""The contract's monthly SLA report, computed from values: the month's fault tickets (each
with its node's site class) and inspections in, figures out. Pure: the time the report is
made (`as_of_ms`) is passed in; fleet.reports.service loads the month, fleet.reports.render
writes it as JSON, CSV or a printable page. docs/reports.md explains each figure.

Edge cases, decided here:

- **Which tickets**: those *opened* in the month, in the city's time zone: from local
  midnight on the 1st (included) to local midnight on the 1st of the next month (excluded).
  A fault opened at 23:59 local on the last day of the previous month belongs to that month,
  even when its UTC time falls in this one, and the other way round.
- **Judged by the clocks as stored**: a clock is *met* if it stopped at or before its stored
  deadline (`Deadline.due_at`, which already holds the paused time), *breached* if it stopped
  after it, or is still running after it at `as_of_ms` (an ongoing pause counted as
  `fleet.faults.sla.effective_deadline` does). Nothing is recomputed from pauses here.
- **Void** clocks (a ticket auto-cleared before the clock was due) count neither way; a
  breach that happened before the cancellation stays a breach.
- **Pending**: a clock still running and not yet past its deadline at `as_of_ms`. It is
  counted (`*_pending`) and left out of the share until it is judged; a report with pending
  clocks is not `final`, and a later run (a larger `as_of_ms`) completes it. A fault that
  opens in the last hours of a month is judged with that month, whenever its clock stops.
- **Open at month end**: a ticket neither resolved nor cancelled by the month's end (by the
  steps' own times; resolved but not yet reported counts as fixed). Counted, and judged like
  the others by its clocks at `as_of_ms`.
- **Handled**: resolved by `as_of_ms` (the resolution step exists); cancelled
  (auto-cleared) tickets are counted apart, not as handled.
- **MTTA** is the mean of (acknowledge - opened) over tickets with an explicit acknowledge
  step; a ticket that went straight to an arrival has none and is left out. **MTTR** is the
  mean of (resolve - opened) over handled tickets. Both are wall-clock: paused time is
  inside them (the shares, not the means, are where pauses are forgiven). Means are whole
  ms, rounded half up; None when nothing was measured.
- **Site class** is the class of the site the ticket's node stands at when the report is
  made; a node without a site gives `unassigned`.
- **Inspections**: those done in the month (local time, `done_at_ms`), by kind: field checks
  and centre checks against the schedule's expected count (fleet.inspections.schedule),
  remote self-tests counted without an expectation. A failed inspection was still done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fleet.faults.sla import Clock, effective_deadline
from fleet.faults.tickets import Action, Ticket
from fleet.inspections.schedule import (
    INSPECTION_KINDS,
    InspectionSchedule,
    expected_in_month,
    month_bounds,
    zone,
)
from fleet.inventory.models import SITE_CLASSES

ALL: Final = "all"  # the category or site class of a total row
UNASSIGNED: Final = "unassigned"  # the site class of a ticket whose node has no site
_CLASS_ORDER: Final = {name: index for index, name in enumerate((*SITE_CLASSES, UNASSIGNED))}


class Outcome(StrEnum):
    MET = "met"
    BREACHED = "breached"
    PENDING = "pending"  # still running, not yet past its deadline
    VOID = "void"


@dataclass(frozen=True, slots=True)
class MonthTicket:
    ticket: Ticket
    site_class: str


@dataclass(frozen=True, slots=True)
class MonthInspection:
    site_id: str
    kind: str  # "field", "centre", "remote"
    result: str  # "pass", "fail", "partial"
    done_at_ms: int


@dataclass(frozen=True, slots=True)
class FaultFigures:
    """One row: the tickets of one category at one site class (or `all`)."""

    category: str
    site_class: str
    faults: int
    handled: int
    cancelled: int
    open_at_month_end: int
    response_met: int
    response_breached: int
    response_pending: int
    resolution_met: int
    resolution_breached: int
    resolution_pending: int
    acknowledged: int  # tickets in the MTTA
    mtta_ms: int | None
    mttr_ms: int | None

    @property
    def response_share(self) -> float | None:
        """Share of judged tickets whose technician was on site in time (void, pending left out)."""
        return _share(self.response_met, self.response_breached)

    @property
    def resolution_share(self) -> float | None:
        return _share(self.resolution_met, self.resolution_breached)


@dataclass(frozen=True, slots=True)
class InspectionFigures:
    kind: str  # "field", "centre", "remote"
    expected: int | None  # None: remote self-tests have no contractual count
    done: int
    passed: int
    failed: int
    partial: int
    sites: int  # distinct sites inspected


@dataclass(frozen=True, slots=True)
class SlaMonthReport:
    year: int
    month: int
    time_zone: str
    starts_at_ms: int
    ends_at_ms: int  # exclusive
    as_of_ms: int
    rows: tuple[FaultFigures, ...]  # one per category x site class, by site class then category
    class_totals: tuple[FaultFigures, ...]  # one per site class, category "all"
    total: FaultFigures
    inspections: tuple[InspectionFigures, ...]  # field, centre, remote

    @property
    def period(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def final(self) -> bool:
        """The month is over and every clock of its tickets is judged: the figures will not move."""
        pending = self.total.response_pending + self.total.resolution_pending
        return self.as_of_ms >= self.ends_at_ms and pending == 0


def clock_outcome(ticket: Ticket, clock: Clock, as_of_ms: int) -> Outcome:
    """Where `clock` of `ticket` stands at `as_of_ms`, by its stored deadline."""
    deadline = ticket.clocks[clock]
    if deadline.stopped_at is not None and deadline.stopped_at <= as_of_ms:
        if deadline.void:
            return Outcome.VOID
        return Outcome.MET if deadline.stopped_at <= deadline.due_at else Outcome.BREACHED
    if as_of_ms > effective_deadline(ticket.clocks, clock, as_of_ms):
        return Outcome.BREACHED
    return Outcome.PENDING


def _step_at(ticket: Ticket, action: Action, by_ms: int) -> int | None:
    step = ticket.step_of(action)
    return step.at if step is not None and step.at <= by_ms else None


def _share(met: int, breached: int) -> float | None:
    judged = met + breached
    return met / judged if judged else None


def _mean(values: list[int]) -> int | None:
    if not values:
        return None
    return (2 * sum(values) + len(values)) // (2 * len(values))


def fault_figures(
    category: str, site_class: str, tickets: Iterable[Ticket], *, month_end_ms: int, as_of_ms: int
) -> FaultFigures:
    """The figures of one group of tickets (all opened in the month)."""
    faults = handled = cancelled = open_at_end = 0
    outcomes: dict[Clock, dict[Outcome, int]] = {c: dict.fromkeys(Outcome, 0) for c in Clock}
    to_ack: list[int] = []
    to_resolve: list[int] = []
    for ticket in tickets:
        faults += 1
        resolved = _step_at(ticket, Action.RESOLVE, as_of_ms)
        acknowledged = _step_at(ticket, Action.ACKNOWLEDGE, as_of_ms)
        if resolved is not None:
            handled += 1
            to_resolve.append(resolved - ticket.opened_at)
        if acknowledged is not None:
            to_ack.append(acknowledged - ticket.opened_at)
        if _step_at(ticket, Action.CANCEL, as_of_ms) is not None:
            cancelled += 1
        ended = [_step_at(ticket, a, month_end_ms - 1) for a in (Action.RESOLVE, Action.CANCEL)]
        if all(at is None for at in ended):
            open_at_end += 1
        for clock in (Clock.RESPONSE, Clock.RESOLUTION):
            outcomes[clock][clock_outcome(ticket, clock, as_of_ms)] += 1
    response, resolution = outcomes[Clock.RESPONSE], outcomes[Clock.RESOLUTION]
    return FaultFigures(
        category=category,
        site_class=site_class,
        faults=faults,
        handled=handled,
        cancelled=cancelled,
        open_at_month_end=open_at_end,
        response_met=response[Outcome.MET],
        response_breached=response[Outcome.BREACHED],
        response_pending=response[Outcome.PENDING],
        resolution_met=resolution[Outcome.MET],
        resolution_breached=resolution[Outcome.BREACHED],
        resolution_pending=resolution[Outcome.PENDING],
        acknowledged=len(to_ack),
        mtta_ms=_mean(to_ack),
        mttr_ms=_mean(to_resolve),
    )


def inspection_figures(
    inspections: Iterable[MonthInspection], *, expected: Mapping[str, int | None]
) -> tuple[InspectionFigures, ...]:
    """Per kind (field, centre, remote): done, by result, distinct sites, against `expected`."""
    by_kind: dict[str, list[MonthInspection]] = {kind: [] for kind in INSPECTION_KINDS}
    for inspection in inspections:
        by_kind.setdefault(inspection.kind, []).append(inspection)
    return tuple(
        InspectionFigures(
            kind=kind,
            expected=expected.get(kind),
            done=len(done),
            passed=sum(1 for i in done if i.result == "pass"),
            failed=sum(1 for i in done if i.result == "fail"),
            partial=sum(1 for i in done if i.result == "partial"),
            sites=len({i.site_id for i in done}),
        )
        for kind, done in by_kind.items()
    )


def build_report(
    *,
    year: int,
    month: int,
    time_zone: str,
    tickets: Iterable[MonthTicket],
    inspections: Iterable[MonthInspection],
    site_counts: Mapping[str, int],
    schedule: InspectionSchedule,
    as_of_ms: int,
) -> SlaMonthReport:
    """The report of `year`-`month`. Tickets and inspections outside the month (in
    `time_zone`) are left out here, so a caller may pass a wider selection; so are
    inspections done after `as_of_ms`. `site_counts` is the number of sites per class, for
    the expected inspections."""
    if not 1 <= month <= 12:
        raise ValueError(f"month={month}: 1 to 12")
    starts, ends = month_bounds(year, month, zone(time_zone))
    groups: dict[tuple[str, str], list[Ticket]] = {}
    for entry in tickets:
        if starts <= entry.ticket.opened_at < ends:
            groups.setdefault((entry.site_class, entry.ticket.fault.kind), []).append(entry.ticket)
    keys = sorted(groups, key=lambda k: (_CLASS_ORDER.get(k[0], len(_CLASS_ORDER)), k[0], k[1]))
    window = {"month_end_ms": ends, "as_of_ms": as_of_ms}
    rows = tuple(
        fault_figures(category, site_class, groups[site_class, category], **window)
        for site_class, category in keys
    )
    classes = list(dict.fromkeys(site_class for site_class, _ in keys))
    class_totals = tuple(
        fault_figures(
            ALL, site_class, [t for (c, _), ts in groups.items() if c == site_class for t in ts], **window
        )
        for site_class in classes
    )
    total = fault_figures(ALL, ALL, [t for ts in groups.values() for t in ts], **window)
    expected: dict[str, int | None] = {
        site_class: expected_in_month(
            site_class, site_counts.get(site_class, 0), year, month, schedule=schedule
        )
        for site_class in SITE_CLASSES
    }
    in_month = [i for i in inspections if starts <= i.done_at_ms < ends and i.done_at_ms <= as_of_ms]
    return SlaMonthReport(
        year=year,
        month=month,
        time_zone=time_zone,
        starts_at_ms=starts,
        ends_at_ms=ends,
        as_of_ms=as_of_ms,
        rows=rows,
        class_totals=class_totals,
        total=total,
        inspections=inspection_figures(in_month, expected=expected),
    )
