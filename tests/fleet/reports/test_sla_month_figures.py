"""THE check of the monthly SLA report: the seeded November (tests/fleet/reports/seed.py) gives
the figures worked out by hand below, through the pure core and through the database on
SQLite and a real PostgreSQL. Every expected value is a literal with its arithmetic.

Per ticket (minutes after opening; R = response, X = resolution):

    id cls/category    ack   R: arrive/due  X: resolve/due   at AS_OF
    a  field/camera     10   90/120  met    180/240  met     handled
    b  field/camera     20  150/120  late   360/480  met     handled
    c  field/supply      5  180/210  met    240/270  met     handled (due +90 paused)
    d  field/supply     30  110/120  met    300/240  late    handled
    e  field/door        -   void           void             cancelled at 20
    f  field/door        -   60/120  met    120/480  met     handled
    g  field/offline    15   90/120  met    -/240   pending  open at month end
    h  field/camera     10   -/120  late    -/180   late     open at month end (running past)
    i  centre/storage   45  130/120  late   270/240  late    handled
    j  centre/storage    5   40/120  met     60/480  met     handled
    k  centre/system    10   50/120  met    270/300  met     handled (due +120 paused)
    m  field/link       10   60/120  met    120/480  met     handled (1 Nov 00:05 KST)
    o  field/temperature -  -/120 late at 180  void          cancelled at 180
    l (31 Oct 23:59 KST) and n (1 Dec 00:00 KST) are not November's.
"""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.reports import render
from fleet.reports.service import sla_month_report
from fleet.reports.sla_month import FaultFigures, MonthInspection, MonthTicket, SlaMonthReport, build_report
from tests.fleet.reports.seed import (
    AS_OF,
    INSPECTIONS,
    NODES,
    SCHEDULE,
    SETTINGS,
    kst,
    seed_database,
    seeded_tickets,
)

# (faults, handled, cancelled, open_at_month_end,
#  response met, breached, pending, resolution met, breached, pending,
#  acknowledged, mtta_ms, mttr_ms)
ROWS = {
    # a, b, h. R: a met; b, h late -> 1/2. X: a, b met; h late. MTTA (10+20+10)/3 = 13.33 min
    # = 800,000 ms. MTTR (180+360)/2 = 270 min = 16,200,000 ms.
    ("field", "camera"): (3, 2, 0, 1, 1, 2, 0, 2, 1, 0, 3, 800_000, 16_200_000),
    # e (void, cancelled), f. MTTA: none acknowledged. MTTR 120 min.
    ("field", "door"): (2, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, None, 7_200_000),
    # m: 10 min, 120 min.
    ("field", "link"): (1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 600_000, 7_200_000),
    # g: arrived in time, resolution pending, not resolved; MTTA 15 min.
    ("field", "offline"): (1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 900_000, None),
    # c, d. MTTA (5+30)/2 = 17.5 min = 1,050,000. MTTR (240+300)/2 = 270 min.
    ("field", "supply"): (2, 2, 0, 0, 2, 0, 0, 1, 1, 0, 2, 1_050_000, 16_200_000),
    # o: response breached before the auto-clear, resolution void.
    ("field", "temperature"): (1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, None, None),
    # i, j. MTTA (45+5)/2 = 25 min = 1,500,000. MTTR (270+60)/2 = 165 min = 9,900,000.
    ("centre", "storage"): (2, 2, 0, 0, 1, 1, 0, 1, 1, 0, 2, 1_500_000, 9_900_000),
    # k: 10 min, 270 min.
    ("centre", "system"): (1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 600_000, 16_200_000),
}
CLASS_TOTALS = {
    # a b c d e f g h m o: handled a b c d f m = 6; R met a c d f g m = 6, late b h o = 3;
    # X met a b c f m = 5, late d h = 2, pending g. MTTA a10 b20 c5 d30 g15 h10 m10 = 100/7 min
    # = 857,142.86 ms -> 857,143. MTTR a180 b360 c240 d300 f120 m120 = 1320/6 = 220 min.
    "field": (10, 6, 2, 2, 6, 3, 0, 5, 2, 1, 7, 857_143, 13_200_000),
    # i j k: R met j k, late i; X met j k, late i. MTTA (45+5+10)/3 = 20 min. MTTR
    # (270+60+270)/3 = 200 min.
    "centre": (3, 3, 0, 0, 2, 1, 0, 2, 1, 0, 3, 1_200_000, 12_000_000),
}
# 13 tickets; handled 9; cancelled e o; open g h. R 8 met / 4 late (e void) = 66.7 %.
# X 7 met / 3 late (e, o void; g pending) = 70.0 %. MTTA 160/10 = 16 min = 960,000.
# MTTR (180+360+240+300+120+270+60+270+120) = 1920 / 9 = 213.33 min = 12,800,000 ms.
TOTAL = (13, 9, 2, 2, 8, 4, 0, 7, 3, 1, 10, 960_000, 12_800_000)
# kind: (expected, done, passed, failed, partial, distinct sites)
INSPECTION_FIGURES = {
    "field": (4, 3, 2, 0, 1, 2),  # f1 pass, f2 partial, f1 pass (f3 Oct, f4 Dec left out)
    "centre": (2, 1, 1, 0, 0, 1),  # 2 centre sites, monthly; c1 done, c2 missed
    "remote": (None, 3, 1, 1, 1, 2),  # f1 pass, f2 partial, f2 fail (c1 rejected: none)
}


def figures(f: FaultFigures) -> tuple[int | None, ...]:
    return (
        f.faults,
        f.handled,
        f.cancelled,
        f.open_at_month_end,
        f.response_met,
        f.response_breached,
        f.response_pending,
        f.resolution_met,
        f.resolution_breached,
        f.resolution_pending,
        f.acknowledged,
        f.mtta_ms,
        f.mttr_ms,
    )


def check_report(report: SlaMonthReport) -> None:
    assert report.period == "2026-11"
    assert (report.starts_at_ms, report.ends_at_ms) == (kst(1, 0), kst(1, 0, month=12))
    assert [(r.site_class, r.category) for r in report.rows] == list(ROWS)  # field first, then by name
    assert {(r.site_class, r.category): figures(r) for r in report.rows} == ROWS
    assert {r.site_class: figures(r) for r in report.class_totals} == CLASS_TOTALS
    assert (report.total.site_class, report.total.category) == ("all", "all")
    assert figures(report.total) == TOTAL
    assert report.total.response_share == pytest.approx(8 / 12)
    assert report.total.resolution_share == pytest.approx(7 / 10)
    assert report.rows[0].response_share == pytest.approx(1 / 3)  # field/camera
    shares = {(r.site_class, r.category): r.resolution_share for r in report.rows}
    assert shares["field", "offline"] is None  # only a pending clock: nothing judged yet
    assert shares["field", "temperature"] is None  # only a void clock
    assert {
        i.kind: (i.expected, i.done, i.passed, i.failed, i.partial, i.sites) for i in report.inspections
    } == INSPECTION_FIGURES
    assert not report.final  # g's resolution clock is still running


def month_tickets() -> list[MonthTicket]:
    return [MonthTicket(t, NODES[t.fault.node_id][1]) for t in seeded_tickets()]


def test_the_seeded_month_by_hand_pure() -> None:
    month_inspections = [MonthInspection(site, kind, result, at) for site, kind, result, at in INSPECTIONS]
    remote = [
        MonthInspection("site-f1", "remote", "pass", kst(5, 3)),
        MonthInspection("site-f2", "remote", "partial", kst(6, 3)),
        MonthInspection("site-f2", "remote", "fail", kst(20, 3)),
    ]
    report = build_report(
        year=2026,
        month=11,
        time_zone="Asia/Seoul",
        tickets=month_tickets(),  # l and n too: build_report keeps the month's own
        inspections=month_inspections + remote,
        site_counts={"field": 4, "centre": 2},
        schedule=SCHEDULE,
        as_of_ms=AS_OF,
    )
    check_report(report)


def test_the_seeded_month_by_hand_through_the_database(fleet_engine: sa.Engine) -> None:
    seed_database(fleet_engine)
    with Session(fleet_engine) as session:
        report = sla_month_report(session, 2026, 11, now_ms=AS_OF, settings=SETTINGS)
    check_report(report)


def test_the_csv_reads_back_to_the_same_figures(fleet_engine: sa.Engine) -> None:
    seed_database(fleet_engine)
    with Session(fleet_engine) as session:
        report = sla_month_report(session, 2026, 11, now_ms=AS_OF, settings=SETTINGS)
    rows = list(csv.DictReader(io.StringIO(render.faults_csv(report))))
    assert list(rows[0]) == list(render.FAULT_COLUMNS)
    assert len(rows) == len(ROWS) + 1  # one per category x site class, then the total
    counts = (
        "faults",
        "handled",
        "cancelled",
        "open_at_month_end",
        "response_met",
        "response_breached",
        "response_pending",
        "resolution_met",
        "resolution_breached",
        "resolution_pending",
        "acknowledged",
    )
    read = {(r["site_class"], r["category"]): tuple(int(r[c]) for c in counts) for r in rows}
    assert read == {key: value[:11] for key, value in {**ROWS, ("all", "all"): TOTAL}.items()}
    total = rows[-1]
    assert total["period"] == "2026-11"
    assert (total["response_met_pct"], total["resolution_met_pct"]) == ("66.7", "70.0")  # 8/12, 7/10
    assert (total["mtta_min"], total["mttr_min"]) == ("16.0", "213.3")  # 960,000 and 12,800,000 ms
    camera = rows[0]
    assert (camera["site_class"], camera["category"]) == ("field", "camera")
    assert (camera["response_met_pct"], camera["resolution_met_pct"]) == ("33.3", "66.7")  # 1/3, 2/3
    assert (camera["mtta_min"], camera["mttr_min"]) == ("13.3", "270.0")
    offline = next(r for r in rows if r["category"] == "offline")
    assert (offline["resolution_met_pct"], offline["mttr_min"]) == ("", "")  # nothing judged

    inspections_read = list(csv.DictReader(io.StringIO(render.inspections_csv(report))))
    assert list(inspections_read[0]) == list(render.INSPECTION_COLUMNS)
    read_back = {
        r["kind"]: (r["expected"], r["done"], r["passed"], r["failed"], r["partial"])
        for r in inspections_read
    }
    assert read_back == {
        "field": ("4", "3", "2", "0", "1"),
        "centre": ("2", "1", "1", "0", "0"),
        "remote": ("", "3", "1", "1", "1"),
    }


def test_the_html_page_shows_the_figures_and_prints_without_outside_assets(fleet_engine: sa.Engine) -> None:
    seed_database(fleet_engine)
    with Session(fleet_engine) as session:
        report = sla_month_report(session, 2026, 11, now_ms=AS_OF, settings=SETTINGS)
    page = render.html(report)
    assert "@media print" in page
    assert "@page" in page
    for absent in ("<script", "<link", "src=", "http://", "https://", "@import", "url("):
        assert absent not in page
    assert "2026-11" in page
    assert "2026-12-01 01:00" in page  # as of, in the city's time
    assert "Not final" in page  # g's resolution is pending
    total_row = page.split('<tr class="total">')[1].split("</tr>")[0]
    cells = [c.split("</td>")[0] for c in total_row.split("<td>")[1:]]
    # site class, category, faults, handled, cancelled, open, R met/late/pending/%,
    # X met/late/pending/%, MTTA, MTTR
    totals = ["all", "all", "13", "9", "2", "2"]
    response = ["8", "4", "0", "66.7"]
    resolution = ["7", "3", "1", "70.0"]
    assert cells == [*totals, *response, *resolution, "16.0", "213.3"]
    inspections_table = page.split('id="inspections"')[1]
    assert "<td>field</td><td>4</td><td>3</td>" in inspections_table
    assert "<td>centre</td><td>2</td><td>1</td>" in inspections_table
