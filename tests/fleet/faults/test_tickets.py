"""The ticket lifecycle: every state x action, steps attributed, clocks stopped, restarts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.faults import tickets
from fleet.faults.errors import IllegalTransition, StepRefused
from fleet.faults.rules import FaultKey
from fleet.faults.sla import HOUR_MS, MINUTE_MS, Clock, ClockState, SlaPolicy, forecast
from fleet.faults.tickets import Action, Ticket, TicketState, Verification
from protocols import messages as m

T0 = 1_760_000_000_000
POLICY = SlaPolicy()
KEY = FaultKey("pole-0042", "cam-1", "camera")

# The lifecycle, written out independently of tickets.TRANSITIONS.
LEGAL = {
    (TicketState.OPEN, Action.ACKNOWLEDGE): TicketState.ACKNOWLEDGED,
    (TicketState.OPEN, Action.ARRIVE): TicketState.ON_SITE,
    (TicketState.OPEN, Action.CANCEL): TicketState.CANCELLED,
    (TicketState.ACKNOWLEDGED, Action.DISPATCH): TicketState.DISPATCHED,
    (TicketState.ACKNOWLEDGED, Action.ARRIVE): TicketState.ON_SITE,
    (TicketState.ACKNOWLEDGED, Action.CANCEL): TicketState.CANCELLED,
    (TicketState.DISPATCHED, Action.ARRIVE): TicketState.ON_SITE,
    (TicketState.ON_SITE, Action.RESOLVE): TicketState.RESOLVED,
    (TicketState.RESOLVED, Action.REPORT): TicketState.REPORTED,
}

# How to reach each state from a fresh ticket.
PATHS = {
    TicketState.OPEN: [],
    TicketState.ACKNOWLEDGED: [Action.ACKNOWLEDGE],
    TicketState.DISPATCHED: [Action.ACKNOWLEDGE, Action.DISPATCH],
    TicketState.ON_SITE: [Action.ACKNOWLEDGE, Action.DISPATCH, Action.ARRIVE],
    TicketState.RESOLVED: [Action.ACKNOWLEDGE, Action.DISPATCH, Action.ARRIVE, Action.RESOLVE],
    TicketState.REPORTED: [Action.ACKNOWLEDGE, Action.DISPATCH, Action.ARRIVE, Action.RESOLVE, Action.REPORT],
    TicketState.CANCELLED: [Action.CANCEL],
}


def _verification(action: Action) -> Verification | None:
    return Verification.SELF_REPORTED if action in (Action.ARRIVE, Action.RESOLVE) else None


def new_ticket(severity: str = "major") -> Ticket:
    return tickets.open_ticket("t-1", KEY, severity, at=T0, policy=POLICY)  # type: ignore[arg-type]


def ticket_in(state: TicketState) -> Ticket:
    ticket = new_ticket()
    for i, action in enumerate(PATHS[state], start=1):
        ticket = tickets.transition(
            ticket, action, at=T0 + i * MINUTE_MS, by="op-1", verification=_verification(action)
        )
    assert ticket.state is state
    return ticket


@pytest.mark.parametrize("state", list(TicketState))
@pytest.mark.parametrize("action", list(Action))
def test_state_action_matrix(state: TicketState, action: Action) -> None:
    ticket = ticket_in(state)
    at = T0 + 10 * MINUTE_MS
    if (state, action) in LEGAL:
        after = tickets.transition(ticket, action, at=at, by="tech-3", verification=_verification(action))
        assert after.state is LEGAL[state, action]
        assert after.steps[-1] == tickets.Step(
            action, at, "tech-3", state, LEGAL[state, action], _verification(action)
        )
        assert ticket.state is state  # the ticket given is not changed
    else:
        with pytest.raises(IllegalTransition) as caught:
            tickets.transition(ticket, action, at=at, by="tech-3", verification=_verification(action))
        error = caught.value
        assert (error.state, error.action, error.ticket_id) == (state, action, "t-1")
        assert error.allowed == tuple(a for (s, a) in LEGAL if s is state)
        assert state.value in str(error)
        for allowed in error.allowed:
            assert allowed in str(error)


def test_matrix_table_matches_the_module() -> None:
    assert {(s, a): t for s, row in tickets.TRANSITIONS.items() for a, t in row.items()} == LEGAL
    assert tickets.allowed_actions(TicketState.REPORTED) == ()


def test_clocks_stop_at_their_steps() -> None:
    ticket = ticket_in(TicketState.DISPATCHED)
    ticket = tickets.transition(
        ticket, Action.ARRIVE, at=T0 + 90 * MINUTE_MS, by="tech-3", verification=Verification.NODE_VERIFIED
    )
    assert ticket.clocks.response.stopped_at == T0 + 90 * MINUTE_MS
    assert ticket.clocks.resolution.running
    ticket = tickets.transition(
        ticket, Action.RESOLVE, at=T0 + 5 * HOUR_MS, by="tech-3", verification=Verification.SELF_REPORTED
    )
    assert ticket.clocks.resolution.stopped_at == T0 + 5 * HOUR_MS
    ticket = tickets.transition(ticket, Action.REPORT, at=T0 + 6 * HOUR_MS, by="tech-3", note="fuse replaced")
    assert ticket.closed
    states = {f.clock: f.state for f in forecast(ticket.clocks, T0 + 48 * HOUR_MS, POLICY)}
    assert states == {
        Clock.RESPONSE: ClockState.MET,
        Clock.RESOLUTION: ClockState.BREACHED,
        Clock.REPORT: ClockState.MET,
    }
    assert ticket.steps[-1].note == "fuse replaced"
    assert ticket.step_of(Action.ARRIVE).verification is Verification.NODE_VERIFIED  # type: ignore[union-attr]


def test_cancel_voids_running_clocks() -> None:
    ticket = tickets.transition(
        new_ticket(), Action.CANCEL, at=T0 + MINUTE_MS, by="fleet", note="auto-cleared"
    )
    assert ticket.state is TicketState.CANCELLED
    assert all(f.state is ClockState.VOID for f in forecast(ticket.clocks, T0 + 48 * HOUR_MS, POLICY))


@pytest.mark.parametrize(
    ("state", "action", "verification", "at", "by", "reason"),
    [
        (TicketState.DISPATCHED, Action.ARRIVE, None, T0 + HOUR_MS, "tech", "no-verification"),
        (
            TicketState.OPEN,
            Action.ACKNOWLEDGE,
            Verification.SELF_REPORTED,
            T0 + HOUR_MS,
            "op",
            "verification",
        ),
        (TicketState.OPEN, Action.ACKNOWLEDGE, None, T0 - 1, "op", "before-open"),
        (TicketState.OPEN, Action.ACKNOWLEDGE, None, T0 + HOUR_MS, " ", "no-actor"),
        # The previous step (dispatch) was at T0 + 2 min.
        (
            TicketState.DISPATCHED,
            Action.ARRIVE,
            Verification.SELF_REPORTED,
            T0 + MINUTE_MS,
            "tech",
            "out-of-order",
        ),
        (TicketState.DISPATCHED, Action.ARRIVE, Verification.NODE_VERIFIED, T0 - 1, "tech", "before-open"),
        (
            TicketState.ON_SITE,
            Action.RESOLVE,
            Verification.NODE_VERIFIED,
            T0 + 2 * MINUTE_MS,
            "tech",
            "out-of-order",
        ),
    ],
)
def test_bad_step_details_refused(
    state: TicketState, action: Action, verification: Verification | None, at: int, by: str, reason: str
) -> None:
    with pytest.raises(StepRefused) as caught:
        tickets.transition(ticket_in(state), action, at=at, by=by, verification=verification)
    assert caught.value.reason == reason


def test_node_verified_arrival_may_predate_the_last_step() -> None:
    # The node's signed check-in says 10:20; the operator's dispatch was recorded at 10:30.
    ticket = tickets.transition(
        ticket_in(TicketState.ACKNOWLEDGED), Action.DISPATCH, at=T0 + 30 * MINUTE_MS, by="op"
    )
    ticket = tickets.transition(
        ticket, Action.ARRIVE, at=T0 + 20 * MINUTE_MS, by="tech", verification=Verification.NODE_VERIFIED
    )
    assert ticket.clocks.response.stopped_at == T0 + 20 * MINUTE_MS


def test_pause_is_audited_and_resolve_ends_it() -> None:
    ticket = ticket_in(TicketState.ON_SITE)  # arrived at T0 + 3 min
    ticket = tickets.pause(ticket, at=T0 + HOUR_MS, by="tech-3", reason="waiting for the power utility")
    ticket = tickets.transition(
        ticket, Action.RESOLVE, at=T0 + 3 * HOUR_MS, by="tech-3", verification=Verification.SELF_REPORTED
    )
    (pause,) = ticket.clocks.pauses
    assert (pause.started_at, pause.started_by, pause.reason) == (
        T0 + HOUR_MS,
        "tech-3",
        "waiting for the power utility",
    )
    assert (pause.ended_at, pause.ended_by) == (T0 + 3 * HOUR_MS, "tech-3")
    assert ticket.response_deadline == T0 + 2 * HOUR_MS  # stopped before the pause
    assert ticket.resolution_deadline == T0 + 6 * HOUR_MS
    assert ticket.report_deadline == T0 + 26 * HOUR_MS
    assert ticket.clocks.paused_since is None


@pytest.mark.parametrize("state", [TicketState.RESOLVED, TicketState.REPORTED, TicketState.CANCELLED])
def test_pause_refused_once_fixed_or_closed(state: TicketState) -> None:
    with pytest.raises(StepRefused) as caught:
        tickets.pause(ticket_in(state), at=T0 + HOUR_MS, by="op", reason="utility")
    assert caught.value.reason == "not-pausable"


def test_nested_pause_refused_on_a_ticket() -> None:
    ticket = tickets.pause(new_ticket(), at=T0 + 1, by="op", reason="utility")
    with pytest.raises(StepRefused) as caught:
        tickets.pause(ticket, at=T0 + 2, by="op", reason="utility")
    assert caught.value.reason == "already-paused"
    with pytest.raises(StepRefused):
        tickets.resume(new_ticket(), at=T0 + 2, by="op")


# --- restart ----------------------------------------------------------------------------------

actions = st.lists(
    st.tuples(st.sampled_from([*Action, "pause", "resume"]), st.integers(min_value=0, max_value=3 * HOUR_MS)),
    max_size=10,
)


@given(history=actions, severity=st.sampled_from(["minor", "major", "critical"]))
def test_a_restart_changes_no_deadline(history: list[tuple[object, int]], severity: str) -> None:
    ticket = new_ticket(severity)
    now = T0
    for action, gap in history:
        now += gap
        try:
            if action == "pause":
                ticket = tickets.pause(ticket, at=now, by="op", reason="utility")
            elif action == "resume":
                ticket = tickets.resume(ticket, at=now, by="op")
            else:
                assert isinstance(action, Action)
                ticket = tickets.transition(
                    ticket, action, at=now, by="op", verification=_verification(action)
                )
        except (IllegalTransition, StepRefused):
            pass
        stored = json.dumps(tickets.to_record(ticket))
        restored = tickets.from_record(json.loads(stored))
        assert restored == ticket
        assert type(restored.fault) is FaultKey
        assert (restored.response_deadline, restored.resolution_deadline, restored.report_deadline) == (
            ticket.response_deadline,
            ticket.resolution_deadline,
            ticket.report_deadline,
        )
        later = now + 7 * HOUR_MS
        assert forecast(restored.clocks, later, POLICY) == forecast(ticket.clocks, later, POLICY)


def test_record_is_plain_json_with_absolute_deadlines() -> None:
    record = tickets.to_record(ticket_in(TicketState.ON_SITE))
    assert record["state"] == "on_site"
    assert record["fault"] == ["pole-0042", "cam-1", "camera"]
    assert record["clocks"]["resolution"]["base_at"] == T0 + 4 * HOUR_MS
    assert record["steps"][-1]["verification"] == "self-reported"


# --- site visits ------------------------------------------------------------------------------


def visit(action: m.VisitAction, *, clock_synced: bool | None = True) -> m.SiteVisit:
    return m.SiteVisit(
        ts=T0 + HOUR_MS,
        seq=3,
        visit_id="v-1",
        action=action,
        technician="tech-3",
        at=T0 + 40 * MINUTE_MS,
        clock_synced=clock_synced,
        fault_id="t-1",
        node_key_id="0123456789abcdef",
        signature="A" * 86 + "==",
    )


@pytest.mark.parametrize(
    ("action", "signature_valid", "clock_synced", "expected"),
    [
        ("check-in", True, True, (Action.ARRIVE, T0 + 40 * MINUTE_MS, Verification.NODE_VERIFIED)),
        ("check-in", True, None, (Action.ARRIVE, T0 + 40 * MINUTE_MS, Verification.NODE_VERIFIED)),
        ("check-in", False, True, (Action.ARRIVE, T0 + 40 * MINUTE_MS, Verification.SELF_REPORTED)),
        ("check-in", True, False, (Action.ARRIVE, T0 + 2 * HOUR_MS, Verification.SELF_REPORTED)),
        ("resolve", True, True, (Action.RESOLVE, T0 + 40 * MINUTE_MS, Verification.NODE_VERIFIED)),
        ("check-out", True, True, None),
    ],
)
def test_site_visit_to_step(
    action: m.VisitAction,
    signature_valid: bool,
    clock_synced: bool | None,
    expected: tuple[Action, int, Verification] | None,
) -> None:
    step = tickets.visit_step(
        visit(action, clock_synced=clock_synced),
        signature_valid=signature_valid,
        received_at=T0 + 2 * HOUR_MS,
    )
    if expected is None:
        assert step is None
    else:
        assert step is not None
        assert (step.action, step.at, step.verification) == expected
        assert step.by == "tech-3"


def test_node_verified_check_in_stops_the_response_clock_when_it_happened() -> None:
    step = tickets.visit_step(visit("check-in"), signature_valid=True, received_at=T0 + 3 * HOUR_MS)
    assert step is not None
    ticket = tickets.transition(
        ticket_in(TicketState.DISPATCHED), step.action, at=step.at, by=step.by, verification=step.verification
    )
    (response, *_) = forecast(ticket.clocks, T0 + 3 * HOUR_MS, POLICY)
    assert (response.state, response.remaining_ms) == (ClockState.MET, 80 * MINUTE_MS)
