"""What happens to a bell alarm, inside the caller's transaction. Recording is idempotent by
alarm id and safe when several fleet workers receive the same alarm at once (the database's
unique constraint decides; the loser sees the winner's row)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet.alarms.models import BellAlarmRecord
from protocols import messages as m


class AlarmError(ValueError):
    """An operator's action on an alarm was refused; says why."""


@dataclass(frozen=True, slots=True)
class Recorded:
    alarm: BellAlarmRecord
    new: bool  # False: a redelivery of an alarm already recorded


def record(session: Session, node_id: str, alarm: m.BellAlarm, received_ms: int) -> Recorded:
    values = {
        "alarm_id": alarm.alarm_id,
        "node_id": node_id,
        "bell_id": alarm.bell_id,
        "source": alarm.source,
        "presses": alarm.presses,
        "historical": alarm.historical,
        "pressed_at_ms": alarm.pressed_at,
        "received_at_ms": received_ms,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(BellAlarmRecord).values(**values).on_conflict_do_nothing(index_elements=["alarm_id"])
    inserted = session.execute(statement.returning(BellAlarmRecord.id)).first() is not None
    row = session.scalars(sa.select(BellAlarmRecord).where(BellAlarmRecord.alarm_id == alarm.alarm_id)).one()
    return Recorded(row, new=inserted)


def latched(session: Session) -> list[BellAlarmRecord]:
    """Alarms no operator has acknowledged yet, oldest press first."""
    return list(
        session.scalars(
            sa.select(BellAlarmRecord)
            .where(BellAlarmRecord.acknowledged_at_ms.is_(None))
            .order_by(BellAlarmRecord.pressed_at_ms)
        )
    )


def mark_shown(session: Session, alarm_id: str, now_ms: int) -> None:
    """The first time an operator's screen showed it (later showings change nothing)."""
    session.execute(
        sa.update(BellAlarmRecord)
        .where(BellAlarmRecord.alarm_id == alarm_id, BellAlarmRecord.shown_at_ms.is_(None))
        .values(shown_at_ms=now_ms)
    )


def acknowledge(
    session: Session, alarm_id: str, operator: str, now_ms: int, *, lamp: bool = True
) -> m.AlarmAck:
    """Unlatch the alarm; returns the acknowledgement to publish to the pole (its lamp)."""
    row = session.scalars(
        sa.select(BellAlarmRecord).where(BellAlarmRecord.alarm_id == alarm_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise AlarmError(f"no bell alarm {alarm_id!r}")
    if row.acknowledged_at_ms is not None:
        raise AlarmError(f"alarm {alarm_id} was acknowledged by {row.acknowledged_by} already")
    row.acknowledged_at_ms = now_ms
    row.acknowledged_by = operator
    row.shown_at_ms = row.shown_at_ms or now_ms
    return m.AlarmAck(ts=now_ms, alarm_id=alarm_id, operator=operator, lamp=lamp)


def clear(session: Session, alarm_id: str, operator: str, now_ms: int) -> None:
    """The call is dealt with; only an acknowledged alarm can be cleared."""
    row = session.scalars(
        sa.select(BellAlarmRecord).where(BellAlarmRecord.alarm_id == alarm_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise AlarmError(f"no bell alarm {alarm_id!r}")
    if row.acknowledged_at_ms is None:
        raise AlarmError(f"alarm {alarm_id} is not acknowledged yet: acknowledge it first")
    if row.cleared_at_ms is None:
        row.cleared_at_ms = now_ms
        row.cleared_by = operator


@dataclass(frozen=True, slots=True)
class Timeline:
    """Latencies of one alarm, ms; None where the step has not happened."""

    pole_to_fleet: int
    fleet_to_screen: int | None
    screen_to_ack: int | None
    press_to_ack: int | None


def timeline(row: BellAlarmRecord) -> Timeline:
    def since(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else a - b

    return Timeline(
        pole_to_fleet=row.received_at_ms - row.pressed_at_ms,
        fleet_to_screen=since(row.shown_at_ms, row.received_at_ms),
        screen_to_ack=since(row.acknowledged_at_ms, row.shown_at_ms),
        press_to_ack=since(row.acknowledged_at_ms, row.pressed_at_ms),
    )
