"""The node's MQTT uplink: drains the outbox to the broker and hands the fleet's messages to
the agent. The only module of the project that imports paho-mqtt.

paho runs on the agent's event loop, not in its own thread (paho is not fully thread-safe):
its socket is watched with `add_reader`/`add_writer` and `loop_misc` runs once a second, so
every paho call and callback happens on one thread. Each connection gets a fresh paho client:
paho keeps its session in memory only and would resend its own copies after a reconnect,
beside the outbox's. The outbox is the one source of truth: a record leaves it on PUBACK;
whatever was in flight when a connection dropped is published again, flagged historical.

Decisions (states, `bd_seq`/`seq`, backoff, which lanes may go) are in edge.uplink.session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge.outbox import GroupCommitter, Lane, Outbox, Record, RecordId
from edge.uplink.session import UplinkSession, UplinkState, reconnect_delay
from protocols import messages as m
from protocols.errors import ContractError, TopicError
from protocols.topics import ROUTES, Kind, node_subscriptions, node_topic, parse_topic

log = logging.getLogger(__name__)

# Downlink messages the agent acts on; host state is kept by the session itself.
Downlink = m.Command | m.AlarmAck | m.OtaOffer


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """TLS to the broker: `ca_file` checks the broker; `cert_file`/`key_file` identify the node."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UplinkSettings:
    node_id: str
    host: str
    port: int = 1883
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    connect_timeout_s: float = 10.0
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 60.0
    window: int = 64  # outbox records in flight (published, PUBACK pending) at once
    alarm_reserve: int = 16  # more in flight allowed for alarms, so they never queue behind backlog


@dataclass
class UplinkCounters:
    published: int = 0  # records published from the outbox
    historical: int = 0  # of them, replayed (published before, or buffered while offline)
    delivered: int = 0  # PUBACKs (or, for QoS 0 telemetry, written to the socket)
    connect_attempts: int = 0
    connections: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # failed connects, by reason
    disconnects: int = 0
    requeued: int = 0  # in flight when a connection dropped
    downlink: int = 0
    downlink_rejected: dict[str, int] = field(default_factory=dict)  # by ContractError reason
    unstampable: int = 0  # outbox records that could not be read back (dropped, logged)


class _Connection:
    """One paho client and its socket, driven by the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: paho.Client) -> None:
        self.loop = loop
        self.client = client
        self.connack: asyncio.Future[ReasonCode] = loop.create_future()
        self.closed = asyncio.Event()
        self.close_reason = "closed"
        self._loop_thread = threading.get_ident()
        self._fd: int | None = None  # registered with the loop; a closed socket forgets its fd
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write

    def _on_loop(self, call: Callable[..., Any], *args: Any) -> None:
        # connect() runs in a worker thread (it blocks on TCP and TLS); everything else runs on
        # the loop. Selector changes must happen on the loop.
        if threading.get_ident() == self._loop_thread:
            call(*args)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(call, *args)

    def _socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._fd = sock.fileno()
        self._on_loop(self.loop.add_reader, self._fd, client.loop_read)

    def _socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self.forget_socket)

    def forget_socket(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and not self.loop.is_closed():
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)

    def _register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._fd is not None:
            self._on_loop(self.loop.add_writer, self._fd, client.loop_write)

    def _unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._fd is not None:
            self._on_loop(self.loop.remove_writer, self._fd)

    def detach(self) -> None:
        """After the connection ends: paho's later socket calls (even from its __del__) are ignored."""
        self.forget_socket()
        for name in (
            "on_socket_open",
            "on_socket_close",
            "on_socket_register_write",
            "on_socket_unregister_write",
        ):
            setattr(self.client, name, None)


class Uplink:
    """Run `await uplink.run()` as a task; cancel it to stop (the death is published first)."""

    def __init__(
        self,
        settings: UplinkSettings,
        *,
        outbox: Outbox,
        committer: GroupCommitter,
        birth: Callable[[int, int], m.NodeBirth],
        on_downlink: Callable[[Downlink], None],
        state_dir: Path,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.committer = committer
        self._birth = birth  # (bd_seq, ts) -> NodeBirth with seq 0
        self._on_downlink = on_downlink
        self._bd_seq_file = state_dir / "bd_seq"
        self._clock_ms = clock_ms
        self._rng = rng or random.Random()
        self.session = UplinkSession(last_bd_seq=self._read_bd_seq())
        self.counters = UplinkCounters()
        self._conn: _Connection | None = None
        self._wake = asyncio.Event()
        # Published, PUBACK pending. paho's "on_publish before publish() returns the mid" cannot
        # happen here: PUBACKs are read only in loop_read, on this loop, never inside publish().
        self._by_mid: dict[int, RecordId] = {}
        self._alarm_mids: set[int] = set()
        self._delivery_waiters: dict[RecordId, list[asyncio.Future[None]]] = {}
        # Records appended before this connection came up waited out an outage: historical.
        self._online_from_id = RecordId(0)
        self._topics = {kind: node_topic(settings.node_id, kind) for kind in Kind if ROUTES[kind].direction}
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            kind.value: msgspec.json.Decoder(m.MESSAGE_TYPES[kind]) for kind in Kind
        }
        committer.on_commit.append(self.wake)

    # --- what the agent calls -----------------------------------------------------------------

    def wake(self) -> None:
        """Something new is committed (or the window moved): look at the outbox again."""
        self._wake.set()

    @property
    def online(self) -> bool:
        return self.session.state is UplinkState.ONLINE

    def rebirth(self) -> bool:
        """Publish a new birth in this connection (the fleet saw a gap). False when offline."""
        if self._conn is None or not self.online:
            return False
        self._publish_birth(self._conn)
        return True

    async def wait_delivered(self, record_id: RecordId) -> None:
        """Return when the broker has acknowledged the outbox record `record_id` (use a timeout)."""
        waiter = asyncio.get_running_loop().create_future()
        self._delivery_waiters.setdefault(record_id, []).append(waiter)
        try:
            await waiter
        finally:
            waiters = self._delivery_waiters.get(record_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._delivery_waiters.pop(record_id, None)

    def in_flight(self) -> int:
        return len(self._by_mid)

    # --- the connection loop ------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                await self._connect_once()
                if self.session.failed_attempts or self.session.state is UplinkState.OFFLINE:
                    delay = reconnect_delay(
                        max(1, self.session.failed_attempts),
                        rng=self._rng,
                        base_s=self.settings.reconnect_base_s,
                        cap_s=self.settings.reconnect_cap_s,
                    )
                    log.info("uplink: next connection attempt in %.1f s", delay)
                    await asyncio.sleep(delay)
        finally:
            self.session.stopped()

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        bd_seq = self.session.connecting()
        self._write_bd_seq(bd_seq)
        self.counters.connect_attempts += 1
        client = self._new_client(bd_seq)
        conn = _Connection(loop, client)
        self._conn = conn
        s = self.settings
        misc: asyncio.Task[None] | None = None
        try:
            try:
                await loop.run_in_executor(None, client.connect, s.host, s.port, s.keepalive_s)
            except (OSError, ssl.SSLError, ValueError) as error:
                self._refused(f"cannot reach {s.host}:{s.port}: {error}")
                return
            misc = asyncio.create_task(self._misc(conn), name="uplink-keepalive")
            try:
                async with asyncio.timeout(s.connect_timeout_s):
                    code = await asyncio.shield(conn.connack)
            except TimeoutError:
                self._refused(f"no CONNACK from {s.host}:{s.port} within {s.connect_timeout_s} s")
                return
            if code.is_failure:
                self._refused(f"broker refused the connection: {code.getName()}")
                return
            if conn.closed.is_set():
                self._lost(conn.close_reason)
                return
            self._went_online(conn)
            await self._drain(conn)
        except asyncio.CancelledError:
            await self._publish_death(conn)  # the agent is stopping
            raise
        finally:
            self._close(conn)  # before any await: offline and requeued are seen together
            if misc is not None:
                misc.cancel()
                # wait(), not `await misc` under suppress(CancelledError): that would also
                # swallow a cancel of this task landing right now, and the uplink would never
                # stop. wait() does not raise misc's cancellation; ours still propagates.
                await asyncio.wait({misc})

    def _new_client(self, bd_seq: int) -> paho.Client:
        s = self.settings
        # A persistent session (clean_session False): commands and alarm acks sent while the
        # node was away wait at the broker. Our own unacked publishes are the outbox's job.
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"watchpost-node-{s.node_id}",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(s.window + s.alarm_reserve + 8)
        client.max_queued_messages_set(0)
        death = m.encode(m.NodeDeath(ts=self._clock_ms(), bd_seq=bd_seq))
        client.will_set(self._topics[Kind.DEATH], death, qos=1, retain=False)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set(
                ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
                certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                keyfile=str(s.tls.key_file) if s.tls.key_file else None,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    async def _misc(self, conn: _Connection) -> None:
        while True:
            await asyncio.sleep(1.0)
            conn.client.loop_misc()

    def _went_online(self, conn: _Connection) -> None:
        self.session.connected()
        self.counters.connections += 1
        self._online_from_id = self.outbox.next_id
        for topic in node_subscriptions(self.settings.node_id):
            conn.client.subscribe(topic, qos=1)
        self._publish_birth(conn)
        log.info("uplink: online as bd_seq %s", self.session.bd_seq)

    def _publish_birth(self, conn: _Connection) -> None:
        assert self.session.bd_seq is not None
        self.session.birth()
        birth = self._birth(self.session.bd_seq, self._clock_ms())
        conn.client.publish(self._topics[Kind.BIRTH], m.encode(birth), qos=1)

    async def _drain(self, conn: _Connection) -> None:
        """Publish from the outbox while connected: alarms first and beyond the window."""
        while not conn.closed.is_set():
            self._wake.clear()
            self._publish_some(conn)
            closed = asyncio.ensure_future(conn.closed.wait())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({closed, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                woken.cancel()
        self._lost(conn.close_reason)

    def _publish_some(self, conn: _Connection) -> None:
        s = self.settings
        in_flight = len(self._by_mid)
        alarms_in_flight = len(self._alarm_mids)
        if self.outbox.usage().records[Lane.ALARM] > alarms_in_flight:
            for record in self.outbox.next_batch(s.alarm_reserve):
                if record.lane is not Lane.ALARM:
                    break
                self._publish_record(conn, record)
        room = s.window - (in_flight - alarms_in_flight)
        if room <= 0:
            return
        for record in self.outbox.next_batch(room):
            if not self.session.may_publish(record.lane):
                continue
            self._publish_record(conn, record)

    def _publish_record(self, conn: _Connection, record: Record) -> None:
        kind = Kind(record.kind)
        route = ROUTES[kind]
        historical = record.replayed or record.id < self._online_from_id
        seq = self.session.next_seq() if route.qos else self.session.seq
        try:
            message = self._decoders[record.kind].decode(record.payload)
            payload = m.encode(msgspec.structs.replace(message, seq=seq, historical=historical))
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as error:
            # Only this agent writes the outbox; a record it cannot read back is a bug or a
            # corrupted file. Keeping it would block its lane forever: log it and let it go.
            self.counters.unstampable += 1
            log.error("uplink: outbox record %s (%s) is unreadable, dropped: %s", record.id, kind, error)
            self.outbox.delivered([record.id])
            self.committer.note_change()
            return
        self.outbox.mark_in_flight([record.id])
        info = conn.client.publish(self._topics[kind], payload, qos=route.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return  # not connected after all; the record is requeued when the close lands
        self.counters.published += 1
        self.counters.historical += historical
        self._by_mid[info.mid] = record.id
        if record.lane is Lane.ALARM:
            self._alarm_mids.add(info.mid)

    # --- paho callbacks (all on the event loop, but for connect's own) ------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any
    ) -> None:
        conn = self._conn
        if conn is not None and conn.client is client and not conn.connack.done():
            conn.connack.set_result(code)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any
    ) -> None:
        conn = self._conn
        if conn is None or conn.client is not client:
            return
        conn.close_reason = f"connection lost: {code.getName()}"
        conn.closed.set()
        if not conn.connack.done():
            conn.connack.set_result(code)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, code: ReasonCode, props: Any) -> None:
        if self._conn is None or self._conn.client is not client:
            return
        record_id = self._by_mid.pop(mid, None)
        if record_id is None:
            return  # the birth's or the death's: not outbox records
        self._alarm_mids.discard(mid)
        self.outbox.delivered([record_id])
        for waiter in self._delivery_waiters.pop(record_id, []):
            if not waiter.done():
                waiter.set_result(None)
        self.counters.delivered += 1
        self.committer.note_change()
        self._wake.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.counters.downlink += 1
        topic = parse_topic(message.topic)
        if isinstance(topic, TopicError):
            self._reject(topic)
            return
        decoded = m.decode(topic.kind, bytes(message.payload))
        if isinstance(decoded, ContractError):
            self._reject(decoded)
            return
        if isinstance(decoded, m.HostState):
            self.session.host_state(decoded.host_id, decoded.online)
            self._wake.set()
        elif isinstance(decoded, m.Command | m.AlarmAck | m.OtaOffer):
            self._on_downlink(decoded)
        else:
            self._reject(TopicError(f"{topic.kind} messages are not sent to nodes", path=message.topic))

    def _reject(self, error: ContractError) -> None:
        rejected = self.counters.downlink_rejected
        rejected[error.reason] = rejected.get(error.reason, 0) + 1
        log.warning("uplink: downlink message rejected: %s", error)

    # --- failure and shutdown -----------------------------------------------------------------

    def _refused(self, reason: str) -> None:
        refused = self.counters.refused
        key = reason.split(":", maxsplit=1)[0]
        refused[key] = refused.get(key, 0) + 1
        log.warning("uplink: %s", reason)
        self.session.lost(reason)

    def _lost(self, reason: str) -> None:
        if self.session.state is UplinkState.ONLINE:
            self.counters.disconnects += 1
            log.warning("uplink: %s", reason)
        self.session.lost(reason)

    def _close(self, conn: _Connection) -> None:
        with contextlib.suppress(Exception):
            conn.client.disconnect()
            # Write the DISCONNECT now (2 bytes, the socket takes them): without it the broker
            # would see a dropped connection and publish the will after the node's own death.
            conn.client.loop_write()
        conn.detach()
        self._requeue()
        self._conn = None

    def _requeue(self) -> None:
        ids = self.outbox.requeue_in_flight()
        self.counters.requeued += len(ids)
        self._by_mid.clear()
        self._alarm_mids.clear()

    async def _publish_death(self, conn: _Connection) -> None:
        """On a clean stop: a DISCONNECT suppresses the will, so the node says its death itself."""
        if not self.online or self.session.bd_seq is None or conn.closed.is_set():
            return
        death = m.encode(m.NodeDeath(ts=self._clock_ms(), bd_seq=self.session.bd_seq))
        info = conn.client.publish(self._topics[Kind.DEATH], death, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while not info.is_published() and not conn.closed.is_set():
                    await asyncio.sleep(0.01)

    # --- bd_seq across restarts ---------------------------------------------------------------

    def _read_bd_seq(self) -> int | None:
        try:
            value = int(self._bd_seq_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return value if 0 <= value <= 255 else None

    def _write_bd_seq(self, bd_seq: int) -> None:
        tmp = self._bd_seq_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{bd_seq}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._bd_seq_file)
