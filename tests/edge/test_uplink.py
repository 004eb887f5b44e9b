"""The MQTT uplink (edge.uplink) against a real Mosquitto started for each test: session
(birth, death, rebirth, bd_seq), outbox drain with PUBACK, alarms overtaking a backlog,
downlink, reconnects, and a broker that refuses the node."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.outbox import LANE_OF_KIND, GroupCommitter, Outbox, RecordId
from edge.uplink.mqtt import Downlink, TlsSettings, Uplink, UplinkSettings
from edge.uplink.session import UplinkState
from protocols import messages as m
from protocols.topics import Kind, host_state_topic, node_topic
from tests.mqtt_observer import Observer, Seen
from tests.pki import make_pki
from watchpost.broker import BrokerTls, MosquittoBroker

pytestmark = pytest.mark.broker

NODE = "pole-0042"
T0 = 1_764_000_000_000


def birth(bd_seq: int, ts: int) -> m.NodeBirth:
    return m.NodeBirth(
        ts=ts, seq=0, bd_seq=bd_seq, site_id="site-0042", hardware="test-rig", agent_version="0.1.0"
    )


def event(n: int) -> m.Event:
    return m.Event(
        ts=T0 + n, seq=0, event_id=f"ev-{n}", category="door", state="raised", severity="minor", detail=f"{n}"
    )


def alarm(n: int) -> m.BellAlarm:
    return m.BellAlarm(
        ts=T0 + n, seq=0, alarm_id=f"alarm-{n}", bell_id="bell-1", pressed_at=T0 + n, source="controller"
    )


def video(n: int) -> m.VideoBatch:
    segment = m.RecordingSegment(
        camera_id="cam-1",
        start=T0 + n * 10_000,
        end=T0 + (n + 1) * 10_000,
        bytes=4_000_000,
        codec="h264",
        width=1920,
        height=1080,
        fps=25.0,
        bitrate_kbps=3200.0,
    )
    return m.VideoBatch(ts=T0 + n, seq=0, records=[segment])


class Node:
    """An uplink with its outbox, as the agent wires them, in the test's event loop."""

    def __init__(self, tmp_path: Path, broker: MosquittoBroker, **settings: Any) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(tmp_path / "outbox.db")
        self.committer = GroupCommitter(self.outbox)
        self.downlink: list[Downlink] = []
        options: dict[str, Any] = {"reconnect_base_s": 0.05, "reconnect_cap_s": 0.5} | settings
        self.uplink = Uplink(
            UplinkSettings(node_id=NODE, host=broker.host, port=broker.port, **options),
            outbox=self.outbox,
            committer=self.committer,
            birth=birth,
            on_downlink=self.downlink.append,
            state_dir=tmp_path,
            rng=random.Random(1),
        )
        self._tasks: list[asyncio.Task[None]] = []

    def append(self, message: m.Message) -> RecordId:
        kind = m.kind_of(message)
        return self.committer.append(LANE_OF_KIND[kind.value], kind.value, m.encode(message))

    async def __aenter__(self) -> Node:
        self._tasks = [
            asyncio.create_task(self.committer.run(), name="committer"),
            asyncio.create_task(self.uplink.run(), name="uplink"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.outbox.close()

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)


async def seen(observer: Observer, wanted: Callable[[list[Seen]], bool], timeout: float = 10.0) -> list[Seen]:
    return await asyncio.to_thread(observer.wait_for, wanted, timeout)


def count(messages: list[Seen], kind: str) -> int:
    """How many of `kind` were seen, without parsing them (predicates run on every message)."""
    return sum(s.kind == kind for s in messages)


def kinds(messages: list[Seen], kind: str) -> list[dict[str, Any]]:
    return [s.json() for s in messages if s.kind == kind]


def test_birth_records_and_death_in_one_session(tmp_path: Path, broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        with Observer(broker) as observer:
            node = Node(tmp_path, broker)
            async with node:
                await node.until(lambda: node.uplink.online)
                ids = [node.append(event(n)) for n in range(3)]
                messages = await seen(observer, lambda s: count(s, "event") == 3)
                await node.until(lambda: node.outbox.usage().total_records == 0)
                assert node.uplink.session.bd_seq == 0
            messages = await seen(observer, lambda s: bool(kinds(s, "death")))
        births, events, deaths = kinds(messages, "birth"), kinds(messages, "event"), kinds(messages, "death")
        assert [(b["seq"], b["bd_seq"]) for b in births] == [(0, 0)]
        assert [e["seq"] for e in events] == [1, 2, 3]
        assert [e["event_id"] for e in events] == ["ev-0", "ev-1", "ev-2"]
        assert not any(e.get("historical") for e in events)
        assert [d["bd_seq"] for d in deaths] == [0]  # published by the node as it stopped
        # The birth came before any record: the fleet always knows whose session it is.
        assert messages[0].kind == "birth"
        assert len(ids) == 3

    asyncio.run(scenario())


def test_bd_seq_advances_across_restarts_and_the_will_carries_it(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async def scenario() -> None:
        with Observer(broker) as observer:
            async with Node(tmp_path, broker):
                await seen(observer, lambda s: count(s, "birth") == 1)
            async with Node(tmp_path, broker) as node:
                await seen(observer, lambda s: count(s, "birth") == 2)
                # Cut the TCP connection under paho, as a dead link would: the broker sends the will.
                conn = node.uplink._conn
                assert conn is not None
                sock = conn.client.socket()
                assert isinstance(sock, socket.socket)
                sock.shutdown(socket.SHUT_RDWR)
                messages = await seen(observer, lambda s: count(s, "birth") == 3)
        births = [b["bd_seq"] for b in kinds(messages, "birth")]
        deaths = [d["bd_seq"] for d in kinds(messages, "death")]
        assert births == [0, 1, 2]
        # First stop: the node's own death (0). The cut: the broker's will for connection 1.
        assert deaths[:2] == [0, 1]

    asyncio.run(scenario())


def test_rebirth_restarts_seq_in_the_same_connection(tmp_path: Path, broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        with Observer(broker) as observer:
            async with Node(tmp_path, broker) as node:
                await node.until(lambda: node.uplink.online)
                node.append(event(1))
                await seen(observer, lambda s: count(s, "event") == 1)
                assert node.uplink.rebirth()
                await seen(observer, lambda s: count(s, "birth") == 2)
                node.append(event(2))
                messages = await seen(observer, lambda s: count(s, "event") == 2)
        assert [(b["bd_seq"], b["seq"]) for b in kinds(messages, "birth")] == [(0, 0), (0, 0)]
        assert [e["seq"] for e in kinds(messages, "event")] == [1, 1]

    asyncio.run(scenario())


def test_commands_alarm_acks_and_host_state_reach_the_agent(tmp_path: Path, broker: MosquittoBroker) -> None:
    command = m.Command(
        ts=T0, command_id="cmd-1", name="ping", issued_by="operator-7", expires_at=T0 + 60_000
    )
    ack = m.AlarmAck(ts=T0, alarm_id="alarm-1", operator="operator-7")

    async def scenario() -> None:
        with Observer(broker) as observer:
            async with Node(tmp_path, broker) as node:
                await seen(observer, lambda s: bool(kinds(s, "birth")))
                observer.publish(node_topic(NODE, Kind.COMMAND), m.encode(command))
                observer.publish(node_topic(NODE, Kind.ALARM_ACK), m.encode(ack))
                observer.publish(node_topic(NODE, Kind.COMMAND), b'{"type": "command", "v": 1}')
                observer.publish(node_topic(NODE, Kind.COMMAND), b"\xff\xfe")
                observer.publish(
                    host_state_topic("fleet-1"), m.encode(m.HostState(ts=T0, host_id="fleet-1", online=True))
                )
                await node.until(lambda: sum(node.uplink.counters.downlink_rejected.values()) == 2)
                await node.until(lambda: len(node.downlink) == 2 and "fleet-1" in node.uplink.session.hosts)
                assert node.downlink == [command, ack]
                assert node.uplink.counters.downlink_rejected == {"missing-field": 1, "bad-utf8": 1}

    asyncio.run(scenario())


def test_alarm_overtakes_a_backlog_being_replayed(tmp_path: Path, broker: MosquittoBroker) -> None:
    backlog = 3000

    async def scenario() -> None:
        with Observer(broker) as observer:
            node = Node(tmp_path, broker, window=32)
            for n in range(backlog):
                node.append(video(n))
            async with node:
                await seen(observer, lambda s: count(s, "video") >= 100)
                node.append(alarm(1))
                messages = await seen(observer, lambda s: count(s, "video") == backlog, timeout=60)
        order = [s.kind for s in messages if s.kind in ("video", "alarm")]
        videos_before_alarm = order.index("alarm")
        # Behind the alarm: at most what was already in flight, not the rest of the backlog.
        assert videos_before_alarm < backlog - 1000, videos_before_alarm
        replayed = kinds(messages, "video")
        assert all(v["historical"] for v in replayed)  # buffered before the session began
        assert [v["records"][0]["start"] for v in replayed] == [T0 + n * 10_000 for n in range(backlog)]

    asyncio.run(scenario())


def test_replay_is_held_while_the_fleet_says_it_is_offline_but_alarms_go(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async def scenario() -> None:
        with Observer(broker) as observer:
            offline = m.HostState(ts=T0, host_id="fleet-1", online=False)
            observer.publish(host_state_topic("fleet-1"), m.encode(offline), retain=True)
            async with Node(tmp_path, broker) as node:
                await node.until(lambda: node.uplink.session.hosts == {"fleet-1": False})
                node.append(event(1))
                node.append(alarm(2))
                await seen(observer, lambda s: bool(kinds(s, "alarm")))
                await asyncio.sleep(0.3)
                assert not kinds(observer.messages, "event")
                online = m.HostState(ts=T0 + 1, host_id="fleet-1", online=True)
                observer.publish(host_state_topic("fleet-1"), m.encode(online), retain=True)
                await seen(observer, lambda s: bool(kinds(s, "event")))

    asyncio.run(scenario())


def test_reconnects_after_the_broker_restarts_and_replays_as_historical(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async def scenario() -> None:
        async with Node(tmp_path, broker) as node:
            await node.until(lambda: node.uplink.online)
            broker.kill()
            await node.until(lambda: not node.uplink.online)
            for n in range(50):
                node.append(event(n))
            node.append(alarm(99))
            await asyncio.sleep(0.2)
            broker.start()
            with Observer(broker) as observer:
                messages = await seen(observer, lambda s: count(s, "event") == 50)
                await node.until(lambda: node.outbox.usage().total_records == 0)
            # Every attempt registers a will of its own, so each takes the next bd_seq.
            assert node.uplink.session.bd_seq == node.uplink.counters.connect_attempts - 1 >= 1
            assert node.uplink.counters.connections == 2
        # The backlog waited out the outage: historical. The alarm still went first.
        assert all(e["historical"] for e in kinds(messages, "event"))
        assert next(s.kind for s in messages if s.kind in ("event", "alarm")) == "alarm"

    asyncio.run(scenario())


def test_records_in_flight_when_the_link_drops_are_published_again(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async def scenario() -> None:
        async with Node(tmp_path, broker, window=8) as node:
            await node.until(lambda: node.uplink.online)
            for n in range(2000):
                node.append(event(n))
            await node.until(lambda: node.uplink.counters.delivered >= 200)
            broker.pause()  # PUBACKs stop: the window fills with records in flight
            await asyncio.sleep(0.3)  # PUBACKs the broker sent before it froze are read first
            await node.until(lambda: node.uplink.in_flight() == 8)
            broker.kill()
            await node.until(lambda: node.uplink.session.state is UplinkState.OFFLINE)
            # What the outbox still holds: everything without a PUBACK, in flight or not.
            left = [m.decode(Kind.EVENT, r.payload) for r in node.outbox.next_batch(5000)]
            assert node.uplink.counters.requeued > 0
            broker.start()
            with Observer(broker) as observer:
                await node.until(lambda: node.outbox.usage().total_records == 0, timeout=60)
                wanted = {e.event_id for e in left if isinstance(e, m.Event)}
                messages = await seen(
                    observer, lambda s: {e["event_id"] for e in kinds(s, "event")} >= wanted
                )
        assert 0 < len(wanted) < 2000
        assert all(e["historical"] for e in kinds(messages, "event"))

    asyncio.run(scenario())


def test_a_refusing_broker_is_named_and_retried(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), NODE, "right-password"], check=True)
    passwords.chmod(0o600)

    async def scenario(broker: MosquittoBroker) -> None:
        async with Node(tmp_path / "wrong", broker, username=NODE, password="wrong") as node:
            await node.until(lambda: node.uplink.session.failed_attempts >= 2)
            assert "not authorized" in (node.uplink.session.last_error or "").lower()
            assert not node.uplink.online
        async with Node(tmp_path / "right", broker, username=NODE, password="right-password") as node:
            await node.until(lambda: node.uplink.online)

    with MosquittoBroker(password_file=passwords) as broker:
        asyncio.run(scenario(broker))


def test_an_unreachable_broker_is_retried_with_backoff(tmp_path: Path) -> None:
    broker = MosquittoBroker()  # never started: nothing listens on its port

    async def scenario() -> None:
        async with Node(tmp_path, broker) as node:
            await node.until(lambda: node.uplink.session.failed_attempts >= 3)
            assert "cannot reach" in (node.uplink.session.last_error or "")
            assert node.uplink.counters.connect_attempts >= 3

    asyncio.run(scenario())


def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", client_name=NODE)
    tls = BrokerTls(
        ca_file=pki.ca, cert_file=pki.server_cert, key_file=pki.server_key, require_certificate=True
    )

    async def scenario(broker: MosquittoBroker) -> None:
        # Without a certificate the broker refuses the handshake, and the node says so.
        async with Node(tmp_path / "anonymous", broker, tls=TlsSettings(ca_file=pki.ca)) as node:
            await node.until(lambda: node.uplink.session.failed_attempts >= 1)
            assert not node.uplink.online
        with_cert = TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
        async with Node(tmp_path / "node", broker, tls=with_cert) as node:
            await node.until(lambda: node.uplink.online)
            node.append(alarm(1))
            await node.until(lambda: node.uplink.counters.delivered == 1)

    with MosquittoBroker(tls=tls) as broker:
        asyncio.run(scenario(broker))
