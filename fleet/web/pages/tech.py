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

MESSAGES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "tech.title": "My jobs",
        "tech.all_jobs": "Open jobs",
        "tech.jobs_of": "Jobs of {technician}",
        "tech.none": "No open jobs. New ones appear here by themselves.",
        "tech.count": "{n} open",
        "tech.filter": "Technician",
        "tech.filter_all": "everyone",
        "tech.show": "Show",
        "tech.left": "left",
        "tech.paused": "paused",
        "tech.no_clock": "no clock running",
        "tech.assignee": "Assigned to",
        "tech.unassigned": "nobody",
        "tech.where": "Where",
        "tech.district": "District",
        "tech.address": "Address",
        "tech.coordinates": "Coordinates",
        "tech.map": "Open in maps",
        "tech.no_place": "No site on record for this pole",
        "tech.job": "Job",
        "tech.severity": "Severity",
        "tech.state": "State",
        "tech.pole": "The pole now",
        "tech.node": "Node",
        "tech.online": "online",
        "tech.offline": "offline",
        "tech.unknown_node": "not known to the fleet",
        "tech.last_seen": "Last seen",
        "tech.ago.never": "never",
        "tech.ago.seconds": "{n} s ago",
        "tech.ago.minutes": "{n} min ago",
        "tech.ago.hours": "{n} h ago",
        "tech.ago.days": "{n} days ago",
        "tech.open_faults": "Open faults",
        "tech.no_faults": "none",
        "tech.controller": "Pole controller",
        "tech.door": "Cabinet door",
        "tech.bell": "Emergency bell",
        "tech.bell_none": "no bell at this site",
        "tech.bell_waiting": "{n} alarm(s) waiting for the centre",
        "tech.cond.ok": "no fault",
        "tech.cond.fault": "fault",
        "tech.cond.unknown": "no report yet",
        "tech.door.open": "open",
        "tech.door.closed": "closed",
        "tech.door.closing": "closed (settling)",
        "tech.door.unknown": "no report yet",
        "tech.history": "History",
        "tech.by": "by {who}",
        "tech.check_in": "Check in: I am at the pole",
        "tech.resolve": "Resolve",
        "tech.resolve_note": "What was wrong and what you did",
        "tech.report": "Send the work report",
        "tech.report_note": "Work report: what was found, done and used",
        "tech.closed": "This job is closed.",
        "tech.note.required": "A note is required: say what you found and did.",
        "tech.note.too_long": "The note is too long: at most {n} characters.",
        "tech.note.control": "The note contains a control character; remove it.",
        "tech.refused": "Not done",
        "tech.not_yours": "Job {ticket} is assigned to {holder}, not to you ({who}).",
        "tech.not_assigned": "Job {ticket} is not assigned to anyone, so not to you ({who}).",
        "tech.ask_centre": "Ask the control centre to assign it to you.",
        "tech.no_job": "There is no job {ticket}.",
        "tech.gone": "This job is no longer open for you: it was closed or reassigned.",
        "tech.back": "Back to my jobs",
        "tech.clock.response": "Response",
        "tech.clock.resolution": "Resolution",
        "tech.clock.report": "Report",
        "tech.state.open": "open",
        "tech.state.acknowledged": "acknowledged",
        "tech.state.dispatched": "dispatched",
        "tech.state.on_site": "on site",
        "tech.state.resolved": "resolved, report due",
        "tech.state.reported": "reported",
        "tech.state.cancelled": "cancelled",
        "tech.verification.self-reported": "self-reported",
        "tech.verification.node-verified": "verified by the node",
    },
    "ko": {
        "tech.title": "내 작업",
        "tech.all_jobs": "진행 중인 작업",
        "tech.jobs_of": "{technician}의 작업",
        "tech.none": "진행 중인 작업이 없습니다. 새 작업은 여기에 자동으로 표시됩니다.",
        "tech.count": "{n}건 진행 중",
        "tech.filter": "기사",
        "tech.filter_all": "전체",
        "tech.show": "보기",
        "tech.left": "남음",
        "tech.paused": "일시 중지",
        "tech.no_clock": "진행 중인 기한 없음",
        "tech.assignee": "담당",
        "tech.unassigned": "없음",
        "tech.where": "위치",
        "tech.district": "구",
        "tech.address": "주소",
        "tech.coordinates": "좌표",
        "tech.map": "지도에서 열기",
        "tech.no_place": "이 폴의 개소 정보가 없습니다",
        "tech.job": "작업",
        "tech.severity": "등급",
        "tech.state": "상태",
        "tech.pole": "현재 폴 상태",
        "tech.node": "노드",
        "tech.online": "온라인",
        "tech.offline": "오프라인",
        "tech.unknown_node": "관제 시스템에 없는 노드",
        "tech.last_seen": "마지막 수신",
        "tech.ago.never": "없음",
        "tech.ago.seconds": "{n}초 전",
        "tech.ago.minutes": "{n}분 전",
        "tech.ago.hours": "{n}시간 전",
        "tech.ago.days": "{n}일 전",
        "tech.open_faults": "진행 중인 장애",
        "tech.no_faults": "없음",
        "tech.controller": "폴 제어기",
        "tech.door": "함체 문",
        "tech.bell": "비상벨",
        "tech.bell_none": "이 개소에는 비상벨이 없습니다",
        "tech.bell_waiting": "관제센터 확인 대기 알람 {n}건",
        "tech.cond.ok": "이상 없음",
        "tech.cond.fault": "장애",
        "tech.cond.unknown": "보고 없음",
        "tech.door.open": "열림",
        "tech.door.closed": "닫힘",
        "tech.door.closing": "닫힘 (확인 중)",
        "tech.door.unknown": "보고 없음",
        "tech.history": "처리 이력",
        "tech.by": "처리자 {who}",
        "tech.check_in": "현장 도착 체크인",
        "tech.resolve": "조치 완료",
        "tech.resolve_note": "원인과 조치 내용",
        "tech.report": "작업 보고서 제출",
        "tech.report_note": "작업 보고서: 확인 내용, 조치, 사용 자재",
        "tech.closed": "종료된 작업입니다.",
        "tech.note.required": "메모를 입력하세요: 확인한 내용과 조치를 적어 주세요.",
        "tech.note.too_long": "메모가 너무 깁니다: 최대 {n}자입니다.",
        "tech.note.control": "메모에 제어 문자가 있습니다. 지워 주세요.",
        "tech.refused": "처리되지 않음",
        "tech.not_yours": "작업 {ticket}은(는) {holder}에게 배정되어 있습니다. {who}의 작업이 아닙니다.",
        "tech.not_assigned": "작업 {ticket}은(는) 아무에게도 배정되지 않았습니다. {who}의 작업이 아닙니다.",
        "tech.ask_centre": "관제센터에 배정을 요청하세요.",
        "tech.no_job": "작업 {ticket}이(가) 없습니다.",
        "tech.gone": "이 작업은 더 이상 진행 중이 아닙니다: 종료되었거나 다른 기사에게 배정되었습니다.",
        "tech.back": "내 작업으로",
        "tech.clock.response": "출동",
        "tech.clock.resolution": "복구",
        "tech.clock.report": "보고",
        "tech.state.open": "접수",
        "tech.state.acknowledged": "확인",
        "tech.state.dispatched": "출동 지시",
        "tech.state.on_site": "현장 도착",
        "tech.state.resolved": "조치 완료, 보고 대기",
        "tech.state.reported": "보고 완료",
        "tech.state.cancelled": "취소",
        "tech.verification.self-reported": "본인 신고",
        "tech.verification.node-verified": "노드 확인",
    },
}
i18n.register(MESSAGES)


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
    jobs = [_job(row, site, now, policy) for row, site in db.execute(query)]
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
    phases = dict(
        db.execute(
            sa.select(FaultConditionRow.kind, FaultConditionRow.phase)
            .where(FaultConditionRow.node_id == node_id)
            .order_by(FaultConditionRow.id)
        ).all()
    )
    faults = (
        db.execute(
            sa.select(FaultTicketRow)
            .where(FaultTicketRow.node_id == node_id, FaultTicketRow.open_key.is_not(None))
            .order_by(FaultTicketRow.opened_at_ms)
        )
        .scalars()
        .all()
    )
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


@dataclass(frozen=True, slots=True)
class Visit:
    """One request to the technician view: who asks, the request's transaction, the fleet's
    clock and the SLA policy (what the TicketDesk needs too)."""

    request: Request
    who: Principal
    db: Session
    now: int
    policy: SlaPolicy


def visit(request: Request, who: FieldUser, db: DbSession, now: NowMs, policy: Policy) -> Visit:
    return Visit(request, who, db, now, policy)


Here = Annotated[Visit, Depends(visit)]
Technician = Annotated[str, Query(max_length=128)]


@router.get("/tech")
def my_jobs(here: Here, technician: Technician = "") -> HTMLResponse:
    return _jobs(here, "tech_jobs.html", technician)


@router.get("/tech/fragments/jobs")
def my_jobs_fragment(here: Here, technician: Technician = "") -> HTMLResponse:
    return _jobs(here, "fragments/tech_jobs.html", technician)


def _jobs(here: Visit, template: str, technician: str) -> HTMLResponse:
    mine = whose_jobs(here.who, technician)
    jobs = open_jobs(here.db, here.now, here.policy, technician=mine)
    return page(here.request, template, here.who, jobs=jobs, technician=mine or "", clock_text=clock_text)


def _find(db: Session, ticket_id: str) -> tuple[FaultTicketRow, Site | None] | None:
    found = db.execute(
        sa.select(FaultTicketRow, Site)
        .outerjoin(Node, Node.node_id == FaultTicketRow.node_id)
        .outerjoin(Site, Site.id == Node.site_pk)
        .where(FaultTicketRow.ticket_id == ticket_id)
    ).one_or_none()
    return (found[0], found[1]) if found is not None else None


def _refused(here: Visit, ticket_id: str, holder: str | None) -> HTMLResponse:
    """No such job (`holder` None), or not this technician's (`holder`: its assignee or "")."""
    status = 404 if holder is None else 403
    return page(
        here.request, "tech_refused.html", here.who, status_code=status, ticket_id=ticket_id, holder=holder
    )


def _job_page(
    here: Visit,
    ticket_id: str,
    *,
    status_code: int = 200,
    error: str = "",
    note_error: str = "",
    note: str = "",
) -> HTMLResponse:
    found = _find(here.db, ticket_id)
    if found is None:
        return _refused(here, ticket_id, None)
    row, site = found
    holder = refusal(here.who, row)
    if holder is not None:
        return _refused(here, ticket_id, holder)
    ticket = row.ticket()
    return page(
        here.request,
        "tech_job.html",
        here.who,
        status_code=status_code,
        job=_job(row, site, here.now, here.policy),
        ticket=ticket,
        pole=pole_status(here.db, row.node_id, here.now, here.policy),
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
def job(ticket_id: TicketId, here: Here) -> HTMLResponse:
    return _job_page(here, ticket_id)


@router.get("/tech/fragments/jobs/{ticket_id}")
def job_status_fragment(ticket_id: TicketId, here: Here) -> HTMLResponse:
    found = _find(here.db, ticket_id)
    if found is None or refusal(here.who, found[0]) is not None:
        # Reassigned under the page: say so in place of the status.
        return page(here.request, "fragments/tech_job_gone.html", here.who, ticket_id=ticket_id)
    row, site = found
    return page(
        here.request,
        "fragments/tech_job_status.html",
        here.who,
        job=_job(row, site, here.now, here.policy),
        ticket=row.ticket(),
        pole=pole_status(here.db, row.node_id, here.now, here.policy),
        clock_text=clock_text,
        ago=ago,
    )


def _step(here: Visit, ticket_id: str, action: Action, note: str = "") -> Response:
    """One field step through the API's TicketDesk (its rules, its audit entry); then the job
    page again (303, so a reload does not post twice), or the page saying why not."""
    if action in (Action.RESOLVE, Action.REPORT) and (problem := note_problem(note)):
        reason = i18n.Translator(language(here.request))(problem, n=NOTE_MAX)
        return _job_page(here, ticket_id, status_code=422, note_error=reason, note=note)
    desk = TicketDesk(here.db, here.now, here.policy, Auditor(here.db, here.who, here.now))
    verification = Verification.SELF_REPORTED if action in (Action.ARRIVE, Action.RESOLVE) else None
    extra: dict[str, object] = {"verification": verification} if verification else {}
    try:
        with here.db.begin_nested():  # a refused step leaves nothing behind
            desk.step(ticket_id, here.who, action, note=note.strip(), **extra)
    except UnknownTicket:
        return _refused(here, ticket_id, None)
    except ApiError as refused:
        return _job_page(here, ticket_id, status_code=refused.status, error=refused.message, note=note)
    except (IllegalTransition, StepRefused) as refused:
        return _job_page(here, ticket_id, status_code=409, error=str(refused), note=note)
    return RedirectResponse(f"/tech/jobs/{ticket_id}", status_code=303)


Note = Annotated[str, Form()]


@router.post("/tech/jobs/{ticket_id}/check-in")
def check_in(ticket_id: TicketId, here: Here) -> Response:
    """Self-reported, as the API's check-in: the node's signed visit, if one comes, is the
    verified record."""
    return _step(here, ticket_id, Action.ARRIVE)


@router.post("/tech/jobs/{ticket_id}/resolve")
def resolve(ticket_id: TicketId, here: Here, note: Note = "") -> Response:
    return _step(here, ticket_id, Action.RESOLVE, note)


@router.post("/tech/jobs/{ticket_id}/report")
def report(ticket_id: TicketId, here: Here, note: Note = "") -> Response:
    """The work report: what was found and done. Closes the job."""
    return _step(here, ticket_id, Action.REPORT, note)
