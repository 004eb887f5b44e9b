"""The monthly SLA figures' edge cases, pure: which month a ticket belongs to in which time
zone, how a clock is judged at the report's time (pending, breached while running, paused),
tickets open at month end, rounding of the means, and sums that must agree for any tickets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.faults import tickets as t
from fleet.faults.errors import FaultError
from fleet.faults.sla import Clock
from fleet.faults.tickets import Ticket
from fleet.inspections.errors import ScheduleConfigError
from fleet.inspections.schedule import InspectionSchedule
from fleet.reports.sla_month import (
    ALL,
    UNASSIGNED,
    MonthTicket,
    Outcome,
    SlaMonthReport,
    build_report,
    clock_outcome,
    fault_figures,
)
from tests.fleet.reports.seed import AS_OF, MIN, NODES, build_ticket, kst, seeded_tickets

SCHEDULE = InspectionSchedule()


def report(
    tickets: list[MonthTicket], *, as_of: int = AS_OF, time_zone: str = "Asia/Seoul", month: int = 11
) -> SlaMonthReport:
    return build_report(
        year=2026,
        month=month,
        time_zone=time_zone,
        tickets=tickets,
        inspections=[],
        site_counts={},
        schedule=SCHEDULE,
        as_of_ms=as_of,
    )


def seeded() -> list[MonthTicket]:
    return [MonthTicket(t, NODES[t.fault.node_id][1]) for t in seeded_tickets()]


def test_the_month_is_the_city_s_month_not_utc_s() -> None:
    def ids(r: SlaMonthReport) -> set[tuple[str, str]]:
        return {(row.site_class, row.category) for row in r.rows}

    seoul = report(seeded())
    utc = report(seeded(), time_zone="UTC")
    # In UTC, m (1 Nov 00:05 KST = 31 Oct 15:05 UTC) is October's, and n (1 Dec 00:00 KST =
    # 30 Nov 15:00 UTC) is November's: 13 - 1 + 1 = 13 tickets, but other ones.
    assert seoul.total.faults == 13
    assert utc.total.faults == 13
    assert ("field", "link") in ids(seoul)
    assert ("field", "link") not in ids(utc)
    storage = {r.category: r.faults for r in utc.rows if r.site_class == "centre"}
    assert storage == {"storage": 3, "system": 1}  # i, j and n
    assert (utc.starts_at_ms, seoul.starts_at_ms) == (kst(1, 9), kst(1, 0))  # 00:00 UTC = 09:00 KST


def test_an_unknown_time_zone_is_refused_by_name() -> None:
    with pytest.raises(ScheduleConfigError, match="time_zone='Mars/Olympus'"):
        report(seeded(), time_zone="Mars/Olympus")


def test_a_ticket_opened_exactly_at_the_month_s_start_is_in_and_at_its_end_is_out() -> None:
    first = build_ticket("x", "pole-f1", "door", "minor", kst(1, 0), ())
    after = build_ticket("y", "pole-f1", "door", "minor", kst(1, 0, month=12), ())
    result = report([MonthTicket(first, "field"), MonthTicket(after, "field")], as_of=kst(1, 0, month=12))
    assert result.total.faults == 1


def test_a_clock_running_at_the_report_time_is_pending_until_its_deadline_passes() -> None:
    ticket = build_ticket("x", "pole-f1", "camera", "major", kst(10, 9), (("acknowledge", 5),))
    assert clock_outcome(ticket, Clock.RESPONSE, kst(10, 9) + 120 * MIN) is Outcome.PENDING  # at the deadline
    assert clock_outcome(ticket, Clock.RESPONSE, kst(10, 9) + 120 * MIN + 1) is Outcome.BREACHED
    assert clock_outcome(ticket, Clock.RESOLUTION, kst(10, 9) + 121 * MIN) is Outcome.PENDING  # due at 240


def test_an_ongoing_pause_holds_a_running_clock_back() -> None:
    # Paused at 60 and still paused: at 200 the response deadline (120) has moved by 140 so far.
    ticket = build_ticket("x", "pole-f1", "supply", "major", kst(10, 9), (("pause", 60),))
    assert clock_outcome(ticket, Clock.RESPONSE, kst(10, 9) + 200 * MIN) is Outcome.PENDING
    unpaused = build_ticket("y", "pole-f1", "supply", "major", kst(10, 9), ())
    assert clock_outcome(unpaused, Clock.RESPONSE, kst(10, 9) + 200 * MIN) is Outcome.BREACHED


def test_a_stop_after_the_report_time_is_not_seen() -> None:
    # Arrived at 30: a report made at 20 still sees the clock running (pending).
    ticket = build_ticket("x", "pole-f1", "door", "minor", kst(10, 9), (("arrive", 30),))
    assert clock_outcome(ticket, Clock.RESPONSE, kst(10, 9) + 20 * MIN) is Outcome.PENDING
    assert clock_outcome(ticket, Clock.RESPONSE, kst(10, 9) + 30 * MIN) is Outcome.MET


def test_arrival_exactly_at_the_deadline_is_met() -> None:
    ticket = build_ticket("x", "pole-f1", "door", "minor", kst(10, 9), (("arrive", 120),))
    late = build_ticket("y", "pole-f1", "door", "minor", kst(10, 9), (("arrive", 121),))
    assert clock_outcome(ticket, Clock.RESPONSE, AS_OF) is Outcome.MET
    assert clock_outcome(late, Clock.RESPONSE, AS_OF) is Outcome.BREACHED


def test_open_at_month_end_counts_a_fix_at_the_first_moment_of_next_month_as_open() -> None:
    opened = kst(30, 22)
    fixed_at_end = build_ticket("x", "pole-f1", "door", "minor", opened, (("arrive", 60), ("resolve", 120)))
    fixed_before = build_ticket("y", "pole-f1", "door", "minor", opened, (("arrive", 60), ("resolve", 119)))
    figures = fault_figures(
        "door", "field", [fixed_at_end, fixed_before], month_end_ms=kst(1, 0, month=12), as_of_ms=AS_OF
    )
    # x resolved at 00:00 on 1 Dec (the month's end, exclusive): open at month end, yet handled
    # by the report's time; y resolved at 23:59: neither.
    assert (figures.open_at_month_end, figures.handled) == (1, 2)


def test_an_unplaced_node_s_tickets_are_unassigned() -> None:
    ticket = build_ticket("x", "pole-z", "link", "minor", kst(10, 9), ())
    result = report([MonthTicket(ticket, UNASSIGNED), *seeded()])
    assert [r.site_class for r in result.rows][-1] == UNASSIGNED  # after field and centre
    assert [r.site_class for r in result.class_totals] == ["field", "centre", UNASSIGNED]


def test_means_are_whole_ms_rounded_half_up() -> None:
    opened = kst(10, 9)
    # Acknowledged after 1 ms and 2 ms: mean 1.5 ms -> 2. Resolved after 60 min and 60 min + 1 ms:
    # mean 3,600,000.5 -> 3,600,001.
    one = build_ticket("x", "pole-f1", "door", "minor", opened, ())
    two = build_ticket("y", "pole-f1", "door", "minor", opened, ())
    one = t.transition(one, t.Action.ACKNOWLEDGE, at=opened + 1, by="op")
    two = t.transition(two, t.Action.ACKNOWLEDGE, at=opened + 2, by="op")
    one = t.transition(
        one, t.Action.ARRIVE, at=opened + 10, by="op", verification=t.Verification.SELF_REPORTED
    )
    two = t.transition(
        two, t.Action.ARRIVE, at=opened + 10, by="op", verification=t.Verification.SELF_REPORTED
    )
    one = t.transition(
        one, t.Action.RESOLVE, at=opened + 60 * MIN, by="op", verification=t.Verification.SELF_REPORTED
    )
    two = t.transition(
        two, t.Action.RESOLVE, at=opened + 60 * MIN + 1, by="op", verification=t.Verification.SELF_REPORTED
    )
    figures = fault_figures(ALL, ALL, [one, two], month_end_ms=AS_OF, as_of_ms=AS_OF)
    assert (figures.mtta_ms, figures.mttr_ms) == (2, 3_600_001)


def test_an_empty_month_has_no_shares_and_is_final_once_over() -> None:
    empty = report([], as_of=kst(1, 0, month=12))
    assert (empty.rows, empty.total.faults) == ((), 0)
    assert (empty.total.response_share, empty.total.mtta_ms) == (None, None)
    assert empty.final
    assert not report([], as_of=kst(1, 0, month=12) - 1).final  # the month is not over yet


def test_a_month_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="month=13"):
        report([], month=13)


SEVERITIES = st.sampled_from(["minor", "major", "critical"])
SCRIPTS = st.lists(
    st.tuples(
        st.sampled_from(["acknowledge", "arrive", "resolve", "cancel", "pause", "resume"]),
        st.integers(1, 600),
    ),
    max_size=6,
)


def scripted(index: int, severity: str, opened: int, script: list[tuple[str, int]]) -> Ticket:
    """A ticket driven by a random script: steps the lifecycle refuses are skipped."""
    ticket = build_ticket(f"t{index}", "pole-f1", "camera", severity, opened, ())  # type: ignore[arg-type]
    elapsed = 0
    for action, after in script:
        elapsed += after
        try:
            ticket = build_ticket_step(ticket, action, opened + elapsed * MIN)
        except FaultError:
            continue
    return ticket


def build_ticket_step(ticket: Ticket, action: str, at: int) -> Ticket:
    if action == "pause":
        return t.pause(ticket, at=at, by="op", reason="waiting")
    if action == "resume":
        return t.resume(ticket, at=at, by="op")
    step = t.Action(action)
    verification = t.Verification.SELF_REPORTED if step in (t.Action.ARRIVE, t.Action.RESOLVE) else None
    return t.transition(ticket, step, at=at, by="op", verification=verification)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(SEVERITIES, st.integers(kst(25, 0, month=10), kst(5, 0, month=12)), SCRIPTS, st.booleans()),
        max_size=12,
    ),
    st.integers(kst(1, 0), kst(10, 0, month=12)),
)
def test_rows_add_up_to_the_total_and_every_clock_is_counted_once(
    entries: list[tuple[str, int, list[tuple[str, int]], bool]], as_of: int
) -> None:
    month = [
        MonthTicket(scripted(i, severity, opened, script), "centre" if centre else "field")
        for i, (severity, opened, script, centre) in enumerate(entries)
    ]
    result = report(month, as_of=as_of)
    in_month = [e for e in month if kst(1, 0) <= e.ticket.opened_at < kst(1, 0, month=12)]
    assert result.total.faults == len(in_month) == sum(r.faults for r in result.rows)
    for name in (
        "handled",
        "cancelled",
        "open_at_month_end",
        "response_met",
        "resolution_breached",
        "acknowledged",
    ):
        assert getattr(result.total, name) == sum(getattr(r, name) for r in result.rows), name
        assert getattr(result.total, name) == sum(getattr(r, name) for r in result.class_totals), name
    for figures in (*result.rows, result.total):
        judged_or_pending = figures.response_met + figures.response_breached + figures.response_pending
        assert judged_or_pending <= figures.faults  # the rest are void
        for share in (figures.response_share, figures.resolution_share):
            assert share is None or 0.0 <= share <= 1.0
        assert figures.handled + figures.cancelled <= figures.faults
