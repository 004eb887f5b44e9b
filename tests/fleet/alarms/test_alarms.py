"""Bell alarms in the fleet, on the embedded SQLite and a real PostgreSQL: recorded once
whoever delivers them, latched until acknowledged, the acknowledgement for the pole's lamp,
and a timeline with latencies."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.alarms.models import BellAlarmRecord
from fleet.alarms.service import AlarmError, acknowledge, clear, latched, mark_shown, record, timeline
from fleet.db import make_engine, migrate
from protocols import messages as m

PRESSED = 1_764_000_000_000


def alarm(alarm_id: str = "pole-0412.bell-1.1764000000000", *, historical: bool = False) -> m.BellAlarm:
    return m.BellAlarm(
        ts=PRESSED,
        seq=4,
        alarm_id=alarm_id,
        bell_id="bell-1",
        pressed_at=PRESSED,
        source="controller",
        historical=historical,
    )


def test_an_alarm_is_latched_until_acknowledged_and_the_ack_lights_the_lamp(fleet_engine: sa.Engine) -> None:
    with Session(fleet_engine) as session, session.begin():
        first = record(session, "pole-0412", alarm(), PRESSED + 40)
        again = record(session, "pole-0412", alarm(historical=True), PRESSED + 9_000)  # replayed
        assert (first.new, again.new) == (True, False)
    with Session(fleet_engine) as session, session.begin():
        assert [a.alarm_id for a in latched(session)] == ["pole-0412.bell-1.1764000000000"]
        mark_shown(session, "pole-0412.bell-1.1764000000000", PRESSED + 300)
        mark_shown(session, "pole-0412.bell-1.1764000000000", PRESSED + 900)  # later views: no change
    with Session(fleet_engine) as session, session.begin():
        ack = acknowledge(session, "pole-0412.bell-1.1764000000000", "operator.kim", PRESSED + 12_300)
    assert ack == m.AlarmAck(
        ts=PRESSED + 12_300, alarm_id="pole-0412.bell-1.1764000000000", operator="operator.kim", lamp=True
    )
    with Session(fleet_engine) as session, session.begin():
        assert latched(session) == []
        with pytest.raises(AlarmError, match=r"acknowledged by operator\.kim already"):
            acknowledge(session, "pole-0412.bell-1.1764000000000", "operator.lee", PRESSED + 13_000)
    with Session(fleet_engine) as session, session.begin():
        clear(session, "pole-0412.bell-1.1764000000000", "operator.kim", PRESSED + 600_000)
        row = session.scalars(sa.select(BellAlarmRecord)).one()
        assert timeline(row).pole_to_fleet == 40
        assert timeline(row).fleet_to_screen == 260
        assert timeline(row).screen_to_ack == 12_000
        assert timeline(row).press_to_ack == 12_300
        assert not row.historical  # as first received


def test_refusals_say_why(fleet_engine: sa.Engine) -> None:
    with Session(fleet_engine) as session, session.begin():
        with pytest.raises(AlarmError, match="no bell alarm 'nope'"):
            acknowledge(session, "nope", "operator.kim", PRESSED)
        record(session, "pole-0412", alarm(), PRESSED + 40)
        with pytest.raises(AlarmError, match="not acknowledged yet"):
            clear(session, "pole-0412.bell-1.1764000000000", "operator.kim", PRESSED + 50)


@pytest.mark.postgres
def test_workers_racing_on_the_same_alarm_record_it_once(postgres_url: str) -> None:
    # Several fleet workers on one shared subscription, each receiving the same alarm (a node's
    # replay, a redelivery) at the same moment: exactly one row, exactly one says "new".
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    workers = 8
    start = threading.Barrier(workers)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        with Session(engine) as session, session.begin():
            start.wait()
            recorded = record(session, "pole-0412", alarm(), PRESSED + 40)
        with lock:
            outcomes.append(recorded.new)

    try:
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        with Session(engine) as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(BellAlarmRecord)) == 1
    finally:
        engine.dispose()
    assert sorted(outcomes) == [False] * (workers - 1) + [True]
