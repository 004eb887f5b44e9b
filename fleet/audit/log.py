"""Write and read the audit log, inside the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEntry


def record(
    session: Session,
    *,
    at_ms: int,
    actor: str,
    role: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        at_ms=at_ms,
        actor=actor,
        role=role,
        action=action,
        target=target,
        detail=json.dumps(detail or {}, sort_keys=True, default=str),
    )
    session.add(entry)
    return entry


def entries(
    session: Session,
    *,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; `before_id` pages back from an entry."""
    query = sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query))
