"""Fleet manager API: how soon a node's death shows as a fault in the API, and how fast the API
lists the whole fleet with each node's state. Real Mosquitto, real PostgreSQL, and the fleet
(MQTT ingest + API on one engine, uvicorn on a free port) in a process of its own, called over
HTTP with a viewer's token, as a control room would call it.

- Death -> fault visible: N nodes are born (QoS 1 births through the real `Ingest`); then, one
  node at a time, the node's death (its own bd_seq, as its will would say) is published and
  `GET /api/v1/faults?node=<id>&kind=offline` is polled (5 ms between polls, one keep-alive
  connection) until the offline ticket is listed. Latency: publish -> the first answer showing
  it. The contract's offline debounce (300 s by default) is set to 0 s here: the figure is the
  pipeline, not the debounce. With 0 s the ticket opens while the death is applied
  (`fleet.faults.store.observe` -> `rules.track` settles at once), not at the ingest's next
  settle tick (`settle_every_s`, 1 s). Reference: the same deaths delivered by the same broker
  to the C `mosquitto_sub` (QoS 1), timed from the same publish. Where the time goes: publish ->
  the fleet's MQTT thread (the ticket's opened_at is that receive time), the ingest's
  transaction for one death called alone, and when the polls went out and how long each took.
  The issue's aim is p99 <= 1 s.
- Listing: N nodes with sites, controllers and cameras, one in ten offline with its offline
  fault, one in twenty with a door fault (faults opened by the fault store), database vacuumed
  and analysed; then `GET /api/v1/nodes?limit=N` (every node in one page) over one keep-alive
  connection, after a warm-up. Reference: the route's own SQL (captured from `list_nodes`) run
  through psycopg. Where the time goes: `list_nodes` called in this process (SQL, ORM rows,
  `NodeState` models; no HTTP, no JSON), and `GET /api/v1/health` (no token, `SELECT 1`).

On the 2-core dev machine (2026-11-25, two full runs, other sessions' tests running beside):

- death -> fault in the API: p50 25-30 ms, p99 36-40 ms over 500 deaths (aim p99 <= 1 s:
  met); mosquitto_sub got the same deaths at p50 0.7-0.8 ms, p99 1.8-2.2 ms. The fleet has
  the death ~1 ms after publish, and its transaction for it (node row FOR UPDATE, the fault
  condition upserted and locked, the ticket inserted, commit) takes 7-9 ms alone (p99 12-14
  ms). The rest is the poller's resolution: the first poll, sent at once, misses and takes
  10-12 ms (it shares the fleet process's GIL and the database with that transaction), then
  the 5 ms pause; the poll that finds the ticket goes out at 19-22 ms and answers 6-8 ms
  later. So the pipeline is about a third of the figure; the settle timer plays no part.
- GET /api/v1/nodes?limit=3000 (666 kB): p50 51-56 ms, p99 176-191 ms over 200 requests;
  its SQL alone p50 11 ms, p99 17 ms; `list_nodes` in-process p50 44-50 ms; /health p50 1.3
  ms. So the route's Python dominates: loading 3,000 full `Node` entities through the ORM
  (the largest part, ~40 % under cProfile), then 3,000 `NodeState` validations (~20 %);
  FastAPI's serialisation and the transfer add 5-7 ms (the difference of the medians). The
  p99 is CPython's cyclic GC (a full collection of the process's heap during a request that
  makes ~100k objects): tried by hand, `gc.freeze()` after the fleet's start-up brought the
  p99 to 75-95 ms. Selecting columns instead of `Node` entities in `_node_rows` would cut the
  ORM part; at these figures (far below 1 s) the route was left as it is.

    python bench/fleet_api.py [--quick]
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import multiprocessing
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as paho
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from bench._report import Latency, percentile, print_header, print_latencies, quick_flag
from fleet.access import tokens
from fleet.access.roles import Role
from fleet.api.app import create_app
from fleet.db import make_engine, migrate
from fleet.faults import rules
from fleet.faults import store as fault_store
from fleet.faults.rules import Debounce, FaultKey, FaultRulesConfig, Observation
from fleet.faults.sla import SlaPolicy
from fleet.ingest.apply import FaultPolicy, apply
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.inventory.models import Camera, Controller, Node, Site
from fleet.inventory.routes import list_nodes
from protocols import messages as m
from protocols.topics import PREFIX, Kind, node_topic
from watchpost.apiserver import ApiServer
from watchpost.broker import MosquittoBroker
from watchpost.postgres import PostgresCluster


@dataclass(frozen=True, slots=True)
class Counts:
    deaths: int  # nodes born, then each one's death timed
    nodes: int  # nodes listed in one page
    requests: int  # listing requests timed (and SQL runs, in-process calls, /health requests)
    warmup: int


FULL, QUICK = Counts(500, 3000, 200, 10), Counts(20, 300, 20, 3)
POLL_EVERY_S = 0.005
PAUSE_BETWEEN_DEATHS_S = 0.02  # each death meets an idle pipeline
TARGET_DEATH_P99_MS = 1000.0

DEATH = "death published -> offline fault in GET /api/v1/faults"
DEATH_REFERENCE = "the same deaths delivered to mosquitto_sub (QoS 1)"
DEATH_RECEIVED = "publish -> the fleet's MQTT thread has the death (in 1 ms steps)"
DEATH_TRANSACTION = "ingest's transaction for one death (apply + commit), alone"
DEATH_MISSED = "publish -> the last poll not showing it was sent"
DEATH_FOUND = "publish -> the first poll showing it was sent"
DEATH_POLL = "one poll: GET /api/v1/faults?node=..., round trip"
LISTING = "GET /api/v1/nodes, every node in one page, keep-alive"
LISTING_REFERENCE = "the route's own SQL alone, psycopg"
ROUTE_IN_PROCESS = "list_nodes() called in-process: SQL + ORM + NodeState, no HTTP"
HEALTH = "GET /api/v1/health, keep-alive (no token, SELECT 1): the HTTP floor"

# The offline fault opens as soon as the death is applied: the pipeline, not the contract's
# debounce (300 s by default), is what is measured.
OFFLINE_AT_ONCE = FaultRulesConfig(
    per_kind={**FaultRulesConfig().per_kind, rules.OFFLINE: Debounce(raise_after_s=0, clear_after_s=300)}
)


def node_id(n: int) -> str:
    return f"pole-{n:05d}"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the fleet process ----------------------------------------------------------------------------


def serve_fleet(url: str, broker_port: int | None, pipe: Connection) -> None:
    """One fleet process: MQTT ingest (when given a broker) and the API on one engine. Sends
    the API's port (or what went wrong), then runs until told to stop."""
    logging.basicConfig(level=logging.ERROR)
    engine = make_engine(url)
    ingest: Ingest | None = None
    try:
        if broker_port is not None:
            ingest = Ingest(
                IngestSettings(host="127.0.0.1", port=broker_port),
                engine=engine,
                faults=FaultPolicy(rules=OFFLINE_AT_ONCE),
            )
            ingest.start()
        server = ApiServer(create_app(engine)).__enter__()
    except Exception as error:
        pipe.send(f"the fleet did not start: {error!r}")
        raise
    pipe.send(server.port)
    pipe.recv()  # "stop", or EOF when the benchmark died
    server.__exit__(None, None, None)
    if ingest is not None:
        ingest.stop()
    engine.dispose()


@contextlib.contextmanager
def running_fleet(url: str, broker_port: int | None = None) -> Iterator[int]:
    """The fleet process around the database at `url`; yields its API port."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve_fleet, args=(url, broker_port, theirs), name="fleet", daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 60
        while not ours.poll(0.1):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fleet process did not start")
        answer = ours.recv()
        if not isinstance(answer, int):
            raise RuntimeError(str(answer))
        yield answer
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()


class HttpApi:
    """The API over one keep-alive HTTP/1.1 connection, with a bearer token."""

    def __init__(self, port: int, token: str | None) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> bytes:
        self._conn.request("GET", path, headers=self._headers)
        response = self._conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return body

    def close(self) -> None:
        self._conn.close()


def viewer_token(engine: sa.Engine) -> str:
    with Session(engine) as db, db.begin():
        return tokens.issue(db, subject="bench-viewer", role=Role.VIEWER, now_ms=wall_ms(), by="bench").token


def new_database(postgres: PostgresCluster, name: str) -> tuple[str, sa.Engine]:
    url = postgres.create_database(name)
    migrate(url)
    return url, make_engine(url)


# --- death -> fault visible -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeathRun:
    latency: Latency
    received_ms: list[int]  # publish -> the fleet's paho thread, per death (ms resolution)
    transactions_us: list[int]  # the ingest's transaction for one death, alone
    missed_us: list[int]  # publish -> the last poll that did not find it was sent
    found_us: list[int]  # publish -> the poll that found the ticket was sent
    polls_us: list[int]  # each poll's round trip


def bd_seq_of(n: int) -> int:
    return (n * 37) % 256  # each node its own, as after restarts


def birth_of(n: int) -> m.NodeBirth:
    return m.NodeBirth(
        ts=wall_ms(),
        seq=0,
        bd_seq=bd_seq_of(n),
        site_id=f"site-{n:05d}",
        hardware="raspberrypi-4b",
        agent_version="0.4.2",
        cameras=[m.CameraInfo(camera_id="cam-1", name="north")],
    )


def publish_births(client: paho.Client, nodes: int) -> None:
    for n in range(nodes):
        client.publish(node_topic(node_id(n), Kind.BIRTH), m.encode(birth_of(n)), qos=1).wait_for_publish(10)


def death_transactions(engine: sa.Engine, first: int, count: int) -> list[int]:
    """µs of the ingest's own work for one death, called in this process (no MQTT, no HTTP, no
    other thread): `apply` in a savepoint and the commit, as the consumer does it, for nodes
    born just before (untimed), so each death opens a ticket."""
    policy = FaultPolicy(rules=OFFLINE_AT_ONCE)
    samples = []
    for n in range(first, first + count):
        with Session(engine) as db, db.begin():
            apply(db, node_id(n), birth_of(n), wall_ms(), faults=policy)
        death = m.NodeDeath(ts=wall_ms(), bd_seq=bd_seq_of(n))
        started = time.perf_counter()
        with Session(engine) as db, db.begin(), db.begin_nested():
            apply(db, node_id(n), death, wall_ms(), faults=policy)
        samples.append(int((time.perf_counter() - started) * 1e6))
    return samples


def wait_until(done: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.02)


def online_nodes(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(Node).where(Node.online)) or 0)


@dataclass
class DeathTimes:
    published: dict[str, float] = field(default_factory=dict)  # node -> wall-clock s of its death
    visible_us: list[int] = field(default_factory=list)  # publish -> the API's answer showing it
    found_us: list[int] = field(default_factory=list)  # publish -> that answer's request sent
    missed_us: list[int] = field(default_factory=list)  # publish -> the last request not showing it
    polls_us: list[int] = field(default_factory=list)  # every poll's round trip


def publish_deaths(client: paho.Client, api: HttpApi, deaths: int) -> DeathTimes:
    """Each node's death in turn, each polled for until the API shows its offline ticket."""
    times = DeathTimes()
    for n in range(deaths):
        node = node_id(n)
        path = f"/api/v1/faults?node={node}&kind={rules.OFFLINE}"
        payload = m.encode(m.NodeDeath(ts=wall_ms(), bd_seq=bd_seq_of(n)))
        topic = node_topic(node, Kind.DEATH)
        time.sleep(PAUSE_BETWEEN_DEATHS_S)
        times.published[node] = time.time()
        started = time.perf_counter()
        client.publish(topic, payload, qos=1)
        missed = 0.0
        while True:
            asked = time.perf_counter()
            items = json.loads(api.get(path))["items"]
            answered = time.perf_counter()
            times.polls_us.append(int((answered - asked) * 1e6))
            if items:
                times.found_us.append(int((asked - started) * 1e6))
                times.missed_us.append(int(missed * 1e6))
                times.visible_us.append(int((answered - started) * 1e6))
                break
            missed = asked - started
            time.sleep(POLL_EVERY_S)
    return times


def measure_deaths(broker: MosquittoBroker, postgres: PostgresCluster, deaths: int) -> DeathRun:
    mosquitto_sub = shutil.which("mosquitto_sub")
    if mosquitto_sub is None:
        raise SystemExit("mosquitto_sub not found: install the Debian package mosquitto-clients")
    url, engine = new_database(postgres, "deaths")
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-nodes")
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        token = viewer_token(engine)
        with running_fleet(url, broker.port) as port:
            publish_births(client, deaths)
            wait_until(lambda: online_nodes(engine) == deaths, f"{deaths} births applied")
            # The reference subscriber prints each arrival's wall-clock time (ns) and topic.
            where = ["-h", broker.host, "-p", str(broker.port), "-t", f"{PREFIX}/node/+/up/{Kind.DEATH}"]
            reference = subprocess.Popen(
                [mosquitto_sub, *where, "-q", "1", "-C", str(deaths), "-F", "%U %t"],
                stdout=subprocess.PIPE,
                text=True,
            )
            api = HttpApi(port, token)
            try:
                time.sleep(0.5)  # subscribed before the first death
                times = publish_deaths(client, api, deaths)
                out, _ = reference.communicate(timeout=60)
            finally:
                api.close()
                if reference.poll() is None:
                    reference.kill()
                    reference.wait()
        with Session(engine) as db:
            ticket = fault_store.FaultTicketRow
            query = sa.select(ticket.node_id, ticket.opened_at_ms).where(ticket.kind == rules.OFFLINE)
            opened: dict[str, int] = dict(db.execute(query).all())
        transactions_us = death_transactions(engine, deaths, deaths)
    finally:
        client.disconnect()
        client.loop_stop()
        engine.dispose()
    reference_us = []
    for line in out.splitlines():
        arrived, topic = line.split(" ", 1)
        reference_us.append(int((float(arrived) - times.published[topic.split("/")[3]]) * 1e6))
    # The ticket opened when the fleet's MQTT thread received the death (its receive time).
    received = [round(opened[node] - at * 1000) for node, at in times.published.items()]
    latency = Latency.from_samples(DEATH, times.visible_us, DEATH_REFERENCE, reference_us)
    return DeathRun(latency, received, transactions_us, times.missed_us, times.found_us, times.polls_us)


# --- listing every node ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListingRun:
    latency: Latency
    page_bytes: int
    offline: int
    with_faults: int
    route_us: list[int]
    health_us: list[int]


DISTRICTS = ("Jung-gu", "Nam-gu", "Buk-gu", "Seo-gu", "Dong-gu")


def seed_fleet(engine: sa.Engine, nodes: int) -> None:
    """Nodes as their births leave them (bulk, through the models); faults through the fault
    store, as ingest opens them: one node in ten offline, one in twenty with its door open."""
    now = wall_ms()
    with Session(engine) as db, db.begin():
        for n in range(nodes):
            site = Site(
                site_id=f"site-{n:05d}",
                name=f"Pole {n} at crossing {n // 7}",
                address=f"{n} Main Street",
                district=DISTRICTS[n % len(DISTRICTS)],
                pole_type="steel-8m",
                latitude=35.1 + n * 1e-5,
                longitude=129.0 + n * 1e-5,
                has_bell=n % 3 == 0,
            )
            node = Node(
                node_id=node_id(n),
                site=site,
                hardware="raspberrypi-4b",
                agent_version="0.4.2" if n % 4 else "0.4.1",
                online=n % 10 != 0,
                bd_seq=bd_seq_of(n),
                last_seq=n % 1000,
                last_seen_ms=now - (n % 60) * 1000,
                birth_ms=now - 86_400_000,
            )
            node.controller = Controller(link="serial", firmware_version="1.3.0", reset_cause="power-on")
            node.cameras = [Camera(camera_id="cam-1", name="north"), Camera(camera_id="cam-2", name="south")]
            db.add(node)
    policy = SlaPolicy()
    with Session(engine) as db, db.begin():
        for n in range(nodes):
            observations = []
            if n % 10 == 0:
                observations.append(rules.node_offline(node_id(n), at=now, config=OFFLINE_AT_ONCE))
            if n % 20 == 5:
                door = FaultKey(node_id(n), "cabinet", "door")
                observations.append(Observation(door, raised=True, at=now, severity="major"))
            for observation in observations:
                fault_store.observe(db, observation, config=OFFLINE_AT_ONCE, policy=policy)
    # A settled database, as a running fleet's is: statistics for the planner, and no autovacuum
    # of the fresh rows competing for the CPUs while the requests are timed.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def route_sql(engine: sa.Engine, limit: int) -> tuple[str, Any]:
    """The SQL (and its parameters) that `list_nodes` sends for one page of `limit` nodes."""
    sent: list[tuple[str, Any]] = []

    def capture(*event: Any) -> None:  # (conn, cursor, statement, parameters, context, many)
        sent.append((event[2], event[3]))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as db, db.begin():
            list_nodes(db=db, limit=limit)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    (query,) = [(statement, parameters) for statement, parameters in sent if "fault_ticket" in statement]
    return query


def timed(work: Callable[[], object], warmup: int, runs: int) -> list[int]:
    """µs of each of `runs` calls of `work`, after `warmup` untimed ones."""
    for _ in range(warmup):
        work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(int((time.perf_counter() - started) * 1e6))
    return samples


def measure_listing(postgres: PostgresCluster, nodes: int, requests: int, warmup: int) -> ListingRun:
    url, engine = new_database(postgres, "listing")
    try:
        seed_fleet(engine, nodes)
        token = viewer_token(engine)
        statement, parameters = route_sql(engine, nodes)
        with running_fleet(url) as port:
            api = HttpApi(port, token)
            anonymous = HttpApi(port, None)
            try:
                path = f"/api/v1/nodes?limit={nodes}"
                page = json.loads(api.get(path))
                if len(page["items"]) != nodes:
                    raise RuntimeError(f"{path} listed {len(page['items'])} nodes, not {nodes}")
                page_bytes = len(api.get(path))
                listing_us = timed(lambda: api.get(path), warmup, requests)
                health_us = timed(lambda: anonymous.get("/api/v1/health"), warmup, requests)
            finally:
                api.close()
                anonymous.close()
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()

            def run_sql() -> None:
                cursor.execute(statement, parameters)
                cursor.fetchall()

            sql_us = timed(run_sql, warmup, requests)
            cursor.close()
        finally:
            raw.close()

        def call_route() -> None:
            with Session(engine, expire_on_commit=False) as db, db.begin():  # as fleet.api.deps
                list_nodes(db=db, limit=nodes)

        route_us = timed(call_route, warmup, requests)
    finally:
        engine.dispose()
    items = page["items"]
    return ListingRun(
        Latency.from_samples(LISTING, listing_us, LISTING_REFERENCE, sql_us),
        page_bytes,
        offline=sum(not item["online"] for item in items),
        with_faults=sum(item["open_faults"] > 0 for item in items),
        route_us=route_us,
        health_us=health_us,
    )


# --- report ---------------------------------------------------------------------------------------


def print_breakdown(rows: Sequence[tuple[str, Sequence[int], str]]) -> None:
    """Indented lines `label  p50 ...  p99 ...  unit`, samples in `unit` (µs shown as ms)."""
    print("  where the time goes:")
    width = max(len(label) for label, _, _ in rows)
    for label, samples, unit in rows:
        scale = 1000 if unit == "us" else 1
        p50, p99 = (percentile(samples, pct) / scale for pct in (50, 99))
        print(f"    {label:<{width}}  p50 {p50:,.3f}  p99 {p99:,.3f}  ms")


def run(quick: bool) -> list[Latency]:
    return [result.latency for result in _runs(QUICK if quick else FULL)]


def _runs(counts: Counts) -> tuple[DeathRun, ListingRun]:
    with MosquittoBroker() as broker, PostgresCluster() as postgres:
        death_run = measure_deaths(broker, postgres, counts.deaths)
        listing_run = measure_listing(postgres, counts.nodes, counts.requests, counts.warmup)
    return death_run, listing_run


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    logging.basicConfig(level=logging.ERROR)
    counts = QUICK if quick else FULL
    death_run, listing_run = _runs(counts)
    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout
    print_header(
        "fleet API: a death to a visible fault, and every node in one page",
        [
            ("broker", version.splitlines()[0] if version else "mosquitto"),
            ("fleet", "ingest + API (uvicorn) on one engine, in a process of its own; real PostgreSQL"),
            (
                "deaths",
                f"{counts.deaths:,} nodes born, then each one's death in turn; offline debounce set to 0 s "
                f"(default 300 s); API polled every {POLL_EVERY_S * 1000:.0f} ms",
            ),
            (
                "listing",
                f"{counts.nodes:,} nodes ({listing_run.offline:,} offline, "
                f"{listing_run.with_faults:,} with open faults), {counts.requests} requests after a "
                f"warm-up, {listing_run.page_bytes:,} bytes a page",
            ),
        ],
        quick=quick,
    )
    print_latencies([death_run.latency])
    print_breakdown(
        [
            (DEATH_RECEIVED, death_run.received_ms, "ms"),
            (DEATH_TRANSACTION, death_run.transactions_us, "us"),
            (DEATH_MISSED, death_run.missed_us, "us"),
            (DEATH_FOUND, death_run.found_us, "us"),
            (DEATH_POLL, death_run.polls_us, "us"),
        ]
    )
    verdict = "met" if death_run.latency.p99 <= TARGET_DEATH_P99_MS else "NOT met"
    print(f"{DEATH}: target p99 <= {TARGET_DEATH_P99_MS:.0f} ms, {verdict}")
    print()
    print_latencies([listing_run.latency])
    print_breakdown([(ROUTE_IN_PROCESS, listing_run.route_us, "us"), (HEALTH, listing_run.health_us, "us")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
