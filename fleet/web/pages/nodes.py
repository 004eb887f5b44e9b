"""/nodes/{node_id}: one node for the control centre. Its components and their state (pole
controller, bell circuit, door, cameras, storage, the uplink session), versions, site, open
tickets, recent bell alarms and a timeline of what the fleet stores about it (tickets and
their steps, alarms, inspections of its site, audit entries), refreshed on the live stream's
`nodes`, `faults` and `alarms` events; and charts of its telemetry (static/node.js draws them
with uPlot from `/nodes/{node_id}/series`, read from fleet.inventory.rollups)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.orm import Session, selectinload

from fleet.alarms.models import BellAlarmRecord
from fleet.api.deps import DbSession, NowMs, PathId
from fleet.audit.models import AuditEntry
from fleet.faults.store import CLOSED_STATES, FaultConditionRow, FaultTicketRow
from fleet.faults.tickets import Ticket
from fleet.inspections.models import Inspection
from fleet.inspections.schedule import zone
from fleet.inventory import rollups
from fleet.inventory.models import Node
from fleet.reports.routes import Settings
from fleet.web import i18n
from fleet.web.render import language, page
from fleet.web.session import CentreUser

router = APIRouter(include_in_schema=False)

TIMELINE_LENGTH: Final = 60
RECENT_ALARMS: Final = 10
Hours = Annotated[int, Query(ge=1, le=31 * 24)]


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the node page: the roll-up metrics it draws (a trailing ':' takes every
    camera's or device's), its unit, and a factor from the stored value to the unit."""

    metrics: tuple[str, ...]
    unit: str
    scale: float = 1.0


CHARTS: Final = {
    "temperature": Chart(("cpu_temp_c", "controller_temp_c"), "°C"),
    "supply": Chart(("supply_v",), "V"),
    "wear": Chart(("wear_pct:",), "%"),
    "free": Chart(("free_bytes:",), "GB", 1e-9),
    "bitrate": Chart(("bitrate_kbps:",), "kbit/s"),
    "fps": Chart(("fps:",), "fps"),
    "link_errors": Chart(("link_errors",), ""),
}


@dataclass(frozen=True, slots=True)
class ComponentState:
    """A fault condition of the node as the fleet holds it (fleet.faults.rules.Phase)."""

    component: str
    kind: str
    phase: str  # clear, raising, open, clearing
    since_ms: int
    severity: str | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at_ms: int
    what: str  # a message key: timeline.<what>
    detail: dict[str, str] = field(default_factory=dict)
    link: str = ""


@dataclass(frozen=True, slots=True)
class NodeView:
    node: Node
    conditions: list[ComponentState]
    open_tickets: list[FaultTicketRow]
    alarms: list[BellAlarmRecord]
    timeline: list[TimelineEntry]

    def condition(self, kind: str, component: str | None = None) -> str:
        """The worst phase the node holds for `kind` (of `component`), "clear" when none."""
        order = ("clear", "clearing", "raising", "open")
        phases = [
            c.phase
            for c in self.conditions
            if c.kind == kind and (component is None or c.component == component)
        ]
        return max(phases, key=order.index, default="clear")

    @property
    def raised(self) -> list[ComponentState]:
        return [c for c in self.conditions if c.phase != "clear"]


def load_node(db: Session, node_id: str) -> Node | None:
    return db.scalars(
        sa.select(Node)
        .where(Node.node_id == node_id)
        .options(
            selectinload(Node.site),
            selectinload(Node.controller),
            selectinload(Node.cameras),
            selectinload(Node.storage),
        )
    ).one_or_none()


def node_view(db: Session, node_id: str) -> NodeView | None:
    node = load_node(db, node_id)
    if node is None:
        return None
    conditions = [
        ComponentState(row.component, row.kind, row.phase, row.since_ms, row.severity)
        for row in db.scalars(
            sa.select(FaultConditionRow)
            .where(FaultConditionRow.node_id == node_id)
            .order_by(FaultConditionRow.kind, FaultConditionRow.component)
        )
    ]
    tickets = list(
        db.scalars(
            sa.select(FaultTicketRow)
            .where(FaultTicketRow.node_id == node_id)
            .order_by(FaultTicketRow.opened_at_ms.desc())
            .limit(TIMELINE_LENGTH)
        )
    )
    alarms = list(
        db.scalars(
            sa.select(BellAlarmRecord)
            .where(BellAlarmRecord.node_id == node_id)
            .order_by(BellAlarmRecord.pressed_at_ms.desc())
            .limit(TIMELINE_LENGTH)
        )
    )
    return NodeView(
        node=node,
        conditions=conditions,
        open_tickets=[t for t in tickets if t.state not in CLOSED_STATES],
        alarms=alarms[:RECENT_ALARMS],
        timeline=timeline(db, node, tickets, alarms),
    )


def _ticket_entries(row: FaultTicketRow, ticket: Ticket) -> list[TimelineEntry]:
    link = f"/faults/{row.ticket_id}"
    fault = {"kind": row.kind, "component": row.component, "severity": row.severity}
    entries = [TimelineEntry(ticket.opened_at, "ticket_opened", fault, link)]
    for step in ticket.steps:
        detail = {**fault, "action": step.action.value, "by": step.by, "note": step.note}
        entries.append(TimelineEntry(step.at, "ticket_step", detail, link))
    return entries


def _alarm_entries(alarm: BellAlarmRecord) -> list[TimelineEntry]:
    link = f"/alarms/{alarm.alarm_id}"
    entries = [TimelineEntry(alarm.pressed_at_ms, "alarm_pressed", {"bell": alarm.bell_id}, link)]
    if alarm.acknowledged_at_ms is not None:
        by = alarm.acknowledged_by or ""
        entries.append(TimelineEntry(alarm.acknowledged_at_ms, "alarm_acknowledged", {"by": by}, link))
    if alarm.cleared_at_ms is not None:
        by = alarm.cleared_by or ""
        entries.append(TimelineEntry(alarm.cleared_at_ms, "alarm_cleared", {"by": by}, link))
    return entries


def timeline(
    db: Session, node: Node, tickets: list[FaultTicketRow], alarms: list[BellAlarmRecord]
) -> list[TimelineEntry]:
    """Newest first: the node's tickets (opened, each step), bell alarms (pressed, acknowledged,
    cleared), its birth, inspections of its site, and audit entries naming the node, its
    cameras, site, tickets or alarms."""
    entries: list[TimelineEntry] = []
    for row in tickets:
        entries.extend(_ticket_entries(row, row.ticket()))
    for alarm in alarms:
        entries.extend(_alarm_entries(alarm))
    if node.birth_ms is not None:
        entries.append(TimelineEntry(node.birth_ms, "born", {"version": node.agent_version}))
    targets = [f"node/{node.node_id}"]
    targets += [f"ticket/{row.ticket_id}" for row in tickets]
    targets += [f"alarm/{alarm.alarm_id}" for alarm in alarms]
    about = [AuditEntry.target.in_(targets), AuditEntry.target.startswith(f"camera/{node.node_id}/")]
    if node.site is not None:
        about.append(AuditEntry.target == f"site/{node.site.site_id}")
        for inspection in db.scalars(
            sa.select(Inspection)
            .where(Inspection.site_pk == node.site.id)
            .order_by(Inspection.done_at_ms.desc())
            .limit(TIMELINE_LENGTH)
        ):
            detail = {"kind": inspection.kind, "result": inspection.result, "by": inspection.by}
            entries.append(TimelineEntry(inspection.done_at_ms, "inspection", detail))
    for entry in db.scalars(
        sa.select(AuditEntry).where(sa.or_(*about)).order_by(AuditEntry.id.desc()).limit(TIMELINE_LENGTH)
    ):
        detail = {"action": entry.action, "actor": entry.actor, "target": entry.target}
        entries.append(TimelineEntry(entry.at_ms, "audit", detail))
    entries.sort(key=lambda e: e.at_ms, reverse=True)
    return entries[:TIMELINE_LENGTH]


def clock_text(time_zone: str) -> Callable[[int | None], str]:
    """Epoch ms as the city's local time, for the templates ("—" for none)."""
    tz = zone(time_zone)

    def text(ms: int | None) -> str:
        if ms is None:
            return "—"
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")

    return text


def gigabytes(count: int | None) -> str:
    return "—" if count is None else f"{count / 1e9:.1f} GB"


def _state_page(
    request: Request, template: str, *, who: CentreUser, db: Session, node_id: str, settings: Settings
) -> HTMLResponse:
    view = node_view(db, node_id)
    if view is None:
        return page(request, "node_missing.html", who, status_code=404, node_id=node_id)
    return page(
        request,
        template,
        who,
        view=view,
        node=view.node,
        charts=CHARTS,
        when=clock_text(settings.time_zone),
        gigabytes=gigabytes,
        time_zone=settings.time_zone,
    )


@router.get("/nodes/{node_id}")
def node_page(
    request: Request, *, node_id: PathId, who: CentreUser, db: DbSession, settings: Settings
) -> HTMLResponse:
    return _state_page(request, "node.html", who=who, db=db, node_id=node_id, settings=settings)


@router.get("/fragments/nodes/{node_id}/{part}")
def node_fragment(
    request: Request,
    *,
    node_id: PathId,
    part: Literal["state", "timeline"],
    who: CentreUser,
    db: DbSession,
    settings: Settings,
) -> HTMLResponse:
    """The page's live parts, fetched again on the stream's events."""
    template = f"fragments/node_{part}.html"
    return _state_page(request, template, who=who, db=db, node_id=node_id, settings=settings)


def _label(t: i18n.Translator, metric: str) -> str:
    name, _, part = metric.partition(":")
    return part or t(f"node.metric.{name}")


Figures = dict[str, list[float | None]]  # "mean", "min", "max": one value per bucket


def chart_series(chart: Chart, points: list[rollups.Point]) -> tuple[list[int], dict[str, Figures]]:
    """The buckets' starts (epoch ms) and each metric's figures aligned on them, in the chart's
    order of metrics (then by camera or device), scaled to the chart's unit. Pure."""
    starts = sorted({p.bucket_ms for p in points})
    column = {start: index for index, start in enumerate(starts)}
    names = sorted({p.metric for p in points}, key=lambda name: (_order(chart, name), name))
    figures: dict[str, Figures] = {
        name: {part: [None] * len(starts) for part in ("mean", "min", "max")} for name in names
    }
    for p in points:
        at, series = column[p.bucket_ms], figures[p.metric]
        series["mean"][at] = round(p.bucket.mean * chart.scale, 3)
        series["min"][at] = round(p.bucket.min_value * chart.scale, 3)
        series["max"][at] = round(p.bucket.max_value * chart.scale, 3)
    return starts, figures


def _order(chart: Chart, metric: str) -> int:
    for index, wanted in enumerate(chart.metrics):
        if metric == wanted or (wanted.endswith(":") and metric.startswith(wanted)):
            return index
    return len(chart.metrics)


@router.get("/nodes/{node_id}/series")
def node_series(
    request: Request,
    *,
    node_id: PathId,
    who: CentreUser,
    db: DbSession,
    now: NowMs,
    metric: Annotated[str, Query(max_length=32)],
    hours: Hours = 24,
) -> JSONResponse:
    """One chart's series as uPlot takes them: `x` the buckets' starts (epoch seconds), and per
    series its mean, min and max per bucket (null where the bucket holds nothing)."""
    chart = CHARTS.get(metric)
    if chart is None:
        problem = f"metric={metric!r}: one of {', '.join(CHARTS)}"
        return JSONResponse({"error": problem}, status_code=422)
    until = rollups.bucket_of(now) + rollups.BUCKET_MS
    since = until - hours * 3_600_000
    starts, figures = chart_series(
        chart, rollups.history(db, node_id, chart.metrics, since_ms=since, until_ms=until)
    )
    t = i18n.Translator(language(request))
    return JSONResponse(
        {
            "node_id": node_id,
            "metric": metric,
            "unit": chart.unit,
            "bucket_ms": rollups.BUCKET_MS,
            "since_ms": since,
            "until_ms": until,
            "x": [start // 1000 for start in starts],
            "series": [
                {"metric": name, "label": _label(t, name), **series} for name, series in figures.items()
            ],
        },
        headers={"Cache-Control": "no-store"},
    )


MESSAGES: Final = {
    "en": {
        "node.title": "Node {node}",
        "node.missing": "No node {node} in the fleet.",
        "node.back": "Back to the overview",
        "node.components": "Components",
        "node.component": "Component",
        "node.state": "State",
        "node.controller": "Pole controller",
        "node.controller_none": "No pole controller reported",
        "node.link": "Link",
        "node.firmware": "Firmware",
        "node.reset_cause": "Last reset",
        "node.bell_circuit": "Bell circuit",
        "node.door": "Cabinet door",
        "node.has_bell": "Emergency bell fitted",
        "node.no_bell": "No emergency bell at this site",
        "node.cameras": "Cameras",
        "node.camera": "Camera",
        "node.camera_name": "Name",
        "node.model": "Model",
        "node.purpose": "Purpose",
        "node.no_cameras": "No cameras reported",
        "node.storage": "Storage",
        "node.device": "Device",
        "node.health": "Health",
        "node.wear": "Wear",
        "node.free": "Free",
        "node.read_only": "Read-only",
        "node.no_storage": "No storage devices reported",
        "node.uplink": "Uplink",
        "node.online": "Online",
        "node.offline": "Offline",
        "node.last_seen": "Last seen",
        "node.birth": "Session since",
        "node.bd_seq": "Session (bd_seq)",
        "node.last_seq": "Last message (seq)",
        "node.gaps": "Gaps",
        "node.duplicates": "Duplicates",
        "node.versions": "Versions",
        "node.agent": "Node agent",
        "node.hardware": "Hardware",
        "node.site": "Site",
        "node.no_site": "Not placed at a site",
        "node.address": "Address",
        "node.district": "District",
        "node.coordinates": "Coordinates",
        "node.site_class": "Site class",
        "node.conditions": "Conditions raised",
        "node.no_conditions": "Nothing raised",
        "node.kind": "Kind",
        "node.since": "Since",
        "node.severity": "Severity",
        "node.tickets": "Open tickets",
        "node.no_tickets": "No open tickets",
        "node.ticket": "Ticket",
        "node.opened": "Opened",
        "node.response_deadline": "Response due",
        "node.alarms": "Recent bell alarms",
        "node.no_alarms": "No bell alarms",
        "node.pressed": "Pressed",
        "node.acknowledged": "Acknowledged",
        "node.cleared": "Cleared",
        "node.latched": "waiting",
        "node.timeline": "Timeline",
        "node.no_timeline": "Nothing recorded yet",
        "node.times": "Times are {zone} time.",
        "node.charts": "Telemetry",
        "node.hours": "Last {n} h",
        "node.no_data": "No readings in this period",
        "node.chart_failed": "Could not load the readings",
        "node.chart.temperature": "Temperature (°C)",
        "node.chart.supply": "Supply voltage (V)",
        "node.chart.wear": "Storage wear (%)",
        "node.chart.free": "Storage free space (GB)",
        "node.chart.bitrate": "Camera bitrate (kbit/s)",
        "node.chart.fps": "Camera frame rate (fps)",
        "node.chart.link_errors": "Controller link errors",
        "node.metric.cpu_temp_c": "CPU",
        "node.metric.controller_temp_c": "Controller",
        "node.metric.supply_v": "Supply",
        "node.metric.link_errors": "Link errors",
        "node.yes": "yes",
        "node.no": "no",
        "node.phase.clear": "OK",
        "node.phase.raising": "Raised (settling)",
        "node.phase.open": "Fault",
        "node.phase.clearing": "Clearing",
        "node.door.clear": "Closed",
        "node.door.raising": "Open",
        "node.door.open": "Open",
        "node.door.clearing": "Closed (settling)",
        "node.timeline.ticket_opened": "Fault opened: {kind} on {component} ({severity})",
        "node.timeline.ticket_step": "Ticket {action} by {by} ({kind} on {component}) {note}",
        "node.timeline.alarm_pressed": "Bell {bell} pressed",
        "node.timeline.alarm_acknowledged": "Bell alarm acknowledged by {by}",
        "node.timeline.alarm_cleared": "Bell alarm cleared by {by}",
        "node.timeline.born": "Node started a session (agent {version})",
        "node.timeline.inspection": "Inspection ({kind}): {result}, by {by}",
        "node.timeline.audit": "{action} by {actor} ({target})",
    },
    "ko": {
        "node.title": "노드 {node}",
        "node.missing": "노드 {node}이(가) 없습니다.",
        "node.back": "현황으로 돌아가기",
        "node.components": "구성 요소",
        "node.component": "구성 요소",
        "node.state": "상태",
        "node.controller": "폴 제어기",
        "node.controller_none": "보고된 폴 제어기 없음",
        "node.link": "연결 방식",
        "node.firmware": "펌웨어",
        "node.reset_cause": "마지막 재시작 원인",
        "node.bell_circuit": "비상벨 회로",
        "node.door": "함체 문",
        "node.has_bell": "비상벨 설치됨",
        "node.no_bell": "이 개소에는 비상벨이 없습니다",
        "node.cameras": "카메라",
        "node.camera": "카메라",
        "node.camera_name": "이름",
        "node.model": "모델",
        "node.purpose": "용도",
        "node.no_cameras": "보고된 카메라 없음",
        "node.storage": "저장 장치",
        "node.device": "장치",
        "node.health": "상태",
        "node.wear": "마모도",
        "node.free": "여유 공간",
        "node.read_only": "읽기 전용",
        "node.no_storage": "보고된 저장 장치 없음",
        "node.uplink": "통신",
        "node.online": "온라인",
        "node.offline": "오프라인",
        "node.last_seen": "마지막 수신",
        "node.birth": "세션 시작",
        "node.bd_seq": "세션 (bd_seq)",
        "node.last_seq": "마지막 메시지 (seq)",
        "node.gaps": "누락",
        "node.duplicates": "중복",
        "node.versions": "버전",
        "node.agent": "노드 에이전트",
        "node.hardware": "하드웨어",
        "node.site": "개소",
        "node.no_site": "개소에 배치되지 않음",
        "node.address": "주소",
        "node.district": "구",
        "node.coordinates": "좌표",
        "node.site_class": "개소 등급",
        "node.conditions": "발생 중인 상태",
        "node.no_conditions": "발생한 상태 없음",
        "node.kind": "종류",
        "node.since": "시작",
        "node.severity": "심각도",
        "node.tickets": "진행 중인 장애 티켓",
        "node.no_tickets": "진행 중인 티켓 없음",
        "node.ticket": "티켓",
        "node.opened": "발생",
        "node.response_deadline": "출동 기한",
        "node.alarms": "최근 비상벨 알람",
        "node.no_alarms": "비상벨 알람 없음",
        "node.pressed": "호출",
        "node.acknowledged": "확인",
        "node.cleared": "해제",
        "node.latched": "대기 중",
        "node.timeline": "이력",
        "node.no_timeline": "아직 기록이 없습니다",
        "node.times": "시각은 {zone} 기준입니다.",
        "node.charts": "원격 측정",
        "node.hours": "최근 {n}시간",
        "node.no_data": "이 기간의 측정값이 없습니다",
        "node.chart_failed": "측정값을 불러오지 못했습니다",
        "node.chart.temperature": "온도 (°C)",
        "node.chart.supply": "공급 전압 (V)",
        "node.chart.wear": "저장 장치 마모도 (%)",
        "node.chart.free": "저장 장치 여유 공간 (GB)",
        "node.chart.bitrate": "카메라 비트레이트 (kbit/s)",
        "node.chart.fps": "카메라 프레임 속도 (fps)",
        "node.chart.link_errors": "제어기 통신 오류",
        "node.metric.cpu_temp_c": "CPU",
        "node.metric.controller_temp_c": "제어기",
        "node.metric.supply_v": "전원",
        "node.metric.link_errors": "통신 오류",
        "node.yes": "예",
        "node.no": "아니요",
        "node.phase.clear": "정상",
        "node.phase.raising": "발생 (확인 중)",
        "node.phase.open": "장애",
        "node.phase.clearing": "해소 중",
        "node.door.clear": "닫힘",
        "node.door.raising": "열림",
        "node.door.open": "열림",
        "node.door.clearing": "닫힘 (확인 중)",
        "node.timeline.ticket_opened": "장애 발생: {component}의 {kind} ({severity})",
        "node.timeline.ticket_step": "티켓 {action}: {by} ({component}의 {kind}) {note}",
        "node.timeline.alarm_pressed": "비상벨 {bell} 호출",
        "node.timeline.alarm_acknowledged": "비상벨 알람 확인: {by}",
        "node.timeline.alarm_cleared": "비상벨 알람 해제: {by}",
        "node.timeline.born": "노드 세션 시작 (에이전트 {version})",
        "node.timeline.inspection": "점검 ({kind}): {result}, 점검자 {by}",
        "node.timeline.audit": "{action}: {actor} ({target})",
    },
}
i18n.register(MESSAGES)
