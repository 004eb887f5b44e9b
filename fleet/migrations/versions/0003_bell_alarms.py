"""bell alarms

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bell_alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("bell_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("presses", sa.Integer(), nullable=False),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.Column("pressed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("shown_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("acknowledged_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("cleared_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("cleared_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bell_alarm")),
        sa.UniqueConstraint("alarm_id", name=op.f("uq_bell_alarm_alarm_id")),
    )
    with op.batch_alter_table("bell_alarm", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bell_alarm_node_id"), ["node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bell_alarm", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bell_alarm_node_id"))

    op.drop_table("bell_alarm")
