"""telemetry roll-ups: each node's metrics per 5-minute bucket, for the node page's charts

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_rollup",
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("bucket_ms", sa.BigInteger(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=False),
        sa.Column("max_value", sa.Float(), nullable=False),
        sa.Column("sum_value", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "metric", "bucket_ms", name=op.f("pk_telemetry_rollup")),
    )


def downgrade() -> None:
    op.drop_table("telemetry_rollup")
