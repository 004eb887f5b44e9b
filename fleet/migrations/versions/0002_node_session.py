"""node MQTT session: last_seq, gaps, duplicates, birth time

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("gaps", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("duplicates", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("birth_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.drop_column("birth_ms")
        batch_op.drop_column("duplicates")
        batch_op.drop_column("gaps")
        batch_op.drop_column("last_seq")
