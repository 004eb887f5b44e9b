"""/inspections: record a field or centre inspection (`inspection:record`), and list what is
due or overdue per site (anyone). Remote self-inspections come from the nodes (ingest)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from fleet.access.roles import Permission
from fleet.access.tokens import Principal
from fleet.api.deps import Audit, DbSession, NowMs, require
from fleet.api.errors import ApiError, not_found
from fleet.inspections import service
from fleet.inspections.errors import InspectionRefused, UnknownSite
from fleet.inspections.schedule import DueState
from fleet.reports.routes import Settings

router = APIRouter(tags=["inspections"])
Inspector = Annotated[Principal, Depends(require(Permission.INSPECTION_RECORD))]


class NewInspection(BaseModel):
    site_id: str
    kind: Literal["field", "centre"]
    result: Literal["pass", "fail", "partial"]
    done_at_ms: int | None = Field(default=None, description="when it was done; default: now")
    notes: Annotated[str, Field(max_length=4000)] = ""


class InspectionOut(BaseModel):
    inspection_id: str
    site_id: str
    kind: str
    result: str
    done_at_ms: int
    by: str
    notes: str


class SiteDueOut(BaseModel):
    site_id: str
    name: str
    site_class: str
    state: DueState
    last_done_at_ms: int | None
    due_at_ms: int | None


@router.post("/inspections", status_code=201)
def record(*, body: NewInspection, db: DbSession, who: Inspector, now: NowMs, audit: Audit) -> InspectionOut:
    try:
        row = service.record_inspection(
            db,
            site_id=body.site_id,
            kind=body.kind,
            done_at_ms=now if body.done_at_ms is None else body.done_at_ms,
            by=who.subject,
            result=body.result,
            now_ms=now,
            notes=body.notes,
        )
    except UnknownSite:
        raise not_found("site", body.site_id) from None
    except InspectionRefused as error:
        details = [{"field": error.field, "problem": error.accepted, "where": "body"}]
        raise ApiError(422, "invalid-request", str(error), details) from None
    audit("inspection.record", f"site/{body.site_id}", kind=body.kind, result=body.result)
    return InspectionOut(
        inspection_id=row.inspection_id,
        site_id=body.site_id,
        kind=row.kind,
        result=row.result,
        done_at_ms=row.done_at_ms,
        by=row.by,
        notes=row.notes,
    )


@router.get("/inspections/due", dependencies=[Depends(require(Permission.READ))])
def due(*, db: DbSession, now: NowMs, settings: Settings, include_ok: bool = False) -> list[SiteDueOut]:
    """Sites whose inspection is due, overdue or never done (with `include_ok`, every site)."""
    states = (
        frozenset(DueState) if include_ok else frozenset({DueState.NEVER, DueState.DUE, DueState.OVERDUE})
    )
    return [
        SiteDueOut(
            site_id=s.site_id,
            name=s.name,
            site_class=s.due.site_class,
            state=s.due.state,
            last_done_at_ms=s.due.last_done_at,
            due_at_ms=s.due.due_at,
        )
        for s in service.due_by_site(
            db, now, schedule=settings.schedule, time_zone=settings.time_zone, states=states
        )
    ]
