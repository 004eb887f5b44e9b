"""OTA releases, campaigns and each targeted node's state in a campaign

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ota_release",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.String(length=200), nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("release", sa.String(length=64), nullable=False),
        sa.Column("hardware", sa.Text(), nullable=False),
        sa.Column("min_version", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest_size", sa.BigInteger(), nullable=False),
        sa.Column("key_ids", sa.String(length=200), nullable=False),
        sa.Column("artifact_name", sa.String(length=128), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("delta_name", sa.String(length=128), nullable=True),
        sa.Column("delta_size", sa.BigInteger(), nullable=True),
        sa.Column("delta_sha256", sa.String(length=64), nullable=True),
        sa.Column("delta_base_release", sa.String(length=64), nullable=True),
        sa.Column("uploaded_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ota_release")),
        sa.UniqueConstraint("release_id", name=op.f("uq_ota_release_release_id")),
    )
    op.create_index(op.f("ix_ota_release_component"), "ota_release", ["component"], unique=False)

    op.create_table(
        "ota_campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("release_pk", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("waves", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("opened_waves", sa.Integer(), nullable=False),
        sa.Column("approved_through", sa.Integer(), nullable=False),
        sa.Column("accepted_failures", sa.Text(), nullable=False),
        sa.Column("require_approval", sa.Boolean(), nullable=False),
        sa.Column("abort_action", sa.String(length=16), nullable=False),
        sa.Column("node_timeout_s", sa.Integer(), nullable=False),
        sa.Column("max_in_flight", sa.Integer(), nullable=True),
        sa.Column("window", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_pk"], ["ota_release.id"], name=op.f("fk_ota_campaign_release_pk_ota_release")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ota_campaign")),
        sa.UniqueConstraint("campaign_id", name=op.f("uq_ota_campaign_campaign_id")),
    )
    op.create_index(op.f("ix_ota_campaign_release_pk"), "ota_campaign", ["release_pk"], unique=False)
    op.create_index(op.f("ix_ota_campaign_state"), "ota_campaign", ["state"], unique=False)

    op.create_table(
        "ota_campaign_node",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_pk", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("hold", sa.String(length=32), nullable=True),
        sa.Column("offers", sa.Integer(), nullable=False),
        sa.Column("offered_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_heard_ms", sa.BigInteger(), nullable=True),
        sa.Column("reported_ts", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["ota_campaign.id"],
            name=op.f("fk_ota_campaign_node_campaign_pk_ota_campaign"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ota_campaign_node")),
        sa.UniqueConstraint("campaign_pk", "node_id", name=op.f("uq_ota_campaign_node_campaign_pk")),
    )
    op.create_index(op.f("ix_ota_campaign_node_node_id"), "ota_campaign_node", ["node_id"], unique=False)
    op.create_index(op.f("ix_ota_campaign_node_state"), "ota_campaign_node", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ota_campaign_node_state"), table_name="ota_campaign_node")
    op.drop_index(op.f("ix_ota_campaign_node_node_id"), table_name="ota_campaign_node")
    op.drop_table("ota_campaign_node")
    op.drop_index(op.f("ix_ota_campaign_state"), table_name="ota_campaign")
    op.drop_index(op.f("ix_ota_campaign_release_pk"), table_name="ota_campaign")
    op.drop_table("ota_campaign")
    op.drop_index(op.f("ix_ota_release_component"), table_name="ota_release")
    op.drop_table("ota_release")
