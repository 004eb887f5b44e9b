"""One row per state-changing action, written in the same transaction as the change: an
action that happened is logged, and a logged action happened.

The log is a hash chain (fleet/audit/chain.py): each entry carries its place in the chain
(`seq`), the hash of the entry before it and its own, and `audit_head` holds the last. The
database refuses UPDATE and DELETE on `audit_log` (triggers, migration 0010); an edit made
around them is found by `watchpost fleet audit-verify`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base

Ms = sa.BigInteger


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at_ms: Mapped[int] = mapped_column(Ms, index=True)
    actor: Mapped[str] = mapped_column(sa.String(128), index=True)  # a token's subject, or "fleet/..."
    role: Mapped[str] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)  # "ticket.dispatch", ...
    target: Mapped[str] = mapped_column(sa.String(200), index=True)  # "ticket/3f2a...", ...
    detail: Mapped[str] = mapped_column(sa.Text, default="{}")  # JSON
    seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)  # 1, 2, 3, ... in chain order
    prev_sha256: Mapped[str] = mapped_column(sa.String(64))
    entry_sha256: Mapped[str] = mapped_column(sa.String(64))


class AuditHead(Base):
    """The chain's end, one row: appending moves it, so appends are serialised on it and a
    cut-off tail shows (the head names a later entry than the last one left)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    last_sha256: Mapped[str] = mapped_column(sa.String(64))
