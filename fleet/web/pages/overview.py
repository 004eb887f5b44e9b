"""/ : the control centre's overview. Counts by state, sites by district, every node as a cell
coloured by health (filter by district, search by id or name), and on every page the banner of
bell alarms waiting for an operator. The fragments refresh on the live stream's events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from fleet.alarms.models import BellAlarmRecord
from fleet.api.deps import DbSession
from fleet.faults.store import CLOSED_STATES, FaultTicketRow, open_fault_counts
from fleet.inventory.models import Node, Site
from fleet.web.render import page
from fleet.web.session import CentreUser, Viewer

router = APIRouter(include_in_schema=False)
Search = Annotated[str, Query(max_length=64)]


@dataclass(frozen=True, slots=True)
class NodeCell:
    node_id: str
    site_id: str
    site_name: str
    district: str
    health: str  # ok, fault, offline


@dataclass(frozen=True, slots=True)
class DistrictRow:
    district: str
    sites: int
    nodes: int
    offline: int
    with_faults: int


def node_cells(db: Session, *, district: str = "", search: str = "") -> list[NodeCell]:
    open_faults = open_fault_counts()
    query = (
        sa.select(Node.node_id, Node.online, Site.site_id, Site.name, Site.district, open_faults.c.node_id)
        .outerjoin(Site, Node.site_pk == Site.id)
        .outerjoin(open_faults, open_faults.c.node_id == Node.node_id)
        .order_by(Site.district, Node.node_id)
    )
    if district:
        query = query.where(Site.district == district)
    if search:
        like = f"%{search.lower()}%"
        query = query.where(
            sa.or_(
                sa.func.lower(Node.node_id).like(like),
                sa.func.lower(Site.site_id).like(like),
                sa.func.lower(Site.name).like(like),
            )
        )
    return [
        NodeCell(
            node_id=node_id,
            site_id=site_id or "",
            site_name=name or "",
            district=district_ or "",
            health="offline" if not online else "fault" if faulty else "ok",
        )
        for node_id, online, site_id, name, district_, faulty in db.execute(query)
    ]


def districts(cells: list[NodeCell]) -> list[DistrictRow]:
    rows: dict[str, list[NodeCell]] = {}
    for cell in cells:
        rows.setdefault(cell.district, []).append(cell)
    return [
        DistrictRow(
            district=name,
            sites=len({c.site_id for c in members}),
            nodes=len(members),
            offline=sum(c.health == "offline" for c in members),
            with_faults=sum(c.health == "fault" for c in members),
        )
        for name, members in sorted(rows.items())
    ]


def counts(db: Session, cells: list[NodeCell]) -> dict[str, int]:
    latched = db.scalar(
        sa.select(sa.func.count())
        .select_from(BellAlarmRecord)
        .where(BellAlarmRecord.acknowledged_at_ms.is_(None))
    )
    open_faults = db.scalar(
        sa.select(sa.func.count())
        .select_from(FaultTicketRow)
        .where(FaultTicketRow.state.not_in(CLOSED_STATES))
    )
    return {
        "nodes": len(cells),
        "online": sum(c.health != "offline" for c in cells),
        "offline": sum(c.health == "offline" for c in cells),
        "with_faults": sum(c.health == "fault" for c in cells),
        "latched": latched or 0,
        "open_faults": open_faults or 0,
    }


@router.get("/")
def overview(request: Request, who: CentreUser, db: DbSession) -> HTMLResponse:
    cells = node_cells(db)
    return page(
        request,
        "overview.html",
        who,
        counts=counts(db, cells),
        districts=districts(cells),
        cells=cells,
        district="",
        search="",
    )


@router.get("/fragments/overview/counts")
def overview_counts(request: Request, who: CentreUser, db: DbSession) -> HTMLResponse:
    cells = node_cells(db)
    return page(
        request, "fragments/overview_counts.html", who, counts=counts(db, cells), districts=districts(cells)
    )


@router.get("/fragments/overview/nodes")
def overview_nodes(
    request: Request, who: CentreUser, db: DbSession, district: Search = "", q: Search = ""
) -> HTMLResponse:
    cells = node_cells(db, district=district, search=q.strip())
    return page(request, "fragments/overview_nodes.html", who, cells=cells)


@router.get("/fragments/banner")
def alarm_banner(request: Request, who: Viewer, db: DbSession) -> HTMLResponse:
    """The bell alarms waiting for an operator, newest first, on every centre page."""
    rows = db.execute(
        sa.select(BellAlarmRecord, Site.site_id, Site.name)
        .join(Node, Node.node_id == BellAlarmRecord.node_id, isouter=True)
        .join(Site, Node.site_pk == Site.id, isouter=True)
        .where(BellAlarmRecord.acknowledged_at_ms.is_(None))
        .order_by(BellAlarmRecord.id.desc())
        .limit(20)
    ).all()
    waiting = [
        {"alarm": alarm, "site_id": site_id or "", "site_name": name or alarm.node_id}
        for alarm, site_id, name in rows
    ]
    return page(request, "fragments/banner.html", who, waiting=waiting)
