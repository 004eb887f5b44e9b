"""Faults in the database (embedded SQLite and a real PostgreSQL): one open ticket per fault
key, debounced opening, auto-clear that keeps the ticket; a ticket moved by one step at a time
(`apply_step`) or refused with a typed error; and two fleet workers on one shared subscription
and one PostgreSQL opening exactly one ticket under a burst of duplicates."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.db import make_engine, migrate
from fleet.faults import store
from fleet.faults.errors import IllegalTransition, StepRefused
from fleet.faults.rules import FaultKey, FaultRulesConfig, Observation, Verdict
from fleet.faults.sla import SlaPolicy
from fleet.faults.store import FaultTicketRow
from fleet.faults.tickets import Action, Verification
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.inventory.models import Node
from protocols import messages as m
from protocols.topics import Kind, node_topic
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker

HOUR = 3_600_000
T0 = 1_764_000_000_000
DOOR = FaultKey("pole-0412", "cabinet", "door")
HOT = FaultKey("pole-0412", "controller", "temperature")
RULES = FaultRulesConfig()
POLICY = SlaPolicy()


def observe(engine: sa.Engine, observation: Observation) -> list[store.Outcome]:
    with Session(engine) as session, session.begin():
        return store.observe(session, observation, config=RULES, policy=POLICY)


def node_online(engine: sa.Engine) -> bool:
    with Session(engine) as session:
        return bool(session.scalar(sa.select(Node.online).where(Node.node_id == "pole-0412")))


def tickets(engine: sa.Engine) -> list[FaultTicketRow]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(sa.select(FaultTicketRow).order_by(FaultTicketRow.id)))


def test_one_open_ticket_per_fault_with_its_deadlines(fleet_engine: sa.Engine) -> None:
    raised = Observation(DOOR, raised=True, at=T0, severity="minor")
    (first,) = observe(fleet_engine, raised)
    assert first.verdict is Verdict.OPEN
    # Raised again: the condition already holds, nothing new to do.
    assert observe(fleet_engine, Observation(DOOR, raised=True, at=T0 + 60_000, severity="minor")) == []
    # Raised worse: still the one fault (its ticket keeps its clocks).
    (worse,) = observe(fleet_engine, Observation(DOOR, raised=True, at=T0 + 90_000, severity="major"))
    assert worse.verdict is Verdict.ALREADY_OPEN
    assert worse.ticket_id == first.ticket_id
    (ticket,) = tickets(fleet_engine)
    assert (ticket.state, ticket.opened_at_ms) == ("open", T0)
    assert ticket.response_deadline_ms == T0 + 2 * HOUR  # technician on site within 2 h
    assert ticket.resolution_deadline_ms == T0 + 8 * HOUR  # minor: fixed within 8 h
    assert ticket.ticket().clocks.response.due_at == T0 + 2 * HOUR  # the stored record agrees


def test_a_clear_held_long_enough_auto_clears_and_the_ticket_stays(fleet_engine: sa.Engine) -> None:
    observe(fleet_engine, Observation(DOOR, raised=True, at=T0, severity="minor"))
    assert observe(fleet_engine, Observation(DOOR, raised=False, at=T0 + 1000)) == []  # not yet
    with Session(fleet_engine) as session, session.begin():
        assert store.settle_due(session, T0 + 1000 + 299_000, config=RULES, policy=POLICY) == []
    with Session(fleet_engine) as session, session.begin():
        (outcome,) = store.settle_due(session, T0 + 1000 + 300_000, config=RULES, policy=POLICY)
    assert outcome.verdict is Verdict.AUTO_CLEAR
    (ticket,) = tickets(fleet_engine)
    assert (ticket.state, ticket.open_key, ticket.fault_cleared_at_ms) == ("cancelled", None, T0 + 301_000)
    # A new raise after that is a new fault, a new ticket.
    (outcome,) = observe(fleet_engine, Observation(DOOR, raised=True, at=T0 + HOUR, severity="minor"))
    assert outcome.verdict is Verdict.OPEN
    assert [t.state for t in tickets(fleet_engine)] == ["cancelled", "open"]


def test_a_temperature_fault_opens_only_once_it_has_held(fleet_engine: sa.Engine) -> None:
    assert observe(fleet_engine, Observation(HOT, raised=True, at=T0, severity="major")) == []
    assert tickets(fleet_engine) == []
    with Session(fleet_engine) as session, session.begin():
        (outcome,) = store.settle_due(session, T0 + 300_000, config=RULES, policy=POLICY)
    assert outcome.verdict is Verdict.OPEN
    (ticket,) = tickets(fleet_engine)
    assert ticket.opened_at_ms == T0 + 300_000  # the clocks start when the fleet believes it
    assert ticket.resolution_deadline_ms == T0 + 300_000 + 4 * HOUR  # major: 4 h


def open_door_ticket(engine: sa.Engine) -> str:
    (outcome,) = observe(engine, Observation(DOOR, raised=True, at=T0, severity="minor"))
    assert outcome.ticket_id is not None
    return outcome.ticket_id


def test_apply_step_moves_the_ticket_and_stores_its_clocks(fleet_engine: sa.Engine) -> None:
    ticket_id = open_door_ticket(fleet_engine)
    with Session(fleet_engine) as session, session.begin():
        store.apply_step(session, ticket_id, Action.ACKNOWLEDGE, at=T0 + 60_000, by="operator-7")
        store.apply_step(session, ticket_id, Action.DISPATCH, at=T0 + 120_000, by="operator-7", note="crew 3")
        row = store.apply_step(
            session,
            ticket_id,
            Action.ARRIVE,
            at=T0 + 45 * 60_000,
            by="tech-0193",
            verification=Verification.SELF_REPORTED,
        )
        assert row.state == "on_site"
    (row,) = tickets(fleet_engine)
    assert (row.state, row.open_key) == ("on_site", "pole-0412|cabinet|door")  # still open work
    ticket = row.ticket()
    assert [(s.action, s.at, s.by) for s in ticket.steps] == [
        (Action.ACKNOWLEDGE, T0 + 60_000, "operator-7"),
        (Action.DISPATCH, T0 + 120_000, "operator-7"),
        (Action.ARRIVE, T0 + 45 * 60_000, "tech-0193"),
    ]
    assert ticket.steps[1].note == "crew 3"
    assert ticket.steps[2].verification is Verification.SELF_REPORTED
    assert ticket.clocks.response.stopped_at == T0 + 45 * 60_000  # within the 2 h


def test_a_step_that_closes_the_ticket_frees_its_fault_key(fleet_engine: sa.Engine) -> None:
    ticket_id = open_door_ticket(fleet_engine)
    with Session(fleet_engine) as session, session.begin():
        store.apply_step(session, ticket_id, Action.CANCEL, at=T0 + 5_000, by="operator-7", note="test alarm")
    (row,) = tickets(fleet_engine)
    assert (row.state, row.open_key) == ("cancelled", None)
    with Session(fleet_engine) as session:
        assert store.open_tickets(session) == []
    # The door closes (nothing open to clear), then opens again: a new fault, a new ticket.
    assert observe(fleet_engine, Observation(DOOR, raised=False, at=T0 + 10_000)) == []
    with Session(fleet_engine) as session, session.begin():
        (cleared,) = store.settle_due(session, T0 + 310_000, config=RULES, policy=POLICY)
    assert (cleared.verdict, cleared.ticket_id) == (Verdict.NOTHING, None)
    (again,) = observe(fleet_engine, Observation(DOOR, raised=True, at=T0 + HOUR, severity="minor"))
    assert again.verdict is Verdict.OPEN
    assert again.ticket_id != ticket_id


@pytest.mark.parametrize(
    ("ticket", "action", "at", "error", "detail"),
    [
        ("no-such-ticket", Action.ACKNOWLEDGE, T0 + 1000, store.UnknownTicket, "no-such-ticket"),
        (None, Action.RESOLVE, T0 + 1000, IllegalTransition, ("open", ("acknowledge", "arrive", "cancel"))),
        (None, Action.ACKNOWLEDGE, T0 - 1000, StepRefused, "before-open"),
    ],
)
def test_apply_step_refuses_with_typed_errors_and_changes_nothing(
    fleet_engine: sa.Engine,
    ticket: str | None,
    action: Action,
    at: int,
    error: type[Exception],
    detail: object,
) -> None:
    ticket_id = open_door_ticket(fleet_engine)
    with Session(fleet_engine) as session, session.begin(), pytest.raises(error) as raised:
        store.apply_step(
            session,
            ticket or ticket_id,
            action,
            at=at,
            by="operator-7",
            verification=Verification.SELF_REPORTED if action is Action.RESOLVE else None,
        )
    refused = raised.value
    if isinstance(refused, store.UnknownTicket):
        assert refused.ticket_id == detail
    elif isinstance(refused, IllegalTransition):
        assert (refused.state, refused.allowed) == detail
    else:
        assert isinstance(refused, StepRefused)
        assert refused.reason == detail
    (row,) = tickets(fleet_engine)
    assert (row.state, row.ticket().steps) == ("open", ())


def test_a_fault_that_clears_after_dispatch_keeps_its_ticket_running(fleet_engine: sa.Engine) -> None:
    ticket_id = open_door_ticket(fleet_engine)
    with Session(fleet_engine) as session, session.begin():
        store.apply_step(session, ticket_id, Action.ACKNOWLEDGE, at=T0 + 1000, by="operator-7")
        store.apply_step(session, ticket_id, Action.DISPATCH, at=T0 + 2000, by="operator-7")
    observe(fleet_engine, Observation(DOOR, raised=False, at=T0 + 3000))
    with Session(fleet_engine) as session, session.begin():
        (outcome,) = store.settle_due(session, T0 + 3000 + 300_000, config=RULES, policy=POLICY)
    assert (outcome.verdict, outcome.ticket_id) == (Verdict.AUTO_CLEAR, ticket_id)
    (row,) = tickets(fleet_engine)
    # Someone is on the way: they go and confirm, the ticket runs to resolved.
    assert (row.state, row.open_key, row.fault_cleared_at_ms) == (
        "dispatched",
        "pole-0412|cabinet|door",
        T0 + 303_000,
    )


@pytest.mark.broker
@pytest.mark.postgres
def test_two_workers_on_a_shared_subscription_open_exactly_one_ticket(postgres_url: str) -> None:
    migrate(postgres_url)
    engines = [make_engine(postgres_url) for _ in range(2)]
    with MosquittoBroker() as broker:
        workers = [
            Ingest(
                IngestSettings(host=broker.host, port=broker.port, host_id=f"fleet-{n}", share_group="fleet"),
                engine=engine,
            )
            for n, engine in enumerate(engines)
        ]
        for worker in workers:
            worker.start()
        try:
            with Observer(broker, "watchpost/v1/host/#") as node:
                birth = m.NodeBirth(
                    ts=T0, seq=0, bd_seq=1, site_id="site-0412", hardware="pi", agent_version="0.1.0"
                )
                node.publish(node_topic("pole-0412", Kind.BIRTH), m.encode(birth))
                deadline = time.monotonic() + 30
                while not node_online(engines[0]):  # the session exists before the burst
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                for seq in range(1, 201):
                    event = m.Event(
                        ts=T0 + seq,
                        seq=seq,
                        event_id=f"door.cabinet.{T0 + seq}",
                        category="door",
                        state="raised",
                        severity="minor",
                        component="cabinet",
                    )
                    payload = m.encode(event)
                    node.publish(node_topic("pole-0412", Kind.EVENT), payload)
                    node.publish(node_topic("pole-0412", Kind.EVENT), payload)  # a redelivery
                deadline = time.monotonic() + 30
                while sum(w.counters.received for w in workers) < 401 or not all(w.idle() for w in workers):
                    assert time.monotonic() < deadline, [w.counters for w in workers]
                    time.sleep(0.05)
        finally:
            for worker in workers:
                worker.stop()
    try:
        (ticket,) = tickets(engines[0])
        assert (ticket.node_id, ticket.component, ticket.kind, ticket.state) == (
            "pole-0412",
            "cabinet",
            "door",
            "open",
        )
        assert json.loads(ticket.record)["fault"] == ["pole-0412", "cabinet", "door"]
    finally:
        for engine in engines:
            engine.dispose()
    # Both workers took part: the shared subscription really split the burst.
    assert all(w.counters.applied > 0 for w in workers), [w.counters for w in workers]
    # Every copy was applied by one worker or the other. Of each seq's two copies the later one
    # is a duplicate at least (two workers do not keep the node's order between them, so an
    # original overtaken by a later seq counts as one too).
    assert sum(w.counters.applied for w in workers) == 401
    assert sum(w.counters.duplicates for w in workers) >= 200


def test_a_fault_back_soon_after_its_fix_opens_a_repeat_ticket(fleet_engine: sa.Engine) -> None:
    first = open_door_ticket(fleet_engine)
    with Session(fleet_engine) as session, session.begin():
        store.apply_step(
            session,
            first,
            Action.ARRIVE,
            at=T0 + HOUR,
            by="tech-0193",
            verification=Verification.SELF_REPORTED,
        )
        store.apply_step(
            session,
            first,
            Action.RESOLVE,
            at=T0 + 2 * HOUR,
            by="tech-0193",
            verification=Verification.SELF_REPORTED,
        )
    (row,) = tickets(fleet_engine)
    # Fixed: the fault key is free for a new fault, but the ticket still owes its report.
    assert (row.state, row.open_key) == ("resolved", None)
    with Session(fleet_engine) as session:
        assert [r.ticket_id for r in store.open_tickets(session)] == [first]

    # The door closes, stays closed past the clear debounce (300 s), then opens again 10 h
    # after the fix: inside the 72 h repeat window.
    observe(fleet_engine, Observation(DOOR, raised=False, at=T0 + 3 * HOUR))
    with Session(fleet_engine) as session, session.begin():
        store.settle_due(session, T0 + 3 * HOUR + 300_000, config=RULES, policy=POLICY)
    (again,) = observe(fleet_engine, Observation(DOOR, raised=True, at=T0 + 12 * HOUR, severity="minor"))
    assert again.verdict is Verdict.OPEN
    repeat = tickets(fleet_engine)[1]
    assert (repeat.ticket_id, repeat.ticket().repeat_of) == (again.ticket_id, first)
    assert repeat.response_deadline_ms == T0 + 12 * HOUR + 2 * HOUR  # fresh clocks

    # Fixed again, and back only after the window (72 h + 1 ms after the fix): a new fault.
    with Session(fleet_engine) as session, session.begin():
        for action, at in ((Action.ARRIVE, 13 * HOUR), (Action.RESOLVE, 14 * HOUR)):
            store.apply_step(
                session,
                repeat.ticket_id,
                action,
                at=T0 + at,
                by="tech-0193",
                verification=Verification.SELF_REPORTED,
            )
    observe(fleet_engine, Observation(DOOR, raised=False, at=T0 + 15 * HOUR))
    with Session(fleet_engine) as session, session.begin():
        store.settle_due(session, T0 + 15 * HOUR + 300_000, config=RULES, policy=POLICY)
    (late,) = observe(fleet_engine, Observation(DOOR, raised=True, at=T0 + 86 * HOUR + 1, severity="minor"))
    assert tickets(fleet_engine)[2].ticket().repeat_of is None
    assert late.ticket_id == tickets(fleet_engine)[2].ticket_id
