"""inventory: sites, nodes, cameras, controllers, storage

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("district", sa.String(length=100), nullable=False),
        sa.Column("pole_type", sa.String(length=100), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("has_bell", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("site_id", name=op.f("uq_site_site_id")),
    )
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_district"), ["district"], unique=False)

    op.create_table(
        "node",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("site_pk", sa.Integer(), nullable=True),
        sa.Column("hardware", sa.String(length=128), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("node_key", sa.String(length=64), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("bd_seq", sa.SmallInteger(), nullable=True),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_pk"], ["site.id"], name=op.f("fk_node_site_pk_site"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node")),
        sa.UniqueConstraint("node_id", name=op.f("uq_node_node_id")),
    )
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_site_pk"), ["site_pk"], unique=False)

    op.create_table(
        "site_tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_pk", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_pk"], ["site.id"], name=op.f("fk_site_tag_site_pk_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_tag")),
        sa.UniqueConstraint("site_pk", "tag", name=op.f("uq_site_tag_site_pk")),
    )
    with op.batch_alter_table("site_tag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_tag_tag"), ["tag"], unique=False)

    op.create_table(
        "camera",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "crime-prevention",
                "parking",
                "flood-watch",
                "traffic",
                "other",
                name="camerapurpose",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["node_pk"], ["node.id"], name=op.f("fk_camera_node_pk_node"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera")),
        sa.UniqueConstraint("node_pk", "camera_id", name=op.f("uq_camera_node_pk")),
    )
    op.create_table(
        "controller",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("link", sa.String(length=16), nullable=False),
        sa.Column("firmware_version", sa.String(length=64), nullable=True),
        sa.Column("reset_cause", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_pk"], ["node.id"], name=op.f("fk_controller_node_pk_node"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_controller")),
        sa.UniqueConstraint("node_pk", name=op.f("uq_controller_node_pk")),
    )
    op.create_table(
        "storage_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("wear_pct", sa.Float(), nullable=True),
        sa.Column("free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_pk"], ["node.id"], name=op.f("fk_storage_device_node_pk_node"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_device")),
        sa.UniqueConstraint("node_pk", "device", name=op.f("uq_storage_device_node_pk")),
    )


def downgrade() -> None:
    op.drop_table("storage_device")
    op.drop_table("controller")
    op.drop_table("camera")
    with op.batch_alter_table("site_tag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_tag_tag"))

    op.drop_table("site_tag")
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_site_pk"))

    op.drop_table("node")
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_district"))

    op.drop_table("site")
