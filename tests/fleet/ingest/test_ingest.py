"""The fleet's MQTT ingest against a real Mosquitto, a real PostgreSQL (and the embedded
SQLite) and a real VictoriaMetrics: a node's birth fills the inventory, duplicates are dropped,
a seq gap or an unknown node gets a rebirth command, a death takes the node offline, telemetry
reaches the time series, and malformed messages are counted and never stop the ingest."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.alarms.models import BellAlarmRecord
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.inventory.models import Camera, CameraPurpose, Node
from fleet.tsdb import TimeSeriesWriter
from protocols import messages as m
from protocols.topics import Kind, host_state_topic, node_topic
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker
from watchpost.victoriametrics import VictoriaMetrics

pytestmark = pytest.mark.broker

NODE = "pole-0412"
T0 = int(time.time() * 1000) // 1000 * 1000 - 3_600_000  # an hour ago: its own stretch of the series


def birth(bd_seq: int, *, cameras: tuple[str, ...] = ("cam-1", "cam-2")) -> m.NodeBirth:
    return m.NodeBirth(
        ts=T0,
        seq=0,
        bd_seq=bd_seq,
        site_id="site-0412",
        hardware="raspberrypi-4b",
        agent_version="0.1.0",
        controller=m.ControllerInfo(link="serial", firmware_version="0.1.0", reset_cause="power-on"),
        cameras=[m.CameraInfo(camera_id=c, name=c.upper()) for c in cameras],
        bells=["bell-1"],
    )


def event(seq: int) -> m.Event:
    return m.Event(
        ts=T0 + seq, seq=seq, event_id=f"ev-{seq}", category="door", state="raised", severity="minor"
    )


def telemetry(seq: int, ts: int, celsius: float) -> m.Telemetry:
    return m.Telemetry(ts=ts, seq=seq, readings=m.Readings(cpu_temp_c=celsius))


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def node_row(fleet_engine: sa.Engine) -> Node | None:
    with Session(fleet_engine, expire_on_commit=False) as session:
        return session.scalars(sa.select(Node).where(Node.node_id == NODE)).one_or_none()


def test_a_node_session_through_ingest(
    fleet_engine: sa.Engine, broker: MosquittoBroker, victoriametrics: VictoriaMetrics
) -> None:
    tsdb = TimeSeriesWriter(url=victoriametrics.url)
    # Each engine's run writes its own stretch of the shared time series.
    at = T0 + (10_000 if fleet_engine.dialect.name == "postgresql" else 0)
    settings = IngestSettings(host=broker.host, port=broker.port, host_id="fleet-1", rebirth_every_s=0)
    ingest = Ingest(settings, engine=fleet_engine, tsdb=tsdb)
    ingest.start()
    try:
        with Observer(broker, "watchpost/v1/#") as pole:
            sent = 0

            def publish(topic: str, payload: bytes) -> None:
                nonlocal sent
                sent += 1
                pole.publish(topic, payload)

            def send(message: m.Message) -> None:
                publish(node_topic(NODE, m.kind_of(message)), m.encode(message))

            def settled() -> None:
                # Idle alone could be read before the last message even reached the fleet.
                until(lambda: ingest.counters.received >= sent and ingest.idle())

            # The fleet says it is online, retained, for nodes that connect later.
            pole.wait_for(lambda s: any(x.topic == host_state_topic("fleet-1") for x in s))

            # Data before any birth: the fleet asks the node to start a session.
            send(event(5))
            pole.wait_for(lambda s: any(x.kind == "command" for x in s))

            send(birth(3))
            send(event(1))
            send(event(1))  # a redelivery
            send(telemetry(1, at + 1000, 48.5))
            send(telemetry(1, at + 2000, 49.0))
            settled()
            node = node_row(fleet_engine)
            assert node is not None
            assert (node.online, node.bd_seq, node.last_seq, node.duplicates) == (True, 3, 1, 1)

            send(event(4))  # 2 and 3 never came
            until(lambda: ingest.counters.gaps == 1)
            settled()
            seen = pole.wait_for(lambda s: sum(x.kind == "command" for x in s) == 2)
            commands = [json.loads(x.payload) for x in seen if x.kind == "command"]
            assert [c["name"] for c in commands] == ["rebirth", "rebirth"]

            press = m.BellAlarm(
                ts=T0 + 50,
                seq=5,
                alarm_id=f"{NODE}.bell-1.{T0}",
                bell_id="bell-1",
                pressed_at=T0,
                source="controller",
            )
            send(press)
            send(press)  # redelivered: recorded once
            settled()
            with Session(fleet_engine) as session:
                (alarm,) = session.scalars(sa.select(BellAlarmRecord)).all()
                assert (alarm.alarm_id, alarm.node_id, alarm.latched) == (press.alarm_id, NODE, True)

            # Malformed payloads and a topic outside the contract: counted, nothing stops.
            publish(node_topic(NODE, Kind.EVENT), b"\xff\xfe")
            publish(node_topic(NODE, Kind.EVENT), b'{"type": "event", "v": 1}')
            publish("watchpost/v1/node/Bad Id/up/event", b"{}")
            send(m.NodeDeath(ts=T0 + 5000, bd_seq=2))  # an older connection's will: ignored
            settled()
            node = node_row(fleet_engine)
            assert node is not None
            assert node.online
            send(m.NodeDeath(ts=T0 + 6000, bd_seq=3))
            settled()
            node = node_row(fleet_engine)
            assert node is not None
            assert not node.online
            assert ingest.counters.rejected == {"bad-utf8": 1, "missing-field": 1, "bad-topic": 1}
    finally:
        ingest.stop()
        tsdb.close()

    with Session(fleet_engine) as session:
        cameras = sorted(c.camera_id for c in session.scalars(sa.select(Camera)))
        assert cameras == ["cam-1", "cam-2"]
        loaded = session.scalars(sa.select(Node)).one()
        assert loaded.controller is not None
        assert loaded.controller.firmware_version == "0.1.0"
        assert loaded.site is not None
        assert loaded.site.site_id == "site-0412"
    # The series of this run only (the server is shared by the session), read until both points
    # are searchable.
    query = urllib.parse.urlencode(
        {"match[]": f'node_cpu_temp_c{{node="{NODE}"}}', "start": str(at // 1000), "end": str(at // 1000 + 3)}
    )

    def exported() -> list[float]:
        with urllib.request.urlopen(f"{victoriametrics.url}/internal/force_flush", timeout=10):
            pass
        with urllib.request.urlopen(f"{victoriametrics.url}/api/v1/export?{query}", timeout=10) as response:
            series = [json.loads(line) for line in response.read().splitlines() if line]
        return [v for s in series for v in s["values"]]

    until(lambda: len(exported()) >= 2)
    assert exported() == [48.5, 49.0]


def test_a_rebirth_keeps_the_purpose_the_city_gave_a_camera(
    fleet_engine: sa.Engine, broker: MosquittoBroker
) -> None:
    ingest = Ingest(
        IngestSettings(host=broker.host, port=broker.port, host_id="fleet-2"), engine=fleet_engine
    )
    ingest.start()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            pole.publish(node_topic(NODE, Kind.BIRTH), m.encode(birth(0)))
            until(lambda: node_row(fleet_engine) is not None and ingest.idle())
            with Session(fleet_engine) as session, session.begin():
                camera = session.scalars(sa.select(Camera).where(Camera.camera_id == "cam-1")).one()
                camera.purpose = CameraPurpose.FLOOD_WATCH
            pole.publish(node_topic(NODE, Kind.BIRTH), m.encode(birth(1, cameras=("cam-1", "cam-3"))))
            until(lambda: (row := node_row(fleet_engine)) is not None and row.bd_seq == 1 and ingest.idle())
    finally:
        ingest.stop()
    with Session(fleet_engine) as session:
        purposes = {c.camera_id: c.purpose for c in session.scalars(sa.select(Camera))}
    assert purposes == {"cam-1": CameraPurpose.FLOOD_WATCH, "cam-3": CameraPurpose.OTHER}
