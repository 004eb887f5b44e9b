"""Write and read the audit log, inside the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.audit.chain import GENESIS, entry_digest
from fleet.audit.models import AuditEntry, AuditHead


def _advance_head(session: Session) -> tuple[int, str]:
    """Take the next place in the chain. The UPDATE comes first so it holds the head's row
    (PostgreSQL) or the write lock (SQLite) until the caller's transaction ends: appends are
    serialised, and the hash read here is still the last when this entry commits."""
    moved = session.execute(
        sa.update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.last_sha256)
    ).one_or_none()
    if moved is None:  # a database made without the migrations' head row
        session.add(AuditHead(id=1, seq=1, last_sha256=GENESIS))
        session.flush()
        return 1, GENESIS
    return int(moved.seq), str(moved.last_sha256)


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
    seq, prev = _advance_head(session)
    text = json.dumps(detail or {}, sort_keys=True, default=str)
    digest = entry_digest(
        prev, seq=seq, at_ms=at_ms, actor=actor, role=role, action=action, target=target, detail=text
    )
    entry = AuditEntry(
        at_ms=at_ms,
        actor=actor,
        role=role,
        action=action,
        target=target,
        detail=text,
        seq=seq,
        prev_sha256=prev,
        entry_sha256=digest,
    )
    session.add(entry)
    session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(last_sha256=digest))
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
