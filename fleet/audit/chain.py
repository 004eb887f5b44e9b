"""The audit log's hash chain: what each entry's hash covers, and the walk that checks it.

An entry's hash is SHA-256 over the previous entry's hash and the entry's own fields in a
fixed JSON form, so changing any field of any entry, removing one, reordering them or cutting
the tail off breaks the chain from that point: `verify` names the first entry where it breaks.
The row id is not covered (a database assigns it); `seq` is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEntry, AuditHead

GENESIS = "0" * 64  # the "previous hash" of the first entry


def entry_digest(
    prev_sha256: str, *, seq: int, at_ms: int, actor: str, role: str, action: str, target: str, detail: str
) -> str:
    fields = json.dumps([seq, at_ms, actor, role, action, target, detail], separators=(",", ":"))
    return hashlib.sha256(f"{prev_sha256}\n{fields}".encode()).hexdigest()


def digest_of(entry: AuditEntry, prev_sha256: str) -> str:
    return entry_digest(
        prev_sha256,
        seq=entry.seq,
        at_ms=entry.at_ms,
        actor=entry.actor,
        role=entry.role,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int  # entries whose hash was recomputed
    problem: str | None = None  # None: the chain is whole
    entry_id: int | None = None  # the first entry where it breaks

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(session: Session, *, batch: int = 1000) -> ChainReport:
    """Walk the whole log in chain order and recompute every hash."""
    query = sa.select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    # Read in batches (a server-side cursor on PostgreSQL), closed even when the walk stops early.
    with contextlib.closing(session.scalars(query)) as walk:
        return _walk(session, walk)


def _walk(session: Session, walk: Iterable[AuditEntry]) -> ChainReport:
    prev = GENESIS
    expected_seq = 1
    checked = 0
    for entry in walk:
        if entry.seq != expected_seq:
            return ChainReport(
                checked,
                f"entry {entry.id} is number {entry.seq} in the chain; {expected_seq} is missing",
                entry.id,
            )
        if entry.prev_sha256 != prev:
            return ChainReport(
                checked,
                f"entry {entry.id} does not follow the entry before it (previous hash differs)",
                entry.id,
            )
        if digest_of(entry, prev) != entry.entry_sha256:
            return ChainReport(
                checked,
                f"entry {entry.id} was changed after it was written (its hash does not match)",
                entry.id,
            )
        prev = entry.entry_sha256
        expected_seq += 1
        checked += 1
    head = session.get(AuditHead, 1)
    if head is None:
        return ChainReport(checked, "the chain's head (audit_head) is missing")
    if head.seq != checked or head.last_sha256 != prev:
        return ChainReport(
            checked,
            f"the log ends at entry number {checked} but its head says {head.seq}: entries were removed",
        )
    return ChainReport(checked)
