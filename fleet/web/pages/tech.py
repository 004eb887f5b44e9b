"""/tech: the technicians' handheld view. My jobs (open tickets assigned to me, the most urgent
running clock first, each with where the pole is and a countdown) and one job's page: the
pole's live state, and check in / resolve / report, each through `fleet.faults.routes.TicketDesk`
so the rules (own tickets only, the lifecycle) and the audit entry are the API's.

Operators and admins may open it too (every open job, or `?technician=`); viewers may not.
Forms post without scripts; the lists refresh on the live stream's `faults` / `nodes` events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fleet.access.roles import Permission, Role, allowed
from fleet.access.tokens import Principal
from fleet.alarms.models import BellAlarmRecord
from fleet.api.deps import Auditor, DbSession, NowMs
from fleet.api.errors import ApiError
from fleet.faults import sla
from fleet.faults.errors import IllegalTransition, StepRefused
from fleet.faults.routes import Policy, TicketDesk
from fleet.faults.rules import Phase
from fleet.faults.sla import SlaPolicy
from fleet.faults.store import CLOSED_STATES, FaultConditionRow, FaultTicketRow, UnknownTicket
from fleet.faults.tickets import Action, Ticket, TicketState, Verification, allowed_actions
from fleet.inventory.models import Controller, Node, Site
from fleet.web import i18n
from fleet.web.render import language, page
from fleet.web.session import PageForbidden, Viewer

router = APIRouter(include_in_schema=False)
TicketId = Annotated[str, Path(max_length=64)]
NOTE_MAX: Final = 4000  # as the API's notes (fleet.faults.routes.Note)


def field_user(request: Request, who: Viewer) -> Principal:
    """Whoever may work tickets in the field (technicians, operators, admins); not viewers."""
    if not allowed(who.role, Permission.TICKET_FIELD):
        raise PageForbidden(who, request.url.path)
    return who


FieldUser = Annotated[Principal, Depends(field_user)]


# --- what the pages show ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Countdown:
    """The most urgent running clock: `data-deadline` for app.js, and its text at render time."""

    clock: str
    deadline_ms: int
    remaining_ms: int
    at_risk_ms: int
    state: str  # running, at-risk, breached
    paused: bool


@dataclass(frozen=True, slots=True)
class Place:
    site_id: str
    name: str
    address: str
    district: str
    latitude: float | None
    longitude: float | None

    @property
    def coordinates(self) -> str:
        if self.latitude is None or self.longitude is None:
            return ""
        return f"{self.latitude:.6f}, {self.longitude:.6f}"

    @property
    def geo(self) -> str:
        """A `geo:` URI (RFC 5870): the phone's map app opens it; the page fetches nothing."""
        if self.latitude is None or self.longitude is None:
            return ""
        return f"geo:{self.latitude:.6f},{self.longitude:.6f}"


@dataclass(frozen=True, slots=True)
class Job:
    ticket_id: str
    node_id: str
    component: str
    kind: str
    severity: str
    state: str
    assignee: str | None
    place: Place
    countdown: Countdown | None


def at_risk_threshold(clocks: sla.SlaClocks, clock: sla.Clock, policy: SlaPolicy) -> int:
    """When `clock` counts as at risk, in ms left: as `sla.forecast` decides it."""
    budget = clocks[clock].base_at - clocks.opened_at
    return int(max(policy.at_risk_ms, policy.at_risk_share * budget))


def countdown_of(ticket: Ticket, now: int, policy: SlaPolicy) -> Countdown | None:
    urgent = sla.most_urgent(sla.forecast(ticket.clocks, now, policy))
    if urgent is None:
        return None
    return Countdown(
        clock=urgent.clock.value,
        deadline_ms=urgent.deadline,
        remaining_ms=urgent.remaining_ms,
        at_risk_ms=at_risk_threshold(ticket.clocks, urgent.clock, policy),
        state=urgent.state.value,
        paused=urgent.paused,
    )


def clock_text(ms: int) -> str:
    """h:mm:ss, negative once late: what app.js shows, so the page reads right before it runs."""
    sign = "-" if ms < 0 else ""
    s = abs(ms) // 1000
    return f"{sign}{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def urgency(job: Job) -> tuple[int, int, str]:
    """Sort key: the least time left first; a job with no running clock last."""
    if job.countdown is None:
        return (1, 0, job.ticket_id)
    return (0, job.countdown.remaining_ms, job.ticket_id)


def _place(site: Site | None) -> Place:
    if site is None:
        return Place("", "", "", "", None, None)
    return Place(site.site_id, site.name, site.address, site.district, site.latitude, site.longitude)


def _job(row: FaultTicketRow, site: Site | None, now: int, policy: SlaPolicy) -> Job:
    ticket = row.ticket()
    return Job(
        ticket_id=row.ticket_id,
        node_id=row.node_id,
        component=row.component,
        kind=row.kind,
        severity=row.severity,
        state=row.state,
        assignee=row.assignee,
        place=_place(site),
        countdown=countdown_of(ticket, now, policy) if not ticket.closed else None,
    )


def open_jobs(db: Session, now: int, policy: SlaPolicy, *, technician: str | None) -> list[Job]:
    """Tickets not closed (a resolved one still owes its report), of `technician` (None: all),
    the most urgent first."""
    query = (
        sa.select(FaultTicketRow, Site)
        .outerjoin(Node, Node.node_id == FaultTicketRow.node_id)
        .outerjoin(Site, Site.id == Node.site_pk)
        .where(FaultTicketRow.state.not_in(CLOSED_STATES))
    )
    if technician is not None:
        query = query.where(FaultTicketRow.assignee == technician)
    jobs = [_job(row, site, now, policy) for row, site in db.execute(query).tuples()]
    return sorted(jobs, key=urgency)


def whose_jobs(who: Principal, technician: str) -> str | None:
    """A technician sees their own jobs whatever they ask; the centre sees all, or one's."""
    if who.role is Role.TECHNICIAN:
        return who.subject
    return technician.strip() or None


def refusal(who: Principal, row: FaultTicketRow) -> str | None:
    """Why `who` may not work this ticket (TicketDesk's own-ticket rule), or None."""
    if who.role is Role.TECHNICIAN and row.assignee != who.subject:
        return row.assignee or ""
    return None


@dataclass(frozen=True, slots=True)
class PoleStatus:
    """What the fleet knows of the pole now: the node's link, its open faults, and the state
    of the controller, cabinet door and bell as far as their fault conditions tell."""

    node_id: str
    known: bool
    online: bool
    last_seen_ms: int | None
    hardware: str
    agent_version: str
    controller_link: str | None
    controller_firmware: str | None
    controller_reset_cause: str | None
    controller: str  # ok, fault, unknown
    door: str  # closed, open, closing, unknown
    has_bell: bool
    bell: str  # ok, fault, unknown
    bell_alarms_waiting: int
    open_faults: list[Job]


_RAISED: Final = (Phase.OPEN.value, Phase.RAISING.value)


def _condition(phases: dict[str, str], *kinds: str) -> str:
    seen = [phases[kind] for kind in kinds if kind in phases]
    if not seen:
        return "unknown"
    return "fault" if any(phase in _RAISED for phase in seen) else "ok"


def _door(phases: dict[str, str]) -> str:
    phase = phases.get("door")
    if phase is None:
        return "unknown"  # never reported: no door contact, or never opened
    if phase in _RAISED:
        return "open"
    return "closing" if phase == Phase.CLEARING.value else "closed"


def pole_status(db: Session, node_id: str, now: int, policy: SlaPolicy) -> PoleStatus:
    found = db.execute(
        sa.select(Node, Controller, Site)
        .outerjoin(Controller, Controller.node_pk == Node.id)
        .outerjoin(Site, Site.id == Node.site_pk)
        .where(Node.node_id == node_id)
    ).one_or_none()
    phases = {
        kind: phase
        for kind, phase in db.execute(
            sa.select(FaultConditionRow.kind, FaultConditionRow.phase)
            .where(FaultConditionRow.node_id == node_id)
            .order_by(FaultConditionRow.id)
        ).tuples()
    }
    faults = db.execute(
        sa.select(FaultTicketRow)
        .where(FaultTicketRow.node_id == node_id, FaultTicketRow.open_key.is_not(None))
        .order_by(FaultTicketRow.opened_at_ms)
    ).scalars()
    waiting = db.scalar(
        sa.select(sa.func.count())
        .select_from(BellAlarmRecord)
        .where(BellAlarmRecord.node_id == node_id, BellAlarmRecord.acknowledged_at_ms.is_(None))
    )
    node, controller, site = found if found is not None else (None, None, None)
    return PoleStatus(
        node_id=node_id,
        known=node is not None,
        online=bool(node and node.online),
        last_seen_ms=node.last_seen_ms if node else None,
        hardware=node.hardware if node else "",
        agent_version=node.agent_version if node else "",
        controller_link=controller.link if controller else None,
        controller_firmware=controller.firmware_version if controller else None,
        controller_reset_cause=controller.reset_cause if controller else None,
        controller=_condition(phases, "controller"),
        door=_door(phases),
        has_bell=bool(site and site.has_bell),
        bell=_condition(phases, "bell-circuit", "bell-stuck"),
        bell_alarms_waiting=waiting or 0,
        open_faults=[_job(row, site, now, policy) for row in faults],
    )


def ago(now: int, then: int | None) -> tuple[str, int]:
    """(`unit`, count) for "n units ago": the message key's suffix and the number."""
    if then is None:
        return ("never", 0)
    s = max(0, now - then) // 1000
    if s < 60:
        return ("seconds", s)
    if s < 3600:
        return ("minutes", s // 60)
    if s < 86_400:
        return ("hours", s // 3600)
    return ("days", s // 86_400)


def note_problem(note: str) -> str | None:
    """The message key saying what is wrong with a work note, or None if it will do."""
    if not note.strip():
        return "tech.note.required"
    if len(note) > NOTE_MAX:
        return "tech.note.too_long"
    if "\x00" in note:
        return "tech.note.control"
    return None


# --- routes -------------------------------------------------------------------------------------


@router.get("/tech")
def my_jobs(
    request: Request,
    who: FieldUser,
    db: DbSession,
    now: NowMs,
    policy: Policy,
    technician: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    mine = whose_jobs(who, technician)
    jobs = open_jobs(db, now, policy, technician=mine)
    return page(request, "tech_jobs.html", who, jobs=jobs, technician=mine or "", clock_text=clock_text)


@router.get("/tech/fragments/jobs")
def my_jobs_fragment(
    request: Request,
    who: FieldUser,
    db: DbSession,
    now: NowMs,
    policy: Policy,
    technician: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    mine = whose_jobs(who, technician)
    jobs = open_jobs(db, now, policy, technician=mine)
    return page(
        request, "fragments/tech_jobs.html", who, jobs=jobs, technician=mine or "", clock_text=clock_text
    )


def _find(db: Session, ticket_id: str) -> tuple[FaultTicketRow, Site | None] | None:
    found = db.execute(
        sa.select(FaultTicketRow, Site)
        .outerjoin(Node, Node.node_id == FaultTicketRow.node_id)
        .outerjoin(Site, Site.id == Node.site_pk)
        .where(FaultTicketRow.ticket_id == ticket_id)
    ).one_or_none()
    return (found[0], found[1]) if found is not None else None


def _job_page(
    request: Request,
    who: Principal,
    db: Session,
    now: int,
    policy: SlaPolicy,
    ticket_id: str,
    *,
    status_code: int = 200,
    error: str = "",
    note_error: str = "",
    note: str = "",
) -> HTMLResponse:
    found = _find(db, ticket_id)
    if found is None:
        return page(request, "tech_refused.html", who, status_code=404, ticket_id=ticket_id, holder=None)
    row, site = found
    holder = refusal(who, row)
    if holder is not None:
        return page(request, "tech_refused.html", who, status_code=403, ticket_id=ticket_id, holder=holder)
    ticket = row.ticket()
    return page(
        request,
        "tech_job.html",
        who,
        status_code=status_code,
        job=_job(row, site, now, policy),
        ticket=ticket,
        pole=pole_status(db, row.node_id, now, policy),
        actions=[a.value for a in _field_actions(ticket.state)],
        error=error,
        note_error=note_error,
        note=note,
        clock_text=clock_text,
        ago=ago,
    )


def _field_actions(state: TicketState) -> list[Action]:
    field = (Action.ARRIVE, Action.RESOLVE, Action.REPORT)
    return [action for action in allowed_actions(state) if action in field]


@router.get("/tech/jobs/{ticket_id}")
def job(
    request: Request, ticket_id: TicketId, who: FieldUser, db: DbSession, now: NowMs, policy: Policy
) -> HTMLResponse:
    return _job_page(request, who, db, now, policy, ticket_id)


@router.get("/tech/fragments/jobs/{ticket_id}")
def job_status_fragment(
    request: Request, ticket_id: TicketId, who: FieldUser, db: DbSession, now: NowMs, policy: Policy
) -> HTMLResponse:
    found = _find(db, ticket_id)
    if found is None or refusal(who, found[0]) is not None:
        # Closed under the page, or reassigned: say so in place of the status.
        return page(request, "fragments/tech_job_gone.html", who, ticket_id=ticket_id)
    row, site = found
    return page(
        request,
        "fragments/tech_job_status.html",
        who,
        job=_job(row, site, now, policy),
        ticket=row.ticket(),
        pole=pole_status(db, row.node_id, now, policy),
        clock_text=clock_text,
        ago=ago,
    )


def _step(
    request: Request,
    who: Principal,
    db: Session,
    now: int,
    policy: SlaPolicy,
    ticket_id: str,
    action: Action,
    note: str,
) -> Response:
    """One field step through the API's TicketDesk; the job page again, or why it was refused."""
    if action in (Action.RESOLVE, Action.REPORT) and (problem := note_problem(note)):
        t = i18n.Translator(language(request))
        return _job_page(
            request, who, db, now, policy, ticket_id, status_code=422, note_error=t(problem, n=NOTE_MAX), note=note
        )
    desk = TicketDesk(db, now, policy, Auditor(db, who, now))
    verification = Verification.SELF_REPORTED if action in (Action.ARRIVE, Action.RESOLVE) else None
    extra: dict[str, object] = {"verification": verification} if verification else {}
    try:
        with db.begin_nested():  # a refused step leaves nothing behind, not even the lock's read
            desk.step(ticket_id, who, action, note=note.strip(), **extra)
    except UnknownTicket:
        return page(request, "tech_refused.html", who, status_code=404, ticket_id=ticket_id, holder=None)
    except ApiError as refused:
        return _job_page(request, who, db, now, policy, ticket_id, status_code=refused.status, error=refused.message)
    except (IllegalTransition, StepRefused) as refused:
        return _job_page(request, who, db, now, policy, ticket_id, status_code=409, error=str(refused), note=note)
    return RedirectResponse(f"/tech/jobs/{ticket_id}", status_code=303)


Note = Annotated[str, Form()]


@router.post("/tech/jobs/{ticket_id}/check-in")
def check_in(
    request: Request, ticket_id: TicketId, who: FieldUser, db: DbSession, now: NowMs, policy: Policy
) -> Response:
    """Self-reported, as the API's check-in: the node's signed visit, if one comes, is the
    verified record."""
    return _step(request, who, db, now, policy, ticket_id, Action.ARRIVE, "")


@router.post("/tech/jobs/{ticket_id}/resolve")
def resolve(
    request: Request,
    ticket_id: TicketId,
    who: FieldUser,
    db: DbSession,
    now: NowMs,
    policy: Policy,
    note: Note = "",
) -> Response:
    return _step(request, who, db, now, policy, ticket_id, Action.RESOLVE, note)


@router.post("/tech/jobs/{ticket_id}/report")
def report(
    request: Request,
    ticket_id: TicketId,
    who: FieldUser,
    db: DbSession,
    now: NowMs,
    policy: Policy,
    note: Note = "",
) -> Response:
    """The work report: what was found and done. Closes the job."""
    return _step(request, who, db, now, policy, ticket_id, Action.REPORT, note)
