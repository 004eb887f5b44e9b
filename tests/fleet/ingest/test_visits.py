"""Technicians' site visits from a node onto the ticket they name (fleet.ingest.visits, through
fleet.ingest.apply) on the embedded SQLite and a real PostgreSQL: signed with the node's own key
they are node-verified steps; anything else is self-reported; a replay is applied once; a visit
that cannot move its ticket comes back as an outcome and leaves the ticket as it was."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from edge.identity import load_or_create_node_key
from fleet.faults.store import FaultTicketRow
from fleet.faults.tickets import Action, Ticket, TicketState, Verification
from fleet.ingest.apply import Applied, FaultPolicy, apply
from fleet.ingest.visits import VisitOutcome
from protocols import messages as m
from protocols.session import Verdict
from protocols.visits import public_key_text, sign_visit

T0 = 1_764_000_000_000
MIN = 60_000
NODE = "pole-0412"
POLICY = FaultPolicy()  # door: opens at once


@pytest.fixture
def node_key(tmp_path: Path) -> Ed25519PrivateKey:
    """The node's own key, made and kept as the edge agent keeps it."""
    return load_or_create_node_key(tmp_path)


def hear(engine: sa.Engine, message: m.Message, at: int, node_id: str = NODE) -> Applied:
    with Session(engine) as session, session.begin():
        return apply(session, node_id, message, at, faults=POLICY)


def born(engine: sa.Engine, key: Ed25519PrivateKey | None, *, node_id: str = NODE, bd_seq: int = 1) -> None:
    birth = m.NodeBirth(
        ts=T0,
        seq=0,
        bd_seq=bd_seq,
        site_id=f"site-{node_id}",
        hardware="raspberrypi-4b",
        agent_version="0.1.0",
        node_key=public_key_text(key.public_key()) if key is not None else None,
    )
    hear(engine, birth, T0, node_id)


def door_ticket(engine: sa.Engine, *, node_id: str = NODE) -> str:
    """The node's cabinet door opens at T0 + 1 s: a ticket opens at once (door: no debounce)."""
    door = m.Event(
        ts=T0 + 1000,
        seq=1,
        event_id="door.cabinet.1",
        category="door",
        state="raised",
        severity="minor",
        component="cabinet",
    )
    hear(engine, door, T0 + 1000, node_id)
    with Session(engine) as session:
        return session.scalars(
            sa.select(FaultTicketRow.ticket_id).where(FaultTicketRow.node_id == node_id)
        ).one()


def visit(
    key: Ed25519PrivateKey,
    ticket_id: str | None,
    *,
    seq: int = 2,
    action: m.VisitAction = "check-in",
    at: int = T0 + 40 * MIN,
    clock_synced: bool | None = True,
    visit_id: str = "visit.1",
) -> m.SiteVisit:
    signed = sign_visit(
        NODE,
        key,
        ts=at,
        visit_id=visit_id,
        action=action,
        technician="tech-0193",
        at=at,
        clock_synced=clock_synced,
        fault_id=ticket_id,
        note="cabinet hinge replaced" if action == "resolve" else "",
    )
    return msgspec.structs.replace(signed, seq=seq)  # the uplink numbers it when it sends it


def ticket(engine: sa.Engine, ticket_id: str) -> Ticket:
    with Session(engine) as session:
        row = session.scalars(sa.select(FaultTicketRow).where(FaultTicketRow.ticket_id == ticket_id)).one()
        assert row.state == row.ticket().state.value  # the column agrees with the record
        return row.ticket()


def test_a_signed_check_in_then_resolve_are_node_verified(
    fleet_engine: sa.Engine, node_key: Ed25519PrivateKey
) -> None:
    born(fleet_engine, node_key)
    ticket_id = door_ticket(fleet_engine)
    arrived = hear(fleet_engine, visit(node_key, ticket_id), T0 + 41 * MIN)
    assert arrived.visit is not None
    assert (arrived.visit.outcome, arrived.visit.verification) == (
        VisitOutcome.APPLIED,
        Verification.NODE_VERIFIED,
    )
    on_site = ticket(fleet_engine, ticket_id)
    assert on_site.state is TicketState.ON_SITE
    assert on_site.clocks.response.stopped_at == T0 + 40 * MIN  # the node's time, not the receipt's

    fixed = visit(node_key, ticket_id, seq=3, action="resolve", at=T0 + 95 * MIN, visit_id="visit.2")
    resolved = hear(fleet_engine, fixed, T0 + 96 * MIN)
    assert resolved.visit is not None
    assert resolved.visit.outcome is VisitOutcome.APPLIED
    done = ticket(fleet_engine, ticket_id)
    assert done.state is TicketState.RESOLVED
    assert [(s.action, s.at, s.by, s.verification, s.note) for s in done.steps] == [
        (Action.ARRIVE, T0 + 40 * MIN, "tech-0193", Verification.NODE_VERIFIED, "site visit visit.1"),
        (
            Action.RESOLVE,
            T0 + 95 * MIN,
            "tech-0193",
            Verification.NODE_VERIFIED,
            "site visit visit.2: cabinet hinge replaced",
        ),
    ]
    assert done.clocks.resolution.stopped_at == T0 + 95 * MIN


@pytest.mark.parametrize(
    ("enrolled", "signer", "clock_synced", "arrived_at"),
    [
        (True, "another", True, T0 + 40 * MIN),  # not this node's signature
        (False, "node", True, T0 + 40 * MIN),  # the node sent no key in its birth
        (True, "node", False, T0 + 41 * MIN),  # the node's clock was not synchronised: receipt time
    ],
)
def test_what_the_node_cannot_vouch_for_is_self_reported(
    fleet_engine: sa.Engine,
    node_key: Ed25519PrivateKey,
    enrolled: bool,
    signer: str,
    clock_synced: bool,
    arrived_at: int,
) -> None:
    born(fleet_engine, node_key if enrolled else None)
    ticket_id = door_ticket(fleet_engine)
    key = node_key if signer == "node" else Ed25519PrivateKey.generate()
    applied = hear(fleet_engine, visit(key, ticket_id, clock_synced=clock_synced), T0 + 41 * MIN)
    assert applied.visit is not None
    assert (applied.visit.outcome, applied.visit.verification) == (
        VisitOutcome.APPLIED,
        Verification.SELF_REPORTED,
    )
    (step,) = ticket(fleet_engine, ticket_id).steps
    assert (step.action, step.at, step.verification) == (
        Action.ARRIVE,
        arrived_at,
        Verification.SELF_REPORTED,
    )


def test_a_replayed_visit_is_applied_once(fleet_engine: sa.Engine, node_key: Ed25519PrivateKey) -> None:
    born(fleet_engine, node_key)
    ticket_id = door_ticket(fleet_engine)
    check_in = visit(node_key, ticket_id)
    first = hear(fleet_engine, check_in, T0 + 41 * MIN)
    # The same visit again from the node's outbox in a later session: a new seq, marked historical.
    born(fleet_engine, node_key, bd_seq=2)
    replay = msgspec.structs.replace(check_in, seq=1, historical=True)
    again = hear(fleet_engine, replay, T0 + 50 * MIN)
    assert first.visit is not None
    assert again.visit is not None
    assert (first.visit.outcome, again.visit.outcome) == (VisitOutcome.APPLIED, VisitOutcome.REPLAYED)
    assert len(ticket(fleet_engine, ticket_id).steps) == 1
    # And the very same message redelivered in its session is the session layer's duplicate.
    assert hear(fleet_engine, replay, T0 + 51 * MIN).verdict is Verdict.DUPLICATE


@pytest.mark.parametrize(
    ("names", "action", "at", "outcome"),
    [
        ("unknown", "check-in", T0 + 40 * MIN, VisitOutcome.UNKNOWN_TICKET),
        ("other-node", "check-in", T0 + 40 * MIN, VisitOutcome.OTHER_NODE),
        ("ticket", "resolve", T0 + 40 * MIN, VisitOutcome.ILLEGAL),  # nobody checked in
        ("ticket", "check-in", T0 - 5 * MIN, VisitOutcome.REFUSED),  # before the fault opened
        ("none", "check-in", T0 + 40 * MIN, VisitOutcome.NO_TICKET),
        ("ticket", "check-out", T0 + 40 * MIN, VisitOutcome.NO_STEP),
    ],
)
def test_a_visit_that_cannot_move_its_ticket_leaves_it_as_it_was(
    fleet_engine: sa.Engine,
    node_key: Ed25519PrivateKey,
    names: str,
    action: m.VisitAction,
    at: int,
    outcome: str,
) -> None:
    born(fleet_engine, node_key)
    ticket_id = door_ticket(fleet_engine)
    born(fleet_engine, None, node_id="pole-0413")
    others = door_ticket(fleet_engine, node_id="pole-0413")
    named = {"unknown": "0123456789abcdef", "other-node": others, "ticket": ticket_id, "none": None}[names]
    applied = hear(fleet_engine, visit(node_key, named, action=action, at=at), T0 + 41 * MIN)
    assert applied.verdict is Verdict.ACCEPT  # the message itself was fine: the session moves on
    assert applied.visit is not None
    assert applied.visit.outcome == outcome
    assert applied.visit.applied is (outcome == VisitOutcome.NO_STEP)
    for untouched in (ticket_id, others):
        assert (ticket(fleet_engine, untouched).state, ticket(fleet_engine, untouched).steps) == (
            TicketState.OPEN,
            (),
        )


def test_a_visit_from_a_node_held_offline_is_kept(
    fleet_engine: sa.Engine, node_key: Ed25519PrivateKey
) -> None:
    born(fleet_engine, node_key)
    ticket_id = door_ticket(fleet_engine)
    hear(fleet_engine, m.NodeDeath(ts=T0, bd_seq=1), T0 + 30 * MIN)  # its will, on a link's hiccup
    applied = hear(fleet_engine, visit(node_key, ticket_id), T0 + 41 * MIN)
    assert (applied.verdict, applied.rebirth) == (Verdict.NO_SESSION, True)
    assert applied.visit is not None
    assert applied.visit.outcome is VisitOutcome.APPLIED
    assert ticket(fleet_engine, ticket_id).state is TicketState.ON_SITE
