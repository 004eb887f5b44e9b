"""A technician's site visit (a `SiteVisit` the node signed) onto the ticket it names, inside the
ingest's transaction: verified with the key the node sent in its birth (protocols.visits),
turned into a ticket step (fleet.faults.tickets.visit_step) and applied with
fleet.faults.store.apply_step. A visit that cannot apply comes back as an outcome for the shell
to count and log; it is a fact from the pole that arrived, never a reason to stop the ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from fleet.faults import store, tickets
from fleet.faults.errors import IllegalTransition, StepRefused
from protocols import messages as m
from protocols.visits import public_key_from_text, verify_visit


class VisitOutcome(StrEnum):
    APPLIED = "applied"
    REPLAYED = "replayed"  # this very visit is on the ticket already (sent again from the outbox)
    NO_STEP = "no-step"  # a check-out: the ticket has no step for it
    NO_TICKET = "no-ticket"  # the visit names no ticket
    UNKNOWN_TICKET = "unknown-ticket"
    OTHER_NODE = "other-node"  # the ticket is another pole's: this node's signature proves nothing there
    ILLEGAL = "illegal"  # the ticket's state does not allow the step (IllegalTransition)
    REFUSED = "refused"  # the step's details are wrong for the ticket (StepRefused)


@dataclass(frozen=True, slots=True)
class VisitResult:
    outcome: VisitOutcome
    visit_id: str
    ticket_id: str | None
    verification: tickets.Verification | None = None
    detail: str = ""

    @property
    def applied(self) -> bool:
        return self.outcome in (VisitOutcome.APPLIED, VisitOutcome.REPLAYED, VisitOutcome.NO_STEP)


def step_note(visit: m.SiteVisit) -> str:
    """The note a visit leaves on its step: its id (how a replay is recognised) and its text."""
    return f"site visit {visit.visit_id}" + (f": {visit.note}" if visit.note else "")


def apply_visit(
    session: Session, node_id: str, node_key: str | None, visit: m.SiteVisit, *, received_ms: int
) -> VisitResult:
    """Apply one visit from `node_id`, whose birth sent `node_key` (None: not enrolled, so the
    visit can only count as self-reported)."""
    public_key = public_key_from_text(node_key) if node_key is not None else None
    signature_valid = public_key is not None and verify_visit(node_id, visit, public_key)
    step = tickets.visit_step(visit, signature_valid=signature_valid, received_at=received_ms)
    ticket_id = visit.fault_id
    if step is None:
        return VisitResult(VisitOutcome.NO_STEP, visit.visit_id, ticket_id)
    if ticket_id is None:
        return VisitResult(VisitOutcome.NO_TICKET, visit.visit_id, None, step.verification)
    try:
        row = store.ticket_for_update(session, ticket_id)
    except store.UnknownTicket as error:
        return VisitResult(
            VisitOutcome.UNKNOWN_TICKET, visit.visit_id, ticket_id, step.verification, str(error)
        )
    if row.node_id != node_id:
        detail = f"ticket {ticket_id} is a fault of {row.node_id}, the visit was signed at {node_id}"
        return VisitResult(VisitOutcome.OTHER_NODE, visit.visit_id, ticket_id, step.verification, detail)
    note = step_note(visit)
    if any(s.action is step.action and s.note == note for s in row.ticket().steps):
        return VisitResult(VisitOutcome.REPLAYED, visit.visit_id, ticket_id, step.verification)
    try:
        store.apply_step(
            session, ticket_id, step.action, at=step.at, by=step.by, verification=step.verification, note=note
        )
    except IllegalTransition as error:
        return VisitResult(VisitOutcome.ILLEGAL, visit.visit_id, ticket_id, step.verification, str(error))
    except StepRefused as error:
        return VisitResult(VisitOutcome.REFUSED, visit.visit_id, ticket_id, step.verification, str(error))
    return VisitResult(VisitOutcome.APPLIED, visit.visit_id, ticket_id, step.verification)
