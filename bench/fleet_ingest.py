"""Fleet ingest throughput: telemetry from many nodes through a real Mosquitto into one fleet
process (PostgreSQL for the node sessions, VictoriaMetrics for the time series), in messages/s.

The stream is N nodes' births, then telemetry from each in turn (QoS 0, ~150-byte JSON), sent
by one publisher as fast as the broker takes it. The figure counts from the first telemetry
published to the last one applied and written. The reference is the C `mosquitto_sub`
subscribed to the same stream in the same run: the ceiling a consumer on this machine can
approach. The issue's aim is >= 10,000 msg/s (100k nodes at one message per 10 s).

    python bench/fleet_ingest.py [--quick]
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._report import Figure, print_figures, print_header, quick_flag
from fleet.db import make_engine, migrate
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.tsdb import TimeSeriesWriter
from protocols import messages as m
from protocols.topics import Kind, node_topic
from watchpost.broker import MosquittoBroker
from watchpost.postgres import PostgresCluster
from watchpost.victoriametrics import VictoriaMetrics

FULL_NODES, FULL_ROUNDS = 1000, 20
QUICK_NODES, QUICK_ROUNDS = 50, 4
TARGET = 10_000

INGEST = "fleet ingest: decode, node session in PostgreSQL, time series write"
REFERENCE = "mosquitto_sub on the same stream"


def node_id(n: int) -> str:
    return f"pole-{n:05d}"


def publish_stream(
    broker: MosquittoBroker, nodes: int, rounds: int, births_applied: Callable[[], bool]
) -> float:
    """Births (QoS 1), then, once the fleet has them, telemetry; returns perf_counter when the
    first telemetry went. (Waiting matters: the broker holds QoS 1 messages to a client with
    unacknowledged ones in flight, so QoS 0 telemetry would overtake the births.)"""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        now = int(time.time() * 1000)
        for n in range(nodes):
            birth = m.NodeBirth(
                ts=now, seq=0, bd_seq=0, site_id=f"site-{n:05d}", hardware="pi", agent_version="0.1.0"
            )
            client.publish(node_topic(node_id(n), Kind.BIRTH), m.encode(birth), qos=1).wait_for_publish(10)
        while not births_applied():
            time.sleep(0.01)
        started = time.perf_counter()
        for r in range(rounds):
            for n in range(nodes):
                reading = m.Telemetry(
                    ts=now + r * 10_000 + n,
                    seq=0,
                    readings=m.Readings(uptime_s=r * 10, cpu_temp_c=45.0 + r % 7, outbox_backlog=0),
                )
                client.publish(node_topic(node_id(n), Kind.TELEMETRY), m.encode(reading), qos=0)
        return started
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    logging.basicConfig(level=logging.ERROR)
    nodes, rounds = (QUICK_NODES, QUICK_ROUNDS) if quick else (FULL_NODES, FULL_ROUNDS)
    total = nodes * rounds
    mosquitto_sub = shutil.which("mosquitto_sub")
    if mosquitto_sub is None:
        raise SystemExit("mosquitto_sub not found: install the Debian package mosquitto-clients")
    with MosquittoBroker() as broker, PostgresCluster() as postgres, VictoriaMetrics() as victoria:
        url = postgres.create_database("bench")
        migrate(url)
        engine = make_engine(url)
        tsdb = TimeSeriesWriter(url=victoria.url)
        ingest = Ingest(
            IngestSettings(host=broker.host, port=broker.port, batch_max=1000), engine=engine, tsdb=tsdb
        )
        ingest.start()
        topic = "watchpost/v1/node/+/up/telemetry"
        reference = subprocess.Popen(
            [
                mosquitto_sub,
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-q",
                "0",
                "-C",
                str(total),
                "-t",
                topic,
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # both subscribed before the stream starts
        try:
            started = publish_stream(broker, nodes, rounds, lambda: ingest.counters.applied >= nodes)
            reference.wait(timeout=600)
            reference_s = time.perf_counter() - started
            while ingest.counters.applied < nodes + total or not ingest.idle():
                time.sleep(0.01)
            ingest_s = time.perf_counter() - started
            written = tsdb.points_written
        finally:
            ingest.stop()
            tsdb.close()
            engine.dispose()
    print_header(
        "fleet ingest: node telemetry from a real Mosquitto into one fleet process",
        [
            ("stream", f"{nodes:,} nodes x {rounds} readings = {total:,} telemetry messages (QoS 0)"),
            ("stores", f"PostgreSQL (node sessions), VictoriaMetrics ({written:,} points written)"),
            ("rebirths", f"{ingest.counters.rebirths_asked} asked (0 expected: the births came first)"),
        ],
        quick=quick,
    )
    print_figures(
        [
            Figure.from_runs(
                INGEST, [ingest_s], REFERENCE, [reference_s], amount=total, unit="msg/s", target=TARGET
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
