"""/faults: tickets, their SLA clocks, and the technician workflow.

The control centre acknowledges, assigns and dispatches (`ticket:dispatch`); the technician
checks in, resolves with notes and reports (`ticket:field`), only on tickets assigned to them.
A check-in through the API is self-reported; the node-verified one comes from the pole itself
(a signed site visit, through ingest). Every step goes through `tickets.transition`, which
refuses illegal moves (409, naming the allowed ones), and is written to the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from fleet.access.roles import Permission, Role
from fleet.access.tokens import Principal
from fleet.api.deps import ROW_ID_MAX, Audit, Auditor, DbSession, NowMs, PathId, require
from fleet.api.errors import ApiError, not_found
from fleet.faults import sla, tickets
from fleet.faults.sla import SlaPolicy
from fleet.faults.store import CLOSED_STATES, FaultTicketRow, save_ticket, ticket_for_update
from fleet.faults.tickets import Action, Ticket, TicketState, Verification

router = APIRouter(tags=["faults"])
Reader = Depends(require(Permission.READ))
Dispatcher = Annotated[Principal, Depends(require(Permission.TICKET_DISPATCH))]
FieldWorker = Annotated[Principal, Depends(require(Permission.TICKET_FIELD))]
Note = Annotated[str, Field(max_length=4000)]
Person = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")]


def sla_policy(request: Request) -> SlaPolicy:
    policy: SlaPolicy = request.app.state.sla_policy
    return policy


Policy = Annotated[SlaPolicy, Depends(sla_policy)]


class StepOut(BaseModel):
    action: Action
    at_ms: int
    by: str
    from_state: TicketState
    to_state: TicketState
    verification: Verification | None
    note: str


class PauseOut(BaseModel):
    started_at_ms: int
    started_by: str
    reason: str
    ended_at_ms: int | None
    ended_by: str | None


class ClockOut(BaseModel):
    clock: sla.Clock
    state: sla.ClockState
    deadline_ms: int
    remaining_ms: int
    running: bool
    paused: bool


class TicketSummary(BaseModel):
    ticket_id: str
    node_id: str
    component: str
    kind: str
    severity: str
    state: TicketState
    assignee: str | None
    opened_at_ms: int
    fault_cleared_at_ms: int | None
    response_deadline_ms: int
    resolution_deadline_ms: int
    report_deadline_ms: int
    paused: bool
    most_urgent: ClockOut | None


class TicketDetail(TicketSummary):
    clocks: list[ClockOut]
    steps: list[StepOut]
    pauses: list[PauseOut]
    allowed_actions: list[Action]
    repeat_of: str | None


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_before: int | None  # pass as `before` for the next (older) page


class Assignment(BaseModel):
    technician: Person


class Dispatch(BaseModel):
    technician: Person | None = None  # assigns too, when given
    note: Note = ""


class FieldNote(BaseModel):
    note: Note = ""


class WorkNote(BaseModel):
    note: Annotated[str, Field(min_length=1, max_length=4000)]


class PauseRequest(BaseModel):
    reason: Annotated[str, Field(min_length=3, max_length=500)]


def _clock(f: sla.ClockForecast) -> ClockOut:
    return ClockOut(
        clock=f.clock,
        state=f.state,
        deadline_ms=f.deadline,
        remaining_ms=f.remaining_ms,
        running=f.running,
        paused=f.paused,
    )


def _summary(row: FaultTicketRow, ticket: Ticket, now: int, policy: SlaPolicy) -> TicketSummary:
    urgent = sla.most_urgent(sla.forecast(ticket.clocks, now, policy))
    return TicketSummary(
        ticket_id=row.ticket_id,
        node_id=row.node_id,
        component=row.component,
        kind=row.kind,
        severity=row.severity,
        state=ticket.state,
        assignee=row.assignee,
        opened_at_ms=ticket.opened_at,
        fault_cleared_at_ms=row.fault_cleared_at_ms,
        response_deadline_ms=ticket.response_deadline,
        resolution_deadline_ms=ticket.resolution_deadline,
        report_deadline_ms=ticket.report_deadline,
        paused=ticket.clocks.paused_since is not None,
        most_urgent=_clock(urgent) if urgent is not None else None,
    )


def _detail(row: FaultTicketRow, now: int, policy: SlaPolicy) -> TicketDetail:
    ticket = row.ticket()
    return TicketDetail(
        **_summary(row, ticket, now, policy).model_dump(),
        clocks=[_clock(f) for f in sla.forecast(ticket.clocks, now, policy)],
        steps=[
            StepOut(
                action=s.action,
                at_ms=s.at,
                by=s.by,
                from_state=s.from_state,
                to_state=s.to_state,
                verification=s.verification,
                note=s.note,
            )
            for s in ticket.steps
        ],
        pauses=[
            PauseOut(
                started_at_ms=p.started_at,
                started_by=p.started_by,
                reason=p.reason,
                ended_at_ms=p.ended_at,
                ended_by=p.ended_by,
            )
            for p in ticket.clocks.pauses
        ],
        allowed_actions=list(tickets.allowed_actions(ticket.state)),
        repeat_of=ticket.repeat_of,
    )


@router.get("/faults", dependencies=[Reader])
def list_faults(
    *,
    db: DbSession,
    now: NowMs,
    policy: Policy,
    status: Literal["open", "closed", "all"] = "open",
    node: str | None = None,
    kind: str | None = None,
    severity: str | None = None,
    assignee: str | None = None,
    state: TicketState | None = None,
    before: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> TicketPage:
    """Newest first. `status` open: not yet reported or cancelled (a resolved ticket is open
    until its report is in)."""
    query = sa.select(FaultTicketRow).order_by(FaultTicketRow.id.desc()).limit(limit)
    if status == "open":
        query = query.where(FaultTicketRow.state.not_in(CLOSED_STATES))
    elif status == "closed":
        query = query.where(FaultTicketRow.state.in_(CLOSED_STATES))
    for column, value in (
        (FaultTicketRow.node_id, node),
        (FaultTicketRow.kind, kind),
        (FaultTicketRow.severity, severity),
        (FaultTicketRow.assignee, assignee),
        (FaultTicketRow.state, state.value if state else None),
    ):
        if value is not None:
            query = query.where(column == value)
    if before is not None:
        query = query.where(FaultTicketRow.id < before)
    rows = list(db.scalars(query))
    items = [_summary(row, row.ticket(), now, policy) for row in rows]
    return TicketPage(items=items, next_before=rows[-1].id if len(rows) == limit else None)


@router.get("/faults/{ticket_id}", dependencies=[Reader])
def get_fault(*, ticket_id: PathId, db: DbSession, now: NowMs, policy: Policy) -> TicketDetail:
    row = db.scalars(sa.select(FaultTicketRow).where(FaultTicketRow.ticket_id == ticket_id)).one_or_none()
    if row is None:
        raise not_found("fault ticket", ticket_id)
    return _detail(row, now, policy)


class TicketDesk:
    """What every route that changes a ticket does: lock its row, keep technicians to their own
    tickets, apply the change (`tickets.transition`, `pause`, `resume`), write the audit entry,
    answer with the ticket as it now stands."""

    def __init__(self, db: Session, now: int, policy: SlaPolicy, audit: Auditor) -> None:
        self.db, self.now, self.policy, self.audit = db, now, policy, audit

    def change(
        self,
        ticket_id: str,
        who: Principal,
        action: str,
        change: Callable[[Ticket], Ticket] | None = None,
        **detail: object,
    ) -> TicketDetail:
        row = ticket_for_update(self.db, ticket_id)
        if who.role is Role.TECHNICIAN and row.assignee != who.subject:
            holder = f"assigned to {row.assignee}" if row.assignee else "not assigned to anyone"
            raise ApiError(403, "not-your-ticket", f"ticket {ticket_id} is {holder}, not to {who.subject}")
        if change is not None:
            save_ticket(row, change(row.ticket()))
        if action == "assign":
            if row.state in CLOSED_STATES:
                raise ApiError(
                    409, "closed", f"ticket {ticket_id} is {row.state}: closed tickets are not assigned"
                )
            detail["before"] = row.assignee
        if "technician" in detail:
            row.assignee = str(detail["technician"])
        self.audit(f"ticket.{action}", f"ticket/{ticket_id}", **detail)
        return _detail(row, self.now, self.policy)

    def step(self, ticket_id: str, who: Principal, action: Action, **kwargs: object) -> TicketDetail:
        """A lifecycle step by `who`, now; `kwargs` go to `tickets.transition` (note, verification)."""
        note = str(kwargs.get("note", ""))
        verification = kwargs.get("verification")
        assert verification is None or isinstance(verification, Verification)
        name = {Action.ARRIVE: "check-in"}.get(action, action.value)
        detail: dict[str, object] = {k: v for k, v in kwargs.items() if k == "technician"}
        if note:
            detail["note"] = note
        if verification is not None:
            detail["verification"] = verification.value
        return self.change(
            ticket_id,
            who,
            name,
            lambda t: tickets.transition(
                t, action, at=self.now, by=who.subject, verification=verification, note=note
            ),
            **detail,
        )

    def dispatch(
        self, ticket_id: str, who: Principal, technician: str | None, note: str = ""
    ) -> TicketDetail:
        """Send the technician given, else the one the ticket is assigned to."""
        person = technician or ticket_for_update(self.db, ticket_id).assignee
        if person is None:
            raise ApiError(
                422, "no-technician", "dispatch whom? give `technician` or assign the ticket first"
            )
        return self.step(ticket_id, who, Action.DISPATCH, note=note, technician=person)

    def pause(self, ticket_id: str, who: Principal, reason: str) -> TicketDetail:
        return self.change(
            ticket_id,
            who,
            "pause",
            lambda t: tickets.pause(t, at=self.now, by=who.subject, reason=reason),
            reason=reason,
        )

    def resume(self, ticket_id: str, who: Principal) -> TicketDetail:
        return self.change(ticket_id, who, "resume", lambda t: tickets.resume(t, at=self.now, by=who.subject))


def ticket_desk(db: DbSession, now: NowMs, policy: Policy, audit: Audit) -> TicketDesk:
    return TicketDesk(db, now, policy, audit)


Desk = Annotated[TicketDesk, Depends(ticket_desk)]


@router.post("/faults/{ticket_id}/acknowledge")
def acknowledge(*, ticket_id: PathId, who: Dispatcher, desk: Desk) -> TicketDetail:
    return desk.step(ticket_id, who, Action.ACKNOWLEDGE)


@router.post("/faults/{ticket_id}/assign")
def assign(*, ticket_id: PathId, body: Assignment, who: Dispatcher, desk: Desk) -> TicketDetail:
    return desk.change(ticket_id, who, "assign", technician=body.technician)


@router.post("/faults/{ticket_id}/dispatch")
def dispatch(*, ticket_id: PathId, body: Dispatch, who: Dispatcher, desk: Desk) -> TicketDetail:
    return desk.dispatch(ticket_id, who, body.technician, body.note)


@router.post("/faults/{ticket_id}/check-in")
def check_in(*, ticket_id: PathId, body: FieldNote, who: FieldWorker, desk: Desk) -> TicketDetail:
    """The technician says they are at the pole (self-reported; the node's signed check-in,
    when it comes, is the verified record)."""
    return desk.step(ticket_id, who, Action.ARRIVE, verification=Verification.SELF_REPORTED, note=body.note)


@router.post("/faults/{ticket_id}/resolve")
def resolve(*, ticket_id: PathId, body: WorkNote, who: FieldWorker, desk: Desk) -> TicketDetail:
    return desk.step(ticket_id, who, Action.RESOLVE, verification=Verification.SELF_REPORTED, note=body.note)


@router.post("/faults/{ticket_id}/report")
def report(*, ticket_id: PathId, body: WorkNote, who: FieldWorker, desk: Desk) -> TicketDetail:
    """The work report: what was found and done. Closes the ticket."""
    return desk.step(ticket_id, who, Action.REPORT, note=body.note)


@router.post("/faults/{ticket_id}/pause")
def pause(*, ticket_id: PathId, body: PauseRequest, who: FieldWorker, desk: Desk) -> TicketDetail:
    """Stop the clocks for a reason outside the contractor's hands ("waiting for the power
    utility"); audited with who and why."""
    return desk.pause(ticket_id, who, body.reason)


@router.post("/faults/{ticket_id}/resume")
def resume(*, ticket_id: PathId, who: FieldWorker, desk: Desk) -> TicketDetail:
    return desk.resume(ticket_id, who)


# The dashboard's fault pages (fleet.web.pages.faults) show a ticket as the API answers it.
ticket_detail = _detail
