"""The fleet's inventory schema made by Alembic on both engines (embedded SQLite and a real
PostgreSQL), kept equal to the models, and the sites CSV import."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from fleet import models
from fleet.db import Base, alembic_config, migrate
from fleet.inventory.csv_import import CsvImportError, import_sites, parse_sites
from fleet.inventory.models import Camera, CameraPurpose, Node, Site

SITES = """site_id,name,address,district,pole_type,latitude,longitude,has_bell,tags
site-0412,Market St north,12 Market St,Jung-gu,8m steel,37.5665,126.9780,yes,school-zone;wave-1
site-0413,Riverside park,,Mapo-gu,6m steel,37.55,126.91,no,
"""


def test_migrations_make_exactly_the_models_schema(fleet_engine: sa.Engine) -> None:
    assert "bell_alarm" in Base.metadata.tables, models.__all__  # every model is registered
    with fleet_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []  # a model changed without a migration fails here


def test_migrating_twice_is_harmless(fleet_engine: sa.Engine) -> None:
    migrate(fleet_engine.url.render_as_string(hide_password=False))
    with fleet_engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_import_creates_then_updates_sites_with_their_tags(fleet_engine: sa.Engine) -> None:
    with Session(fleet_engine) as session, session.begin():
        report = import_sites(session, SITES)
    assert (report.created, report.updated) == (2, 0)
    with Session(fleet_engine) as session, session.begin():
        report = import_sites(session, SITES.replace("Market St north", "Market St (north)"))
    assert (report.created, report.updated) == (0, 2)
    with Session(fleet_engine) as session:
        site = session.scalars(sa.select(Site).where(Site.site_id == "site-0412")).one()
        assert site.name == "Market St (north)"
        assert site.has_bell
        assert site.latitude == pytest.approx(37.5665)
        assert sorted(t.tag for t in site.tags) == ["school-zone", "wave-1"]
        other = session.scalars(sa.select(Site).where(Site.site_id == "site-0413")).one()
        assert (other.has_bell, other.tags, other.address) == (False, [], "")


def test_a_bad_file_changes_nothing_and_names_every_bad_cell(fleet_engine: sa.Engine) -> None:
    bad = SITES + "Site 9,,x,y,z,91,200,maybe,ok;Not An Id\n" + "site-0412,dup,,,,,,no,\n"
    with pytest.raises(CsvImportError) as caught, Session(fleet_engine) as session, session.begin():
        import_sites(session, bad)
    text = str(caught.value)
    for expected in (
        "line 4, column site_id: 'Site 9' is not an id",
        "line 4, column name: required",
        "line 4, column latitude: '91' is not a number from -90 to 90",
        "line 4, column longitude: '200' is not a number from -180 to 180",
        "line 4, column has_bell: 'maybe': use yes or no",
        "line 4, column tags: tag 'Not An Id' is not an id",
        "line 5, column site_id: 'site-0412' repeats line 2",
    ):
        assert expected in text, text
    with Session(fleet_engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Site)) == 0


def test_nodes_cameras_and_purposes_round_trip(fleet_engine: sa.Engine) -> None:
    with Session(fleet_engine) as session, session.begin():
        site = Site(site_id="site-1", name="One")
        node = Node(node_id="pole-1", site=site, agent_version="0.1.0")
        node.cameras = [Camera(camera_id="cam-1", name="North", purpose=CameraPurpose.FLOOD_WATCH)]
        session.add(node)
    with Session(fleet_engine) as session:
        camera = session.scalars(sa.select(Camera)).one()
        assert camera.purpose is CameraPurpose.FLOOD_WATCH
        assert camera.node.site is not None
        assert camera.node.site.site_id == "site-1"
        raw = session.execute(sa.text("SELECT purpose FROM camera")).scalar_one()
        assert raw == "flood-watch"  # stored as the field's word, readable in SQL


def test_header_problems_are_named() -> None:
    with pytest.raises(CsvImportError, match="line 1, column site_id: required column is missing"):
        parse_sites("name,district\nx,y\n")
    with pytest.raises(CsvImportError, match="line 1, column colour: unknown column"):
        parse_sites("site_id,name,colour\ns-1,x,red\n")


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_any_text_parses_or_is_refused_with_problems(text: str) -> None:
    try:
        rows = parse_sites("site_id,name,has_bell,latitude\n" + text)
    except CsvImportError as error:
        problems = error.problems
    else:
        problems = []
        assert all(row.site_id and row.name for row in rows)
    assert all(str(p) for p in problems)


def test_a_site_class_comes_from_the_csv_and_is_checked(fleet_engine: sa.Engine) -> None:
    text = "site_id,name,site_class\nsite-0001,Control room,centre\nsite-0002,Pole,\n"
    with Session(fleet_engine) as session, session.begin():
        import_sites(session, text)
    with Session(fleet_engine) as session:
        classes = dict(session.execute(sa.select(Site.site_id, Site.site_class)).all())
    assert classes == {"site-0001": "centre", "site-0002": "field"}  # empty: a pole in the street
    with pytest.raises(CsvImportError) as refused:
        parse_sites("site_id,name,site_class\nsite-0003,Depot,warehouse\n")
    assert str(refused.value.problems[0]) == "line 2, column site_class: 'warehouse': use field or centre"
