"""A small fleet in the database, made through the fleet's own code paths: sites and nodes as
a birth leaves them, a fault opened by the fault store, a bell alarm recorded by the alarm
service."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.alarms import service as alarms
from fleet.faults import store
from fleet.faults.rules import FaultKey, FaultRulesConfig, Observation
from fleet.faults.sla import FaultSeverity, SlaPolicy
from fleet.inventory.models import Camera, Node, Site
from protocols import messages as m

IMMEDIATE = FaultRulesConfig(per_kind={})  # no debounce: a raised condition opens its fault at once


def add_node(
    engine: sa.Engine,
    node_id: str,
    *,
    site_id: str | None = None,
    online: bool = True,
    district: str = "Jung-gu",
    site_class: str = "field",
    last_seen_ms: int = 0,
) -> None:
    with Session(engine) as db, db.begin():
        site = Site(
            site_id=site_id or node_id.replace("pole", "site"),
            name=f"Site of {node_id}",
            district=district,
            site_class=site_class,
        )
        node = Node(
            node_id=node_id,
            site=site,
            online=online,
            bd_seq=0,
            agent_version="0.1.0",
            hardware="raspberrypi",
            last_seen_ms=last_seen_ms,
        )
        node.cameras = [Camera(camera_id="cam-1", name="north")]
        db.add(node)


def open_fault(
    engine: sa.Engine,
    node_id: str,
    *,
    at: int,
    kind: str = "door",
    component: str = "cabinet",
    severity: FaultSeverity = "major",
) -> str:
    observation = Observation(FaultKey(node_id, component, kind), raised=True, at=at, severity=severity)
    with Session(engine) as db, db.begin():
        (outcome,) = store.observe(db, observation, config=IMMEDIATE, policy=SlaPolicy())
    assert outcome.ticket_id is not None
    return outcome.ticket_id


def assign(engine: sa.Engine, ticket_id: str, technician: str) -> None:
    with Session(engine) as db, db.begin():
        db.execute(
            sa.update(store.FaultTicketRow)
            .where(store.FaultTicketRow.ticket_id == ticket_id)
            .values(assignee=technician)
        )


def press_bell(engine: sa.Engine, node_id: str, *, alarm_id: str, pressed_at: int, received_at: int) -> None:
    alarm = m.BellAlarm(
        ts=pressed_at, seq=1, alarm_id=alarm_id, bell_id="bell-1", pressed_at=pressed_at, source="controller"
    )
    with Session(engine) as db, db.begin():
        alarms.record(db, node_id, alarm, received_at)
