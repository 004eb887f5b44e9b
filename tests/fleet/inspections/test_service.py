"""Inspections in the database (SQLite and a real PostgreSQL): manual ones refused with the bad
value named, a node's self-test stored once however often it is delivered, and each site's
next inspection listed at an injected time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.inspections import service
from fleet.inspections.errors import InspectionRefused, UnknownNode, UnknownSite
from fleet.inspections.models import Inspection
from fleet.inspections.schedule import DAY_MS, DueState, InspectionSchedule
from fleet.inventory.models import Node, Site
from protocols import messages as m

SEOUL = ZoneInfo("Asia/Seoul")
SCHEDULE = InspectionSchedule(field_every_days=90, field_due_soon_days=14)


def kst(month: int, day: int, hour: int = 0, *, year: int = 2026) -> int:
    return int(datetime(year, month, day, hour, tzinfo=SEOUL).timestamp()) * 1000


NOW = kst(11, 25, 12)


@pytest.fixture
def engine(fleet_engine: sa.Engine) -> sa.Engine:
    with Session(fleet_engine) as session, session.begin():
        pole = Site(site_id="site-f1", name="Market St", site_class="field")
        session.add_all(
            [
                pole,
                Site(site_id="site-f2", name="Riverside", site_class="field"),
                Site(site_id="site-f3", name="School gate", site_class="field"),
                Site(site_id="site-c1", name="Control room racks", site_class="centre"),
                Node(node_id="pole-f1", site=pole),
                Node(node_id="pole-loose"),  # not placed at a site
            ]
        )
    return fleet_engine


def test_a_manual_inspection_is_stored(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        stored = service.record_inspection(
            session,
            site_id="site-f1",
            kind="field",
            done_at_ms=kst(11, 20, 10),
            by="tech-7",
            result="partial",
            now_ms=NOW,
            notes="lamp dim",
            details={"checklist": {"lamp": "dim", "door seal": "ok"}},
        )
        inspection_id = stored.inspection_id
    with Session(engine) as session:
        row = session.scalars(sa.select(Inspection).where(Inspection.inspection_id == inspection_id)).one()
        assert (row.site.site_id, row.kind, row.result, row.by, row.notes) == (
            "site-f1",
            "field",
            "partial",
            "tech-7",
            "lamp dim",
        )
        assert (row.done_at_ms, row.recorded_at_ms, row.node_id) == (kst(11, 20, 10), NOW, None)
        assert row.details_dict() == {"checklist": {"lamp": "dim", "door seal": "ok"}}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "centre"}, "kind"),  # site-f1 is a field site
        ({"kind": "remote"}, "kind"),  # remote ones come from nodes
        ({"result": "ok"}, "result"),
        ({"by": "  "}, "by"),
        ({"done_at_ms": NOW + 1}, "done_at_ms"),  # not done yet
    ],
)
def test_a_bad_manual_inspection_is_refused_naming_the_value(
    engine: sa.Engine, changes: dict[str, object], field: str
) -> None:
    given: dict[str, object] = {
        "site_id": "site-f1",
        "kind": "field",
        "done_at_ms": kst(11, 20),
        "by": "tech-7",
        "result": "pass",
        **changes,
    }
    with pytest.raises(InspectionRefused) as caught, Session(engine) as session, session.begin():
        service.record_inspection(session, now_ms=NOW, **given)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}=")
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Inspection)) == 0


def test_an_unknown_site_is_named(engine: sa.Engine) -> None:
    with pytest.raises(UnknownSite, match="site-x"), Session(engine) as session:
        service.record_inspection(
            session, site_id="site-x", kind="field", done_at_ms=NOW, by="tech-7", result="pass", now_ms=NOW
        )


def self_test(command_id: str, status: str = "ok", *, ts: int = kst(11, 24, 3)) -> m.CommandResult:
    return m.CommandResult(
        ts=ts,
        seq=9,
        command_id=command_id,
        status=status,  # type: ignore[arg-type]
        output={"ok": True, "loop": "short"} if status == "ok" else {},
    )


def test_a_self_test_is_a_remote_inspection_stored_once(engine: sa.Engine) -> None:
    received = kst(11, 24, 3) + 1_500
    with Session(engine) as session, session.begin():
        first = service.record_self_test(session, "pole-f1", self_test("st-1"), received)
        assert first is not None
        first_id = first.inspection_id
    with Session(engine) as session, session.begin():  # the same result delivered again (QoS 1)
        again = service.record_self_test(session, "pole-f1", self_test("st-1"), received + 60_000)
        assert again is not None
        assert again.inspection_id == first_id
    with Session(engine) as session:
        (row,) = session.scalars(sa.select(Inspection)).all()
        assert (row.kind, row.result, row.by, row.node_id, row.command_id) == (
            "remote",
            "partial",
            "node/pole-f1",
            "pole-f1",
            "st-1",
        )
        assert (row.site.site_id, row.done_at_ms, row.recorded_at_ms) == ("site-f1", kst(11, 24, 3), received)
        assert row.notes == "bell circuit loop is short"
        assert row.details_dict()["findings"] == ["bell circuit loop is short"]


def test_a_node_clock_ahead_of_the_fleet_is_capped_at_receipt(engine: sa.Engine) -> None:
    received = kst(11, 24, 3)
    with Session(engine) as session, session.begin():
        row = service.record_self_test(
            session, "pole-f1", self_test("st-2", ts=received + 3_600_000), received
        )
        assert row is not None
        assert row.done_at_ms == received


def test_a_self_test_that_did_not_run_stores_nothing(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        assert service.record_self_test(session, "pole-f1", self_test("st-3", "rejected"), NOW) is None
        # Not even the node is looked up: an unknown node's rejection is no error either.
        assert service.record_self_test(session, "pole-nowhere", self_test("st-4", "expired"), NOW) is None
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Inspection)) == 0


@pytest.mark.parametrize(
    ("node_id", "reason"), [("pole-nowhere", "not in the inventory"), ("pole-loose", "not placed")]
)
def test_a_self_test_from_a_node_without_a_site_is_refused(
    engine: sa.Engine, node_id: str, reason: str
) -> None:
    with pytest.raises(UnknownNode, match=reason) as caught, Session(engine) as session:
        service.record_self_test(session, node_id, self_test("st-5"), NOW)
    assert caught.value.node_id == node_id


def test_due_inspections_per_site(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        # f1: inspected 80 days ago (due: window opened at day 76). f2: 100 days ago (overdue).
        # f3: never. c1: inspected this month (ok), and a remote self-test does not count for f3.
        for site_id, kind, at in [
            ("site-f1", "field", NOW - 80 * DAY_MS),
            ("site-f1", "field", NOW - 200 * DAY_MS),  # an older one: the latest counts
            ("site-f2", "field", NOW - 100 * DAY_MS),
            ("site-c1", "centre", kst(11, 3, 9)),
        ]:
            service.record_inspection(
                session, site_id=site_id, kind=kind, done_at_ms=at, by="tech-7", result="pass", now_ms=NOW
            )
        site_f3 = session.scalars(sa.select(Site).where(Site.site_id == "site-f3")).one()
        session.add(Node(node_id="pole-f3", site=site_f3))
        session.flush()
        service.record_self_test(session, "pole-f3", self_test("st-6"), NOW)
    with Session(engine) as session:
        todo = service.due_by_site(session, NOW, schedule=SCHEDULE, time_zone="Asia/Seoul")
        everything = service.due_by_site(
            session, NOW, schedule=SCHEDULE, time_zone="Asia/Seoul", states=frozenset(DueState)
        )
    assert [(s.site_id, s.due.state) for s in todo] == [
        ("site-f3", DueState.NEVER),  # never inspected first
        ("site-f2", DueState.OVERDUE),  # due 10 days ago
        ("site-f1", DueState.DUE),  # due in 10 days
    ]
    assert todo[2].due.due_at == NOW + 10 * DAY_MS
    centre = next(s for s in everything if s.site_id == "site-c1")
    assert (centre.due.state, centre.due.window_opens_at, centre.due.due_at) == (
        DueState.OK,
        kst(12, 1),
        kst(1, 1, year=2027),
    )
