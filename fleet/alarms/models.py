"""A bell alarm as the fleet keeps it: one row per alarm id, whoever delivered it (a node
replaying its outbox, two fleet workers), with its timeline."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base

Ms = sa.BigInteger  # epoch milliseconds


class BellAlarmRecord(Base):
    __tablename__ = "bell_alarm"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    node_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    bell_id: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16))  # "controller" or "gpio"
    presses: Mapped[int] = mapped_column(default=1)
    historical: Mapped[bool] = mapped_column(default=False)  # arrived from a node's backlog
    # The timeline, epoch ms: pressed at the pole (node's clock), received by the fleet, shown
    # to an operator, acknowledged, cleared.
    pressed_at_ms: Mapped[int] = mapped_column(Ms)
    received_at_ms: Mapped[int] = mapped_column(Ms)
    shown_at_ms: Mapped[int | None] = mapped_column(Ms)
    acknowledged_at_ms: Mapped[int | None] = mapped_column(Ms)
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(128))
    cleared_at_ms: Mapped[int | None] = mapped_column(Ms)
    cleared_by: Mapped[str | None] = mapped_column(sa.String(128))

    @property
    def latched(self) -> bool:
        """Still calling for an operator: not yet acknowledged."""
        return self.acknowledged_at_ms is None
