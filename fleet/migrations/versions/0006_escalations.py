"""escalation steps sent

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalation_sent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("clock", sa.String(length=16), nullable=False),
        sa.Column("channels", sa.String(length=64), nullable=False),
        sa.Column("delivered", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("notice", sa.Text(), nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=False),
        sa.Column("claimed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=True),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_sent")),
        sa.UniqueConstraint("key", name=op.f("uq_escalation_sent_key")),
    )
    with op.batch_alter_table("escalation_sent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escalation_sent_next_attempt_ms"), ["next_attempt_ms"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_escalation_sent_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_escalation_sent_ticket_id"), ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("escalation_sent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalation_sent_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_escalation_sent_state"))
        batch_op.drop_index(batch_op.f("ix_escalation_sent_next_attempt_ms"))

    op.drop_table("escalation_sent")
