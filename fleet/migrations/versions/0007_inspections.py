"""inspections: manual field and centre checks, remote self-tests

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.String(length=32), nullable=False),
        sa.Column("site_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("done_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=True),
        sa.Column("command_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["site_pk"], ["site.id"], name=op.f("fk_inspection_site_pk_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection")),
        sa.UniqueConstraint("inspection_id", name=op.f("uq_inspection_inspection_id")),
        sa.UniqueConstraint("node_id", "command_id", name=op.f("uq_inspection_node_id")),
    )
    with op.batch_alter_table("inspection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspection_done_at_ms"), ["done_at_ms"], unique=False)
        batch_op.create_index(batch_op.f("ix_inspection_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_inspection_site_pk"), ["site_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inspection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspection_site_pk"))
        batch_op.drop_index(batch_op.f("ix_inspection_kind"))
        batch_op.drop_index(batch_op.f("ix_inspection_done_at_ms"))
    op.drop_table("inspection")
