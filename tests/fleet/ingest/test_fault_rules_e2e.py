"""Every fault rule end to end: a pole's events, built by the edge's own rules (edge.rules), go
through a real Mosquitto into the real fleet ingest on the embedded SQLite and a real
PostgreSQL. Each opens exactly one ticket of the right kind, component and severity once it has
held; a flapping input stays one ticket; the cleared condition auto-clears it (kept, cancelled
when nobody was sent). A node goes offline by its death and by silence, and a technician's
signed site visits carry a ticket to on-site and resolved.

The fleet's clock is the test's (`Clock`): the debounce waits below are short, and the test
moves time past them instead of sleeping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from edge.identity import load_or_create_node_key
from edge.pole import ControllerRestarted, DoorChange, InputFault
from edge.rules import camera_event, event_for, gap_event, storage_event
from fleet.alarms.models import BellAlarmRecord
from fleet.faults import store
from fleet.faults.rules import Debounce, FaultRulesConfig
from fleet.faults.store import FaultTicketRow
from fleet.faults.tickets import Action, TicketState, Verification
from fleet.ingest.apply import FaultPolicy
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.inventory.models import Node
from protocols import messages as m
from protocols.topics import node_topic
from protocols.visits import public_key_text, sign_visit
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker

pytestmark = pytest.mark.broker

T0 = 1_764_000_000_000
S = 1000
MIN = 60 * S
NODE = "pole-0412"

# Short waits, so the numbers below are easy to follow; the clock is moved, never slept on.
RULES = FaultRulesConfig(
    default=Debounce(raise_after_s=0, clear_after_s=30),  # door, tamper, storage, bells
    per_kind={
        "temperature": Debounce(raise_after_s=20, clear_after_s=40),
        "supply": Debounce(raise_after_s=10, clear_after_s=30),
        "link": Debounce(raise_after_s=10, clear_after_s=30),
        "camera": Debounce(raise_after_s=15, clear_after_s=30),
        "offline": Debounce(raise_after_s=20, clear_after_s=20),
    },
    heartbeat_timeout_s=60,
)


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Clock:
    """The fleet's wall clock (epoch ms), moved by the test."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Fleet:
    """The running ingest, its clock and database, and an MQTT client to speak as poles."""

    def __init__(self, ingest: Ingest, engine: sa.Engine, clock: Clock, link: Observer) -> None:
        self.ingest = ingest
        self.engine = engine
        self.clock = clock
        self.link = link
        self.sent = 0

    def publish(self, node_id: str, message: m.Message) -> None:
        self.sent += 1
        self.link.publish(node_topic(node_id, m.kind_of(message)), m.encode(message))

    def settled(self) -> None:
        """Everything sent so far is in the database."""
        until(lambda: self.ingest.counters.applied >= self.sent and self.ingest.idle())

    def at(self, now: int) -> None:
        self.clock.now = now

    def tickets(self) -> list[FaultTicketRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(sa.select(FaultTicketRow).order_by(FaultTicketRow.id)))

    def wait_tickets(self, wanted: Callable[[list[FaultTicketRow]], bool]) -> list[FaultTicketRow]:
        until(lambda: wanted(self.tickets()))
        return self.tickets()

    def node(self, node_id: str = NODE) -> Node:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(sa.select(Node).where(Node.node_id == node_id)).one()


class Pole:
    """One edge node's session as the fleet hears it: bd_seq per connection, seq per record."""

    def __init__(self, fleet: Fleet, node_id: str = NODE, key: Ed25519PrivateKey | None = None) -> None:
        self.fleet = fleet
        self.node_id = node_id
        self.key = key
        self.bd_seq = 0
        self.seq = 0

    def birth(self) -> None:
        self.bd_seq += 1
        self.seq = 0
        self.fleet.publish(
            self.node_id,
            m.NodeBirth(
                ts=self.fleet.clock.now,
                seq=0,
                bd_seq=self.bd_seq,
                site_id="site-0412",
                hardware="raspberrypi-4b",
                agent_version="0.1.0",
                controller=m.ControllerInfo(link="serial"),
                cameras=[m.CameraInfo(camera_id="cam-2", name="North")],
                bells=["bell-1"],
                node_key=public_key_text(self.key.public_key()) if self.key is not None else None,
            ),
        )

    def death(self) -> None:
        """The broker publishes the node's will (the test publishes it in its place)."""
        self.fleet.publish(self.node_id, m.NodeDeath(ts=T0, bd_seq=self.bd_seq))

    def send(self, record: m.Event | m.BellAlarm | m.SiteVisit) -> None:
        self.seq += 1
        self.fleet.publish(self.node_id, msgspec.structs.replace(record, seq=self.seq))


@pytest.fixture
def fleet(fleet_engine: sa.Engine, broker: MosquittoBroker) -> Iterator[Fleet]:
    clock = Clock(T0)
    settings = IngestSettings(
        host=broker.host, port=broker.port, host_id="fleet-1", rebirth_every_s=0, settle_every_s=0.05
    )
    ingest = Ingest(settings, engine=fleet_engine, faults=FaultPolicy(rules=RULES), clock_ms=clock)
    ingest.start()
    try:
        with Observer(broker, "watchpost/v1/node/+/down/#") as link:
            yield Fleet(ingest, fleet_engine, clock, link)
    finally:
        ingest.stop()


# --- the pole's faults, as the edge words them -------------------------------------------------


def _storage(device: str, before: str, after: str, reasons: list[str]) -> Callable[[int], m.Event]:
    def make(at: int) -> m.Event:
        event = storage_event(device, before, after, at, reasons)
        assert event is not None
        return event

    return make


@dataclass(frozen=True)
class Rule:
    raised: Callable[[int], m.Event]
    cleared: Callable[[int], m.Event]
    fault: tuple[str, str, str]  # the ticket's kind, component, severity
    raise_after: int  # ms: RULES for the kind, written out
    clear_after: int


def _tamper(state: m.EventState) -> Callable[[int], m.Event]:
    # The edge reports its cabinet switch as "door"; "tamper" is in the contract for poles that
    # wire a separate tamper loop, so this one is written by hand in the contract's shape.
    def make(at: int) -> m.Event:
        return m.Event(
            ts=at,
            seq=0,
            event_id=f"tamper.cabinet.{at}",
            category="tamper",
            state=state,
            severity="major",
            component="cabinet",
            detail="tamper loop open" if state == "raised" else "tamper loop closed",
        )

    return make


POLE_FAULTS = {
    "camera-unreachable": Rule(
        lambda at: camera_event("cam-2", False, at, "no answer from 10.20.4.12:554"),
        lambda at: camera_event("cam-2", True, at, "answers again"),
        ("camera", "cam-2", "major"),
        15 * S,
        30 * S,
    ),
    "storage-failing": Rule(
        _storage("/dev/sda", "ok", "failing", ["SMART overall-health self-assessment: FAILED"]),
        _storage("/dev/sda", "failing", "ok", []),
        ("storage", "sda", "critical"),
        0,
        30 * S,
    ),
    "storage-read-only": Rule(
        _storage("/dev/mmcblk0", "ok", "failing", ["/dev/mmcblk0p2 on /, the data directory, is read-only"]),
        _storage("/dev/mmcblk0", "failing", "ok", []),
        ("storage", "mmcblk0", "critical"),
        0,
        30 * S,
    ),
    "storage-near-full": Rule(
        _storage("/dev/mmcblk0", "ok", "warning", ["the data filesystem has 3.1% free (991232 bytes)"]),
        _storage("/dev/mmcblk0", "warning", "ok", []),
        ("storage", "mmcblk0", "major"),
        0,
        30 * S,
    ),
    "bell-circuit": Rule(
        lambda at: event_for(
            InputFault("bell-circuit", True, at, value=1023, detail="bell circuit open (cable cut?)")
        ),
        lambda at: event_for(InputFault("bell-circuit", False, at, value=512)),
        ("bell-circuit", "pole", "critical"),
        0,
        30 * S,
    ),
    "bell-stuck": Rule(
        lambda at: event_for(InputFault("bell-stuck", True, at, component="bell-1")),
        lambda at: event_for(InputFault("bell-stuck", False, at, component="bell-1")),
        ("bell-stuck", "bell-1", "major"),
        0,
        30 * S,
    ),
    "controller-link-down": Rule(
        lambda at: event_for(
            InputFault("link", True, at, component="controller", detail="pole controller not heard")
        ),
        lambda at: event_for(InputFault("link", False, at, component="controller")),
        ("link", "controller", "major"),
        10 * S,
        30 * S,
    ),
    "door-open": Rule(
        lambda at: event_for(DoorChange(True, at)),
        lambda at: event_for(DoorChange(False, at)),
        ("door", "cabinet", "minor"),
        0,
        30 * S,
    ),
    "tamper": Rule(_tamper("raised"), _tamper("cleared"), ("tamper", "cabinet", "major"), 0, 30 * S),
    "over-temperature": Rule(
        lambda at: event_for(InputFault("temperature", True, at, component="controller", value=71.5)),
        lambda at: event_for(InputFault("temperature", False, at, component="controller", value=58.0)),
        ("temperature", "controller", "minor"),
        20 * S,
        40 * S,
    ),
    "supply-fault": Rule(
        lambda at: event_for(InputFault("supply", True, at, value=10.4)),
        lambda at: event_for(InputFault("supply", False, at, value=12.2)),
        ("supply", "pole", "major"),
        10 * S,
        30 * S,
    ),
}


@pytest.mark.parametrize("name", list(POLE_FAULTS))
def test_a_pole_fault_opens_one_ticket_and_auto_clears_it(fleet: Fleet, name: str) -> None:
    rule = POLE_FAULTS[name]
    pole = Pole(fleet)
    pole.birth()

    first = T0 + S
    fleet.at(first)
    pole.send(rule.raised(first))
    held_from = first
    if rule.raise_after:
        # A blip shorter than the wait: the fleet does not believe it; the next raise starts over.
        blip_end = first + rule.raise_after // 2
        fleet.at(blip_end)
        pole.send(rule.cleared(blip_end))
        held_from = blip_end + S
        fleet.at(held_from)
        pole.send(rule.raised(held_from))
        fleet.settled()
    opened_at = held_from + rule.raise_after
    fleet.at(opened_at)
    (ticket,) = fleet.wait_tickets(lambda rows: len(rows) > 0)
    assert (ticket.kind, ticket.component, ticket.severity) == rule.fault
    assert (ticket.node_id, ticket.state, ticket.opened_at_ms) == (NODE, "open", opened_at)

    # Flapping while open: cleared and raised again within the clear wait stays one fault.
    for n, raised in enumerate((False, True, False, True), start=1):
        fleet.at(opened_at + n * S)
        pole.send((rule.raised if raised else rule.cleared)(opened_at + n * S))
    fleet.settled()
    (ticket,) = fleet.tickets()
    assert ticket.state == "open"

    last_clear = opened_at + 5 * S
    fleet.at(last_clear)
    pole.send(rule.cleared(last_clear))
    fleet.settled()
    fleet.at(last_clear + rule.clear_after)
    (ticket,) = fleet.wait_tickets(lambda rows: rows[0].state != "open")
    assert (ticket.state, ticket.open_key, ticket.fault_cleared_at_ms) == (
        "cancelled",
        None,
        last_clear + rule.clear_after,
    )
    (cancel,) = ticket.ticket().steps
    assert (cancel.action, cancel.at, cancel.by, cancel.note) == (
        Action.CANCEL,
        last_clear + rule.clear_after,
        "fleet/auto-clear",
        "auto-cleared",
    )


def test_news_from_the_pole_opens_no_ticket(fleet: Fleet) -> None:
    pole = Pole(fleet)
    pole.birth()
    fleet.at(T0 + S)
    # A recording gap and a controller's watchdog reset are news for the log (state "info").
    pole.send(gap_event("cam-2", T0 - 40 * S, T0 - 10 * S, T0 + S))
    pole.send(event_for(ControllerRestarted("watchdog", "0.1.0", T0 + S)))
    pole.send(event_for(DoorChange(True, T0 + 2 * S)))  # then a fault, sent after them
    (ticket,) = fleet.wait_tickets(lambda rows: len(rows) > 0)
    fleet.settled()
    (ticket,) = fleet.tickets()  # only the door's: the news before it opened nothing
    assert (ticket.kind, ticket.component) == ("door", "cabinet")


def test_a_fault_that_clears_after_dispatch_keeps_its_ticket(fleet: Fleet) -> None:
    pole = Pole(fleet)
    pole.birth()
    fleet.at(T0 + S)
    pole.send(event_for(DoorChange(True, T0 + S)))
    (ticket,) = fleet.wait_tickets(lambda rows: len(rows) > 0)
    with Session(fleet.engine) as session, session.begin():  # an operator sends a technician
        store.apply_step(session, ticket.ticket_id, Action.ACKNOWLEDGE, at=T0 + 2 * S, by="operator-7")
        store.apply_step(session, ticket.ticket_id, Action.DISPATCH, at=T0 + 3 * S, by="operator-7")
    fleet.at(T0 + 4 * S)
    pole.send(event_for(DoorChange(False, T0 + 4 * S)))
    fleet.settled()
    fleet.at(T0 + 4 * S + 30 * S)
    (ticket,) = fleet.wait_tickets(lambda rows: rows[0].fault_cleared_at_ms is not None)
    # They go and confirm: the ticket runs on to resolved.
    assert (ticket.state, ticket.fault_cleared_at_ms) == ("dispatched", T0 + 34 * S)
    assert ticket.open_key is not None


# --- a node offline -----------------------------------------------------------------------------


def test_a_node_offline_by_its_death_opens_one_ticket_and_its_birth_clears_it(fleet: Fleet) -> None:
    pole = Pole(fleet)
    pole.birth()  # bd_seq 1
    fleet.at(T0 + S)
    pole.death()
    fleet.settled()
    fleet.at(T0 + 11 * S)  # back within the 20 s wait: a link's hiccup, no ticket
    pole.birth()  # bd_seq 2
    fleet.settled()
    fleet.at(T0 + 12 * S)
    pole.death()
    fleet.settled()
    fleet.at(T0 + 32 * S)  # dead for the 20 s wait since T0 + 12 s
    (ticket,) = fleet.wait_tickets(lambda rows: len(rows) > 0)
    assert (ticket.kind, ticket.component, ticket.severity, ticket.state, ticket.opened_at_ms) == (
        "offline",
        "node",
        "major",
        "open",
        T0 + 32 * S,
    )

    # Flapping while open (back, gone again) stays one fault; then back for good.
    for at, happens in ((33, pole.birth), (34, pole.death), (35, pole.birth)):
        fleet.at(T0 + at * S)
        happens()
        fleet.settled()
    assert [t.state for t in fleet.tickets()] == ["open"]
    fleet.at(T0 + 55 * S)  # online for the 20 s wait since T0 + 35 s
    (ticket,) = fleet.wait_tickets(lambda rows: rows[0].state != "open")
    assert (ticket.state, ticket.fault_cleared_at_ms) == ("cancelled", T0 + 55 * S)
    assert fleet.node().online


def test_a_silent_node_goes_offline_and_its_birth_brings_it_back(fleet: Fleet) -> None:
    pole = Pole(fleet)
    pole.birth()
    fleet.settled()
    fleet.at(T0 + 60 * S + 1)  # silent for more than the 60 s heartbeat timeout
    until(lambda: not fleet.node().online)
    fleet.at(T0 + 80 * S)  # the offline wait (20 s) from when it became overdue (T0 + 60 s)
    (ticket,) = fleet.wait_tickets(lambda rows: len(rows) > 0)
    assert (ticket.kind, ticket.component, ticket.severity, ticket.state, ticket.opened_at_ms) == (
        "offline",
        "node",
        "major",
        "open",
        T0 + 80 * S,
    )
    assert fleet.ingest.counters.timed_out == 1

    # The node never knew: it sends a bell press in the session it believes alive. The press
    # is kept, and the node is asked for its birth.
    fleet.at(T0 + 90 * S)
    press = m.BellAlarm(
        ts=T0 + 90 * S,
        seq=0,
        alarm_id=f"{NODE}.bell-1.{T0 + 90 * S}",
        bell_id="bell-1",
        pressed_at=T0 + 90 * S,
        source="controller",
    )
    pole.send(press)
    seen = fleet.link.wait_for(lambda s: any(x.kind == "command" for x in s))
    (command,) = [json.loads(x.payload) for x in seen if x.kind == "command"]
    assert command["name"] == "rebirth"
    with Session(fleet.engine) as session:
        assert session.scalars(sa.select(BellAlarmRecord.alarm_id)).all() == [press.alarm_id]

    fleet.at(T0 + 95 * S)
    pole.birth()
    fleet.settled()
    assert fleet.node().online
    fleet.at(T0 + 115 * S)  # online for the 20 s wait
    (ticket,) = fleet.wait_tickets(lambda rows: rows[0].state != "open")
    assert (ticket.state, ticket.fault_cleared_at_ms) == ("cancelled", T0 + 115 * S)


# --- a technician at the pole -------------------------------------------------------------------


def visit(
    key: Ed25519PrivateKey, ticket_id: str, action: m.VisitAction, at: int, visit_id: str
) -> m.SiteVisit:
    return sign_visit(
        NODE,
        key,
        ts=at,
        visit_id=visit_id,
        action=action,
        technician="tech-0193",
        at=at,
        clock_synced=True,
        fault_id=ticket_id,
    )


def test_a_death_ticket_through_signed_check_in_and_resolve(fleet: Fleet, tmp_path: Path) -> None:
    key = load_or_create_node_key(tmp_path)  # the node's own key, as the edge agent keeps it
    pole = Pole(fleet, key=key)
    pole.birth()
    fleet.at(T0 + S)
    pole.death()  # the pole lost power
    fleet.settled()
    fleet.at(T0 + 21 * S)
    (ticket,) = fleet.wait_tickets(lambda rows: len(rows) > 0)
    ticket_id = ticket.ticket_id
    assert (ticket.kind, ticket.opened_at_ms) == ("offline", T0 + 21 * S)

    # The technician restores power; the node comes back and sends the check-in it signed while
    # its uplink was still down, timed by its own clock.
    fleet.at(T0 + 50 * MIN)
    pole.birth()
    pole.send(visit(key, ticket_id, "check-in", T0 + 48 * MIN, "visit.1"))
    (ticket,) = fleet.wait_tickets(lambda rows: rows[0].state != "open")
    assert ticket.state == TicketState.ON_SITE.value
    on_site = ticket.ticket()
    assert on_site.clocks.response.stopped_at == T0 + 48 * MIN  # the visit's time: within 2 h

    # The node stays up: the fault clears while someone is on site, the ticket is theirs.
    fleet.at(T0 + 50 * MIN + 20 * S)
    (ticket,) = fleet.wait_tickets(lambda rows: rows[0].fault_cleared_at_ms is not None)
    assert (ticket.state, ticket.fault_cleared_at_ms) == ("on_site", T0 + 50 * MIN + 20 * S)

    fleet.at(T0 + 50 * MIN + 40 * S)  # within the heartbeat timeout of the node's last message
    pole.send(visit(key, ticket_id, "resolve", T0 + 50 * MIN + 35 * S, "visit.2"))
    pole.send(visit(key, ticket_id, "check-in", T0 + 48 * MIN, "visit.1"))  # replayed from the outbox
    fleet.settled()
    (ticket,) = fleet.tickets()
    assert ticket.state == TicketState.RESOLVED.value
    resolved = ticket.ticket()
    assert [(s.action, s.at, s.by, s.verification, s.from_state, s.to_state) for s in resolved.steps] == [
        (
            Action.ARRIVE,
            T0 + 48 * MIN,
            "tech-0193",
            Verification.NODE_VERIFIED,
            TicketState.OPEN,
            TicketState.ON_SITE,
        ),
        (
            Action.RESOLVE,
            T0 + 50 * MIN + 35 * S,
            "tech-0193",
            Verification.NODE_VERIFIED,
            TicketState.ON_SITE,
            TicketState.RESOLVED,
        ),
    ]
    assert resolved.clocks.response.stopped_at == T0 + 48 * MIN
    assert resolved.clocks.resolution.stopped_at == T0 + 50 * MIN + 35 * S
    assert fleet.ingest.counters.visits == {"applied": 2, "replayed": 1}


def test_visits_that_cannot_apply_are_counted_and_the_ingest_goes_on(fleet: Fleet, tmp_path: Path) -> None:
    key = load_or_create_node_key(tmp_path)
    pole = Pole(fleet, key=key)
    pole.birth()
    fleet.at(T0 + S)
    pole.send(event_for(DoorChange(True, T0 + S)))
    (ticket,) = fleet.wait_tickets(lambda rows: len(rows) > 0)
    fleet.at(T0 + 30 * S)
    pole.send(visit(key, "0123456789abcdef", "check-in", T0 + 20 * S, "visit.1"))  # no such ticket
    pole.send(visit(key, ticket.ticket_id, "resolve", T0 + 20 * S, "visit.2"))  # nobody checked in
    # Signed by a key that is not this node's: the fleet takes the technician's word for it.
    pole.send(visit(Ed25519PrivateKey.generate(), ticket.ticket_id, "check-in", T0 + 20 * S, "visit.3"))
    fleet.settled()
    assert fleet.ingest.counters.visits == {"unknown-ticket": 1, "illegal": 1, "applied": 1}
    (ticket,) = fleet.tickets()
    (arrive,) = ticket.ticket().steps
    assert (ticket.state, arrive.at, arrive.verification) == (
        "on_site",
        T0 + 20 * S,
        Verification.SELF_REPORTED,
    )
    # The ingest goes on with the node's next message.
    fleet.at(T0 + 40 * S)
    pole.send(event_for(InputFault("bell-circuit", True, T0 + 40 * S, detail="bell circuit shorted")))
    tickets = fleet.wait_tickets(lambda rows: len(rows) == 2)
    assert (tickets[1].kind, tickets[1].severity) == ("bell-circuit", "critical")
