"""/faults: the open fault tickets, the most urgent running SLA clock first (`sla.forecast`,
`sla.most_urgent`, as the API reports them), with live countdowns coloured by risk, filters, and
one ticket's page with its clocks, pauses and steps. The centre's actions (acknowledge, assign,
dispatch, pause, resume) are small forms posting here; each goes through the API's `TicketDesk`
(the same lock, rules and audit) and a refused one comes back with its reason beside the form.
The list refreshes on the live `faults` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Final

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from fleet.access.roles import Permission, allowed
from fleet.access.tokens import Principal
from fleet.api.deps import Auditor, DbSession, NowMs, PathId
from fleet.api.errors import ApiError
from fleet.faults import sla, tickets
from fleet.faults.errors import FaultError, IllegalTransition, StepRefused
from fleet.faults.routes import (
    Assignment,
    Dispatch,
    PauseRequest,
    Policy,
    TicketDesk,
    TicketDetail,
    ticket_detail,
)
from fleet.faults.sla import FAULT_SEVERITIES, Clock, ClockState, SlaPolicy
from fleet.faults.store import CLOSED_STATES, FaultTicketRow, ticket_for_update
from fleet.faults.tickets import Action, TicketState
from fleet.reports.routes import Settings
from fleet.web import i18n
from fleet.web.pages.alarms import Clockface, PoleSite, pole_sites
from fleet.web.render import language, page
from fleet.web.session import CentreUser, PageForbidden

router = APIRouter(include_in_schema=False)
OPEN_STATES: Final = tuple(s.value for s in TicketState if s not in tickets.CLOSED)
Choice = Annotated[str, Query(max_length=128)]
Text = Annotated[str, Form()]  # checked by the API's own models, refused beside the field

MESSAGES: Final = {
    "en": {
        "faults.title": "Faults",
        "faults.open": "Open tickets, the nearest breach first",
        "faults.none": "No open ticket matches.",
        "faults.shown": "{n} tickets",
        "faults.kind": "Kind",
        "faults.severity": "Severity",
        "faults.state": "State",
        "faults.assignee": "Technician",
        "faults.any": "Any",
        "faults.unassigned": "Not assigned",
        "faults.ticket": "Ticket",
        "faults.node": "Node",
        "faults.site": "Site",
        "faults.opened": "Opened",
        "faults.response": "Response",
        "faults.resolution": "Resolution",
        "faults.report": "Report",
        "faults.back": "All open faults",
        "faults.missing": "There is no fault ticket {ticket_id}.",
        "faults.component": "{kind} at {component}",
        "faults.repeat_of": "Repeats ticket {ticket_id}",
        "faults.cleared_at": "The fault cleared at the pole at {at}",
        "faults.clocks": "SLA clocks",
        "faults.clock": "Clock",
        "faults.left": "Time left",
        "faults.deadline": "Deadline",
        "faults.clock.met": "met",
        "faults.clock.breached": "breached",
        "faults.clock.void": "void",
        "faults.clock.running": "running",
        "faults.clock.at-risk": "at risk",
        "faults.risk.ok": "on time",
        "faults.risk.at-risk": "at risk",
        "faults.risk.breached": "breached",
        "faults.risk.paused": "paused",
        "faults.risk.stopped": "clocks stopped",
        "faults.paused_since": "Clocks paused since {at} by {who}: {reason}",
        "faults.pauses": "Pauses",
        "faults.pause_row": "{start} to {end} · {who}: {reason}",
        "faults.ongoing": "ongoing",
        "faults.steps": "Steps",
        "faults.no_steps": "No step yet.",
        "faults.actions": "Actions",
        "faults.acknowledge": "Acknowledge",
        "faults.technician": "Technician",
        "faults.technician_hint": "their id, e.g. tech-0193",
        "faults.note": "Note",
        "faults.assign": "Assign",
        "faults.dispatch": "Dispatch",
        "faults.reason": "Why the clocks stop",
        "faults.reason_hint": "what the work is waiting for, e.g. the power utility",
        "faults.pause": "Pause the clocks",
        "faults.resume": "Resume the clocks",
        "faults.done": "Done: {action}.",
        "faults.need_technician": "Give the technician to send (or assign the ticket first).",
        "faults.need_reason": "Give a reason: what the work is waiting for.",
        "faults.bad_name": "An id of letters, digits and . _ @ - (up to 128), e.g. tech-0193.",
        "faults.too_short": "At least {n} characters, please.",
        "faults.too_long": "At most {n} characters, please.",
        "faults.nul": "The text contains a NUL character.",
        "faults.illegal": "This ticket is {state}: it cannot {action} now (allowed: {allowed}).",
        "faults.closed": "none, the ticket is closed",
        "faults.action.acknowledge": "acknowledge",
        "faults.action.assign": "assign",
        "faults.action.dispatch": "dispatch",
        "faults.action.arrive": "check in",
        "faults.action.resolve": "resolve",
        "faults.action.report": "report",
        "faults.action.cancel": "cancel",
        "faults.action.pause": "pause",
        "faults.action.resume": "resume",
        "faults.ticket_state.open": "open",
        "faults.ticket_state.acknowledged": "acknowledged",
        "faults.ticket_state.dispatched": "dispatched",
        "faults.ticket_state.on_site": "on site",
        "faults.ticket_state.resolved": "resolved",
        "faults.ticket_state.reported": "reported",
        "faults.ticket_state.cancelled": "cancelled",
        "faults.severity.minor": "minor",
        "faults.severity.major": "major",
        "faults.severity.critical": "critical",
    },
    "ko": {
        "faults.title": "장애",
        "faults.open": "진행 중인 장애 (기한 초과가 가까운 순)",
        "faults.none": "조건에 맞는 진행 중인 장애가 없습니다.",
        "faults.shown": "{n}건",
        "faults.kind": "유형",
        "faults.severity": "심각도",
        "faults.state": "상태",
        "faults.assignee": "기술자",
        "faults.any": "전체",
        "faults.unassigned": "미배정",
        "faults.ticket": "장애 번호",
        "faults.node": "노드",
        "faults.site": "개소",
        "faults.opened": "발생",
        "faults.response": "출동",
        "faults.resolution": "복구",
        "faults.report": "보고",
        "faults.back": "진행 중인 장애 목록",
        "faults.missing": "장애 {ticket_id}이(가) 없습니다.",
        "faults.component": "{component}: {kind}",
        "faults.repeat_of": "장애 {ticket_id}의 재발",
        "faults.cleared_at": "폴에서 장애가 해소됨: {at}",
        "faults.clocks": "SLA 기한",
        "faults.clock": "구분",
        "faults.left": "남은 시간",
        "faults.deadline": "기한",
        "faults.clock.met": "준수",
        "faults.clock.breached": "초과",
        "faults.clock.void": "무효",
        "faults.clock.running": "진행 중",
        "faults.clock.at-risk": "임박",
        "faults.risk.ok": "여유",
        "faults.risk.at-risk": "임박",
        "faults.risk.breached": "초과",
        "faults.risk.paused": "일시 정지",
        "faults.risk.stopped": "기한 종료",
        "faults.paused_since": "{at}부터 기한 일시 정지 ({who}): {reason}",
        "faults.pauses": "일시 정지 기록",
        "faults.pause_row": "{start}부터 {end}까지 · {who}: {reason}",
        "faults.ongoing": "진행 중",
        "faults.steps": "처리 기록",
        "faults.no_steps": "아직 처리 기록이 없습니다.",
        "faults.actions": "조치",
        "faults.acknowledge": "접수",
        "faults.technician": "기술자",
        "faults.technician_hint": "기술자 ID (예: tech-0193)",
        "faults.note": "메모",
        "faults.assign": "배정",
        "faults.dispatch": "출동 지시",
        "faults.reason": "기한을 멈추는 이유",
        "faults.reason_hint": "작업이 기다리는 것 (예: 한전 전력 복구)",
        "faults.pause": "기한 일시 정지",
        "faults.resume": "기한 재개",
        "faults.done": "완료: {action}.",
        "faults.need_technician": "출동할 기술자를 입력하세요 (또는 먼저 배정하세요).",
        "faults.need_reason": "이유를 입력하세요: 작업이 무엇을 기다리고 있는지.",
        "faults.bad_name": "영문, 숫자와 . _ @ - 로 된 ID를 입력하세요 (최대 128자, 예: tech-0193).",
        "faults.too_short": "{n}자 이상 입력하세요.",
        "faults.too_long": "{n}자 이하로 입력하세요.",
        "faults.nul": "입력에 NUL 문자가 있습니다.",
        "faults.illegal": "이 장애는 지금 「{state}」 상태라 {action}할 수 없습니다 (가능: {allowed}).",
        "faults.closed": "없음, 종료된 장애",
        "faults.action.acknowledge": "접수",
        "faults.action.assign": "배정",
        "faults.action.dispatch": "출동 지시",
        "faults.action.arrive": "현장 도착",
        "faults.action.resolve": "복구",
        "faults.action.report": "보고",
        "faults.action.cancel": "취소",
        "faults.action.pause": "일시 정지",
        "faults.action.resume": "재개",
        "faults.ticket_state.open": "발생",
        "faults.ticket_state.acknowledged": "접수",
        "faults.ticket_state.dispatched": "출동",
        "faults.ticket_state.on_site": "현장 도착",
        "faults.ticket_state.resolved": "복구",
        "faults.ticket_state.reported": "보고 완료",
        "faults.ticket_state.cancelled": "취소",
        "faults.severity.minor": "경미",
        "faults.severity.major": "중대",
        "faults.severity.critical": "긴급",
    },
}
i18n.register(MESSAGES)


# --- what a page shows ----------------------------------------------------------------------------


def countdown_text(ms: int) -> str:
    """h:mm:ss left, negative once late: what app.js shows as the countdown ticks."""
    sign = "-" if ms < 0 else ""
    s = abs(ms) // 1000
    return f"{sign}{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


@dataclass(frozen=True, slots=True)
class ClockView:
    clock: str  # response, resolution, report
    state: str  # sla.ClockState
    risk: str  # ok, at-risk, breached, paused; met, void once stopped
    deadline_ms: int
    remaining_ms: int
    running: bool
    paused: bool
    at_risk_ms: int  # app.js turns the countdown at-risk below this

    @property
    def left(self) -> str:
        return countdown_text(self.remaining_ms)


@dataclass(frozen=True, slots=True)
class FaultView:
    ticket: TicketDetail
    site: PoleSite | None
    clocks: dict[str, ClockView]
    urgency: str  # the most urgent running clock's risk, or "stopped"


def at_risk_ms(ticket: tickets.Ticket, clock: Clock, policy: SlaPolicy) -> int:
    """The time left under which `sla.forecast` calls a running clock at risk, for app.js, which
    recolours the countdown as it ticks."""
    return sla.at_risk_threshold(ticket.clocks, clock, policy)


def _risk(state: ClockState, running: bool, paused: bool) -> str:
    if running and paused:
        return "paused"
    return {ClockState.RUNNING: "ok", ClockState.AT_RISK: "at-risk"}.get(state, state.value)


def fault_view(row: FaultTicketRow, site: PoleSite | None, now: int, policy: SlaPolicy) -> FaultView:
    detail = ticket_detail(row, now, policy)
    ticket = row.ticket()
    clocks = {
        c.clock.value: ClockView(
            clock=c.clock.value,
            state=c.state.value,
            risk=_risk(c.state, c.running, c.paused),
            deadline_ms=c.deadline_ms,
            remaining_ms=c.remaining_ms,
            running=c.running,
            paused=c.paused,
            at_risk_ms=at_risk_ms(ticket, c.clock, policy),
        )
        for c in detail.clocks
    }
    urgent = detail.most_urgent
    urgency = clocks[urgent.clock.value].risk if urgent is not None else "stopped"
    return FaultView(detail, site, clocks, urgency)


@dataclass(frozen=True, slots=True)
class Filters:
    kind: str = ""
    severity: str = ""
    state: str = ""
    assignee: str = ""  # "-": not assigned

    def apply(self, query: sa.Select[FaultTicketRow]) -> sa.Select[FaultTicketRow]:
        if self.kind:
            query = query.where(FaultTicketRow.kind == self.kind)
        if self.severity:
            query = query.where(FaultTicketRow.severity == self.severity)
        if self.state:
            query = query.where(FaultTicketRow.state == self.state)
        if self.assignee == "-":
            query = query.where(FaultTicketRow.assignee.is_(None))
        elif self.assignee:
            query = query.where(FaultTicketRow.assignee == self.assignee)
        return query


def open_faults(db: Session, filters: Filters, now: int, policy: SlaPolicy) -> list[FaultView]:
    """Open tickets matching `filters`, the running clock nearest its breach first (tickets
    whose clocks all stopped last, oldest first)."""
    query = filters.apply(sa.select(FaultTicketRow).where(FaultTicketRow.state.not_in(CLOSED_STATES)))
    rows = list(db.scalars(query))
    sites = pole_sites(db, (r.node_id for r in rows))
    views = [fault_view(row, sites.get(row.node_id), now, policy) for row in rows]

    def urgency(view: FaultView) -> tuple[bool, int, int]:
        urgent = view.ticket.most_urgent
        return (urgent is None, urgent.remaining_ms if urgent else 0, view.ticket.opened_at_ms)

    return sorted(views, key=urgency)


def filter_choices(db: Session) -> dict[str, list[str]]:
    """What the filters offer: the kinds and technicians of open tickets, every severity and
    open state."""
    still_open = FaultTicketRow.state.not_in(CLOSED_STATES)
    kinds = db.scalars(
        sa.select(FaultTicketRow.kind).where(still_open).distinct().order_by(FaultTicketRow.kind)
    )
    people = db.scalars(
        sa.select(FaultTicketRow.assignee)
        .where(still_open, FaultTicketRow.assignee.is_not(None))
        .distinct()
        .order_by(FaultTicketRow.assignee)
    )
    return {
        "kind": list(kinds),
        "severity": list(FAULT_SEVERITIES),
        "state": list(OPEN_STATES),
        "assignee": [p for p in people if p is not None],
    }


def _filters(kind: str, severity: str, state: str, assignee: str) -> Filters:
    # Unknown values from a hand-made URL filter nothing rather than fail.
    return Filters(
        kind=kind.strip(),
        severity=severity if severity in FAULT_SEVERITIES else "",
        state=state if state in OPEN_STATES else "",
        assignee=assignee.strip(),
    )


def _may(who: Principal) -> dict[str, bool]:
    """What the page offers `who`: the API's permission matrix, asked again on every post."""
    return {
        "dispatch": allowed(who.role, Permission.TICKET_DISPATCH),
        "field": allowed(who.role, Permission.TICKET_FIELD),
    }


@dataclass(frozen=True, slots=True)
class PageContext:
    """What every fault page works with: the request's transaction, the fleet's clock, the SLA
    policy, and how times read in the city."""

    db: Session
    now: int
    policy: SlaPolicy
    clockface: Clockface


def page_context(db: DbSession, now: NowMs, policy: Policy, settings: Settings) -> PageContext:
    return PageContext(db, now, policy, Clockface(settings.time_zone))


Here = Annotated[PageContext, Depends(page_context)]


# --- the list -------------------------------------------------------------------------------------


def _list(
    request: Request, who: Principal, here: PageContext, filters: Filters, template: str
) -> HTMLResponse:
    return page(
        request,
        template,
        who,
        faults=open_faults(here.db, filters, here.now, here.policy),
        filters=filters,
        choices=filter_choices(here.db),
    )


@router.get("/faults")
def faults_page(
    *,
    request: Request,
    who: CentreUser,
    here: Here,
    kind: Choice = "",
    severity: Choice = "",
    state: Choice = "",
    assignee: Choice = "",
) -> HTMLResponse:
    return _list(request, who, here, _filters(kind, severity, state, assignee), "faults.html")


@router.get("/fragments/faults")
def faults_fragment(
    *,
    request: Request,
    who: CentreUser,
    here: Here,
    kind: Choice = "",
    severity: Choice = "",
    state: Choice = "",
    assignee: Choice = "",
) -> HTMLResponse:
    return _list(request, who, here, _filters(kind, severity, state, assignee), "fragments/fault_list.html")


# --- one ticket -----------------------------------------------------------------------------------


@dataclass
class FormState:
    """What a refused form gets back: a reason per field (or per form), and what was typed."""

    problems: dict[str, str] = field(default_factory=dict)
    entered: dict[str, str] = field(default_factory=dict)
    done: str = ""


def _ticket(
    request: Request,
    who: Principal,
    here: PageContext,
    ticket_id: str,
    template: str,
    *,
    form: FormState | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    row = here.db.scalars(
        sa.select(FaultTicketRow).where(FaultTicketRow.ticket_id == ticket_id)
    ).one_or_none()
    view = None
    if row is not None:
        view = fault_view(row, pole_sites(here.db, [row.node_id]).get(row.node_id), here.now, here.policy)
    return page(
        request,
        template,
        who,
        status_code=status_code if row is not None else 404,
        ticket_id=ticket_id,
        fault=view,
        clockface=here.clockface,
        may=_may(who),
        form=form or FormState(),
        pausable=[s.value for s in tickets.PAUSABLE],
    )


@router.get("/faults/{ticket_id}")
def fault_page(*, request: Request, ticket_id: PathId, who: CentreUser, here: Here) -> HTMLResponse:
    return _ticket(request, who, here, ticket_id, "faults_detail.html")


@router.get("/fragments/faults/{ticket_id}/status")
def fault_status(*, request: Request, ticket_id: PathId, who: CentreUser, here: Here) -> HTMLResponse:
    return _ticket(request, who, here, ticket_id, "fragments/fault_status.html")


class Refused(Exception):
    """A form field the page refuses before the ticket desk sees it: `field` and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _validation_reason(error: ValidationError, t: i18n.Translator) -> str:
    """The pydantic model's (the API's own) refusal, in the user's language."""
    first = error.errors()[0]
    limits = first.get("ctx") or {}
    match first["type"]:
        case "string_too_short" | "missing":
            return t("faults.too_short", n=limits.get("min_length", 1))
        case "string_too_long":
            return t("faults.too_long", n=limits.get("max_length", 0))
        case "string_pattern_mismatch":
            return t("faults.bad_name")
    return str(first["msg"])


def _desk_reason(error: Exception, t: i18n.Translator) -> str:
    if isinstance(error, IllegalTransition):
        allowed_now = ", ".join(t(f"faults.action.{a}") for a in error.allowed) or t("faults.closed")
        return t(
            "faults.illegal",
            state=t(f"faults.ticket_state.{error.state}"),
            action=t(f"faults.action.{error.action}"),
            allowed=allowed_now,
        )
    if isinstance(error, StepRefused):
        return error.detail
    if isinstance(error, ApiError):
        return error.message
    return str(error)


def _plain(value: str, field: str, t: i18n.Translator) -> str:
    if "\x00" in value:
        raise Refused(field, t("faults.nul"))
    return value.strip()


Work = Callable[[TicketDesk, i18n.Translator], object]


def _act(
    request: Request,
    who: Principal,
    here: PageContext,
    ticket_id: str,
    *,
    permission: Permission,
    action: str,
    where: str,
    entered: dict[str, str],
    work: Work,
) -> Response:
    """Check the permission, run `work` on the API's ticket desk inside a savepoint (a refusal
    leaves the ticket untouched), and answer: htmx gets the ticket's panel with the outcome beside
    the form (`where`, or the refused field); a plain form post goes back to the ticket's page."""
    if not allowed(who.role, permission):
        raise PageForbidden(who, request.url.path)
    t = i18n.Translator(language(request))
    form = FormState(entered=entered)
    attempt = here.db.begin_nested()
    try:
        work(TicketDesk(here.db, here.now, here.policy, Auditor(here.db, who, here.now)), t)
    except Refused as refused:
        attempt.rollback()
        form.problems[refused.field] = refused.reason
    except (FaultError, ApiError) as error:
        attempt.rollback()
        form.problems[where] = _desk_reason(error, t)
    else:
        attempt.commit()
        form.done = t("faults.done", action=t(f"faults.action.{action}"))
        form.entered = {}
    if request.headers.get("hx-request"):
        return _ticket(request, who, here, ticket_id, "fragments/fault_detail.html", form=form)
    if form.problems:
        return _ticket(request, who, here, ticket_id, "faults_detail.html", form=form, status_code=422)
    return RedirectResponse(f"/faults/{ticket_id}", status_code=303)


@router.post("/faults/{ticket_id}/acknowledge")
def acknowledge(*, request: Request, ticket_id: PathId, who: CentreUser, here: Here) -> Response:
    def work(desk: TicketDesk, t: i18n.Translator) -> object:
        return desk.step(ticket_id, who, Action.ACKNOWLEDGE)

    return _act(
        request,
        who,
        here,
        ticket_id,
        permission=Permission.TICKET_DISPATCH,
        action="acknowledge",
        where="acknowledge",
        entered={},
        work=work,
    )


@router.post("/faults/{ticket_id}/assign")
def assign(
    *,
    request: Request,
    ticket_id: PathId,
    who: CentreUser,
    here: Here,
    technician: Text = "",
    note: Text = "",
) -> Response:
    def work(desk: TicketDesk, t: i18n.Translator) -> object:
        person = _plain(technician, "technician", t)
        if not person:
            raise Refused("technician", t("faults.need_technician"))
        try:
            body = Assignment(technician=person)
        except ValidationError as error:
            raise Refused("technician", _validation_reason(error, t)) from None
        return desk.change(ticket_id, who, "assign", technician=body.technician)

    return _act(
        request,
        who,
        here,
        ticket_id,
        permission=Permission.TICKET_DISPATCH,
        action="assign",
        where="dispatch",
        entered={"technician": technician, "note": note},
        work=work,
    )


@router.post("/faults/{ticket_id}/dispatch")
def dispatch(
    *,
    request: Request,
    ticket_id: PathId,
    who: CentreUser,
    here: Here,
    technician: Text = "",
    note: Text = "",
) -> Response:
    def work(desk: TicketDesk, t: i18n.Translator) -> object:
        try:
            body = Dispatch(
                technician=_plain(technician, "technician", t) or None, note=_plain(note, "note", t)
            )
        except ValidationError as error:
            where = "note" if error.errors()[0]["loc"][0] == "note" else "technician"
            raise Refused(where, _validation_reason(error, t)) from None
        # As the API's dispatch: the technician given, else the one the ticket is assigned to.
        if body.technician is None and ticket_for_update(desk.db, ticket_id).assignee is None:
            raise Refused("technician", t("faults.need_technician"))
        return desk.dispatch(ticket_id, who, body.technician, body.note)

    return _act(
        request,
        who,
        here,
        ticket_id,
        permission=Permission.TICKET_DISPATCH,
        action="dispatch",
        where="dispatch",
        entered={"technician": technician, "note": note},
        work=work,
    )


@router.post("/faults/{ticket_id}/pause")
def pause(*, request: Request, ticket_id: PathId, who: CentreUser, here: Here, reason: Text = "") -> Response:
    def work(desk: TicketDesk, t: i18n.Translator) -> object:
        why = _plain(reason, "reason", t)
        if not why:
            raise Refused("reason", t("faults.need_reason"))
        try:
            body = PauseRequest(reason=why)
        except ValidationError as error:
            raise Refused("reason", _validation_reason(error, t)) from None
        return desk.pause(ticket_id, who, body.reason)

    return _act(
        request,
        who,
        here,
        ticket_id,
        permission=Permission.TICKET_FIELD,
        action="pause",
        where="pause",
        entered={"reason": reason},
        work=work,
    )


@router.post("/faults/{ticket_id}/resume")
def resume(*, request: Request, ticket_id: PathId, who: CentreUser, here: Here) -> Response:
    def work(desk: TicketDesk, t: i18n.Translator) -> object:
        return desk.resume(ticket_id, who)

    return _act(
        request,
        who,
        here,
        ticket_id,
        permission=Permission.TICKET_FIELD,
        action="resume",
        where="pause",
        entered={},
        work=work,
    )
