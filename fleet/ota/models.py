"""OTA releases and campaigns as stored. A release row is written only once its files are
verified and in place (fleet/ota/releases.py); a campaign row carries its plan and lifecycle
(the pure fleet.ota.campaign.Campaign), one row per targeted node its state. The campaign row
is the lock for everything about a campaign: the runner's tick, a node's progress from
ingest, a person's pause or approval (fleet/ota/store.py)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base

Ms = sa.BigInteger  # epoch milliseconds


class OtaRelease(Base):
    __tablename__ = "ota_release"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[str] = mapped_column(sa.String(200), unique=True)  # <component>-<release>
    component: Mapped[str] = mapped_column(sa.String(32), index=True)
    release: Mapped[str] = mapped_column(sa.String(64))
    hardware: Mapped[str] = mapped_column(sa.Text)  # JSON list, as the manifest says
    min_version: Mapped[str | None] = mapped_column(sa.String(64))
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_at_ms: Mapped[int] = mapped_column(Ms)  # the manifest's
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64))  # of the signed document
    manifest_size: Mapped[int] = mapped_column(sa.BigInteger)
    key_ids: Mapped[str] = mapped_column(sa.String(200))  # the signers, comma-separated
    artifact_name: Mapped[str] = mapped_column(sa.String(128))
    artifact_size: Mapped[int] = mapped_column(sa.BigInteger)
    artifact_sha256: Mapped[str] = mapped_column(sa.String(64))
    delta_name: Mapped[str | None] = mapped_column(sa.String(128))
    delta_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    delta_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    delta_base_release: Mapped[str | None] = mapped_column(sa.String(64))
    uploaded_at_ms: Mapped[int] = mapped_column(Ms)
    uploaded_by: Mapped[str] = mapped_column(sa.String(128))


class OtaCampaign(Base):
    __tablename__ = "ota_campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    release_pk: Mapped[int] = mapped_column(sa.ForeignKey("ota_release.id"), index=True)
    state: Mapped[str] = mapped_column(sa.String(32), index=True)  # campaign.CampaignState
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    # The plan: waves (index, size, thresholds) and the target as asked, JSON.
    waves: Mapped[str] = mapped_column(sa.Text)
    target: Mapped[str] = mapped_column(sa.Text)
    opened_waves: Mapped[int] = mapped_column(default=0)
    approved_through: Mapped[int] = mapped_column(default=0)
    accepted_failures: Mapped[str] = mapped_column(sa.Text, default="[]")  # JSON list per wave
    require_approval: Mapped[bool] = mapped_column(default=False)
    abort_action: Mapped[str] = mapped_column(sa.String(16))
    node_timeout_s: Mapped[int] = mapped_column(sa.Integer)
    max_in_flight: Mapped[int | None] = mapped_column(sa.Integer)
    window: Mapped[str | None] = mapped_column(sa.Text)  # JSON {start, end, time_zone}
    note: Mapped[str] = mapped_column(sa.Text, default="")
    created_at_ms: Mapped[int] = mapped_column(Ms)
    created_by: Mapped[str] = mapped_column(sa.String(128))
    updated_at_ms: Mapped[int] = mapped_column(Ms)
    finished_at_ms: Mapped[int | None] = mapped_column(Ms)


class OtaCampaignNode(Base):
    __tablename__ = "ota_campaign_node"
    __table_args__ = (sa.UniqueConstraint("campaign_pk", "node_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_pk: Mapped[int] = mapped_column(sa.ForeignKey("ota_campaign.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    wave: Mapped[int] = mapped_column(sa.Integer)
    state: Mapped[str] = mapped_column(sa.String(16), index=True)  # campaign.NodeState
    reason: Mapped[str | None] = mapped_column(sa.String(64))  # the node's token, or timed-out
    detail: Mapped[str] = mapped_column(sa.Text, default="")
    progress: Mapped[float | None] = mapped_column(sa.Float)
    hold: Mapped[str | None] = mapped_column(sa.String(32))  # why the last tick did not offer it
    offers: Mapped[int] = mapped_column(default=0)  # offers sent (a re-send after a crash counts)
    offered_at_ms: Mapped[int | None] = mapped_column(Ms)
    last_heard_ms: Mapped[int | None] = mapped_column(Ms)  # fleet clock
    reported_ts: Mapped[int | None] = mapped_column(Ms)  # node clock of the last report taken
    updated_at_ms: Mapped[int] = mapped_column(Ms)  # fleet clock of the last change
    finished_at_ms: Mapped[int | None] = mapped_column(Ms)
