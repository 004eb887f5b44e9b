"""Nodes that went quiet (fleet.ingest.liveness) on the embedded SQLite and a real PostgreSQL:
a node silent past the heartbeat timeout goes offline and its offline fault opens after the
debounce, as a death's would; its birth brings it back; and with two fleet workers a node is
expired once, never while a message of it is being applied."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.db import make_engine, migrate
from fleet.faults import store
from fleet.faults.rules import Debounce, FaultRulesConfig, Phase, Verdict
from fleet.faults.store import FaultConditionRow, FaultTicketRow
from fleet.ingest.apply import FaultPolicy, apply
from fleet.ingest.liveness import expire_silent
from fleet.inventory.models import Node
from protocols import messages as m

T0 = 1_764_000_000_000
POLICY = FaultPolicy(
    rules=FaultRulesConfig(
        heartbeat_timeout_s=180, per_kind={"offline": Debounce(raise_after_s=300, clear_after_s=300)}
    )
)


def birth(bd_seq: int) -> m.NodeBirth:
    return m.NodeBirth(ts=T0, seq=0, bd_seq=bd_seq, site_id="site-1", hardware="pi", agent_version="0.1.0")


def hear(engine: sa.Engine, node_id: str, message: m.Message, at: int) -> None:
    with Session(engine) as session, session.begin():
        apply(session, node_id, message, at, faults=POLICY)


def expire(engine: sa.Engine, now: int) -> list[str]:
    with Session(engine) as session, session.begin():
        return expire_silent(session, now, policy=POLICY)


def online(engine: sa.Engine) -> dict[str, bool]:
    with Session(engine) as session:
        rows = session.execute(sa.select(Node.node_id, Node.online)).all()
        return {row.node_id: row.online for row in rows}


def offline_condition(engine: sa.Engine, node_id: str) -> tuple[str, int]:
    with Session(engine) as session:
        row = session.scalars(
            sa.select(FaultConditionRow).where(FaultConditionRow.key == f"{node_id}|node|offline")
        ).one()
        return row.phase, row.since_ms


def test_a_silent_node_goes_offline_and_its_fault_opens_after_the_debounce(fleet_engine: sa.Engine) -> None:
    hear(fleet_engine, "pole-a", birth(1), T0)
    hear(fleet_engine, "pole-b", birth(1), T0 + 60_000)
    assert expire(fleet_engine, T0 + 180_000) == []  # silent for the timeout exactly: not yet
    assert expire(fleet_engine, T0 + 180_001) == ["pole-a"]
    assert online(fleet_engine) == {"pole-a": False, "pole-b": True}
    assert offline_condition(fleet_engine, "pole-a") == ("raising", T0 + 180_000)  # last seen + timeout
    assert expire(fleet_engine, T0 + 200_000) == []  # offline already: raised once

    # The offline debounce holds 300 s from when the node became overdue, as after a death.
    with Session(fleet_engine) as session, session.begin():
        assert store.settle_due(session, T0 + 479_999, config=POLICY.rules, policy=POLICY.sla) == []
        (opened,) = store.settle_due(session, T0 + 480_000, config=POLICY.rules, policy=POLICY.sla)
    assert opened.verdict is Verdict.OPEN
    with Session(fleet_engine) as session:
        ticket = session.scalars(sa.select(FaultTicketRow)).one()
        assert (ticket.node_id, ticket.component, ticket.kind, ticket.severity, ticket.opened_at_ms) == (
            "pole-a",
            "node",
            "offline",
            "major",
            T0 + 480_000,
        )

    # Its birth brings it back and the fault clears as it does after a death.
    hear(fleet_engine, "pole-a", birth(2), T0 + 600_000)
    assert online(fleet_engine)["pole-a"] is True
    assert offline_condition(fleet_engine, "pole-a") == (Phase.CLEARING.value, T0 + 600_000)
    with Session(fleet_engine) as session, session.begin():
        (cleared,) = store.settle_due(session, T0 + 900_000, config=POLICY.rules, policy=POLICY.sla)
    assert cleared.verdict is Verdict.AUTO_CLEAR
    with Session(fleet_engine) as session:
        state, cleared_at = session.execute(
            sa.select(FaultTicketRow.state, FaultTicketRow.fault_cleared_at_ms)
        ).one()
    assert (state, cleared_at) == ("cancelled", T0 + 900_000)


def test_a_node_that_speaks_stays_online(fleet_engine: sa.Engine) -> None:
    hear(fleet_engine, "pole-a", birth(1), T0)
    event = m.Event(
        ts=T0 + 170_000, seq=1, event_id="door.1", category="door", state="raised", severity="minor"
    )
    hear(fleet_engine, "pole-a", event, T0 + 170_000)
    assert expire(fleet_engine, T0 + 300_000) == []  # heard 130 s ago
    assert expire(fleet_engine, T0 + 350_001) == ["pole-a"]


def test_silence_counts_only_while_the_fleet_listens(fleet_engine: sa.Engine) -> None:
    hear(fleet_engine, "pole-a", birth(1), T0)
    # The fleet was down for an hour and reconnected at T0 + 60 min: the pole's silence before
    # that is the fleet's own. It must hear nothing for a whole timeout after reconnecting.
    back = T0 + 3_600_000
    with Session(fleet_engine) as session, session.begin():
        assert expire_silent(session, back + 180_000, policy=POLICY, listening_since=back) == []
    with Session(fleet_engine) as session, session.begin():
        assert expire_silent(session, back + 180_001, policy=POLICY, listening_since=back) == ["pole-a"]
    assert offline_condition(fleet_engine, "pole-a") == ("raising", back + 180_000)


def test_a_dead_node_is_not_expired_again(fleet_engine: sa.Engine) -> None:
    hear(fleet_engine, "pole-a", birth(1), T0)
    hear(fleet_engine, "pole-a", m.NodeDeath(ts=T0, bd_seq=1), T0 + 10_000)
    assert expire(fleet_engine, T0 + 3_600_000) == []
    assert offline_condition(fleet_engine, "pole-a") == ("raising", T0 + 10_000)  # the death's own


@pytest.fixture
def two_workers(postgres_url: str) -> Iterator[list[sa.Engine]]:
    """Two fleet workers' connections to one PostgreSQL."""
    migrate(postgres_url)
    engines = [make_engine(postgres_url) for _ in range(2)]
    try:
        yield engines
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.postgres
def test_two_workers_expire_a_node_once(two_workers: list[sa.Engine]) -> None:
    first, second = two_workers
    hear(first, "pole-a", birth(1), T0)
    with Session(first) as one, one.begin():
        assert expire_silent(one, T0 + 200_000, policy=POLICY) == ["pole-a"]
        # The other worker's settle step meanwhile: the row is locked, skipped, not waited for.
        with Session(second) as other, other.begin():
            assert expire_silent(other, T0 + 200_000, policy=POLICY) == []
    assert expire(second, T0 + 201_000) == []  # committed: the node is offline already
    with Session(first) as session:
        assert session.scalars(sa.select(FaultConditionRow.since_ms)).all() == [T0 + 180_000]


@pytest.mark.postgres
def test_a_message_being_applied_wins_over_expiry(two_workers: list[sa.Engine]) -> None:
    first, second = two_workers
    hear(first, "pole-a", birth(1), T0)
    event = m.Event(
        ts=T0 + 200_000, seq=1, event_id="door.1", category="door", state="raised", severity="minor"
    )
    with Session(first) as one, one.begin():
        apply(one, "pole-a", event, T0 + 200_000, faults=POLICY)  # the node's row is locked
        assert expire(second, T0 + 200_000) == []  # skipped while the message is applied
    assert expire(second, T0 + 200_000) == []  # and then it is no longer silent
    assert online(second) == {"pole-a": True}
