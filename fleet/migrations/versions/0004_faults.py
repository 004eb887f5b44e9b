"""fault conditions and tickets

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fault_condition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("next_check_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fault_condition")),
        sa.UniqueConstraint("key", name=op.f("uq_fault_condition_key")),
    )
    with op.batch_alter_table("fault_condition", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fault_condition_next_check_ms"), ["next_check_ms"], unique=False)
        batch_op.create_index(batch_op.f("ix_fault_condition_node_id"), ["node_id"], unique=False)

    op.create_table(
        "fault_ticket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=200), nullable=True),
        sa.Column("opened_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("response_deadline_ms", sa.BigInteger(), nullable=True),
        sa.Column("resolution_deadline_ms", sa.BigInteger(), nullable=True),
        sa.Column("fault_cleared_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fault_ticket")),
        sa.UniqueConstraint("open_key", name=op.f("uq_fault_ticket_open_key")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_fault_ticket_ticket_id")),
    )
    with op.batch_alter_table("fault_ticket", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fault_ticket_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_fault_ticket_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fault_ticket_opened_at_ms"), ["opened_at_ms"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_fault_ticket_response_deadline_ms"), ["response_deadline_ms"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_fault_ticket_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fault_ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fault_ticket_state"))
        batch_op.drop_index(batch_op.f("ix_fault_ticket_response_deadline_ms"))
        batch_op.drop_index(batch_op.f("ix_fault_ticket_opened_at_ms"))
        batch_op.drop_index(batch_op.f("ix_fault_ticket_node_id"))
        batch_op.drop_index(batch_op.f("ix_fault_ticket_kind"))

    op.drop_table("fault_ticket")
    with op.batch_alter_table("fault_condition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fault_condition_node_id"))
        batch_op.drop_index(batch_op.f("ix_fault_condition_next_check_ms"))

    op.drop_table("fault_condition")
