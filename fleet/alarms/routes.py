"""/alarms: bell alarms, latched until an operator acknowledges; the acknowledgement goes
back to the pole at once (its "call received" lamp). Each alarm carries its timeline."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from fleet.access.roles import Permission
from fleet.access.tokens import Principal
from fleet.alarms import service
from fleet.alarms.models import BellAlarmRecord
from fleet.api.deps import ROW_ID_MAX, Audit, DbSession, Nodes, NowMs, PathId, require
from fleet.api.errors import ApiError, not_found

router = APIRouter(tags=["alarms"])
Reader = Depends(require(Permission.READ))
Handler = Annotated[Principal, Depends(require(Permission.ALARM_HANDLE))]


class TimelineOut(BaseModel):
    pole_to_fleet_ms: int
    fleet_to_screen_ms: int | None
    screen_to_ack_ms: int | None
    press_to_ack_ms: int | None


class AlarmOut(BaseModel):
    alarm_id: str
    node_id: str
    bell_id: str
    source: str
    presses: int
    historical: bool
    latched: bool
    pressed_at_ms: int
    received_at_ms: int
    shown_at_ms: int | None
    acknowledged_at_ms: int | None
    acknowledged_by: str | None
    cleared_at_ms: int | None
    cleared_by: str | None
    timeline: TimelineOut


class AlarmPage(BaseModel):
    items: list[AlarmOut]
    next_before: int | None


class Acknowledgement(BaseModel):
    lamp: bool = True  # light the pole's "call received" lamp


def _out(row: BellAlarmRecord) -> AlarmOut:
    t = service.timeline(row)
    return AlarmOut(
        alarm_id=row.alarm_id,
        node_id=row.node_id,
        bell_id=row.bell_id,
        source=row.source,
        presses=row.presses,
        historical=row.historical,
        latched=row.latched,
        pressed_at_ms=row.pressed_at_ms,
        received_at_ms=row.received_at_ms,
        shown_at_ms=row.shown_at_ms,
        acknowledged_at_ms=row.acknowledged_at_ms,
        acknowledged_by=row.acknowledged_by,
        cleared_at_ms=row.cleared_at_ms,
        cleared_by=row.cleared_by,
        timeline=TimelineOut(
            pole_to_fleet_ms=t.pole_to_fleet,
            fleet_to_screen_ms=t.fleet_to_screen,
            screen_to_ack_ms=t.screen_to_ack,
            press_to_ack_ms=t.press_to_ack,
        ),
    )


def _get(db: DbSession, alarm_id: str) -> BellAlarmRecord:
    row = db.scalars(sa.select(BellAlarmRecord).where(BellAlarmRecord.alarm_id == alarm_id)).one_or_none()
    if row is None:
        raise not_found("bell alarm", alarm_id)
    return row


@router.get("/alarms", dependencies=[Reader])
def list_alarms(
    *,
    db: DbSession,
    latched: bool | None = None,
    node: str | None = None,
    before: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AlarmPage:
    """Newest press first; `latched=true` is what still calls for an operator."""
    query = sa.select(BellAlarmRecord).order_by(BellAlarmRecord.id.desc()).limit(limit)
    if latched is not None:
        column = BellAlarmRecord.acknowledged_at_ms
        query = query.where(column.is_(None) if latched else column.is_not(None))
    if node is not None:
        query = query.where(BellAlarmRecord.node_id == node)
    if before is not None:
        query = query.where(BellAlarmRecord.id < before)
    rows = list(db.scalars(query))
    return AlarmPage(items=[_out(r) for r in rows], next_before=rows[-1].id if len(rows) == limit else None)


@router.get("/alarms/{alarm_id}", dependencies=[Reader])
def get_alarm(*, alarm_id: PathId, db: DbSession) -> AlarmOut:
    return _out(_get(db, alarm_id))


@router.post("/alarms/{alarm_id}/shown")
def shown(*, alarm_id: PathId, db: DbSession, who: Handler, now: NowMs) -> AlarmOut:
    """An operator's screen showed it (the first time counts, for the timeline)."""
    _get(db, alarm_id)
    service.mark_shown(db, alarm_id, now)
    db.expire_all()
    return _out(_get(db, alarm_id))


@router.post("/alarms/{alarm_id}/acknowledge")
def acknowledge(
    *,
    alarm_id: PathId,
    body: Acknowledgement,
    db: DbSession,
    who: Handler,
    now: NowMs,
    audit: Audit,
    nodes: Nodes,
) -> AlarmOut:
    row = _get(db, alarm_id)
    ack = service.acknowledge(db, alarm_id, who.subject, now, lamp=body.lamp)
    try:
        nodes.send(row.node_id, ack)
    except ConnectionError as error:
        # Not acknowledged then (the transaction rolls back): the pole would never know.
        raise ApiError(
            503, "no-node-link", f"the acknowledgement cannot reach {row.node_id}: {error}"
        ) from None
    audit("alarm.acknowledge", f"alarm/{alarm_id}", node=row.node_id, lamp=body.lamp)
    return _out(row)


@router.post("/alarms/{alarm_id}/clear")
def clear(*, alarm_id: PathId, db: DbSession, who: Handler, now: NowMs, audit: Audit) -> AlarmOut:
    row = _get(db, alarm_id)
    service.clear(db, alarm_id, who.subject, now)
    audit("alarm.clear", f"alarm/{alarm_id}", node=row.node_id)
    return _out(row)
