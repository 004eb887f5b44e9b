"""/campaigns: the OTA campaigns ("Updates") and how far each has got, newest first; one
campaign's page with its waves, its nodes (filtered by state) and the steps a person may take
now (pause, resume, cancel, approve the next wave). Reading is everyone's in the centre; the
steps need `ota:campaign` and go through the API's own path (fleet.ota.store.act under the
campaign's row lock, one audit entry each), so the rules and the audit log are the API's.
Everything refreshes on the live `ota` event, as OTA progress arrives from ingest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from fleet.access.roles import Permission, allowed
from fleet.access.tokens import Principal
from fleet.api.deps import Auditor, DbSession, NowMs
from fleet.ota import campaign as core
from fleet.ota import store
from fleet.ota.campaign import CampaignAction, CampaignState, Hold, NodeState
from fleet.ota.errors import IllegalCampaignTransition
from fleet.ota.models import OtaCampaign, OtaCampaignNode, OtaRelease
from fleet.ota.routes import ActionIn, CampaignId
from fleet.ota.runner import NO_LINK
from fleet.reports.routes import Settings
from fleet.web import i18n
from fleet.web.pages.alarms import Clockface
from fleet.web.render import language, page
from fleet.web.session import CentreUser, PageForbidden

router = APIRouter(include_in_schema=False)
Choice = Annotated[str, Query(max_length=64)]
Text = Annotated[str, Form()]  # checked by the API's own model (ActionIn), refused beside the field
LIST_LIMIT: Final = 100  # campaigns on the list: a city runs a handful a month
NODE_LIMIT: Final = 500  # rows in a campaign's node table; the state filter narrows the rest
# A person's steps, in the order the page offers them (the core's PERSON_ACTIONS).
STEPS: Final = (CampaignAction.APPROVE, CampaignAction.PAUSE, CampaignAction.RESUME, CampaignAction.CANCEL)
HOLDS: Final = frozenset({h.value for h in Hold} | {NO_LINK})
Step = Literal["pause", "resume", "cancel", "approve"]

MESSAGES: Final = {
    "en": {
        "campaigns.title": "Updates",
        "campaigns.list": "OTA campaigns, the newest first",
        "campaigns.none": "No campaign matches.",
        "campaigns.shown": "{n} campaigns",
        "campaigns.campaign": "Campaign",
        "campaigns.release": "Release",
        "campaigns.state": "State",
        "campaigns.any": "Any",
        "campaigns.progress": "Committed",
        "campaigns.progress_of": "{done} of {total}",
        "campaigns.failures": "Failures",
        "campaigns.held": "Held",
        "campaigns.held_none": "none",
        "campaigns.waves_opened": "Waves opened",
        "campaigns.waves_of": "{opened} of {total}",
        "campaigns.created": "Started",
        "campaigns.created_by": "{at} by {who}",
        "campaigns.back": "All campaigns",
        "campaigns.missing": "There is no campaign {campaign_id}.",
        "campaigns.heading": "{release} · campaign {campaign_id}",
        "campaigns.reason": "Why: {reason}",
        "campaigns.finished": "Finished",
        "campaigns.in_flight": "In flight",
        "campaigns.nodes": "Nodes",
        "campaigns.settings": "How it runs",
        "campaigns.target": "Target",
        "campaigns.target_all": "every node",
        "campaigns.note_field": "Note",
        "campaigns.target.site_ids": "sites",
        "campaigns.target.site_tags": "site tags",
        "campaigns.target.districts": "districts",
        "campaigns.target.node_ids": "nodes",
        "campaigns.target.versions": "from versions",
        "campaigns.target.hardware": "hardware",
        "campaigns.approval": "Approval",
        "campaigns.approval_each": "a person approves each wave after the first",
        "campaigns.approval_none": "waves follow on by themselves",
        "campaigns.on_abort": "On too many failures",
        "campaigns.node_timeout": "Node timeout",
        "campaigns.seconds": "{n} s",
        "campaigns.max_in_flight": "At most at work at once",
        "campaigns.unlimited": "no limit",
        "campaigns.window": "Maintenance window",
        "campaigns.window_any": "any time",
        "campaigns.window_span": "{start} to {end} ({zone})",
        "campaigns.waves": "Waves",
        "campaigns.wave": "Wave",
        "campaigns.wave_n": "Wave {n}",
        "campaigns.size": "Nodes",
        "campaigns.success_threshold": "Passes at",
        "campaigns.abort_rate": "Aborts at",
        "campaigns.percent": "{n} %",
        "campaigns.wave_status": "Status",
        "campaigns.wave.passed": "passed",
        "campaigns.wave.open": "open",
        "campaigns.wave.short": "fell short",
        "campaigns.wave.waiting": "not opened",
        "campaigns.by_state": "Nodes by state",
        "campaigns.node_list": "The campaign's nodes",
        "campaigns.node": "Node",
        "campaigns.node_state": "State",
        "campaigns.node_progress": "Progress",
        "campaigns.node_reason": "Reason",
        "campaigns.last_heard": "Last heard",
        "campaigns.never": "—",
        "campaigns.nodes_shown": "{n} of {total} nodes",
        "campaigns.nodes_capped": "The first {n} shown: filter by state to see the others.",
        "campaigns.no_nodes": "No node of this campaign is in that state.",
        "campaigns.held_by": "held: {hold}",
        "campaigns.actions": "Actions",
        "campaigns.action_note": "Note for the audit log",
        "campaigns.action_note_hint": "optional, e.g. why you pause",
        "campaigns.confirm_cancel": (
            "Cancel this campaign for good? Queued nodes will never be offered the release."
        ),
        "campaigns.no_actions": "The campaign is over: nothing left to steer.",
        "campaigns.do.approve": "Approve the next wave",
        "campaigns.do.pause": "Pause",
        "campaigns.do.resume": "Resume",
        "campaigns.do.cancel": "Cancel the campaign",
        "campaigns.done.approve": "Approved: the next wave may start.",
        "campaigns.done.pause": "Paused: no more offers until resumed.",
        "campaigns.done.resume": "Resumed: offers go out again.",
        "campaigns.done.cancel": "Cancelled: queued nodes will not be offered.",
        "campaigns.illegal": "This campaign is {state}: it cannot {action} now (allowed: {allowed}).",
        "campaigns.over": "none, the campaign is over",
        "campaigns.too_long": "At most {n} characters, please.",
        "campaigns.nul": "The text contains a NUL character.",
        "campaigns.action.approve": "approve",
        "campaigns.action.pause": "pause",
        "campaigns.action.resume": "resume",
        "campaigns.action.cancel": "cancel",
        "campaigns.abort.pause": "pause the campaign",
        "campaigns.abort.cancel": "cancel the campaign",
        "campaigns.state.running": "running",
        "campaigns.state.awaiting-approval": "awaiting approval",
        "campaigns.state.paused": "paused",
        "campaigns.state.completed": "completed",
        "campaigns.state.cancelled": "cancelled",
        "campaigns.node.queued": "queued",
        "campaigns.node.notified": "offered",
        "campaigns.node.downloading": "downloading",
        "campaigns.node.downloaded": "downloaded",
        "campaigns.node.verified": "verified",
        "campaigns.node.installing": "installing",
        "campaigns.node.restarting": "restarting",
        "campaigns.node.health-check": "health check",
        "campaigns.node.committed": "committed",
        "campaigns.node.failed": "failed",
        "campaigns.node.rolled-back": "rolled back",
        "campaigns.hold.bell-alarm": "bell alarm",
        "campaigns.hold.open-fault": "open fault",
        "campaigns.hold.offline": "offline",
        "campaigns.hold.maintenance-window": "outside the window",
        "campaigns.hold.in-flight-limit": "at-work limit",
        "campaigns.hold.no-link": "no MQTT link",
    },
    "ko": {
        "campaigns.title": "업데이트",
        "campaigns.list": "OTA 배포 캠페인 (최신 순)",
        "campaigns.none": "조건에 맞는 캠페인이 없습니다.",
        "campaigns.shown": "캠페인 {n}개",
        "campaigns.campaign": "캠페인",
        "campaigns.release": "릴리스",
        "campaigns.state": "상태",
        "campaigns.any": "전체",
        "campaigns.progress": "적용 완료",
        "campaigns.progress_of": "{total}대 중 {done}대",
        "campaigns.failures": "실패",
        "campaigns.held": "보류",
        "campaigns.held_none": "없음",
        "campaigns.waves_opened": "시작된 단계",
        "campaigns.waves_of": "{total}단계 중 {opened}단계",
        "campaigns.created": "시작",
        "campaigns.created_by": "{at} ({who})",
        "campaigns.back": "캠페인 목록",
        "campaigns.missing": "캠페인 {campaign_id}이(가) 없습니다.",
        "campaigns.heading": "{release} · 캠페인 {campaign_id}",
        "campaigns.reason": "사유: {reason}",
        "campaigns.finished": "종료",
        "campaigns.in_flight": "진행 중",
        "campaigns.nodes": "노드",
        "campaigns.settings": "운영 방식",
        "campaigns.target": "대상",
        "campaigns.target_all": "전체 노드",
        "campaigns.note_field": "메모",
        "campaigns.target.site_ids": "개소",
        "campaigns.target.site_tags": "개소 태그",
        "campaigns.target.districts": "구",
        "campaigns.target.node_ids": "노드",
        "campaigns.target.versions": "현재 버전",
        "campaigns.target.hardware": "하드웨어",
        "campaigns.approval": "승인",
        "campaigns.approval_each": "첫 단계 이후 단계마다 담당자가 승인",
        "campaigns.approval_none": "단계가 자동으로 이어짐",
        "campaigns.on_abort": "실패가 많을 때",
        "campaigns.node_timeout": "노드 응답 제한 시간",
        "campaigns.seconds": "{n}초",
        "campaigns.max_in_flight": "동시 진행 최대 노드 수",
        "campaigns.unlimited": "제한 없음",
        "campaigns.window": "작업 시간대",
        "campaigns.window_any": "제한 없음",
        "campaigns.window_span": "{start}부터 {end}까지 ({zone})",
        "campaigns.waves": "배포 단계",
        "campaigns.wave": "단계",
        "campaigns.wave_n": "{n}단계",
        "campaigns.size": "노드 수",
        "campaigns.success_threshold": "통과 기준",
        "campaigns.abort_rate": "중단 기준",
        "campaigns.percent": "{n}%",
        "campaigns.wave_status": "상태",
        "campaigns.wave.passed": "통과",
        "campaigns.wave.open": "진행 중",
        "campaigns.wave.short": "기준 미달",
        "campaigns.wave.waiting": "시작 전",
        "campaigns.by_state": "상태별 노드",
        "campaigns.node_list": "캠페인 대상 노드",
        "campaigns.node": "노드",
        "campaigns.node_state": "상태",
        "campaigns.node_progress": "진행률",
        "campaigns.node_reason": "사유",
        "campaigns.last_heard": "마지막 수신",
        "campaigns.never": "—",
        "campaigns.nodes_shown": "노드 {total}대 중 {n}대",
        "campaigns.nodes_capped": "처음 {n}대만 표시합니다. 나머지는 상태로 걸러 보세요.",
        "campaigns.no_nodes": "이 상태인 노드가 없습니다.",
        "campaigns.held_by": "보류: {hold}",
        "campaigns.actions": "조치",
        "campaigns.action_note": "감사 기록용 메모",
        "campaigns.action_note_hint": "선택 사항 (예: 일시 정지 사유)",
        "campaigns.confirm_cancel": (
            "이 캠페인을 완전히 취소할까요? 대기 중인 노드에는 릴리스가 제공되지 않습니다."
        ),
        "campaigns.no_actions": "종료된 캠페인입니다. 더 할 조치가 없습니다.",
        "campaigns.do.approve": "다음 단계 승인",
        "campaigns.do.pause": "일시 정지",
        "campaigns.do.resume": "재개",
        "campaigns.do.cancel": "캠페인 취소",
        "campaigns.done.approve": "승인 완료: 다음 단계를 시작할 수 있습니다.",
        "campaigns.done.pause": "일시 정지됨: 재개할 때까지 새로 제공하지 않습니다.",
        "campaigns.done.resume": "재개됨: 다시 제공합니다.",
        "campaigns.done.cancel": "취소됨: 대기 중인 노드에는 제공하지 않습니다.",
        "campaigns.illegal": "이 캠페인은 지금 「{state}」 상태라 {action}할 수 없습니다 (가능: {allowed}).",
        "campaigns.over": "없음, 종료된 캠페인",
        "campaigns.too_long": "{n}자 이하로 입력하세요.",
        "campaigns.nul": "입력에 NUL 문자가 있습니다.",
        "campaigns.action.approve": "승인",
        "campaigns.action.pause": "일시 정지",
        "campaigns.action.resume": "재개",
        "campaigns.action.cancel": "취소",
        "campaigns.abort.pause": "캠페인 일시 정지",
        "campaigns.abort.cancel": "캠페인 취소",
        "campaigns.state.running": "진행 중",
        "campaigns.state.awaiting-approval": "승인 대기",
        "campaigns.state.paused": "일시 정지",
        "campaigns.state.completed": "완료",
        "campaigns.state.cancelled": "취소",
        "campaigns.node.queued": "대기",
        "campaigns.node.notified": "제공됨",
        "campaigns.node.downloading": "다운로드 중",
        "campaigns.node.downloaded": "다운로드 완료",
        "campaigns.node.verified": "검증 완료",
        "campaigns.node.installing": "설치 중",
        "campaigns.node.restarting": "재시작 중",
        "campaigns.node.health-check": "상태 점검 중",
        "campaigns.node.committed": "적용 완료",
        "campaigns.node.failed": "실패",
        "campaigns.node.rolled-back": "롤백됨",
        "campaigns.hold.bell-alarm": "비상벨 알람",
        "campaigns.hold.open-fault": "장애 처리 중",
        "campaigns.hold.offline": "오프라인",
        "campaigns.hold.maintenance-window": "작업 시간대 밖",
        "campaigns.hold.in-flight-limit": "동시 진행 한도",
        "campaigns.hold.no-link": "MQTT 연결 없음",
    },
}
i18n.register(MESSAGES)


# --- what the pages show ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaveView:
    index: int  # the API's (0: the canary); the page counts from 1
    size: int
    success_threshold: float
    abort_failure_rate: float
    committed: int
    failures: int
    in_flight: int
    status: str  # passed, open, short (settled without passing), waiting (not opened)

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def passes_at(self) -> str:
        return _percent(self.success_threshold)

    @property
    def aborts_at(self) -> str:
        return _percent(self.abort_failure_rate)


def _percent(share: float) -> str:
    """0.9 -> "90", 0.125 -> "12.5": the thresholds as people wrote them, without a trailing .0."""
    return f"{round(share * 100, 1):g}"


@dataclass(frozen=True, slots=True)
class CampaignView:
    campaign_id: str
    release_id: str
    state: str  # CampaignState
    reason: str
    note: str
    created_at_ms: int
    created_by: str
    finished_at_ms: int | None
    opened_waves: int
    target: dict[str, list[str]]
    require_approval: bool
    abort_action: str
    node_timeout_s: int
    max_in_flight: int | None
    window: dict[str, str] | None
    nodes: int
    by_state: dict[str, int]  # in NodeState order, only the states some node is in
    held: dict[str, int]
    waves: tuple[WaveView, ...]
    steps: tuple[str, ...]  # the person's steps its state allows, in the page's order

    @property
    def committed(self) -> int:
        return self.by_state.get(NodeState.COMMITTED.value, 0)

    @property
    def failures(self) -> int:
        return sum(self.by_state.get(s.value, 0) for s in core.FAILURES)

    @property
    def in_flight(self) -> int:
        return sum(self.by_state.get(s.value, 0) for s in core.IN_FLIGHT)

    @property
    def percent(self) -> int:
        """Committed share, whole percent, for the progress bar (rounded down: 100 means all)."""
        return self.committed * 100 // self.nodes if self.nodes else 0


def _wave_status(t: core.WaveTally) -> str:
    if t.passed:
        return "passed"
    if t.settled:
        return "short"
    return "open" if t.opened else "waiting"


def steps_allowed(state: CampaignState) -> tuple[str, ...]:
    """The person's steps the campaign's state allows (core.CAMPAIGN_TRANSITIONS)."""
    possible = core.CAMPAIGN_TRANSITIONS[state]
    return tuple(s.value for s in STEPS if s in possible)


def campaign_view(
    row: OtaCampaign, release: OtaRelease, counted: Mapping[tuple[int, str], int], held: dict[str, int]
) -> CampaignView:
    campaign = store.core_of(row)
    tallies = core.tally_counts(campaign, counted)
    totals: dict[str, int] = {}
    for (_, state), n in counted.items():
        totals[state] = totals.get(state, 0) + n
    return CampaignView(
        campaign_id=row.campaign_id,
        release_id=release.release_id,
        state=campaign.state.value,
        reason=row.reason,
        note=row.note,
        created_at_ms=row.created_at_ms,
        created_by=row.created_by,
        finished_at_ms=row.finished_at_ms,
        opened_waves=row.opened_waves,
        target={k: v for k, v in json.loads(row.target).items() if v},  # only the selectors given
        require_approval=row.require_approval,
        abort_action=row.abort_action,
        node_timeout_s=row.node_timeout_s,
        max_in_flight=row.max_in_flight,
        window=store.window_of(row),
        nodes=sum(totals.values()),
        by_state={s.value: totals[s.value] for s in NodeState if totals.get(s.value)},
        held=dict(sorted(held.items())),
        waves=tuple(
            WaveView(
                index=t.index,
                size=t.size,
                success_threshold=wave.success_threshold,
                abort_failure_rate=wave.abort_failure_rate,
                committed=t.committed,
                failures=t.failures,
                in_flight=t.in_flight,
                status=_wave_status(t),
            )
            for t, wave in zip(tallies, campaign.waves, strict=True)
        ),
        steps=steps_allowed(campaign.state),
    )


def campaign_views(db: Session, rows: Iterable[OtaCampaign]) -> list[CampaignView]:
    rows = list(rows)
    if not rows:
        return []
    counted = store.counts(db, [r.id for r in rows])
    releases = {
        r.id: r
        for r in db.scalars(sa.select(OtaRelease).where(OtaRelease.id.in_({row.release_pk for row in rows})))
    }
    return [campaign_view(r, releases[r.release_pk], counted[r.id], store.holds(db, r.id)) for r in rows]


def campaigns(db: Session, state: str) -> list[CampaignView]:
    query = sa.select(OtaCampaign).order_by(OtaCampaign.id.desc()).limit(LIST_LIMIT)
    if state:
        query = query.where(OtaCampaign.state == state)
    return campaign_views(db, db.scalars(query))


@dataclass(frozen=True, slots=True)
class NodeView:
    node_id: str
    wave: int  # counted from 1, as on the page
    state: str
    progress: int | None  # whole percent
    reason: str | None
    detail: str
    hold: str | None
    last_heard_ms: int | None


def campaign_nodes(db: Session, campaign_pk: int, state: str) -> list[NodeView]:
    """The first NODE_LIMIT nodes by id, in `state` when one is given."""
    query = (
        sa.select(OtaCampaignNode)
        .where(OtaCampaignNode.campaign_pk == campaign_pk)
        .order_by(OtaCampaignNode.node_id)
        .limit(NODE_LIMIT)
    )
    if state:
        query = query.where(OtaCampaignNode.state == state)
    return [
        NodeView(
            node_id=n.node_id,
            wave=n.wave + 1,
            state=n.state,
            progress=round(n.progress * 100) if n.progress is not None else None,
            reason=n.reason,
            detail=n.detail,
            hold=n.hold if n.state == NodeState.QUEUED.value else None,
            last_heard_ms=n.last_heard_ms,
        )
        for n in db.scalars(query)
    ]


def _may_steer(who: Principal) -> bool:
    """What the page offers `who`: the API's permission, asked again on every post."""
    return allowed(who.role, Permission.OTA_CAMPAIGN)


# Unknown values from a hand-made URL filter nothing rather than fail.
def _campaign_state(value: str) -> str:
    return value if value in {s.value for s in CampaignState} else ""


def _node_state(value: str) -> str:
    return value if value in {s.value for s in NodeState} else ""


@dataclass(frozen=True, slots=True)
class PageContext:
    db: Session
    now: int
    clockface: Clockface


def page_context(db: DbSession, now: NowMs, settings: Settings) -> PageContext:
    return PageContext(db, now, Clockface(settings.time_zone))


Here = Annotated[PageContext, Depends(page_context)]


# --- the list -------------------------------------------------------------------------------------


def _list(request: Request, who: Principal, here: PageContext, state: str, template: str) -> HTMLResponse:
    return page(
        request,
        template,
        who,
        campaigns=campaigns(here.db, state),
        state=state,
        states=[s.value for s in CampaignState],
        clockface=here.clockface,
        holds=HOLDS,
    )


@router.get("/campaigns")
def campaigns_page(*, request: Request, who: CentreUser, here: Here, state: Choice = "") -> HTMLResponse:
    return _list(request, who, here, _campaign_state(state), "campaigns.html")


@router.get("/fragments/campaigns")
def campaigns_fragment(*, request: Request, who: CentreUser, here: Here, state: Choice = "") -> HTMLResponse:
    return _list(request, who, here, _campaign_state(state), "fragments/campaign_list.html")


# --- one campaign ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a step posted from the page came to: done, or refused with the reason."""

    done: str = ""
    problems: dict[str, str] = field(default_factory=dict)  # "note" or "step": the reason
    note: str = ""  # what was typed, given back with a refusal


def _campaign(
    request: Request,
    who: Principal,
    here: PageContext,
    campaign_id: str,
    template: str,
    *,
    node_state: str = "",
    outcome: Outcome | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    row = store.get(here.db, campaign_id)
    view = campaign_views(here.db, [row])[0] if row is not None else None
    return page(
        request,
        template,
        who,
        status_code=status_code if row is not None else 404,
        campaign_id=campaign_id,
        campaign=view,
        nodes=campaign_nodes(here.db, row.id, node_state) if row is not None else [],
        node_state=node_state,
        node_states=[s.value for s in NodeState],
        node_limit=NODE_LIMIT,
        may_steer=_may_steer(who),
        outcome=outcome or Outcome(),
        clockface=here.clockface,
        holds=HOLDS,
    )


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    *, request: Request, campaign_id: CampaignId, who: CentreUser, here: Here, state: Choice = ""
) -> HTMLResponse:
    return _campaign(request, who, here, campaign_id, "campaign_detail.html", node_state=_node_state(state))


@router.get("/fragments/campaigns/{campaign_id}/{part}")
def campaign_fragment(
    *,
    request: Request,
    campaign_id: CampaignId,
    part: Literal["status", "actions", "nodes"],
    who: CentreUser,
    here: Here,
    state: Choice = "",
) -> HTMLResponse:
    return _campaign(
        request, who, here, campaign_id, f"fragments/campaign_{part}.html", node_state=_node_state(state)
    )


def _illegal(error: IllegalCampaignTransition, t: i18n.Translator) -> str:
    allowed_now = [a for a in error.allowed if a in {s.value for s in STEPS}]
    return t(
        "campaigns.illegal",
        state=t(f"campaigns.state.{error.state}"),
        action=t(f"campaigns.action.{error.action}"),
        allowed=", ".join(t(f"campaigns.action.{a}") for a in allowed_now) or t("campaigns.over"),
    )


def _note_problem(note: str, t: i18n.Translator) -> str | None:
    if "\x00" in note:
        return t("campaigns.nul")
    try:
        ActionIn(note=note)
    except ValidationError as error:
        first = error.errors()[0]
        return t("campaigns.too_long", n=(first.get("ctx") or {}).get("max_length", 0))
    return None


@router.post("/campaigns/{campaign_id}/{step}")
def steer(
    *,
    request: Request,
    campaign_id: CampaignId,
    step: Step,
    who: CentreUser,
    here: Here,
    note: Text = "",
    state: Text = "",
) -> Response:
    """A person's step, as the API's POST /ota/campaigns/{id}/{step}: the campaign's row locked,
    the core's transition (refused when its state does not allow the step), one audit entry.
    htmx gets the campaign's body back with the outcome; a plain form post goes back to the page."""
    if not _may_steer(who):
        raise PageForbidden(who, request.url.path)
    t = i18n.Translator(language(request))
    action = CampaignAction(step)
    outcome = Outcome(note=note)
    note = note.strip()
    problem = _note_problem(note, t)
    row = store.get(here.db, campaign_id, lock=True) if problem is None else None
    if problem is not None:
        outcome.problems["note"] = problem
    elif row is not None:
        before = row.state
        try:
            store.act(here.db, row, action, note=note, now_ms=here.now)
        except IllegalCampaignTransition as error:
            outcome.problems["step"] = _illegal(error, t)
        else:
            # The API's audit entry, word for word: the log does not tell the page from the API.
            Auditor(here.db, who, here.now)(
                f"ota.campaign.{action.value}", f"ota-campaign/{campaign_id}", before=before, note=note
            )
            outcome = Outcome(done=t(f"campaigns.done.{action.value}"))
    node_state = _node_state(state)
    if request.headers.get("hx-request"):
        return _campaign(
            request,
            who,
            here,
            campaign_id,
            "fragments/campaign_body.html",
            node_state=node_state,
            outcome=outcome,
        )
    if outcome.problems:
        return _campaign(
            request, who, here, campaign_id, "campaign_detail.html", outcome=outcome, status_code=422
        )
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
