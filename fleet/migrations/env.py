"""Alembic's entry point: runs the migrations against the URL fleet.db.alembic_config set."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from fleet import models
from fleet.db import Base

assert models.__all__  # imported for its side effect: every table on Base.metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "fleet.db.alembic_config sets sqlalchemy.url"

engine = create_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
