"""One row per state-changing action, written in the same transaction as the change: an
action that happened is logged, and a logged action happened."""

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
