"""OTA campaigns in the database, around the pure core (fleet.ota.campaign): a campaign is
created with its targets resolved and split into waves once (a snapshot: a node born later is
not added), loaded as the core's values, and saved from what the core returns. Used by the
routes (create, person actions, reading), the runner (ticks) and ingest (a node's progress).

Concurrency: everything that changes a campaign or its nodes first locks the campaign's row
(SELECT ... FOR UPDATE), so the runner of any worker, ingest of any worker and a person's pause
never interleave on one campaign. The runner skips a campaign locked by someone else
(SKIP LOCKED on PostgreSQL): it will be there at the next tick. Time is passed in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.alarms.models import BellAlarmRecord
from fleet.faults.store import FaultTicketRow
from fleet.inventory.models import Controller, Node, Site, SiteTag
from fleet.ota import campaign as core
from fleet.ota.campaign import (
    Campaign,
    CampaignAction,
    CampaignNode,
    CampaignState,
    Conditions,
    MaintenanceWindow,
    NodeState,
    Report,
    Wave,
    WavePlan,
)
from fleet.ota.errors import PlanError
from fleet.ota.models import OtaCampaign, OtaCampaignNode, OtaRelease
from fleet.ota.releases import hardware_of
from protocols import messages as m
from protocols.ota import version_key

log = logging.getLogger(__name__)

ACTIVE_STATES = tuple(s.value for s in CampaignState if s not in core.OVER)
FINAL_STATES = tuple(s.value for s in core.FINAL)


@dataclass(frozen=True, slots=True)
class Target:
    """Which nodes a campaign is for. The selectors (sites, tags, districts, node ids) add up:
    a node any of them picks is in, and with none given every node is. The filters (current
    version, hardware) then narrow; the release's own hardware list always does for an edge
    agent (a controller's hardware is not in the inventory: its node checks it)."""

    site_ids: tuple[str, ...] = ()
    site_tags: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    node_ids: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()  # the agent's (edge-agent) or controller firmware's version now
    hardware: tuple[str, ...] = ()  # the node's hardware (node.hardware)

    def to_json(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class Resolved:
    node_ids: list[str]
    skipped: dict[str, int] = field(default_factory=dict)  # by reason


def resolve_targets(session: Session, target: Target, release: OtaRelease) -> Resolved:
    query = sa.select(
        Node.node_id, Node.hardware, Node.agent_version, Controller.link, Controller.firmware_version
    )
    query = query.join(Controller, Controller.node_pk == Node.id, isouter=True)
    selectors = []
    if target.node_ids:
        selectors.append(Node.node_id.in_(target.node_ids))
    if target.site_ids:
        selectors.append(Node.site_pk.in_(sa.select(Site.id).where(Site.site_id.in_(target.site_ids))))
    if target.districts:
        selectors.append(Node.site_pk.in_(sa.select(Site.id).where(Site.district.in_(target.districts))))
    if target.site_tags:
        selectors.append(
            Node.site_pk.in_(sa.select(SiteTag.site_pk).where(SiteTag.tag.in_(target.site_tags)))
        )
    if selectors:
        query = query.where(sa.or_(*selectors))
    busy = set(
        session.scalars(
            sa.select(OtaCampaignNode.node_id)
            .join(OtaCampaign, OtaCampaign.id == OtaCampaignNode.campaign_pk)
            .join(OtaRelease, OtaRelease.id == OtaCampaign.release_pk)
            .where(
                OtaCampaign.state.in_(ACTIVE_STATES),
                OtaRelease.component == release.component,
                OtaCampaignNode.state.not_in(FINAL_STATES),
            )
        )
    )
    firmware = release.component == "controller-firmware"
    allowed_hardware = set(hardware_of(release))
    minimum = version_key(release.min_version) if release.min_version else None
    chosen: list[str] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for node_id, hardware, agent_version, link, firmware_version in session.execute(
        query.order_by(Node.node_id)
    ):
        current = firmware_version if firmware else agent_version
        if firmware and link != "serial":
            skip("no-controller")  # GPIO wiring, or no controller: no firmware to update
        elif (target.hardware and hardware not in target.hardware) or (
            not firmware and hardware not in allowed_hardware
        ):
            skip("other-hardware")
        elif target.versions and current not in target.versions:
            skip("other-version")
        elif current == release.release:
            skip("already-at-release")
        elif minimum is not None and not _at_least(current, minimum):
            skip("below-min-version")
        elif node_id in busy:
            skip("in-another-campaign")
        else:
            chosen.append(node_id)
    return Resolved(chosen, skipped)


def _at_least(version: str | None, minimum: tuple[Any, ...]) -> bool:
    try:
        return version is not None and version_key(version) >= minimum
    except ValueError:
        return False  # a version the node reported that is not one: it would refuse anyway


# --- creating and loading -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignRequest:
    release: OtaRelease
    target: Target
    waves: Sequence[WavePlan]
    require_approval: bool = False
    abort_action: core.AbortAction = "pause"
    node_timeout_s: int = 1800
    max_in_flight: int | None = None
    window: MaintenanceWindow | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Created:
    row: OtaCampaign
    skipped: dict[str, int]


def create(session: Session, request: CampaignRequest, *, by: str, now_ms: int) -> Created:
    resolved = resolve_targets(session, request.target, request.release)
    if not resolved.node_ids:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(resolved.skipped.items())) or "none"
        raise PlanError("target", f"selects no node to update (skipped: {skipped})")
    waves = core.plan_waves(request.waves, len(resolved.node_ids))
    assigned = core.assign_waves(resolved.node_ids, waves)
    row = OtaCampaign(
        campaign_id=uuid.uuid4().hex[:16],
        release_pk=request.release.id,
        state=CampaignState.RUNNING.value,
        reason="",
        waves=json.dumps([dataclasses.asdict(w) for w in waves]),
        target=json.dumps(request.target.to_json(), sort_keys=True),
        opened_waves=0,
        approved_through=0,
        accepted_failures="[]",
        require_approval=request.require_approval,
        abort_action=request.abort_action,
        node_timeout_s=request.node_timeout_s,
        max_in_flight=request.max_in_flight,
        window=_window_json(request.window),
        note=request.note,
        created_at_ms=now_ms,
        created_by=by,
        updated_at_ms=now_ms,
    )
    session.add(row)
    session.flush()
    session.execute(
        sa.insert(OtaCampaignNode),
        [
            {
                "campaign_pk": row.id,
                "node_id": node_id,
                "wave": wave,
                "state": NodeState.QUEUED.value,
                "detail": "",
                "offers": 0,
                "updated_at_ms": now_ms,
            }
            for node_id, wave in sorted(assigned.items())
        ],
    )
    return Created(row, resolved.skipped)


def get(session: Session, campaign_id: str, *, lock: bool = False) -> OtaCampaign | None:
    query = sa.select(OtaCampaign).where(OtaCampaign.campaign_id == campaign_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def lock_for_tick(session: Session, campaign_pk: int) -> OtaCampaign | None:
    """The campaign's row, locked, unless another worker (or ingest) holds it right now."""
    query = sa.select(OtaCampaign).where(OtaCampaign.id == campaign_pk).with_for_update()
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).one_or_none()


def active_campaigns(session: Session) -> list[int]:
    return list(
        session.scalars(
            sa.select(OtaCampaign.id).where(OtaCampaign.state.in_(ACTIVE_STATES)).order_by(OtaCampaign.id)
        )
    )


def release_of(session: Session, row: OtaCampaign) -> OtaRelease:
    return session.get_one(OtaRelease, row.release_pk)


def core_of(row: OtaCampaign) -> Campaign:
    window = json.loads(row.window) if row.window else None
    return Campaign(
        campaign_id=row.campaign_id,
        waves=waves_of(row),
        state=CampaignState(row.state),
        reason=row.reason,
        opened_waves=row.opened_waves,
        approved_through=row.approved_through,
        require_approval=row.require_approval,
        abort_action="cancel" if row.abort_action == "cancel" else "pause",
        node_timeout_ms=row.node_timeout_s * 1000,
        max_in_flight=row.max_in_flight,
        window=MaintenanceWindow(
            start=time.fromisoformat(window["start"]),
            end=time.fromisoformat(window["end"]),
            time_zone=window["time_zone"],
        )
        if window
        else None,
        accepted_failures=tuple(json.loads(row.accepted_failures)),
    )


def waves_of(row: OtaCampaign) -> tuple[Wave, ...]:
    return tuple(Wave(**w) for w in json.loads(row.waves))


def window_of(row: OtaCampaign) -> dict[str, str] | None:
    window: dict[str, str] | None = json.loads(row.window) if row.window else None
    return window


def _window_json(window: MaintenanceWindow | None) -> str | None:
    if window is None:
        return None
    return json.dumps(
        {
            "start": window.start.isoformat("minutes"),
            "end": window.end.isoformat("minutes"),
            "time_zone": window.time_zone,
        }
    )


def save_core(row: OtaCampaign, campaign: Campaign, now_ms: int) -> None:
    changed = (
        row.state != campaign.state.value
        or row.opened_waves != campaign.opened_waves
        or row.approved_through != campaign.approved_through
    )
    row.state = campaign.state.value
    row.reason = campaign.reason
    row.opened_waves = campaign.opened_waves
    row.approved_through = campaign.approved_through
    row.accepted_failures = json.dumps(list(campaign.accepted_failures))
    if changed:
        row.updated_at_ms = now_ms
    if campaign.state in core.OVER and row.finished_at_ms is None:
        row.finished_at_ms = now_ms


def node_rows(session: Session, row: OtaCampaign) -> list[OtaCampaignNode]:
    return list(
        session.scalars(
            sa.select(OtaCampaignNode)
            .where(OtaCampaignNode.campaign_pk == row.id)
            .order_by(OtaCampaignNode.node_id)
        )
    )


def core_node(row: OtaCampaignNode) -> CampaignNode:
    return CampaignNode(
        node_id=row.node_id,
        wave=row.wave,
        state=NodeState(row.state),
        reason=row.reason,
        detail=row.detail,
        progress=row.progress,
        last_heard_ms=row.last_heard_ms,
        reported_ts=row.reported_ts,
        finished_at_ms=row.finished_at_ms,
    )


def save_node(row: OtaCampaignNode, node: CampaignNode, now_ms: int) -> None:
    if row.state != node.state.value:
        row.updated_at_ms = now_ms
        row.hold = None
    row.state = node.state.value
    row.reason = node.reason
    row.detail = node.detail[:2000]
    row.progress = node.progress
    row.last_heard_ms = node.last_heard_ms
    row.reported_ts = node.reported_ts
    row.finished_at_ms = node.finished_at_ms


def conditions(session: Session) -> Conditions:
    """What holds nodes back right now: active bell alarms (not yet acknowledged, or not yet
    cleared), faults being worked, nodes offline. Each a small set in a sound fleet."""
    alarms = session.scalars(
        sa.select(BellAlarmRecord.node_id)
        .where(sa.or_(BellAlarmRecord.acknowledged_at_ms.is_(None), BellAlarmRecord.cleared_at_ms.is_(None)))
        .distinct()
    )
    faults = session.scalars(
        sa.select(FaultTicketRow.node_id).where(FaultTicketRow.open_key.is_not(None)).distinct()
    )
    offline = session.scalars(sa.select(Node.node_id).where(Node.online.is_(False)))
    return Conditions(bell_alarm=frozenset(alarms), open_fault=frozenset(faults), offline=frozenset(offline))


# --- a person's actions ---------------------------------------------------------------------


def act(session: Session, row: OtaCampaign, action: CampaignAction, *, note: str, now_ms: int) -> Campaign:
    """Pause, resume, cancel or approve (the caller locked `row`); raises IllegalCampaignTransition."""
    campaign = core_of(row)
    if action is CampaignAction.RESUME:
        nodes = [core_node(n) for n in node_rows(session, row)]
        after = core.resume(campaign, nodes, reason=note)
    elif action is CampaignAction.APPROVE:
        after = dataclasses.replace(core.approve(campaign), reason=note)
    else:
        after = core.transition(campaign, action, reason=note)
    save_core(row, after, now_ms)
    return after


# --- a node's progress, from ingest -------------------------------------------------------------


def record_progress(session: Session, node_id: str, message: m.OtaProgress, received_ms: int) -> str:
    """A node's OtaProgress into its campaign, inside ingest's transaction. Returns what
    became of it: `taken`, or why not (`unknown-campaign`, `other-release`, `not-targeted`,
    or the core's Ignored: `stale`, `behind`, `final`)."""
    row = get(session, message.campaign_id, lock=True)
    if row is None:
        return "unknown-campaign"
    if release_of(session, row).release != message.release:
        return "other-release"
    node_row = session.scalars(
        sa.select(OtaCampaignNode).where(
            OtaCampaignNode.campaign_pk == row.id, OtaCampaignNode.node_id == node_id
        )
    ).one_or_none()
    if node_row is None:
        return "not-targeted"
    node = core_node(node_row)
    report = Report(
        state=NodeState(message.state),
        ts=message.ts,
        progress=message.progress,
        reason=message.reason,
        detail=message.detail,
    )
    after = core.take_report(node, report, received_ms)
    if isinstance(after, core.Ignored):
        save_node(node_row, core.heard(node, report, received_ms), received_ms)
        return after.value
    save_node(node_row, after, received_ms)
    return "taken"


# --- reading ----------------------------------------------------------------------------------


def counts(session: Session, campaign_pks: Iterable[int]) -> dict[int, dict[tuple[int, str], int]]:
    """Per campaign, its nodes counted by (wave, state)."""
    pks = list(campaign_pks)
    found: dict[int, dict[tuple[int, str], int]] = {pk: {} for pk in pks}
    if not pks:
        return found
    rows = session.execute(
        sa.select(OtaCampaignNode.campaign_pk, OtaCampaignNode.wave, OtaCampaignNode.state, sa.func.count())
        .where(OtaCampaignNode.campaign_pk.in_(pks))
        .group_by(OtaCampaignNode.campaign_pk, OtaCampaignNode.wave, OtaCampaignNode.state)
    )
    for pk, wave, state, n in rows:
        found[pk][(wave, state)] = n
    return found


def holds(session: Session, campaign_pk: int) -> dict[str, int]:
    """Queued nodes counted by what held them at the last tick."""
    rows = session.execute(
        sa.select(OtaCampaignNode.hold, sa.func.count())
        .where(
            OtaCampaignNode.campaign_pk == campaign_pk,
            OtaCampaignNode.state == NodeState.QUEUED.value,
            OtaCampaignNode.hold.is_not(None),
        )
        .group_by(OtaCampaignNode.hold)
    )
    return {str(hold): n for hold, n in rows}
