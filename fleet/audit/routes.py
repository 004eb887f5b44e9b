"""/audit: the audit log, newest first (admins)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from fleet.access.roles import Permission
from fleet.api.deps import ROW_ID_MAX, DbSession, require
from fleet.audit import log

router = APIRouter(tags=["audit"], dependencies=[Depends(require(Permission.AUDIT_READ))])


class AuditItem(BaseModel):
    id: int
    at_ms: int
    actor: str
    role: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_before: int | None  # pass as `before` for the next (older) page


@router.get("/audit")
def audit_log(
    *,
    db: DbSession,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    before: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    rows = log.entries(db, target=target, actor=actor, action=action, before_id=before, limit=limit)
    items = [
        AuditItem(
            id=r.id,
            at_ms=r.at_ms,
            actor=r.actor,
            role=r.role,
            action=r.action,
            target=r.target,
            detail=json.loads(r.detail),
        )
        for r in rows
    ]
    return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)
