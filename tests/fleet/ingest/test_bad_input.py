"""The fleet ingest's guarantees about bad input, on real parts (Mosquitto, PostgreSQL, the
embedded SQLite): a database outage pauses ingest with backoff and loses no QoS 1 message, even
when the fleet itself stops meanwhile; oversized, malformed and misdirected messages are counted
by reason, logged a few times rather than once each, and never stop it; the broker's ACL keeps
a node to its own topics; and random bytes on random node topics never break it."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from fleet.alarms.models import BellAlarmRecord
from fleet.db import make_engine, migrate
from fleet.faults.store import FaultConditionRow, FaultTicketRow
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.inventory.models import Node
from protocols import messages as m
from protocols.topics import Kind, fleet_subscription, host_state_topic, node_topic
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker, acl_rules
from watchpost.postgres import PostgresCluster

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[3]
NODE = "pole-0412"
T0 = int(time.time() * 1000)  # now: the node is heard from, not silent for the liveness check


def birth(node_id: str = NODE, *, bd_seq: int = 0) -> m.NodeBirth:
    return m.NodeBirth(
        ts=T0,
        seq=0,
        bd_seq=bd_seq,
        site_id=f"site-{node_id}",
        hardware="raspberrypi-4b",
        agent_version="0.1.0",
        cameras=[m.CameraInfo(camera_id="cam-1", name="CAM-1")],
        bells=["bell-1"],
    )


def event(seq: int, category: m.EventCategory = "door", component: str = "cabinet") -> m.Event:
    return m.Event(
        ts=T0 + seq,
        seq=seq,
        event_id=f"ev-{seq}",
        category=category,
        state="raised",
        severity="major",
        component=component,
    )


def bell_alarm(seq: int) -> m.BellAlarm:
    return m.BellAlarm(
        ts=T0 + seq,
        seq=seq,
        alarm_id=f"{NODE}.bell-1.{T0}",
        bell_id="bell-1",
        pressed_at=T0,
        source="controller",
    )


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def padded(message: m.Message, size: int) -> bytes:
    """The message's JSON grown to exactly `size` bytes by a field readers ignore."""
    body = m.encode(message)
    filler = size - len(body) - len(b',"padding":""')
    assert filler >= 0
    return body[:-1] + b',"padding":"' + b"x" * filler + b'"}'


class Pole:
    """A test's MQTT client with a user name, as a node logs in: publishes at QoS 1 (waiting for
    the broker's PUBACK) and records what its subscriptions bring."""

    def __init__(
        self, broker: MosquittoBroker, *, user: str | None = None, subscribe: tuple[str, ...] = ()
    ) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self._subscriptions = subscribe
        self.closed = threading.Event()  # the connection was lost (or closed by the broker)
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        if user is not None:
            self.client.username_pw_set(user, f"{user}-secret")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, flags, code, p: self.closed.set()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if subscribe and not self._subscribed.wait(10):
            raise TimeoutError("the pole could not subscribe")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        if self._subscriptions:
            client.subscribe([(topic, 1) for topic in self._subscriptions])

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.seen.append((message.topic, bytes(message.payload)))
            self._changed.notify_all()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)
        assert info.is_published()

    def wait_for(self, wanted: Callable[[list[tuple[str, bytes]]], bool]) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + 15
        with self._changed:
            while not wanted(self.seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not seen; seen: {[t for t, _ in self.seen]}")
                self._changed.wait(left)
            return list(self.seen)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- a database outage ---------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL of this test's own: the test stops it, so not the session's shared one."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def outage_engine(own_postgres: PostgresCluster) -> Iterator[sa.Engine]:
    url = own_postgres.create_database("fleet")
    migrate(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


# Three faults of three keys (each opens at once: no debounce for these kinds) and a bell press.
OUTAGE_MESSAGES: list[m.Message] = [
    event(1, "door", "cabinet"),
    event(2, "tamper", "cabinet"),
    event(3, "bell-circuit", "bell-1"),
    bell_alarm(4),
]


def outage_settings(broker: MosquittoBroker) -> IngestSettings:
    # Attempts at most half a second apart: the test waits for the database, not the backoff.
    return IngestSettings(host=broker.host, port=broker.port, host_id="fleet-1", retry_max_s=0.5)


def send(pole: Observer, node_id: str, message: m.Message) -> None:
    pole.publish(node_topic(node_id, m.kind_of(message)), m.encode(message))


def assert_in_once(engine: sa.Engine, *, last_seq: int, also: tuple[str, ...] = ()) -> None:
    """Every message of the outage is in the database, once: a ticket and an open condition per
    fault key (the outage's three, and `also`: more "component|kind"), one bell alarm, and a
    node session that saw no duplicate and no gap."""
    keys = sorted(["bell-1|bell-circuit", "cabinet|door", "cabinet|tamper", *also])
    with Session(engine) as session:
        tickets = sorted(
            (t.node_id, f"{t.component}|{t.kind}", t.state)
            for t in session.scalars(sa.select(FaultTicketRow))
        )
        assert tickets == [(NODE, key, "open") for key in keys]
        conditions = {
            c.key: c.phase
            for c in session.scalars(sa.select(FaultConditionRow).where(FaultConditionRow.kind != "offline"))
        }
        assert conditions == {f"{NODE}|{key}": "open" for key in keys}
        alarms = [(a.alarm_id, a.node_id, a.latched) for a in session.scalars(sa.select(BellAlarmRecord))]
        assert alarms == [(f"{NODE}.bell-1.{T0}", NODE, True)]
        node = session.scalars(sa.select(Node).where(Node.node_id == NODE)).one()
        assert (node.online, node.last_seq, node.duplicates, node.gaps) == (True, last_seq, 0, 0)


@pytest.mark.postgres
def test_a_database_outage_pauses_ingest_and_loses_nothing(
    broker: MosquittoBroker, own_postgres: PostgresCluster, outage_engine: sa.Engine
) -> None:
    ingest = Ingest(outage_settings(broker), engine=outage_engine)
    ingest.start()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            send(pole, NODE, birth())
            until(lambda: ingest.counters.applied == 1 and ingest.idle())

            own_postgres.stop(keep_data=True)
            for message in OUTAGE_MESSAGES:
                send(pole, NODE, message)
            # It holds what came and tries again and again: it does not give up, or die.
            until(lambda: ingest.counters.received >= 1 and ingest.counters.db_failures >= 3)
            assert ingest.running
            assert not ingest.idle()
            assert ingest.counters.applied == 1

            own_postgres.start()
            until(lambda: ingest.counters.applied == 5 and ingest.idle())
            assert ingest.running
            # Counted once each, however many attempts the batch took.
            assert (ingest.counters.received, ingest.counters.rejected) == (5, {})
            assert_in_once(outage_engine, last_seq=4)
    finally:
        ingest.stop()

    # Acknowledged once in the database: the next fleet on this session is not sent them again.
    # Its first message is the one published after it connected.
    successor = Ingest(outage_settings(broker), engine=outage_engine)
    successor.start()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            send(pole, NODE, event(5, "controller", "controller"))
            until(lambda: successor.counters.applied >= 1 and successor.idle())
        assert (successor.counters.received, successor.counters.applied) == (1, 1)
    finally:
        successor.stop()


@pytest.mark.postgres
def test_a_fleet_stopped_during_an_outage_leaves_its_messages_at_the_broker(
    broker: MosquittoBroker, own_postgres: PostgresCluster, outage_engine: sa.Engine
) -> None:
    first = Ingest(outage_settings(broker), engine=outage_engine)
    first.start()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            send(pole, NODE, birth())
            until(lambda: first.counters.applied == 1 and first.idle())
            own_postgres.stop(keep_data=True)
            for message in OUTAGE_MESSAGES:
                send(pole, NODE, message)
            until(lambda: first.counters.received >= 1 and first.counters.db_failures >= 2)
    finally:
        first.stop()  # during the outage: nothing it holds was acknowledged
    assert not first.running
    assert first.counters.applied == 1

    with Observer(broker, "watchpost/v1/host/#") as pole:
        # No fleet connected: this one waits in the fleet's persistent session.
        send(pole, NODE, event(5, "controller", "controller"))
    own_postgres.start()

    second = Ingest(outage_settings(broker), engine=outage_engine)
    second.start()
    try:
        until(lambda: second.counters.applied == 5 and second.idle())
        assert (second.counters.received, second.counters.rejected) == (5, {})
    finally:
        second.stop()
    assert_in_once(outage_engine, last_seq=5, also=("controller|controller",))


# --- oversized, malformed, misdirected ----------------------------------------------------------


def settled(ingest: Ingest, sent: int) -> None:
    # Idle alone could be read before the last message even reached the fleet.
    until(lambda: ingest.counters.received >= sent and ingest.idle())


class FakeMonotonic:
    """The ingest's pacing clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_oversized_payloads_are_counted_and_ingest_goes_on(
    fleet_engine: sa.Engine, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # The pacing clock stands still: however slow the run, the repeats fall within a minute.
    ingest = Ingest(
        IngestSettings(host=broker.host, port=broker.port), engine=fleet_engine, monotonic=FakeMonotonic()
    )
    ingest.start()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            # The limit is the kind's: 20,000 bytes is too much for an event, not for a birth.
            pole.publish(node_topic(NODE, Kind.BIRTH), padded(birth(), 20_000))
            pole.publish(node_topic(NODE, Kind.EVENT), padded(event(1), 16 * 1024))  # at the limit
            pole.publish(node_topic(NODE, Kind.EVENT), padded(event(2), 16 * 1024 + 1))
            pole.publish(node_topic(NODE, Kind.ALARM), padded(bell_alarm(2), 20_000))
            video = m.VideoBatch(
                ts=T0, seq=2, records=[m.VideoEvent(camera_id="cam-1", at=T0, kind="motion")]
            )
            pole.publish(node_topic(NODE, Kind.VIDEO), padded(video, 256 * 1024 + 1))
            pole.publish(node_topic(NODE, Kind.EVENT), m.encode(event(2, "tamper")))  # goes on
            settled(ingest, 6)
        assert ingest.running
        assert ingest.counters.rejected == {"too-large": 3}
        assert ingest.counters.applied == 3
    finally:
        ingest.stop()
    with Session(fleet_engine) as session:
        node = session.scalars(sa.select(Node)).one()
        assert (node.node_id, node.last_seq, node.gaps) == (NODE, 2, 0)
    lines = [r.getMessage() for r in caplog.records if "rejected (too-large)" in r.getMessage()]
    # One line for the three (logged at most once a minute per reason), naming the first.
    assert len(lines) == 1
    assert "16385 bytes, at most 16384" in lines[0]


def test_a_burst_of_bad_messages_is_logged_a_few_times(
    broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrate(url)
    engine = make_engine(url)
    clock = FakeMonotonic()
    ingest = Ingest(
        IngestSettings(host=broker.host, port=broker.port, log_every_s=60), engine=engine, monotonic=clock
    )
    caplog.set_level(logging.WARNING, logger="fleet.ingest.mqtt")

    def rejections(reason: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if f"rejected ({reason})" in r.getMessage()]

    ingest.start()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            for n in range(50):
                pole.publish(node_topic(NODE, Kind.EVENT), b'{"type": "event", ' + str(n).encode())
                if n % 10 == 0:
                    pole.publish(node_topic(NODE, Kind.ALARM), b"\xff" * (n + 1))
            settled(ingest, 55)
            assert ingest.counters.rejected == {"bad-json": 50, "bad-utf8": 5}
            # The first of each reason is logged; the pacing clock has not moved.
            assert len(rejections("bad-json")) == 1
            assert len(rejections("bad-utf8")) == 1

            clock.now += 61  # a minute later, the next one says what was held back
            pole.publish(node_topic(NODE, Kind.EVENT), b'{"type": "event", 50')
            settled(ingest, 56)
    finally:
        ingest.stop()
        engine.dispose()
    first, later = rejections("bad-json")
    assert "more like it" not in first
    assert later.endswith("(49 more like it not logged)")
    assert len(rejections("bad-utf8")) == 1


def test_topics_that_are_not_node_data_are_never_applied(
    fleet_engine: sa.Engine, broker: MosquittoBroker
) -> None:
    ingest = Ingest(
        IngestSettings(host=broker.host, port=broker.port, host_id="fleet-1"), engine=fleet_engine
    )
    ingest.start()
    command = m.Command(
        ts=T0, command_id="reboot-1", name="reboot-controller", issued_by="mallory", expires_at=T0 + 60_000
    )
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            send(pole, NODE, birth())
            # Someone else on the node's down/ topic and on the host state: the fleet does not
            # subscribe there, so neither reaches it.
            pole.publish(node_topic(NODE, Kind.COMMAND), m.encode(command))
            forged = m.HostState(ts=T0, host_id="fleet-1", online=False)
            pole.publish(host_state_topic("fleet-9"), m.encode(forged))
            # On the node's up/ side: kinds nodes never send are refused by their own reason.
            prefix = f"watchpost/v1/node/{NODE}/up"
            pole.publish(f"{prefix}/command", m.encode(command))
            pole.publish(f"{prefix}/alarm-ack", m.encode(m.AlarmAck(ts=T0, alarm_id="a-1", operator="x")))
            pole.publish(f"{prefix}/host-state", m.encode(forged))
            pole.publish(f"{prefix}/nonsense", b"{}")  # not a kind at all
            pole.publish(f"{prefix}/event/extra", m.encode(event(1)))  # one level too deep
            pole.publish("watchpost/v1/node/Not An Id/up/command", m.encode(command))
            # Then the node's own next event: published last, received last.
            send(pole, NODE, event(1))
            until(lambda: ingest.counters.applied == 2 and ingest.idle())
        assert ingest.counters.received == 8
        assert ingest.counters.rejected == {"wrong-direction": 3, "bad-topic": 3}
    finally:
        ingest.stop()
    with Session(fleet_engine) as session:
        node = session.scalars(sa.select(Node)).one()
        assert (node.node_id, node.online, node.last_seq, node.gaps) == (NODE, True, 1, 0)


# --- the broker's ACL -------------------------------------------------------------------------


def password_file(path: Path, *users: str) -> Path:
    path.write_text("")
    for user in users:
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, f"{user}-secret"], check=True)
    path.chmod(0o600)
    return path


def forge(broker: MosquittoBroker, user: str, topic: str, payload: bytes) -> None:
    """Publish as `user` on a connection of its own, and wait until the broker has dealt with
    it: acknowledged it, or (Mosquitto 2.0, MQTT 3.1.1, a topic the ACL denies) closed the
    connection."""
    pole = Pole(broker, user=user)
    try:
        info = pole.client.publish(topic, payload, qos=1)
        until(lambda: pole.closed.is_set() or info.is_published())
    finally:
        pole.close()


def test_the_broker_acl_keeps_a_node_to_its_own_topics(fleet_engine: sa.Engine, tmp_path: Path) -> None:
    passwords = password_file(tmp_path / "passwd", "pole-a", "pole-b", "fleet")
    with MosquittoBroker(password_file=passwords, acl=True, fleet_user="fleet") as broker:
        settings = IngestSettings(
            host=broker.host, port=broker.port, host_id="fleet-1", username="fleet", password="fleet-secret"
        )
        ingest = Ingest(settings, engine=fleet_engine)
        ingest.start()
        # pole-a listens on its own down/ and, hoping, on pole-b's.
        down = "watchpost/v1/node/{}/down/#"
        pole_a = Pole(broker, user="pole-a", subscribe=(down.format("pole-a"), down.format("pole-b")))
        pole_b = Pole(broker, user="pole-b", subscribe=(down.format("pole-b"), "watchpost/v1/host/+/state"))
        try:
            # pole-b hears that the fleet is online (retained), as every node may.
            pole_b.wait_for(lambda seen: any(t == host_state_topic("fleet-1") for t, _ in seen))

            pole_a.publish(node_topic("pole-a", Kind.BIRTH), m.encode(birth("pole-a")))
            # pole-a posing as pole-b, as the fleet towards pole-b, as the fleet's host state.
            reboot = m.Command(
                ts=T0, command_id="reboot-1", name="reboot-controller", issued_by="pole-a", expires_at=T0 + 1
            )
            offline = m.HostState(ts=T0, host_id="fleet-1", online=False)
            for topic, payload in [
                (node_topic("pole-b", Kind.BIRTH), m.encode(birth("pole-b"))),
                (node_topic("pole-b", Kind.EVENT), m.encode(event(1))),
                (node_topic("pole-b", Kind.COMMAND), m.encode(reboot)),
                (host_state_topic("fleet-1"), m.encode(offline)),
            ]:
                forge(broker, "pole-a", topic, payload)
            # pole-a's own event, after all of them: when it is in, none of them came.
            forge(broker, "pole-a", node_topic("pole-a", Kind.EVENT), m.encode(event(1)))
            until(lambda: ingest.counters.applied == 2 and ingest.idle())
            assert ingest.counters.received == 2

            # pole-b's own birth reaches the fleet; the fleet's commands reach each pole, and
            # pole-b's only pole-b (pole-a's is sent last: once pole-a has it, it would have both).
            pole_b.publish(node_topic("pole-b", Kind.BIRTH), m.encode(birth("pole-b")))
            until(lambda: ingest.counters.applied == 3 and ingest.idle())
            for node_id in ("pole-b", "pole-a"):
                ping = m.Command(
                    ts=T0,
                    command_id=f"ping-{node_id}",
                    name="ping",
                    issued_by="fleet/fleet-1",
                    expires_at=T0 + 60_000,
                )
                ingest.send(node_id, ping)
            seen_b = pole_b.wait_for(lambda seen: any(t.endswith("/down/command") for t, _ in seen))
            seen_a = pole_a.wait_for(lambda seen: any(t.endswith("/down/command") for t, _ in seen))
        finally:
            pole_a.close()
            pole_b.close()
            ingest.stop()
        assert [json.loads(p)["command_id"] for t, p in seen_b if t.endswith("/down/command")] == [
            "ping-pole-b"
        ]
        assert [t for t, _ in seen_a] == [node_topic("pole-a", Kind.COMMAND)]
        # The fleet's retained host state still says online: the forged one never landed.
        assert [json.loads(p)["online"] for t, p in seen_b if t == host_state_topic("fleet-1")] == [True]
        assert (ingest.counters.received, ingest.counters.rejected) == (3, {})
    with Session(fleet_engine) as session:
        nodes = {n.node_id: n.last_seq for n in session.scalars(sa.select(Node))}
        tickets = [(t.node_id, t.kind) for t in session.scalars(sa.select(FaultTicketRow))]
    assert nodes == {"pole-a": 1, "pole-b": 0}
    assert tickets == [("pole-a", "door")]


def test_the_deployable_acl_is_the_one_tested() -> None:
    assert (ROOT / "deploy/mosquitto/acl").read_text() == acl_rules(fleet_user="fleet")
    conf = (ROOT / "deploy/mosquitto/watchpost.conf").read_text()
    assert "acl_file /etc/mosquitto/watchpost.acl" in conf
    assert "allow_anonymous false" in conf


# --- anything at all ---------------------------------------------------------------------------

# Topic levels: valid ids, kinds and directions mixed with anything a broker takes in a level
# ('+' and '#' are not allowed in a published topic, '/' would make more levels; Mosquitto
# drops a client whose topic has control characters or Unicode non-characters).
LEVEL = st.one_of(
    st.sampled_from([NODE, "pole-b", "up", "down", *Kind.__members__.values(), ""]),
    st.text(st.characters(exclude_characters="/+#", exclude_categories=("Cc", "Cs", "Cn")), max_size=20),
)
SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=4),
    st.dictionaries(st.text(max_size=10), SCALAR | st.lists(SCALAR, max_size=3), max_size=4),
)
# Real messages of the node, in and out of its session, by kind.
REAL: dict[str, st.SearchStrategy[m.Message]] = {
    Kind.BIRTH: st.builds(lambda bd_seq: birth(bd_seq=bd_seq), st.integers(0, 3)),
    Kind.DEATH: st.builds(lambda bd_seq: m.NodeDeath(ts=T0, bd_seq=bd_seq), st.integers(0, 3)),
    Kind.EVENT: st.builds(event, st.integers(0, 6)),
    Kind.ALARM: st.builds(bell_alarm, st.integers(0, 6)),
    Kind.TELEMETRY: st.builds(
        lambda seq, celsius: m.Telemetry(ts=T0, seq=seq, readings=m.Readings(cpu_temp_c=celsius)),
        st.integers(0, 6),
        st.floats(-60, 150),
    ),
}


@st.composite
def node_traffic(draw: st.DrawFn) -> tuple[str, bytes]:
    """A topic under watchpost/v1/node/ and a payload: now and then anything, mostly nearly
    right, often right (so the database side is exercised too)."""

    def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> Any:
        return draw(usual) if draw(st.integers(0, 4)) else draw(other)

    if not draw(st.integers(0, 3)):
        levels = draw(st.lists(LEVEL, min_size=1, max_size=5))
        return "/".join(["watchpost/v1/node", *levels]), draw(st.binary(max_size=300))
    kind = draw(st.sampled_from(list(Kind.__members__.values())))
    node_id = mostly(st.sampled_from([NODE, "pole-b"]), LEVEL)
    direction = mostly(st.just("up"), st.sampled_from(["down"]) | LEVEL)
    more = mostly(st.just([]), st.lists(LEVEL, min_size=1, max_size=1))
    topic = "/".join(["watchpost/v1/node", node_id, direction, kind, *more])
    shaped = st.builds(
        lambda fields: json.dumps({"type": kind, "v": 1, "ts": T0, **fields}).encode(),
        st.dictionaries(st.sampled_from(["seq", "bd_seq", "event_id", "category", "readings", "x"]), JSON),
    )
    payload: bytes = mostly(
        REAL[kind].map(m.encode) if kind in REAL else shaped, shaped | st.binary(max_size=300)
    )
    return topic, payload


def test_random_bytes_on_random_node_topics_never_stop_ingest(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrate(url)
    engine = make_engine(url)
    ingest = Ingest(IngestSettings(host=broker.host, port=broker.port), engine=engine)
    ingest.start()
    subscription = fleet_subscription()
    sent = 0
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:

            @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(traffic=node_traffic(), qos=st.sampled_from([0, 1]))
            def ingest_survives(traffic: tuple[str, bytes], qos: int) -> None:
                nonlocal sent
                topic, payload = traffic
                pole.publish(topic, payload, qos=qos)
                # Only what the fleet subscribes to reaches it (node/+/up/#).
                sent += paho.topic_matches_sub(subscription, topic)
                settled(ingest, sent)
                assert ingest.running
                counters = ingest.counters
                assert counters.received == sent
                assert counters.received == counters.applied + sum(counters.rejected.values())

            ingest_survives()

            # And after all that, a node's birth is taken as ever.
            applied = ingest.counters.applied
            send(pole, NODE, birth(bd_seq=7))
            settled(ingest, sent + 1)
            assert ingest.counters.applied == applied + 1
    finally:
        ingest.stop()
    with Session(engine) as session:
        node = session.scalars(sa.select(Node).where(Node.node_id == NODE)).one()
        assert (node.online, node.bd_seq, node.last_seq) == (True, 7, 0)
    engine.dispose()


def test_a_birth_naming_a_camera_twice_is_refused_by_the_contract(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrate(url)
    engine = make_engine(url)
    ingest = Ingest(IngestSettings(host=broker.host, port=broker.port, retry_max_s=0.2), engine=engine)
    ingest.start()
    # Made as a broken node would send it: the contract's own constructor refuses it too.
    body = json.loads(m.encode(birth(NODE)))
    body["cameras"] = [{"camera_id": "cam-1", "name": "A"}, {"camera_id": "cam-1", "name": "B"}]
    twice = json.dumps(body).encode()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            pole.publish(node_topic(NODE, Kind.BIRTH), twice)
            send(pole, "pole-b", birth("pole-b"))
            until(lambda: ingest.counters.received == 2 and ingest.idle())
            assert ingest.running
            assert (ingest.counters.applied, ingest.counters.rejected) == (1, {"invalid-value": 1})
            assert ingest.counters.db_failures == 0
    finally:
        ingest.stop()
        engine.dispose()


def test_a_message_the_database_refuses_is_counted_and_the_rest_go_on(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    # A real refusal from the database, of one row: a trigger aborts one alarm's insert. A
    # refused message is not an outage: retried, it would hold everything behind it for ever.
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrate(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON bell_alarm WHEN NEW.alarm_id = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poison alarm refused'); END"
        )
    ingest = Ingest(IngestSettings(host=broker.host, port=broker.port, retry_max_s=0.2), engine=engine)
    ingest.start()
    try:
        with Observer(broker, "watchpost/v1/host/#") as pole:
            send(pole, NODE, birth(NODE))
            for seq, alarm_id in enumerate(("good-1", "poison", "good-2"), start=1):
                alarm = m.BellAlarm(
                    ts=T0 + seq,
                    seq=seq,
                    alarm_id=alarm_id,
                    bell_id="bell-1",
                    pressed_at=T0 + seq,
                    source="gpio",
                )
                send(pole, NODE, alarm)
            until(lambda: ingest.counters.received == 4 and ingest.idle())
            assert ingest.running
            assert (ingest.counters.applied, ingest.counters.rejected) == (3, {"db-refused": 1})
            assert ingest.counters.db_failures == 0
        with engine.connect() as conn:
            stored = (
                conn.execute(sa.text("SELECT alarm_id FROM bell_alarm ORDER BY alarm_id")).scalars().all()
            )
        assert stored == ["good-1", "good-2"]
    finally:
        ingest.stop()
        engine.dispose()
