"""One row per escalation step of a ticket, inserted by the worker that claims it (the unique
`key` decides between workers) and updated as the sending goes: the record that makes every
step go out once, across restarts and fleet workers."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base

Ms = sa.BigInteger  # epoch milliseconds


class Delivery(StrEnum):
    """Where a step's sending stands. sending -> sent | retry; retry -> sending | moot."""

    SENDING = "sending"  # claimed by `claim_token` until `next_attempt_ms` (the lease)
    RETRY = "retry"  # an attempt failed: the next one from `next_attempt_ms`
    SENT = "sent"  # every channel took it: never sent again
    MOOT = "moot"  # its clock stopped before a retry got through: nobody needs chasing


class EscalationSent(Base):
    __tablename__ = "escalation_sent"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)  # "<ticket_id>/<step>"
    ticket_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    step: Mapped[str] = mapped_column(sa.String(64))
    clock: Mapped[str] = mapped_column(sa.String(16))
    channels: Mapped[str] = mapped_column(sa.String(64))  # to send on, comma-separated
    delivered: Mapped[str] = mapped_column(sa.String(64))  # those that took it
    state: Mapped[str] = mapped_column(sa.String(16), index=True)  # Delivery
    notice: Mapped[str] = mapped_column(sa.Text)  # Notice.to_json(): every attempt sends the same
    claim_token: Mapped[str] = mapped_column(sa.String(32))  # the current attempt's owner
    claimed_at_ms: Mapped[int] = mapped_column(Ms)
    next_attempt_ms: Mapped[int | None] = mapped_column(Ms, index=True)  # None once sent or moot
    sent_at_ms: Mapped[int | None] = mapped_column(Ms)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
