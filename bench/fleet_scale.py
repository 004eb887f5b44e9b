"""The fleet at 100,000 nodes: a load generator speaks for them through a few MQTT connections
(real Mosquitto), into one fleet ingest process (PostgreSQL for node sessions and faults,
VictoriaMetrics for the time series). Three figures, each beside the C `mosquitto_sub`
subscribed to the same messages in the same run (what the broker can deliver to one consumer
on this machine):

- births: every node born (QoS 1), until the fleet has applied them all: births/s;
- telemetry: each node once per round (QoS 0, the contract's 10 s interval squeezed), until
  the fleet has applied and written it all: msg/s (the issue's aim at this size is 10,000 msg/s,
  100,000 nodes at one message per 10 s);
- fault detection: 1 % of the nodes die at once (their wills, QoS 1), until the last one's
  offline fault ticket is open in the database: seconds for all of them, and deaths/s. The
  offline debounce is 0 s here: the figure is the pipeline, not the debounce.

The city has ~1,500 poles; 100,000 is the headroom the design claims.

    python bench/fleet_scale.py [--quick] [--nodes N]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as paho
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from bench._report import Figure, print_figures, print_header
from fleet.db import make_engine, migrate
from fleet.faults import rules
from fleet.faults.rules import Debounce, FaultRulesConfig
from fleet.faults.store import FaultTicketRow
from fleet.ingest.apply import FaultPolicy
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.tsdb import TimeSeriesWriter
from protocols import messages as m
from protocols.topics import Kind, node_topic
from watchpost.broker import MosquittoBroker
from watchpost.postgres import PostgresCluster
from watchpost.victoriametrics import VictoriaMetrics

FULL_NODES, QUICK_NODES = 100_000, 2_000
FULL_ROUNDS, QUICK_ROUNDS = 3, 2
CONNECTIONS = 4
DEATH_SHARE = 0.01
WAIT_S = 1800.0  # a guard against a stuck run, not a figure
# Offline at once (the figure is the pipeline, not the debounce), and a heartbeat timeout of a
# day: the generator sends nothing for a node between its birth and its telemetry, and 100,000
# births take minutes, longer than the default 180 s of silence before a node counts as gone.
OFFLINE_AT_ONCE = FaultRulesConfig(
    per_kind={**FaultRulesConfig().per_kind, rules.OFFLINE: Debounce(raise_after_s=0, clear_after_s=300)},
    heartbeat_timeout_s=86_400,
)


def node_id(n: int) -> str:
    return f"pole-{n:06d}"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the load generator -------------------------------------------------------------------------


class Publishers:
    """`CONNECTIONS` MQTT clients; node n speaks through client n % CONNECTIONS, each client from
    a thread of its own, as a gateway for many nodes would."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.clients = []
        for k in range(CONNECTIONS):
            client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"load-{k}")
            client.max_queued_messages_set(0)
            client.max_inflight_messages_set(1000)
            client.connect(broker.host, broker.port)
            client.loop_start()
            self.clients.append(client)

    def each(self, nodes: int, message_of: Callable[[int], tuple[str, bytes]], *, qos: int) -> None:
        def work(k: int) -> None:
            client = self.clients[k]
            last = None
            for n in range(k, nodes, CONNECTIONS):
                topic, payload = message_of(n)
                last = client.publish(topic, payload, qos=qos)
            if last is not None and qos > 0:
                last.wait_for_publish(WAIT_S)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def birth(n: int) -> tuple[str, bytes]:
    message = m.NodeBirth(
        ts=wall_ms(),
        seq=0,
        bd_seq=n % 256,
        site_id=f"site-{n // 2:06d}",
        hardware="pi",
        agent_version="1.0.0",
    )
    return node_topic(node_id(n), Kind.BIRTH), m.encode(message)


def telemetry(round_: int) -> Callable[[int], tuple[str, bytes]]:
    def of(n: int) -> tuple[str, bytes]:
        reading = m.Telemetry(
            ts=wall_ms(),
            seq=round_ + 1,
            readings=m.Readings(uptime_s=round_ * 10, cpu_temp_c=45.0 + n % 7, outbox_backlog=0),
        )
        return node_topic(node_id(n), Kind.TELEMETRY), m.encode(reading)

    return of


def death(n: int) -> tuple[str, bytes]:
    return node_topic(node_id(n), Kind.DEATH), m.encode(m.NodeDeath(ts=wall_ms(), bd_seq=n % 256))


# --- measuring --------------------------------------------------------------------------------


def reference(broker: MosquittoBroker, topic: str, count: int, qos: int) -> subprocess.Popen[bytes]:
    mosquitto_sub = shutil.which("mosquitto_sub")
    if mosquitto_sub is None:
        raise SystemExit("mosquitto_sub not found: install the Debian package mosquitto-clients")
    process = subprocess.Popen(
        [
            mosquitto_sub,
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-q",
            str(qos),
            "-C",
            str(count),
            "-t",
            topic,
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # subscribed before the stream starts
    return process


def wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.02)


@dataclass
class Phase:
    fleet_s: float
    reference_s: float


def timed(
    broker: MosquittoBroker,
    *,
    topic: str,
    count: int,
    qos: int,
    send: Callable[[], None],
    done: Callable[[], bool],
) -> Phase:
    sub = reference(broker, topic, count, qos)
    started = time.perf_counter()
    send()
    sub.wait(timeout=WAIT_S)
    reference_s = time.perf_counter() - started
    wait_until(done, f"the fleet to take {count:,} messages on {topic}")
    return Phase(time.perf_counter() - started, reference_s)


def offline_tickets(engine: sa.Engine) -> int:
    with Session(engine) as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(FaultTicketRow)
                .where(FaultTicketRow.kind == rules.OFFLINE)
            )
            or 0
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 nodes: a smoke run for CI, not a figure")
    parser.add_argument(
        "--nodes", type=int, default=None, help=f"nodes to speak for (default {FULL_NODES:,})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    nodes = args.nodes or (QUICK_NODES if args.quick else FULL_NODES)
    rounds = QUICK_ROUNDS if args.quick else FULL_ROUNDS
    deaths = max(1, int(nodes * DEATH_SHARE))
    with MosquittoBroker() as broker, PostgresCluster() as postgres, VictoriaMetrics() as victoria:
        url = postgres.create_database("scale")
        migrate(url)
        engine = make_engine(url)
        tsdb = TimeSeriesWriter(url=victoria.url)
        ingest = Ingest(
            IngestSettings(host=broker.host, port=broker.port, batch_max=1000),
            engine=engine,
            tsdb=tsdb,
            faults=FaultPolicy(rules=OFFLINE_AT_ONCE),
        )
        ingest.start()
        load = Publishers(broker)
        try:
            applied = ingest.counters
            births = timed(
                broker,
                topic="watchpost/v1/node/+/up/birth",
                count=nodes,
                qos=1,
                send=lambda: load.each(nodes, birth, qos=1),
                done=lambda: applied.applied >= nodes and ingest.idle(),
            )
            total = nodes * rounds

            def send_rounds() -> None:
                for r in range(rounds):
                    load.each(nodes, telemetry(r), qos=0)

            stream = timed(
                broker,
                topic="watchpost/v1/node/+/up/telemetry",
                count=total,
                qos=0,
                send=send_rounds,
                done=lambda: applied.applied >= nodes + total and ingest.idle(),
            )
            before = offline_tickets(engine)
            detection = timed(
                broker,
                topic="watchpost/v1/node/+/up/death",
                count=deaths,
                qos=1,
                send=lambda: load.each(deaths, death, qos=1),
                done=lambda: offline_tickets(engine) >= before + deaths,
            )
            written = tsdb.points_written
            rebirths = applied.rebirths_asked
            timed_out = applied.timed_out
        finally:
            load.close()
            ingest.stop()
            tsdb.close()
            engine.dispose()

    print_header(
        "fleet at scale: a load generator speaking for many nodes, one fleet ingest process",
        [
            ("nodes", f"{nodes:,} through {CONNECTIONS} MQTT connections"),
            ("telemetry", f"{rounds} rounds = {total:,} messages (QoS 0); {written:,} points written"),
            ("deaths", f"{deaths:,} at once (1 %), offline debounce 0 s, heartbeat timeout 1 day"),
            ("timed out", f"{timed_out} nodes taken offline for silence (0 expected)"),
            ("rebirths", f"{rebirths} asked (0 expected)"),
        ],
        quick=args.quick,
    )
    reference_name = "mosquitto_sub on the same messages"
    print_figures(
        [
            Figure.from_runs(
                "births applied (node sessions, sites)",
                [births.fleet_s],
                reference_name,
                [births.reference_s],
                amount=nodes,
                unit="births/s",
            ),
            Figure.from_runs(
                "telemetry applied and written",
                [stream.fleet_s],
                reference_name,
                [stream.reference_s],
                amount=total,
                unit="msg/s",
                target=10_000,
            ),
            Figure.from_runs(
                "deaths to open offline tickets",
                [detection.fleet_s],
                reference_name,
                [detection.reference_s],
                amount=deaths,
                unit="deaths/s",
            ),
        ]
    )
    print(
        f"all {deaths:,} offline tickets open {detection.fleet_s:.2f} s after the first death was published"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
