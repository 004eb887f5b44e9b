"""One node message into the fleet's database, inside the caller's transaction.

The node's MQTT session (protocols.session.NodeSession: bd_seq, last seq, online) lives in its
`node` row, read with FOR UPDATE, so several fleet workers sharing one subscription agree on
duplicates and gaps. A birth replaces what the fleet knew of the node (controller, cameras;
a camera's purpose, set by the city, is kept); a death with the session's bd_seq takes it
offline. What the message asks of the shell comes back in `Applied`: ask the node for a
rebirth, write telemetry to the time series, count a site visit (fleet.ingest.visits).

A known node the fleet holds offline (after its death, or when it went quiet: fleet.ingest.
liveness) may still be sending in the session it believes alive. Its bell alarms, events and
site visits are facts from the pole and are kept (each is idempotent without the session's seq);
the node is asked for a rebirth, which brings it back online.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from fleet.alarms import service as alarms
from fleet.commands import command_name
from fleet.faults import rules, store
from fleet.faults.rules import FaultRulesConfig
from fleet.faults.sla import SlaPolicy
from fleet.ingest.visits import VisitResult, apply_visit
from fleet.inspections import service as inspections
from fleet.inspections.errors import UnknownNode
from fleet.inventory import rollups
from fleet.inventory.models import Camera, Controller, Node, Site, StorageDevice
from fleet.ota import store as ota_store
from fleet.tsdb import NodeReading
from protocols import messages as m
from protocols.session import NodeSession, Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    verdict: Verdict
    rebirth: bool = False  # the node must start a new session: the fleet lost track of it
    reading: NodeReading | None = None  # telemetry for the time series
    visit: VisitResult | None = None  # what a technician's site visit did to its ticket


@dataclass(frozen=True, slots=True)
class FaultPolicy:
    rules: FaultRulesConfig = field(default_factory=FaultRulesConfig)
    sla: SlaPolicy = field(default_factory=SlaPolicy)


def apply(
    session: Session, node_id: str, message: m.Message, received_ms: int, *, faults: FaultPolicy | None = None
) -> Applied:
    query = sa.select(Node).where(Node.node_id == node_id).with_for_update()
    if isinstance(message, m.NodeBirth):
        # Only a birth replaces the node's inventory; every other message needs the node's own
        # row alone (its session counters), so the three relation loads are not paid for each
        # progress report or event.
        query = query.options(
            selectinload(Node.cameras), selectinload(Node.controller), selectinload(Node.site)
        )
    node = session.scalars(query).one_or_none()
    if node is None:
        if not isinstance(message, m.NodeBirth):
            # Data from a node the fleet has never seen born (a fresh database, a new pole).
            return Applied(Verdict.NO_SESSION, rebirth=not isinstance(message, m.NodeDeath))
        node = Node(node_id=node_id)
        session.add(node)
    state = NodeSession(
        bd_seq=node.bd_seq,
        last_seq=node.last_seq or 0,
        online=node.online,
        gaps=node.gaps or 0,
        duplicates=node.duplicates or 0,
    )
    verdict = state.observe(message)
    node.bd_seq, node.last_seq, node.online = state.bd_seq, state.last_seq, state.online
    node.gaps, node.duplicates = state.gaps, state.duplicates
    if verdict in (Verdict.DUPLICATE, Verdict.STALE_DEATH):
        return Applied(verdict)
    if verdict is Verdict.NO_SESSION:
        # Held offline, still talking: keep what it says of the pole (see the module's note).
        if isinstance(message, m.Event) and faults is not None:
            _faults(session, node_id, message, verdict=verdict, received_ms=received_ms, policy=faults)
        return Applied(verdict, rebirth=True, visit=_record(session, node, message, received_ms))
    if faults is not None:
        _faults(session, node_id, message, verdict=verdict, received_ms=received_ms, policy=faults)
    node.last_seen_ms = received_ms
    if isinstance(message, m.NodeBirth):
        _birth(session, node, message)
        return Applied(verdict)
    visit = _record(session, node, message, received_ms)
    reading = None
    if isinstance(message, m.Telemetry) and node.site is not None:
        reading = NodeReading(node_id, node.site.site_id, message)
    return Applied(verdict, rebirth=verdict is Verdict.GAP, reading=reading, visit=visit)


def _record(session: Session, node: Node, message: m.Message, received_ms: int) -> VisitResult | None:
    """A bell alarm, a site visit, a self-test result or an OTA progress report of the node
    into the database (other messages: nothing)."""
    if isinstance(message, m.BellAlarm):
        alarms.record(session, node.node_id, message, received_ms)
    elif isinstance(message, m.SiteVisit):
        return apply_visit(session, node.node_id, node.node_key, message, received_ms=received_ms)
    elif isinstance(message, m.OtaProgress):
        # Into the node's state in its campaign (fleet.ota.store: out-of-date reports ignored).
        outcome = ota_store.record_progress(session, node.node_id, message, received_ms)
        if outcome != "taken":
            log.debug("fleet ingest: OTA progress of %s not taken: %s", node.node_id, outcome)
    elif isinstance(message, m.CommandResult) and command_name(message.command_id) == "self-test":
        try:
            inspections.record_self_test(session, node.node_id, message, received_ms)
        except UnknownNode as error:
            log.warning(
                "fleet ingest: self-test result of %s not filed as an inspection: %s", node.node_id, error
            )
    return None


def _birth(session: Session, node: Node, birth: m.NodeBirth) -> None:
    node.birth_ms = birth.ts
    node.hardware = birth.hardware
    node.agent_version = birth.agent_version
    node.node_key = birth.node_key
    site = session.scalars(sa.select(Site).where(Site.site_id == birth.site_id)).one_or_none()
    if site is None:
        # A pole the city's inventory does not list yet: keep it, named by its id, for an admin.
        site = Site(site_id=birth.site_id, name=birth.site_id)
        session.add(site)
    node.site = site
    if birth.controller is None:
        node.controller = None
    else:
        controller = node.controller or Controller(link=birth.controller.link)
        controller.link = birth.controller.link
        controller.firmware_version = birth.controller.firmware_version
        controller.reset_cause = birth.controller.reset_cause
        node.controller = controller
    known = {camera.camera_id: camera for camera in node.cameras}
    cameras = []
    for info in birth.cameras:
        camera = known.get(info.camera_id) or Camera(camera_id=info.camera_id)
        camera.name = info.name
        camera.model = info.model or ""
        cameras.append(camera)
    node.cameras = cameras


def _faults(
    session: Session,
    node_id: str,
    message: m.Message,
    *,
    verdict: Verdict,
    received_ms: int,
    policy: FaultPolicy,
) -> None:
    observation: rules.Observation | None = None
    if isinstance(message, m.Event):
        observation = rules.observe_event(node_id, message)
    elif verdict is Verdict.OFFLINE:
        # A will's own ts is from the session's CONNECT: the death is dated when it arrived.
        observation = rules.node_offline(node_id, at=received_ms, config=policy.rules)
    elif verdict is Verdict.NEW_SESSION:
        observation = rules.node_online(node_id, at=received_ms)
    if observation is not None:
        store.observe(session, observation, config=policy.rules, policy=policy.sla)


def apply_telemetry(
    session: Session,
    readings: list[tuple[str, m.Telemetry, int]],
    *,
    rollup_into: rollups.RollupBuffer | None = None,
) -> tuple[list[NodeReading], list[str]]:
    """Many nodes' telemetry at once (node id, message, received ms), in a few statements (the
    nodes, their storage devices, their metrics' 5-minute roll-ups, last seen): the bulk of
    the stream. Telemetry changes no session state (protocols.session): it is accepted
    from a node that is online, and asks for a rebirth otherwise. Returns the readings for the
    time series and the nodes to ask for a rebirth. The caller applies the messages around it
    in order, so every node's state here is the one the telemetry arrived in. With
    `rollup_into`, the roll-ups are merged there for the caller to store later (the ingest
    writes them once a second) instead of in this transaction."""
    node_ids = sorted({node_id for node_id, _, _ in readings})
    known = {
        node_id: (node_pk, online, site_id)
        for node_id, node_pk, online, site_id in session.execute(
            sa.select(Node.node_id, Node.id, Node.online, Site.site_id)
            .join(Site, Node.site_pk == Site.id, isouter=True)
            .where(Node.node_id.in_(node_ids))
        )
    }
    accepted: list[NodeReading] = []
    rebirth: list[str] = []
    seen: dict[str, int] = {}
    history: list[tuple[str, m.Telemetry]] = []  # for the roll-ups (fleet.inventory.rollups)
    storage: dict[tuple[int, str], m.StorageHealth] = {}  # the latest report of each device
    for node_id, message, received_ms in readings:
        node_pk, online, site_id = known.get(node_id, (0, False, None))
        if not online:
            rebirth.append(node_id)
            continue
        seen[node_id] = max(seen.get(node_id, 0), received_ms)
        history.append((node_id, message))
        for device in message.readings.storage:
            storage[(node_pk, device.device)] = device
        if site_id is not None:
            accepted.append(NodeReading(node_id, site_id, message))
    if storage:
        _store_devices(session, storage)
    folded = rollups.aggregate(history)
    if rollup_into is None:
        rollups.store(session, folded)
    else:
        rollup_into.add(folded)
    if seen:
        # Core UPDATE, executemany: one statement for the batch (not the ORM's by-primary-key).
        statement = (
            sa.update(Node)
            .where(Node.node_id == sa.bindparam("b_node"))
            .values(last_seen_ms=sa.bindparam("b_seen"))
        )
        session.connection().execute(statement, [{"b_node": n, "b_seen": at} for n, at in seen.items()])
    return accepted, rebirth


def _store_devices(session: Session, devices: dict[tuple[int, str], m.StorageHealth]) -> None:
    """The inventory's storage devices as the nodes last reported them: one upsert per batch."""
    rows = [
        {
            "node_pk": node_pk,
            "device": device,
            "health": h.health,
            "wear_pct": h.wear_pct,
            "free_bytes": h.free_bytes,
            "read_only": h.read_only,
        }
        for (node_pk, device), h in sorted(devices.items())
    ]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(StorageDevice)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["node_pk", "device"],
            set_={
                column: statement.excluded[column]
                for column in ("health", "wear_pct", "free_bytes", "read_only")
            },
        ),
        rows,
    )
