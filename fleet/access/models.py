"""API tokens as stored: only a hash of the secret is kept, so a copy of the database lets
nobody in. A token names its holder (`subject`, e.g. "operator-7"), who the audit log records."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base

Ms = sa.BigInteger


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[str] = mapped_column(sa.String(32), unique=True)  # public half, in logs
    secret_sha256: Mapped[str] = mapped_column(sa.String(64))
    subject: Mapped[str] = mapped_column(sa.String(128))  # the person or system holding it
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at_ms: Mapped[int] = mapped_column(Ms)
    created_by: Mapped[str] = mapped_column(sa.String(128))
    revoked_at_ms: Mapped[int | None] = mapped_column(Ms)
