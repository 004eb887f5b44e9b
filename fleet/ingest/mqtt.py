"""The fleet's MQTT ingest: nodes' messages from the broker into the database and the time
series. The only fleet module that imports paho-mqtt.

paho runs its network loop in its own thread and hands each message to a queue; one consumer
thread takes them in batches, applies a batch in one database transaction (fleet.ingest.apply),
writes its telemetry, and only then acknowledges the batch's QoS 1 messages (paho's manual
acks). A message that is not yet in the database is not acknowledged: if the fleet dies, the
broker (persistent session) sends it again. A database outage stops the consumer with backoff;
nothing queued is dropped, and a batch is counted once, when it is in. Malformed, oversized
and misdirected messages are counted by reason, logged at most once a minute per reason, and
acknowledged (sending them again would not fix them).

Once a second (`settle_every_s`) the consumer lets time pass: nodes silent for the heartbeat
timeout go offline (fleet.ingest.liveness) and debounced faults whose wait is over open or
clear (fleet.faults.store.settle_due). A technician's site visit that cannot move its ticket
(unknown ticket, illegal step) is counted by outcome and logged at most once a minute per
outcome.

The fleet announces itself with a retained host state (`online: true`); its will says `false`.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from fleet.faults import store as faults_store
from fleet.ingest.apply import Applied, FaultPolicy, apply, apply_telemetry
from fleet.ingest.liveness import expire_silent
from fleet.ingest.visits import VisitResult
from fleet.inventory import rollups
from fleet.tsdb import NodeReading, TimeSeriesError, TimeSeriesWriter
from protocols import messages as m
from protocols.errors import ContractError, TopicError
from protocols.topics import (
    ROUTES,
    Direction,
    Kind,
    fleet_subscription,
    host_state_topic,
    node_topic,
    parse_topic,
)

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings:
    host: str
    port: int = 1883
    host_id: str = "fleet-1"  # this fleet process, in the retained host-state topic
    share_group: str | None = None  # MQTT 5 shared subscription for several workers
    batch_max: int = 500
    rebirth_every_s: float = 10.0  # ask one node at most this often: its birth is on its way
    settle_every_s: float = 1.0  # let time pass for liveness and debounced faults this often
    log_every_s: float = 60.0  # a repeated warning (a visit refused) is logged at most this often
    retry_max_s: float = 30.0  # longest wait between attempts while the database is down
    username: str | None = None
    password: str | None = None


@dataclass
class IngestCounters:
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    rebirths_asked: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # by ContractError reason, and WrongDirection's
    visits: dict[str, int] = field(default_factory=dict)  # site visits by VisitOutcome
    timed_out: int = 0  # nodes taken offline for silence
    db_failures: int = 0
    tsdb_failures: int = 0


class WrongDirection(TopicError):
    """A node's up/ topic carrying a kind nodes never send (`.../up/command`, `.../up/host-state`):
    not node data, whoever published it. Counted apart from other bad topics: it is a confused
    or hostile client, not a garbled one."""

    reason = "wrong-direction"


@dataclass(frozen=True, slots=True)
class _Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    at_ms: int


class Ingest:
    """`ingest.start()`, then `ingest.stop()`. `ingest.idle()` is True when nothing is queued."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        engine: sa.Engine,
        tsdb: TimeSeriesWriter | None = None,
        faults: FaultPolicy | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.tsdb = tsdb
        self.faults = faults or FaultPolicy()
        self.counters = IngestCounters()
        self._clock_ms = clock_ms
        self._monotonic = monotonic  # paces settling, rebirth requests and repeated warnings
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stop = threading.Event()
        self._busy = False
        self._consumer = threading.Thread(target=self._consume, name="fleet-ingest", daemon=True)
        # Telemetry roll-ups of committed batches, written once a second by `_settle`.
        self._rollups = rollups.RollupBuffer()
        self._rebirth_asked: dict[str, float] = {}  # node -> monotonic time, to ask once a while
        self._logged: dict[str, tuple[float, int]] = {}  # warning key -> (monotonic, suppressed)
        self._listening_since: int | None = None  # clock ms of the broker connection, None if lost
        self._applied_until = 0  # receive time of the last message applied (the queue is FIFO)
        use_v5 = settings.share_group is not None  # shared subscriptions are MQTT 5
        # A persistent session: what arrives while the fleet is down waits at the broker.
        # (MQTT 5 expresses it at CONNECT with a session expiry instead of clean_session.)
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"watchpost-fleet-{settings.host_id}",
            protocol=paho.MQTTv5 if use_v5 else paho.MQTTv311,
            manual_ack=True,
            clean_session=None if use_v5 else False,
        )
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        offline = m.HostState(ts=clock_ms(), host_id=settings.host_id, online=False)
        self._client.will_set(host_state_topic(settings.host_id), m.encode(offline), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._connected = threading.Event()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        self._consumer.start()
        self._client.connect(self.settings.host, self.settings.port)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"no MQTT connection to {self.settings.host}:{self.settings.port}")

    def stop(self) -> None:
        online = m.HostState(ts=self._clock_ms(), host_id=self.settings.host_id, online=False)
        self._client.publish(host_state_topic(self.settings.host_id), m.encode(online), qos=1, retain=True)
        self._stop.set()
        self._consumer.join(timeout=30)
        self._client.disconnect()
        self._client.loop_stop()

    def send(self, node_id: str, message: m.Message) -> None:
        """Publish a message down to one node (the API's alarm acknowledgements and commands),
        with its kind's QoS. paho queues it while the broker is away; it goes out on reconnect."""
        kind = m.kind_of(message)
        info = self._client.publish(node_topic(node_id, kind), m.encode(message), qos=ROUTES[kind].qos)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            raise ConnectionError(f"the MQTT queue to the broker is full; {kind} to {node_id} not sent")

    def idle(self) -> bool:
        return self._queue.empty() and not self._busy

    @property
    def running(self) -> bool:
        """The consumer thread is alive: from start() to stop(), whatever arrives or fails."""
        return self._consumer.is_alive()

    # --- paho's thread ------------------------------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        if code.is_failure:
            log.error("fleet ingest: broker refused the connection: %s", code)
            return
        client.subscribe(fleet_subscription(share_group=self.settings.share_group), qos=1)
        online = m.HostState(ts=self._clock_ms(), host_id=self.settings.host_id, online=True)
        client.publish(host_state_topic(self.settings.host_id), m.encode(online), qos=1, retain=True)
        self._listening_since = self._clock_ms()
        self._connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self._listening_since = None  # nodes are not silent while the fleet cannot hear them

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._queue.put(
            _Received(message.topic, bytes(message.payload), message.mid, message.qos, self._clock_ms())
        )

    # --- the consumer -------------------------------------------------------------------------

    def _consume(self) -> None:
        next_settle = 0.0
        while not self._stop.is_set() or not self._queue.empty():
            if self._monotonic() >= next_settle:
                next_settle = self._monotonic() + self.settings.settle_every_s
                self._settle()
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._busy = True
            batch = [first]
            while len(batch) < self.settings.batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # Decoded once: a retry after a database outage does not count a message again.
            decoded = [self._decode(item) for item in batch]
            attempt = 0
            while not self._process(batch, decoded):
                attempt += 1
                if self._stop.is_set():
                    return  # not acknowledged: the broker sends them again to the next fleet
                # Woken by stop(): a fleet shutting down during an outage does not sit out the wait.
                self._stop.wait(random.uniform(0, min(self.settings.retry_max_s, 0.2 * 2**attempt)))
            self._busy = False
        self._flush_rollups()  # what the last batches rolled up, before the thread ends

    def _flush_rollups(self) -> None:
        buckets = self._rollups.drain()
        if not buckets:
            return
        try:
            with Session(self.engine) as session, session.begin():
                rollups.store(session, buckets)
        except sa.exc.SQLAlchemyError as error:
            self._rollups.add(buckets)  # kept for the next flush
            self.counters.db_failures += 1
            log.error("fleet ingest: could not write %d telemetry roll-ups: %s", len(buckets), error)

    def _settle(self) -> None:
        """Silent nodes go offline, then debounced faults whose wait is over open or clear;
        the telemetry roll-ups gathered since the last time are written."""
        self._flush_rollups()
        now = self._clock_ms()
        listening_since = self._listening_since
        # Everything received up to `heard_until` is in the database.
        heard_until = now if self._queue.empty() else self._applied_until
        try:
            expired: list[str] = []
            if listening_since is not None:
                with Session(self.engine) as session, session.begin():
                    expired = expire_silent(
                        session, heard_until, policy=self.faults, listening_since=listening_since
                    )
            self.counters.timed_out += len(expired)
            for node_id in expired:
                log.warning(
                    "fleet ingest: node %s silent for %d s: offline",
                    node_id,
                    self.faults.rules.heartbeat_timeout_s,
                )
            with Session(self.engine) as session, session.begin():
                faults_store.settle_due(session, now, config=self.faults.rules, policy=self.faults.sla)
        except sa.exc.SQLAlchemyError as error:
            self.counters.db_failures += 1
            log.error("fleet ingest: could not settle faults: %s", error)

    def _process(self, batch: list[_Received], decoded: list[tuple[str, m.Message] | None]) -> bool:
        """Apply, write, acknowledge one batch; False when the database failed (retry it all)."""
        readings: list[NodeReading] = []
        rebirths: list[str] = []
        tally = IngestCounters()  # what this batch did, counted only once it is in the database
        rolled = rollups.RollupBuffer()  # kept only once the batch is committed
        try:
            with Session(self.engine) as session, session.begin():
                telemetry: list[tuple[str, m.Telemetry, int]] = []

                def flush_telemetry() -> None:
                    # Before any other message, so it sees the node as the telemetry did.
                    if telemetry:
                        accepted, asked = apply_telemetry(session, telemetry, rollup_into=rolled)
                        readings.extend(accepted)
                        rebirths.extend(asked)
                        tally.applied += len(telemetry)
                        telemetry.clear()

                for item, one in zip(batch, decoded, strict=True):
                    if one is None:
                        continue
                    node_id, message = one
                    if isinstance(message, m.Telemetry):
                        telemetry.append((node_id, message, item.at_ms))
                        continue
                    flush_telemetry()
                    applied = self._apply_one(session, node_id, message, item.at_ms, tally)
                    if applied is None:
                        continue
                    if applied.reading is not None:
                        readings.append(applied.reading)
                    if applied.rebirth:
                        rebirths.append(node_id)
                flush_telemetry()
        except sa.exc.SQLAlchemyError as error:
            self.counters.db_failures += 1
            log.error("fleet ingest: database unavailable, %d messages wait: %s", len(batch), error)
            return False
        self._count(tally)
        self._rollups.add(rolled.drain())
        if readings and self.tsdb is not None:
            try:
                self.tsdb.write(readings)
            except TimeSeriesError as error:
                # Telemetry is QoS 0 and superseded by the next reading: count, do not block.
                self.counters.tsdb_failures += 1
                log.warning("fleet ingest: %s", error)
        self._applied_until = batch[-1].at_ms
        for item in batch:
            if item.qos:
                self._client.ack(item.mid, item.qos)
        for node_id in dict.fromkeys(rebirths):
            self._ask_rebirth(node_id)
        return True

    def _decode(self, item: _Received) -> tuple[str, m.Message] | None:
        """The node and its message, or None (counted) when it is not one."""
        self.counters.received += 1
        topic = parse_topic(item.topic)
        if isinstance(topic, ContractError):
            self._reject(item.topic, _wrong_direction(item.topic) or topic)
            return None
        if topic.node_id is None:
            return None  # a host state (ours or another fleet worker's)
        message = m.decode(topic.kind, item.payload)
        if isinstance(message, ContractError):
            self._reject(item.topic, message)
            return None
        return topic.node_id, message

    def _apply_one(
        self, session: Session, node_id: str, message: m.Message, at_ms: int, tally: IngestCounters
    ) -> Applied | None:
        try:
            with session.begin_nested():  # one bad message must not undo the batch
                applied = apply(session, node_id, message, at_ms, faults=self.faults)
        except (sa.exc.IntegrityError, sa.exc.DataError) as error:
            # The database refuses this one message (a constraint, a value it cannot hold): not
            # an outage. Retrying it would hold every message behind it for ever; count it.
            tally.rejected["db-refused"] = tally.rejected.get("db-refused", 0) + 1
            self._warn_limited(
                "rejected/db-refused",
                "fleet ingest: the database refused a %s of %s: %s",
                m.kind_of(message),
                node_id,
                str(error.orig)[:300],
            )
            return None
        tally.applied += 1
        tally.duplicates += applied.verdict == "duplicate"
        tally.gaps += applied.verdict == "gap"
        if applied.visit is not None:
            self._count_visit(node_id, applied.visit, tally)
        return applied

    def _count(self, tally: IngestCounters) -> None:
        self.counters.applied += tally.applied
        self.counters.duplicates += tally.duplicates
        self.counters.gaps += tally.gaps
        for outcome, n in tally.visits.items():
            self.counters.visits[outcome] = self.counters.visits.get(outcome, 0) + n
        for reason, n in tally.rejected.items():
            self.counters.rejected[reason] = self.counters.rejected.get(reason, 0) + n

    def _count_visit(self, node_id: str, visit: VisitResult, tally: IngestCounters) -> None:
        outcome = visit.outcome.value
        tally.visits[outcome] = tally.visits.get(outcome, 0) + 1
        if visit.applied:
            log.info("fleet ingest: site visit %s of %s: %s", visit.visit_id, node_id, outcome)
            return
        self._warn_limited(
            f"visit/{outcome}",
            "fleet ingest: site visit %s of %s not applied to ticket %s (%s): %s",
            visit.visit_id,
            node_id,
            visit.ticket_id,
            outcome,
            visit.detail,
        )

    def _warn_limited(self, key: str, text: str, *args: object) -> None:
        """Log a warning unless one of the same `key` went out within `log_every_s`; the next
        one that does says how many were held back."""
        now = self._monotonic()
        last, suppressed = self._logged.get(key, (-1e9, 0))
        if now - last < self.settings.log_every_s:
            self._logged[key] = (last, suppressed + 1)
            return
        self._logged[key] = (now, 0)
        if suppressed:
            text += f" ({suppressed} more like it not logged)"
        log.warning(text, *args)

    def _reject(self, topic: str, error: ContractError) -> None:
        self.counters.rejected[error.reason] = self.counters.rejected.get(error.reason, 0) + 1
        # A broken or hostile node can send thousands a second: one line per reason a while.
        self._warn_limited(
            f"rejected/{error.reason}",
            "fleet ingest: message on %s rejected (%s): %s",
            topic[:200],
            error.reason,
            error,
        )

    def _ask_rebirth(self, node_id: str) -> None:
        now = self._monotonic()
        if now - self._rebirth_asked.get(node_id, -1e9) < self.settings.rebirth_every_s:
            return  # asked a moment ago; its birth is on its way
        self._rebirth_asked[node_id] = now
        ts = self._clock_ms()
        command = m.Command(
            ts=ts,
            command_id=f"rebirth-{ts}",
            name="rebirth",
            issued_by=f"fleet/{self.settings.host_id}",
            expires_at=ts + 60_000,
        )
        self._client.publish(node_topic(node_id, Kind.COMMAND), m.encode(command), qos=1)
        self.counters.rebirths_asked += 1


def _wrong_direction(topic: str) -> WrongDirection | None:
    """The sharper reason for a topic `parse_topic` refused: a valid node's up/ topic naming a
    kind nodes never send (a command, an alarm-ack, a host state). The fleet's subscription
    brings only up/ topics, so anything else stays a plain bad topic."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[4] != Direction.UP or parts[5] not in Kind.__members__.values():
        return None
    if ROUTES[Kind(parts[5])].direction is Direction.UP:
        return None  # refused for another reason
    # The same topic with a kind nodes do send must be valid: prefix and node id are right.
    if isinstance(parse_topic("/".join([*parts[:5], Kind.EVENT])), ContractError):
        return None
    sent_up = ", ".join(kind for kind, route in ROUTES.items() if route.direction is Direction.UP)
    return WrongDirection(f"nodes never send {parts[5]!r}; they send {sent_up}")
