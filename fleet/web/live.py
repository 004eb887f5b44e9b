"""`/live`: a server-sent event stream per open page, saying what changed so the page's
fragments fetch themselves again (`hx-trigger="live:alarms from:body"`, relayed by app.js):
`alarms`, `faults`, `nodes`, `ota`.

Changes are found by watching small watermarks in the database a few times a second (the last
alarm and how many are latched, tickets by state, nodes online, the latest change to an OTA
campaign or to one of its nodes), so a change made by any fleet worker, or by ingest, reaches
every browser; no page ever reloads whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from fleet.alarms.models import BellAlarmRecord
from fleet.audit.models import AuditEntry
from fleet.faults.store import FaultTicketRow
from fleet.inventory.models import Node
from fleet.ota import store as ota_store
from fleet.ota.models import OtaCampaign, OtaCampaignNode
from fleet.web.session import Viewer

router = APIRouter(include_in_schema=False)
EVERY_S: Final = 0.25
KEEPALIVE_S: Final = 15.0
Watermarks = dict[str, tuple[object, ...]]


def watermarks(engine: sa.Engine) -> Watermarks:
    with Session(engine) as db:
        alarms = db.execute(
            sa.select(
                sa.func.max(BellAlarmRecord.id),
                sa.func.count(BellAlarmRecord.acknowledged_at_ms),
                sa.func.count(BellAlarmRecord.cleared_at_ms),
            )
        ).one()
        faults = db.execute(
            sa.select(FaultTicketRow.state, sa.func.count(), sa.func.max(FaultTicketRow.id))
            .group_by(FaultTicketRow.state)
            .order_by(FaultTicketRow.state)
        ).all()
        # Steps leave an audit entry; an assignment changes no state, but it is audited too.
        audited = db.scalar(sa.select(sa.func.max(AuditEntry.id)).where(AuditEntry.target.like("ticket/%")))
        nodes = db.execute(
            sa.select(sa.func.count(), sa.func.count().filter(Node.online), sa.func.max(Node.birth_ms))
        ).one()
        campaigns = db.execute(
            sa.select(
                sa.func.count(),
                sa.func.max(OtaCampaign.updated_at_ms),
                sa.func.count(OtaCampaign.finished_at_ms),
            )
        ).one()
        # A node's report moves its state (updated_at_ms) or, within a state, only its progress:
        # every report taken is heard (last_heard_ms). The runner's offers and holds change
        # neither of those on a queued node, hence the offers and the holds counted too. Only
        # the nodes of campaigns still under way: a finished campaign's nodes no longer change
        # (its finishing shows in the campaigns' figures above), and the unique index on
        # (campaign_pk, node_id) keeps this to the few thousand rows that can.
        under_way = sa.select(OtaCampaign.id).where(OtaCampaign.state.in_(ota_store.ACTIVE_STATES))
        ota_nodes = db.execute(
            sa.select(
                sa.func.count(),
                sa.func.max(OtaCampaignNode.updated_at_ms),
                sa.func.max(OtaCampaignNode.last_heard_ms),
                sa.func.coalesce(sa.func.sum(OtaCampaignNode.offers), 0),
                sa.func.count(OtaCampaignNode.hold),
            ).where(OtaCampaignNode.campaign_pk.in_(under_way))
        ).one()
    return {
        "alarms": tuple(alarms),
        "faults": (*(tuple(f) for f in faults), audited),
        "nodes": tuple(nodes),
        "ota": (*campaigns, *ota_nodes),
    }


async def changes(engine: sa.Engine, request: Request) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"  # how soon the browser reconnects after a lost stream
    seen = await asyncio.to_thread(watermarks, engine)
    # What changed between the page's rendering (or a lost stream) and now is unknown: every
    # fragment refreshes once, so an alarm arriving in that gap is not missed.
    for name in seen:
        yield f"event: {name}\ndata: {name}\n\n"
    quiet = 0.0
    while not await request.is_disconnected():
        await asyncio.sleep(EVERY_S)
        now = await asyncio.to_thread(watermarks, engine)
        changed = [name for name in now if now[name] != seen[name]]
        seen = now
        for name in changed:
            yield f"event: {name}\ndata: {name}\n\n"
        quiet = 0.0 if changed else quiet + EVERY_S
        if quiet >= KEEPALIVE_S:
            quiet = 0.0
            yield ": keep-alive\n\n"


@router.get("/live")
async def live(request: Request, who: Viewer) -> StreamingResponse:
    engine: sa.Engine = request.app.state.engine
    return StreamingResponse(
        changes(engine, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
