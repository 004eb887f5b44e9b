"""A fault ticket's lifecycle as an explicit state machine: one `transition()` that refuses
illegal moves, each step timestamped and attributed, driving the SLA clocks (`fleet.faults.sla`).
Pure: the shell loads a ticket, calls these, and stores what comes back. `TRANSITIONS` is the
whole lifecycle (drawn in docs/faults.md):

    open -> acknowledged -> dispatched -> on_site -> resolved -> reported
    open, acknowledged -> on_site          (arrive: a check-in is a fact from the pole)
    open, acknowledged -> cancelled        (auto-cleared before anyone was sent)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NamedTuple

import msgspec

from fleet.faults import sla
from fleet.faults.errors import ClockError, IllegalTransition, StepRefused
from fleet.faults.rules import FaultKey
from fleet.faults.sla import Clock, FaultSeverity, SlaClocks, SlaPolicy
from protocols import messages as m


class TicketState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    REPORTED = "reported"  # closed
    CANCELLED = "cancelled"  # closed: the fault cleared by itself before anyone was sent


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"  # an operator saw it
    DISPATCH = "dispatch"  # a technician was sent
    ARRIVE = "arrive"  # the technician is at the pole: stops the response clock
    RESOLVE = "resolve"  # fixed: stops the resolution clock
    REPORT = "report"  # the work report is in: stops the report clock, closes the ticket
    CANCEL = "cancel"  # auto-cleared (or raised in error) before dispatch: voids running clocks


class Verification(StrEnum):
    """How the fleet knows a technician was at the pole."""

    NODE_VERIFIED = "node-verified"  # a SiteVisit signed by the node's key
    SELF_REPORTED = "self-reported"  # the technician (or an operator) said so


TRANSITIONS: Final[dict[TicketState, dict[Action, TicketState]]] = {
    TicketState.OPEN: {
        Action.ACKNOWLEDGE: TicketState.ACKNOWLEDGED,
        Action.ARRIVE: TicketState.ON_SITE,
        Action.CANCEL: TicketState.CANCELLED,
    },
    TicketState.ACKNOWLEDGED: {
        Action.DISPATCH: TicketState.DISPATCHED,
        Action.ARRIVE: TicketState.ON_SITE,
        Action.CANCEL: TicketState.CANCELLED,
    },
    TicketState.DISPATCHED: {Action.ARRIVE: TicketState.ON_SITE},
    TicketState.ON_SITE: {Action.RESOLVE: TicketState.RESOLVED},
    TicketState.RESOLVED: {Action.REPORT: TicketState.REPORTED},
    TicketState.REPORTED: {},
    TicketState.CANCELLED: {},
}

CLOSED: Final = frozenset({TicketState.REPORTED, TicketState.CANCELLED})
# Pauses belong to the work on the fault; once it is fixed only the report clock runs.
PAUSABLE: Final = frozenset(
    {TicketState.OPEN, TicketState.ACKNOWLEDGED, TicketState.DISPATCHED, TicketState.ON_SITE}
)
_STOPS: Final = {Action.ARRIVE: Clock.RESPONSE, Action.RESOLVE: Clock.RESOLUTION, Action.REPORT: Clock.REPORT}
_VERIFIED: Final = frozenset({Action.ARRIVE, Action.RESOLVE})


def allowed_actions(state: TicketState) -> tuple[Action, ...]:
    return tuple(TRANSITIONS[state])


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded step: what, when (epoch ms), by whom, and for arrive/resolve how it is known."""

    action: Action
    at: int
    by: str
    from_state: TicketState
    to_state: TicketState
    verification: Verification | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Ticket:
    ticket_id: str
    fault: FaultKey
    severity: FaultSeverity
    opened_at: int
    state: TicketState
    clocks: SlaClocks
    steps: tuple[Step, ...] = ()
    repeat_of: str | None = None  # the ticket of the same fault resolved shortly before

    @property
    def closed(self) -> bool:
        return self.state in CLOSED

    @property
    def response_deadline(self) -> int:
        return self.clocks.response_deadline

    @property
    def resolution_deadline(self) -> int:
        return self.clocks.resolution_deadline

    @property
    def report_deadline(self) -> int:
        return self.clocks.report_deadline

    def step_of(self, action: Action) -> Step | None:
        return next((s for s in self.steps if s.action is action), None)


def open_ticket(
    ticket_id: str,
    fault: FaultKey,
    severity: FaultSeverity,
    *,
    at: int,
    policy: SlaPolicy,
    repeat_of: str | None = None,
) -> Ticket:
    """A new ticket for a fault that opened at `at`; its clocks start then."""
    return Ticket(
        ticket_id=ticket_id,
        fault=FaultKey(*fault),
        severity=severity,
        opened_at=at,
        state=TicketState.OPEN,
        clocks=policy.start(severity, opened_at=at),
        repeat_of=repeat_of,
    )


def transition(
    ticket: Ticket,
    action: Action,
    *,
    at: int,
    by: str,
    verification: Verification | None = None,
    note: str = "",
) -> Ticket:
    """The ticket after `action` at `at` (epoch ms) by `by` (an operator or technician id).

    `verification` is required for arrive and resolve and refused for the others. `at` may not
    be before the ticket opened nor before the previous step, except for a node-verified step:
    the node's record of when the technician was there may reach the fleet after later steps.
    """
    target = TRANSITIONS[ticket.state].get(action)
    if target is None:
        raise IllegalTransition(ticket.ticket_id, ticket.state, action, allowed_actions(ticket.state))
    if not by.strip():
        raise StepRefused(
            ticket.ticket_id, "no-actor", f"{action} needs who did it (an operator or technician id)"
        )
    if action in _VERIFIED and verification is None:
        raise StepRefused(
            ticket.ticket_id,
            "no-verification",
            f"{action} needs a verification: one of {', '.join(v.value for v in Verification)}",
        )
    if action not in _VERIFIED and verification is not None:
        raise StepRefused(
            ticket.ticket_id, "verification", f"{action} takes no verification, got {verification}"
        )
    if at < ticket.opened_at:
        raise StepRefused(
            ticket.ticket_id,
            "before-open",
            f"{action} at {at} is before the ticket opened ({ticket.opened_at})",
        )
    last = ticket.steps[-1].at if ticket.steps else ticket.opened_at
    if at < last and verification is not Verification.NODE_VERIFIED:
        raise StepRefused(
            ticket.ticket_id, "out-of-order", f"{action} at {at} is before the previous step ({last})"
        )
    if action is Action.RESOLVE and (arrived := ticket.step_of(Action.ARRIVE)) and at < arrived.at:
        raise StepRefused(
            ticket.ticket_id, "out-of-order", f"resolved at {at}, before the arrival at {arrived.at}"
        )

    clocks = ticket.clocks
    try:
        if action in (Action.RESOLVE, Action.CANCEL) and clocks.paused_since is not None:
            # The fix (or the cancellation) ends whatever the work was waiting for.
            clocks = sla.resume(clocks, at=max(at, clocks.paused_since), by=by)
        if (clock := _STOPS.get(action)) is not None:
            clocks = sla.stop(clocks, clock, at=at)
        if action is Action.CANCEL:
            clocks = sla.void(clocks, at=at)
    except ClockError as exc:
        raise StepRefused(ticket.ticket_id, exc.reason, exc.detail) from exc
    step = Step(action, at, by, ticket.state, target, verification, note)
    return dataclasses.replace(ticket, state=target, clocks=clocks, steps=(*ticket.steps, step))


def pause(ticket: Ticket, *, at: int, by: str, reason: str) -> Ticket:
    """Pause the ticket's clocks ("waiting for the power utility"); audited in `clocks.pauses`."""
    if ticket.state not in PAUSABLE:
        accepted = ", ".join(s.value for s in TicketState if s in PAUSABLE)
        raise StepRefused(
            ticket.ticket_id, "not-pausable", f"a {ticket.state} ticket cannot pause (only {accepted})"
        )
    try:
        return dataclasses.replace(ticket, clocks=sla.pause(ticket.clocks, at=at, by=by, reason=reason))
    except ClockError as exc:
        raise StepRefused(ticket.ticket_id, exc.reason, exc.detail) from exc


def resume(ticket: Ticket, *, at: int, by: str) -> Ticket:
    """End the ongoing pause: the clocks that ran move later by the paused time."""
    try:
        return dataclasses.replace(ticket, clocks=sla.resume(ticket.clocks, at=at, by=by))
    except ClockError as exc:
        raise StepRefused(ticket.ticket_id, exc.reason, exc.detail) from exc


class VisitStep(NamedTuple):
    """What a site visit means for its ticket: pass these to `transition`."""

    action: Action
    at: int
    by: str
    verification: Verification


def visit_step(visit: m.SiteVisit, *, signature_valid: bool, received_at: int) -> VisitStep | None:
    """The ticket step a technician's `SiteVisit` stands for (check-in: arrive, resolve:
    resolve; check-out: none). `signature_valid` is `protocols.visits.verify_visit`'s answer.

    Node-verified needs a valid signature and the node's clock synchronised when it took `at`;
    otherwise the visit is self-reported, timed when the fleet received it if the node's clock
    could not be trusted."""
    action = {"check-in": Action.ARRIVE, "resolve": Action.RESOLVE}.get(visit.action)
    if action is None:
        return None
    trusted_clock = visit.clock_synced is not False
    verification = (
        Verification.NODE_VERIFIED if signature_valid and trusted_clock else Verification.SELF_REPORTED
    )
    return VisitStep(action, visit.at if trusted_clock else received_at, visit.technician, verification)


# --- storage ------------------------------------------------------------------------------------


def to_record(ticket: Ticket) -> dict[str, Any]:
    """The ticket as JSON-ready builtins (absolute deadlines included), for the database row."""
    # Through JSON and back: exactly what a JSON column will hand to `from_record`.
    record: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(ticket))
    return record


def from_record(record: dict[str, Any]) -> Ticket:
    """A ticket back from `to_record`'s output: same state, same deadlines, same audit trail."""
    return msgspec.convert(record, Ticket)
