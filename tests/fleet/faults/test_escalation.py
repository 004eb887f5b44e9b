"""Escalation steps: due at the right moment, each sent once, none for a stopped clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleet.faults import tickets
from fleet.faults.escalation import due_escalations, escalation_key
from fleet.faults.rules import FaultKey
from fleet.faults.sla import HOUR_MS, MINUTE_MS, SlaPolicy
from fleet.faults.tickets import Action, Verification

T0 = 1_760_000_000_000
POLICY = SlaPolicy()  # response 2 h, critical 3 h, report 24 h; warnings 30 min before


def ticket() -> tickets.Ticket:
    return tickets.open_ticket(
        "t-9", FaultKey("pole-7", "bell-1", "bell-circuit"), "critical", at=T0, policy=POLICY
    )


def names(ticket: tickets.Ticket, now: int, sent: set[str] | None = None) -> list[str]:
    return [d.step.name for d in due_escalations(ticket, now, sent or set())]


def test_nothing_due_at_first() -> None:
    assert names(ticket(), T0) == []


def test_warning_due_once_less_than_30_minutes_are_left() -> None:
    assert names(ticket(), T0 + 90 * MINUTE_MS) == []
    assert names(ticket(), T0 + 90 * MINUTE_MS + 1) == ["response-warning"]


def test_breach_step_due_once_the_deadline_is_past() -> None:
    assert names(ticket(), T0 + 2 * HOUR_MS) == ["response-warning"]
    assert names(ticket(), T0 + 2 * HOUR_MS + 1) == ["response-warning", "response-breach"]
    assert names(ticket(), T0 + 3 * HOUR_MS + 1) == [
        "response-warning",
        "response-breach",
        "resolution-warning",
        "resolution-breach",
    ]  # in the order they fell due


def test_keys_are_per_ticket_and_step() -> None:
    (due,) = due_escalations(ticket(), T0 + 100 * MINUTE_MS, set())
    assert due.key == "t-9/response-warning" == escalation_key("t-9", POLICY.escalations[0])
    assert due.deadline == T0 + 2 * HOUR_MS
    assert due.due_since == T0 + 90 * MINUTE_MS + 1


def test_a_stopped_clock_escalates_no_more() -> None:
    arrived = tickets.transition(
        ticket(), Action.ARRIVE, at=T0 + 100 * MINUTE_MS, by="tech", verification=Verification.NODE_VERIFIED
    )
    assert names(arrived, T0 + 2 * HOUR_MS + 1) == []
    assert names(arrived, T0 + 3 * HOUR_MS + 1) == ["resolution-warning", "resolution-breach"]


def test_a_pause_holds_back_steps_and_does_not_repeat_sent_ones() -> None:
    paused = tickets.pause(ticket(), at=T0 + 95 * MINUTE_MS, by="op", reason="utility")
    sent = {d.key for d in due_escalations(paused, T0 + 95 * MINUTE_MS, set())}
    assert sent == {"t-9/response-warning"}
    # Paused for hours: nothing new falls due.
    assert names(paused, T0 + 20 * HOUR_MS, sent) == []
    resumed = tickets.resume(paused, at=T0 + 20 * HOUR_MS, by="op")
    assert names(resumed, T0 + 20 * HOUR_MS + 25 * MINUTE_MS, sent) == []
    assert names(resumed, T0 + 20 * HOUR_MS + 25 * MINUTE_MS + 1, sent) == ["response-breach"]


def test_a_closed_ticket_escalates_nothing() -> None:
    cancelled = tickets.transition(ticket(), Action.CANCEL, at=T0 + MINUTE_MS, by="fleet")
    assert names(cancelled, T0 + 48 * HOUR_MS) == []


@given(polls=st.lists(st.integers(min_value=0, max_value=2 * HOUR_MS), min_size=1, max_size=40))
def test_each_step_is_sent_exactly_once_however_often_the_shell_polls(polls: list[int]) -> None:
    t = ticket()
    sent: list[str] = []
    now = T0
    for gap in polls:
        now += gap
        sent.extend(d.key for d in due_escalations(t, now, set(sent)))
        # A restart: the shell reloads the ticket and asks again with what it recorded.
        t = tickets.from_record(tickets.to_record(t))
        assert due_escalations(t, now, set(sent)) == []
    assert len(sent) == len(set(sent))
    expected = {
        escalation_key("t-9", step)
        for step in POLICY.escalations
        if now > t.clocks[step.clock].due_at + step.after_ms
    }
    assert set(sent) == expected
