"""The `inspection` table: one row per inspection done, manual (a technician at a pole, an
engineer in the control centre) or remote (a node's self-test result). Written by
fleet.inspections.service, read by it and by the monthly report (fleet.reports)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fleet.db import Base
from fleet.inventory.models import Site

Ms = sa.BigInteger  # epoch milliseconds, as on the wire


class Inspection(Base):
    """An inspection of a site: what kind, when it was done and by whom, what it found."""

    __tablename__ = "inspection"
    # A node's result may arrive twice (QoS 1, a replayed outbox): one row per command.
    __table_args__ = (sa.UniqueConstraint("node_id", "command_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    # No cascade: a site with inspections on record is not deleted under the contract's log.
    site_pk: Mapped[int] = mapped_column(sa.ForeignKey("site.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16), index=True)  # "field", "centre", "remote"
    done_at_ms: Mapped[int] = mapped_column(Ms, index=True)
    recorded_at_ms: Mapped[int] = mapped_column(Ms)  # when the fleet learned of it
    by: Mapped[str] = mapped_column(sa.String(128))  # technician id, or "node/<node id>"
    result: Mapped[str] = mapped_column(sa.String(16))  # "pass", "fail", "partial"
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    details: Mapped[str] = mapped_column(sa.Text, default="{}")  # JSON object
    node_id: Mapped[str | None] = mapped_column(sa.String(64))  # remote: the node that tested itself
    command_id: Mapped[str | None] = mapped_column(sa.String(64))  # remote: its self-test command

    site: Mapped[Site] = relationship()

    def details_dict(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.details)
        return loaded
