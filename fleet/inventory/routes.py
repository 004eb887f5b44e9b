"""/nodes, /sites and the cameras' purposes: the inventory and each node's live state.

Listings page by key (`after` = the last id of the previous page), so a page stays correct
while nodes come and go, and filter on the columns an operator sorts a fleet by."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, selectinload

from fleet.access.roles import Permission
from fleet.access.tokens import Principal
from fleet.api.deps import Audit, DbSession, Nodes, NowMs, PathId, require
from fleet.api.errors import ApiError, not_found
from fleet.commands import new_command_id
from fleet.faults.store import FaultTicketRow, open_fault_counts
from fleet.inventory.csv_import import CsvImportError, import_sites
from fleet.inventory.models import Camera, CameraPurpose, Controller, Node, Site, SiteTag
from protocols import messages as m
from protocols.errors import ContractError
from protocols.topics import Kind

router = APIRouter(tags=["inventory"])
Reader = Depends(require(Permission.READ))
Admin = Annotated[Principal, Depends(require(Permission.INVENTORY_WRITE))]
Commander = Annotated[Principal, Depends(require(Permission.NODE_COMMAND))]


class NodeState(BaseModel):
    node_id: str
    site_id: str | None
    district: str | None
    online: bool
    last_seen_ms: int | None
    bd_seq: int | None
    agent_version: str
    hardware: str
    controller_firmware: str | None
    open_faults: int


class NodePage(BaseModel):
    items: list[NodeState]
    next_after: str | None  # pass as `after` for the next page; null on the last


class CameraInfo(BaseModel):
    camera_id: str
    name: str
    model: str
    purpose: CameraPurpose


class StorageInfo(BaseModel):
    device: str
    health: str
    wear_pct: float | None
    free_bytes: int | None
    read_only: bool


class NodeDetail(NodeState):
    gaps: int
    duplicates: int
    birth_ms: int | None
    controller_link: str | None
    controller_reset_cause: str | None
    cameras: list[CameraInfo]
    storage: list[StorageInfo]


class SiteInfo(BaseModel):
    site_id: str
    name: str
    address: str
    district: str
    pole_type: str
    site_class: str
    latitude: float | None
    longitude: float | None
    has_bell: bool
    tags: list[str]
    nodes: list[str]


class SitePage(BaseModel):
    items: list[SiteInfo]
    next_after: str | None


class ImportResult(BaseModel):
    created: int
    updated: int


class PurposeChange(BaseModel):
    purpose: CameraPurpose


class CommandRequest(BaseModel):
    name: m.CommandName
    args: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=16)
    expires_in_s: int = Field(default=300, ge=10, le=86_400)


class CommandSent(BaseModel):
    command_id: str
    node_id: str
    name: str


def _node_rows(db: Session, query: sa.Select[Node]) -> list[NodeState]:
    """The rows `query` selects (its filters, order and limit), as plain columns: loading whole
    ORM objects would cost more than the SQL for a page of 3,000 (bench/fleet_api.py)."""
    faults = open_fault_counts()
    rows = db.execute(
        query.with_only_columns(
            Node.node_id,
            Site.site_id,
            Site.district,
            Node.online,
            Node.last_seen_ms,
            Node.bd_seq,
            Node.agent_version,
            Node.hardware,
            Controller.firmware_version,
            faults.c.n,
        )
        .select_from(Node)
        .outerjoin(Site, Node.site_pk == Site.id)
        .outerjoin(Controller, Controller.node_pk == Node.id)
        .outerjoin(faults, faults.c.node_id == Node.node_id)
    )
    return [
        NodeState(
            node_id=row.node_id,
            site_id=row.site_id,
            district=row.district,
            online=row.online,
            last_seen_ms=row.last_seen_ms,
            bd_seq=row.bd_seq,
            agent_version=row.agent_version,
            hardware=row.hardware,
            controller_firmware=row.firmware_version,
            open_faults=row.n or 0,
        )
        for row in rows
    ]


@router.get("/nodes", dependencies=[Reader])
def list_nodes(
    *,
    db: DbSession,
    online: bool | None = None,
    district: str | None = None,
    site_class: str | None = None,
    tag: str | None = None,
    agent_version: str | None = None,
    has_faults: bool | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> NodePage:
    query = sa.select(Node).order_by(Node.node_id).limit(limit)
    if online is not None:
        query = query.where(Node.online.is_(online))
    if after is not None:
        query = query.where(Node.node_id > after)
    if agent_version is not None:
        query = query.where(Node.agent_version == agent_version)
    if district is not None or site_class is not None or tag is not None:
        sites = sa.select(Site.id)
        if district is not None:
            sites = sites.where(Site.district == district)
        if site_class is not None:
            sites = sites.where(Site.site_class == site_class)
        if tag is not None:
            sites = sites.where(Site.id.in_(sa.select(SiteTag.site_pk).where(SiteTag.tag == tag)))
        query = query.where(Node.site_pk.in_(sites))
    if has_faults is not None:
        with_faults = sa.select(FaultTicketRow.node_id).where(FaultTicketRow.open_key.is_not(None))
        query = query.where(Node.node_id.in_(with_faults) if has_faults else Node.node_id.not_in(with_faults))
    items = _node_rows(db, query)
    return NodePage(items=items, next_after=items[-1].node_id if len(items) == limit else None)


@router.get("/nodes/{node_id}", dependencies=[Reader])
def get_node(*, node_id: PathId, db: DbSession) -> NodeDetail:
    found = _node_rows(db, sa.select(Node).where(Node.node_id == node_id))
    if not found:
        raise not_found("node", node_id)
    node = db.scalars(
        sa.select(Node)
        .where(Node.node_id == node_id)
        .options(selectinload(Node.cameras), selectinload(Node.controller), selectinload(Node.storage))
    ).one()
    controller = node.controller
    return NodeDetail(
        **found[0].model_dump(),
        gaps=node.gaps,
        duplicates=node.duplicates,
        birth_ms=node.birth_ms,
        controller_link=controller.link if controller else None,
        controller_reset_cause=controller.reset_cause if controller else None,
        cameras=[
            CameraInfo(camera_id=c.camera_id, name=c.name, model=c.model, purpose=c.purpose)
            for c in sorted(node.cameras, key=lambda c: c.camera_id)
        ],
        storage=[
            StorageInfo(
                device=d.device,
                health=d.health,
                wear_pct=d.wear_pct,
                free_bytes=d.free_bytes,
                read_only=d.read_only,
            )
            for d in sorted(node.storage, key=lambda d: d.device)
        ],
    )


def _site_info(site: Site) -> SiteInfo:
    return SiteInfo(
        site_id=site.site_id,
        name=site.name,
        address=site.address,
        district=site.district,
        pole_type=site.pole_type,
        site_class=site.site_class,
        latitude=site.latitude,
        longitude=site.longitude,
        has_bell=site.has_bell,
        tags=sorted(t.tag for t in site.tags),
        nodes=sorted(n.node_id for n in site.nodes),
    )


@router.get("/sites", dependencies=[Reader])
def list_sites(
    *,
    db: DbSession,
    district: str | None = None,
    site_class: str | None = None,
    tag: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> SitePage:
    query = (
        sa.select(Site)
        .order_by(Site.site_id)
        .limit(limit)
        .options(selectinload(Site.tags), selectinload(Site.nodes))
    )
    if district is not None:
        query = query.where(Site.district == district)
    if site_class is not None:
        query = query.where(Site.site_class == site_class)
    if tag is not None:
        query = query.where(Site.id.in_(sa.select(SiteTag.site_pk).where(SiteTag.tag == tag)))
    if after is not None:
        query = query.where(Site.site_id > after)
    items = [_site_info(s) for s in db.scalars(query)]
    return SitePage(items=items, next_after=items[-1].site_id if len(items) == limit else None)


@router.get("/sites/{site_id}", dependencies=[Reader])
def get_site(*, site_id: PathId, db: DbSession) -> SiteInfo:
    site = db.scalars(
        sa.select(Site)
        .where(Site.site_id == site_id)
        .options(selectinload(Site.tags), selectinload(Site.nodes))
    ).one_or_none()
    if site is None:
        raise not_found("site", site_id)
    return _site_info(site)


@router.post("/sites/import", status_code=200)
def import_sites_csv(
    *,
    db: DbSession,
    who: Admin,
    audit: Audit,
    csv_text: Annotated[str, Body(media_type="text/csv", max_length=20_000_000)],
) -> ImportResult:
    """The city's site list as CSV (columns in docs/fleet.md): all rows or none."""
    try:
        report = import_sites(db, csv_text)
    except CsvImportError as error:
        details = [{"line": p.line, "column": p.column, "problem": p.message} for p in error.problems]
        raise ApiError(422, "invalid-csv", str(error), details) from None
    audit("sites.import", "sites", created=report.created, updated=report.updated)
    return ImportResult(created=report.created, updated=report.updated)


@router.put("/nodes/{node_id}/cameras/{camera_id}/purpose")
def set_camera_purpose(
    *, node_id: PathId, camera_id: PathId, body: PurposeChange, db: DbSession, who: Admin, audit: Audit
) -> CameraInfo:
    camera = db.scalars(
        sa.select(Camera).join(Node).where(Node.node_id == node_id, Camera.camera_id == camera_id)
    ).one_or_none()
    if camera is None:
        raise not_found("camera", f"{node_id}/{camera_id}")
    before = camera.purpose
    camera.purpose = body.purpose
    audit("camera.purpose", f"camera/{node_id}/{camera_id}", before=before.value, after=body.purpose.value)
    return CameraInfo(
        camera_id=camera.camera_id, name=camera.name, model=camera.model, purpose=camera.purpose
    )


@router.post("/nodes/{node_id}/commands", status_code=202)
def send_command(
    *,
    node_id: PathId,
    body: CommandRequest,
    db: DbSession,
    who: Commander,
    now: NowMs,
    audit: Audit,
    nodes: Nodes,
) -> CommandSent:
    """Queued to the node over MQTT (QoS 1); its result comes back as a `result` message."""
    if db.scalars(sa.select(Node.id).where(Node.node_id == node_id)).one_or_none() is None:
        raise not_found("node", node_id)
    command_id = new_command_id(body.name)
    draft = m.Command(
        ts=now,
        command_id=command_id,
        name=body.name,
        args=body.args,
        issued_by=who.subject,
        expires_at=now + body.expires_in_s * 1000,
    )
    # Through the contract's own decoder: what the node would refuse is refused here, named.
    command = m.decode(Kind.COMMAND, m.encode(draft))
    if isinstance(command, ContractError):
        raise ApiError(422, "invalid-command", str(command))
    try:
        nodes.send(node_id, command)
    except ConnectionError as error:
        raise ApiError(503, "no-node-link", str(error)) from None
    audit("node.command", f"node/{node_id}", command_id=command_id, name=body.name, args=body.args)
    return CommandSent(command_id=command_id, node_id=node_id, name=body.name)
