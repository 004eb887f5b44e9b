"""audit log as a hash chain: each entry's place and hashes, the chain's head, and triggers
that refuse UPDATE and DELETE on audit_log

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fleet.audit.chain import GENESIS, entry_digest

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_REFUSE = "audit_log is append-only"


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as table:
        table.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("prev_sha256", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("entry_sha256", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("last_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )

    # The entries already written join the chain in the order they were written.
    bind = op.get_bind()
    log = sa.table(
        "audit_log",
        *(sa.column(name) for name in ("id", "at_ms", "actor", "role", "action", "target", "detail")),
        sa.column("seq"),
        sa.column("prev_sha256"),
        sa.column("entry_sha256"),
    )
    prev, seq = GENESIS, 0
    rows = bind.execute(
        sa.select(
            log.c.id, log.c.at_ms, log.c.actor, log.c.role, log.c.action, log.c.target, log.c.detail
        ).order_by(log.c.id)
    ).all()
    for row in rows:
        seq += 1
        digest = entry_digest(
            prev,
            seq=seq,
            at_ms=row.at_ms,
            actor=row.actor,
            role=row.role,
            action=row.action,
            target=row.target,
            detail=row.detail,
        )
        bind.execute(
            sa.update(log).where(log.c.id == row.id).values(seq=seq, prev_sha256=prev, entry_sha256=digest)
        )
        prev = digest
    bind.execute(
        sa.text("INSERT INTO audit_head (id, seq, last_sha256) VALUES (1, :seq, :last)"),
        {"seq": seq, "last": prev},
    )

    with op.batch_alter_table("audit_log") as table:
        table.alter_column("seq", nullable=False)
        table.alter_column("prev_sha256", nullable=False)
        table.alter_column("entry_sha256", nullable=False)
        table.create_unique_constraint(op.f("uq_audit_log_seq"), ["seq"])

    if bind.dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{_REFUSE}'; END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log"
                f" BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
        op.execute("DROP TRIGGER audit_log_no_delete")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_log") as table:
        table.drop_constraint(op.f("uq_audit_log_seq"), type_="unique")
        table.drop_column("entry_sha256")
        table.drop_column("prev_sha256")
        table.drop_column("seq")
