"""The real services the fleet's tests run against, started by the project's own fixtures:
a PostgreSQL server of their own (a fresh database per test) and VictoriaMetrics."""

from __future__ import annotations

import urllib.request

import pytest
import sqlalchemy as sa

from watchpost.postgres import PostgresCluster
from watchpost.victoriametrics import VictoriaMetrics


@pytest.mark.postgres
def test_each_test_gets_a_fresh_database_on_a_real_postgresql(
    postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            tables = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
            assert tables.scalar_one() == 0  # nothing left by another test
            conn.execute(sa.text("CREATE TABLE fault (id serial PRIMARY KEY, node text NOT NULL)"))
            conn.execute(sa.text("INSERT INTO fault (node) VALUES ('pole-0412')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT node FROM fault")).scalar_one() == "pole-0412"
    finally:
        engine.dispose()
    assert int(str(version).split(".")[0]) >= 13
    assert f":{postgres_cluster.port}/" in postgres_url  # ours, not the machine's 5432


def test_victoriametrics_answers_on_its_own_port(victoriametrics: VictoriaMetrics) -> None:
    with urllib.request.urlopen(f"{victoriametrics.url}/health", timeout=10) as response:
        assert response.read().strip() == b"OK"
    assert victoriametrics.port != 8428  # the default port of a system-wide install
