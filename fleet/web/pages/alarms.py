"""/alarms: the bell alarms, latched ones first (oldest press first, as the alarm service keeps
them), then the recently acknowledged. Each shows its pole's site and cameras and its timeline;
operators acknowledge (the AlarmAck goes down to the pole and lights its lamp) and clear, through
`fleet.alarms.service` and audited as the API does. The list refreshes on the live `alarms` event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fleet.access.roles import Permission, allowed
from fleet.access.tokens import Principal
from fleet.alarms import service
from fleet.alarms.models import BellAlarmRecord
from fleet.api.deps import Auditor, DbSession, Nodes, NowMs, PathId
from fleet.inspections.schedule import zone
from fleet.inventory.models import Node, Site
from fleet.reports.routes import Settings
from fleet.web import i18n
from fleet.web.render import language, page
from fleet.web.session import CentreUser, PageForbidden

router = APIRouter(include_in_schema=False)
RECENT: Final = 20  # acknowledged alarms kept under the latched ones
View = Annotated[str, Form(max_length=16)]

MESSAGES: Final = {
    "en": {
        "alarms.title": "Bell alarms",
        "alarms.latched": "Waiting for an operator",
        "alarms.none_latched": "No bell alarm is waiting.",
        "alarms.recent": "Recently acknowledged",
        "alarms.none_recent": "None yet.",
        "alarms.missing": "There is no bell alarm {alarm_id}.",
        "alarms.back": "All bell alarms",
        "alarms.state.latched": "waiting",
        "alarms.state.acknowledged": "acknowledged",
        "alarms.state.cleared": "cleared",
        "alarms.bell": "Bell {bell} · {source}",
        "alarms.presses": "pressed {n} times",
        "alarms.historical": "from the pole's backlog",
        "alarms.site": "Site",
        "alarms.address": "Address",
        "alarms.district": "District",
        "alarms.coordinates": "Coordinates",
        "alarms.no_site": "This node has no site on record.",
        "alarms.cameras": "Cameras",
        "alarms.no_cameras": "No camera on record.",
        "alarms.timeline": "Timeline",
        "alarms.pressed": "Pressed at the pole",
        "alarms.received": "Received by the fleet",
        "alarms.shown": "Shown to an operator",
        "alarms.acknowledged": "Acknowledged",
        "alarms.cleared": "Cleared",
        "alarms.not_yet": "not yet",
        "alarms.by": "by {who}",
        "alarms.after": "+{took}",
        "alarms.press_to_ack": "press to acknowledgement: {took}",
        "alarms.acknowledge": "Acknowledge",
        "alarms.acknowledge_hint": "lights the pole's “call received” lamp",
        "alarms.clear": "Clear",
        "alarms.refused": "Not done: {reason}",
        "alarms.no_link": "the acknowledgement cannot reach {node}: {reason}",
        "alarms.took_ms": "{n} ms",
        "alarms.took_s": "{n} s",
        "alarms.took_min": "{m} min {s} s",
        "alarms.took_h": "{h} h {m} min",
    },
    "ko": {
        "alarms.title": "비상벨 알람",
        "alarms.latched": "응답 대기 중",
        "alarms.none_latched": "대기 중인 비상벨 알람이 없습니다.",
        "alarms.recent": "최근 확인됨",
        "alarms.none_recent": "아직 없습니다.",
        "alarms.missing": "비상벨 알람 {alarm_id}이(가) 없습니다.",
        "alarms.back": "비상벨 알람 목록",
        "alarms.state.latched": "대기",
        "alarms.state.acknowledged": "확인됨",
        "alarms.state.cleared": "종료됨",
        "alarms.bell": "비상벨 {bell} · {source}",
        "alarms.presses": "{n}회 누름",
        "alarms.historical": "폴의 미전송 기록에서 수신",
        "alarms.site": "개소",
        "alarms.address": "주소",
        "alarms.district": "구",
        "alarms.coordinates": "좌표",
        "alarms.no_site": "이 노드에 등록된 개소가 없습니다.",
        "alarms.cameras": "카메라",
        "alarms.no_cameras": "등록된 카메라가 없습니다.",
        "alarms.timeline": "처리 경과",
        "alarms.pressed": "폴에서 누름",
        "alarms.received": "관제 서버 수신",
        "alarms.shown": "관제 화면 표시",
        "alarms.acknowledged": "확인",
        "alarms.cleared": "종료",
        "alarms.not_yet": "아직 없음",
        "alarms.by": "{who}",
        "alarms.after": "+{took}",
        "alarms.press_to_ack": "누름부터 확인까지: {took}",
        "alarms.acknowledge": "확인",
        "alarms.acknowledge_hint": "폴의 「호출 접수」 램프가 켜집니다",
        "alarms.clear": "종료",
        "alarms.refused": "처리되지 않음: {reason}",
        "alarms.no_link": "{node}에 확인 신호를 보낼 수 없습니다: {reason}",
        "alarms.took_ms": "{n}ms",
        "alarms.took_s": "{n}초",
        "alarms.took_min": "{m}분 {s}초",
        "alarms.took_h": "{h}시간 {m}분",
    },
}
i18n.register(MESSAGES)


@dataclass(frozen=True, slots=True)
class CameraView:
    camera_id: str
    name: str
    purpose: str


@dataclass(frozen=True, slots=True)
class PoleSite:
    """Where a node stands, for the people who send someone there."""

    node_id: str
    site_id: str
    name: str
    address: str
    district: str
    latitude: float | None
    longitude: float | None
    cameras: tuple[CameraView, ...]


@dataclass(frozen=True, slots=True)
class AlarmView:
    alarm: BellAlarmRecord
    state: str  # latched, acknowledged, cleared
    site: PoleSite | None
    timeline: service.Timeline


def pole_sites(db: Session, node_ids: Iterable[str]) -> dict[str, PoleSite]:
    """The site and cameras of each node that has a site on record."""
    wanted = set(node_ids)
    if not wanted:
        return {}
    nodes = db.scalars(sa.select(Node).where(Node.node_id.in_(wanted), Node.site_pk.is_not(None))).all()
    sites: dict[str, PoleSite] = {}
    for node in nodes:
        site: Site | None = node.site
        if site is None:
            continue
        sites[node.node_id] = PoleSite(
            node_id=node.node_id,
            site_id=site.site_id,
            name=site.name,
            address=site.address,
            district=site.district,
            latitude=site.latitude,
            longitude=site.longitude,
            cameras=tuple(
                CameraView(c.camera_id, c.name, c.purpose.value)
                for c in sorted(node.cameras, key=lambda c: c.camera_id)
            ),
        )
    return sites


def _state(row: BellAlarmRecord) -> str:
    if row.latched:
        return "latched"
    return "cleared" if row.cleared_at_ms is not None else "acknowledged"


def _views(db: Session, rows: list[BellAlarmRecord]) -> list[AlarmView]:
    sites = pole_sites(db, (r.node_id for r in rows))
    return [
        AlarmView(
            alarm=row,
            state=_state(row),
            site=sites.get(row.node_id),
            timeline=service.timeline(row),
        )
        for row in rows
    ]


def recently_acknowledged(db: Session, limit: int = RECENT) -> list[BellAlarmRecord]:
    return list(
        db.scalars(
            sa.select(BellAlarmRecord)
            .where(BellAlarmRecord.acknowledged_at_ms.is_not(None))
            .order_by(BellAlarmRecord.acknowledged_at_ms.desc(), BellAlarmRecord.id.desc())
            .limit(limit)
        )
    )


def _find(db: Session, alarm_id: str) -> BellAlarmRecord | None:
    return db.scalars(sa.select(BellAlarmRecord).where(BellAlarmRecord.alarm_id == alarm_id)).one_or_none()


class Clockface:
    """Times and durations as a person in the city reads them (its time zone, their language)."""

    def __init__(self, time_zone: str) -> None:
        self._tz = zone(time_zone)

    def at(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, self._tz).strftime("%Y-%m-%d %H:%M:%S")

    def iso(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, self._tz).isoformat(timespec="milliseconds")

    @staticmethod
    def took(ms: int, t: i18n.Translator) -> str:
        sign = "-" if ms < 0 else ""
        ms = abs(ms)
        if ms < 1000:
            return sign + t("alarms.took_ms", n=ms)
        if ms < 60_000:
            return sign + t("alarms.took_s", n=f"{ms / 1000:.1f}")
        s = ms // 1000
        if s < 3600:
            return sign + t("alarms.took_min", m=s // 60, s=s % 60)
        return sign + t("alarms.took_h", h=s // 3600, m=s // 60 % 60)


def _may_handle(who: Principal) -> bool:
    return allowed(who.role, Permission.ALARM_HANDLE)


def _list_page(
    request: Request, who: Principal, db: Session, clock: Clockface, template: str
) -> HTMLResponse:
    return page(
        request,
        template,
        who,
        latched=_views(db, service.latched(db)),
        recent=_views(db, recently_acknowledged(db)),
        clockface=clock,
        may_handle=_may_handle(who),
    )


@router.get("/alarms")
def alarms_page(request: Request, who: CentreUser, db: DbSession, settings: Settings) -> HTMLResponse:
    return _list_page(request, who, db, Clockface(settings.time_zone), "alarms.html")


@router.get("/fragments/alarms")
def alarms_fragment(request: Request, who: CentreUser, db: DbSession, settings: Settings) -> HTMLResponse:
    return _list_page(request, who, db, Clockface(settings.time_zone), "fragments/alarm_list.html")


def _card(
    request: Request,
    who: Principal,
    db: Session,
    clock: Clockface,
    alarm_id: str,
    *,
    template: str = "fragments/alarm_card.html",
    view: str = "detail",
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    row = _find(db, alarm_id)
    return page(
        request,
        template,
        who,
        item=_views(db, [row])[0] if row is not None else None,
        alarm_id=alarm_id,
        view=view,
        clockface=clock,
        may_handle=_may_handle(who),
        problem=problem,
        status_code=status_code if row is not None else 404,
    )


@router.get("/alarms/{alarm_id}")
def alarm_page(
    *, request: Request, alarm_id: PathId, who: CentreUser, db: DbSession, now: NowMs, settings: Settings
) -> HTMLResponse:
    """One alarm; opening it is its first showing on an operator's screen (the timeline's
    "shown"), for those who handle alarms, as the API's `shown` is."""
    if _may_handle(who):
        service.mark_shown(db, alarm_id, now)
    return _card(request, who, db, Clockface(settings.time_zone), alarm_id, template="alarms_detail.html")


@router.get("/fragments/alarms/{alarm_id}")
def alarm_fragment(
    *, request: Request, alarm_id: PathId, who: CentreUser, db: DbSession, settings: Settings
) -> HTMLResponse:
    return _card(request, who, db, Clockface(settings.time_zone), alarm_id)


def _answer(
    request: Request,
    who: Principal,
    alarm_id: str,
    *,
    db: Session,
    settings: Settings,
    view: str,
    problem: str | None,
) -> Response:
    """htmx: the alarm's card as it now stands (with the reason, if refused); a plain form
    post: the alarm's page (with the reason, if refused)."""
    clock = Clockface(settings.time_zone)
    if request.headers.get("hx-request"):
        view = view if view in ("list", "detail") else "detail"
        return _card(request, who, db, clock, alarm_id, view=view, problem=problem)
    if problem is not None:
        return _card(
            request, who, db, clock, alarm_id, template="alarms_detail.html", problem=problem, status_code=409
        )
    return RedirectResponse(f"/alarms/{alarm_id}", status_code=303)


@router.post("/alarms/{alarm_id}/acknowledge")
def acknowledge(
    *,
    request: Request,
    alarm_id: PathId,
    who: CentreUser,
    db: DbSession,
    now: NowMs,
    nodes: Nodes,
    settings: Settings,
    view: View = "detail",
) -> Response:
    if not _may_handle(who):
        raise PageForbidden(who, request.url.path)
    t = i18n.Translator(language(request))
    row = _find(db, alarm_id)
    if row is None:
        return _answer(request, who, alarm_id, db=db, settings=settings, view=view, problem=None)
    node_id, problem = row.node_id, None
    # A savepoint: a refused or undeliverable acknowledgement leaves the alarm latched.
    attempt = db.begin_nested()
    try:
        ack = service.acknowledge(db, alarm_id, who.subject, now)
        nodes.send(node_id, ack)
    except service.AlarmError as error:
        attempt.rollback()
        problem = t("alarms.refused", reason=str(error))
    except ConnectionError as error:
        # Not acknowledged then: the pole would never know (the API answers 503).
        attempt.rollback()
        problem = t("alarms.refused", reason=t("alarms.no_link", node=node_id, reason=str(error)))
    else:
        attempt.commit()
        Auditor(db, who, now)("alarm.acknowledge", f"alarm/{alarm_id}", node=node_id, lamp=ack.lamp)
    return _answer(request, who, alarm_id, db=db, settings=settings, view=view, problem=problem)


@router.post("/alarms/{alarm_id}/clear")
def clear(
    *,
    request: Request,
    alarm_id: PathId,
    who: CentreUser,
    db: DbSession,
    now: NowMs,
    settings: Settings,
    view: View = "detail",
) -> Response:
    if not _may_handle(who):
        raise PageForbidden(who, request.url.path)
    t = i18n.Translator(language(request))
    problem = None
    attempt = db.begin_nested()
    try:
        service.clear(db, alarm_id, who.subject, now)
    except service.AlarmError as error:
        attempt.rollback()
        problem = t("alarms.refused", reason=str(error))
    else:
        attempt.commit()
        row = _find(db, alarm_id)
        assert row is not None  # service.clear refuses an unknown alarm
        Auditor(db, who, now)("alarm.clear", f"alarm/{alarm_id}", node=row.node_id)
    return _answer(request, who, alarm_id, db=db, settings=settings, view=view, problem=problem)
