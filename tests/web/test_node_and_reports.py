"""The node page, the inspections due and the SLA report, in Chromium against the fleet on a
real broker and PostgreSQL: a pole born and sending telemetry over MQTT shows its components
and a uPlot chart of its 5-minute roll-ups, with its ticket in the timeline (and a new one
arriving live); recording an inspection moves its site out of the due list; a seeded month's
report shows its figures and downloads its CSV."""

from __future__ import annotations

import csv
import io
import re
import time

import sqlalchemy as sa
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from fleet.inventory.rollups import TelemetryRollup
from protocols import messages as m
from tests.fleet.api import seed
from tests.fleet.reports import seed as month
from tests.web.conftest import Dashboard, shoot


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rolled_up(dashboard: Dashboard, node_id: str) -> int:
    with Session(dashboard.engine) as db:
        total = db.scalar(
            sa.select(sa.func.sum(TelemetryRollup.count)).where(
                TelemetryRollup.node_id == node_id, TelemetryRollup.metric == "cpu_temp_c"
            )
        )
    return int(total or 0)


def born_with_telemetry(dashboard: Dashboard, node_id: str) -> int:
    """The pole is born and sends six readings, a minute apart up to now; returns now."""
    t0 = now_ms()
    dashboard.send(
        node_id,
        m.NodeBirth(
            ts=t0,
            seq=0,
            bd_seq=1,
            site_id="site-0412",
            hardware="rpi4",
            agent_version="1.4.2",
            controller=m.ControllerInfo(link="serial", firmware_version="2.0.1", reset_cause="watchdog"),
            cameras=[m.CameraInfo(camera_id="cam-1", name="north", model="IPC-1")],
        ),
    )
    dashboard.until(lambda: dashboard.ingest.counters.applied >= 1)
    for n in range(6):
        reading = m.Readings(
            cpu_temp_c=40.0 + n,
            controller_temp_c=30.0,
            supply_v=12.0 + n / 10,
            link_errors=n,
            cameras=[m.CameraHealth(camera_id="cam-1", reachable=True, fps=25.0, bitrate_kbps=4000.0)],
            storage=[
                m.StorageHealth(device="mmcblk0", health="warning", wear_pct=81.0, free_bytes=12 * 10**9)
            ],
        )
        dashboard.send(node_id, m.Telemetry(ts=t0 - (5 - n) * 60_000, seq=0, readings=reading))
    dashboard.until(lambda: rolled_up(dashboard, node_id) == 6)
    return t0


def test_the_node_page_shows_components_charts_and_timeline(dashboard: Dashboard, chromium: Browser) -> None:
    t0 = born_with_telemetry(dashboard, "pole-0412")
    ticket = seed.open_fault(dashboard.engine, "pole-0412", at=t0, kind="door", component="cabinet")
    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/nodes/pole-0412")
    expect(page.locator("h1")).to_have_text("Node pole-0412")
    expect(page.locator("[data-fact=online]")).to_have_text("Online")
    expect(page.locator("[data-fact=agent_version]")).to_have_text("1.4.2")
    expect(page.locator("[data-component=controller]")).to_contain_text("Firmware: 2.0.1")
    expect(page.locator("[data-component=controller]")).to_contain_text("Last reset: watchdog")
    expect(page.locator("[data-component=door]")).to_contain_text("Open")  # the door fault is held open
    expect(page.locator("#node-cameras [data-camera=cam-1]")).to_contain_text("north")
    expect(page.locator("#node-storage [data-device=mmcblk0]")).to_contain_text("81 %")
    expect(page.locator("#node-storage [data-device=mmcblk0]")).to_contain_text("12.0 GB")
    expect(page.locator(f"#node-tickets [data-ticket='{ticket}']")).to_contain_text("door · cabinet")
    expect(page.locator("#node-timeline [data-what=ticket_opened]")).to_contain_text(
        "Fault opened: door on cabinet (major)"
    )

    # The charts: uPlot drew a canvas from the series endpoint's buckets.
    temperature = page.locator("figure[data-chart=temperature]")
    expect(temperature).to_have_attribute("data-state", "drawn")
    expect(temperature.locator("canvas")).to_have_count(1)
    expect(temperature.locator(".u-legend")).to_contain_text("CPU")
    series = page.request.get("/nodes/pole-0412/series?metric=temperature&hours=24").json()
    assert temperature.get_attribute("data-points") == str(len(series["x"]))
    cpu, controller = series["series"]
    assert (cpu["label"], controller["label"]) == ("CPU", "Controller")
    # Six readings 40..45 °C, one a minute: each bucket's mean lies within its min and max,
    # and together they hold all six.
    assert min(v for v in cpu["min"] if v is not None) == 40.0
    assert max(v for v in cpu["max"] if v is not None) == 45.0
    buckets = zip(cpu["min"], cpu["mean"], cpu["max"], strict=True)
    assert all(low <= mean <= high for low, mean, high in buckets if mean is not None)
    expect(page.locator("figure[data-chart=fps]")).to_have_attribute("data-state", "drawn")
    expect(page.locator("figure[data-chart=wear] .u-legend")).to_contain_text("mmcblk0")
    shoot(page, "node-desktop")

    # A new fault on the node arrives over the live stream: its ticket shows without a reload.
    other = seed.open_fault(dashboard.engine, "pole-0412", at=t0 + 1, kind="supply", component="psu")
    expect(page.locator(f"#node-tickets [data-ticket='{other}']")).to_contain_text("supply · psu")
    expect(page.locator("#node-timeline [data-what=ticket_opened]")).to_have_count(2)

    phone = dashboard.context(chromium, "operator-7", phone=True).new_page()
    phone.goto("/nodes/pole-0412")
    expect(phone.locator("figure[data-chart=temperature]")).to_have_attribute("data-state", "drawn")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the node page scrolls sideways on a phone ({width} px)"
    shoot(phone, "node-phone")


def test_the_node_page_in_korean_and_an_unknown_node(dashboard: Dashboard, chromium: Browser) -> None:
    seed.add_node(dashboard.engine, "pole-0007")
    page = dashboard.context(chromium, "viewer-1", lang="ko").new_page()
    page.goto("/nodes/pole-0007")
    expect(page.locator("h1")).to_have_text("노드 pole-0007")
    expect(page.locator("figure[data-chart=temperature]")).to_have_attribute("data-state", "empty")
    expect(page.locator("figure[data-chart=temperature] .chart-note")).to_have_text(
        "이 기간의 측정값이 없습니다"
    )
    missing = page.goto("/nodes/pole-9999")
    assert missing is not None
    assert missing.status == 404
    expect(page.locator(".field-error")).to_have_text("노드 pole-9999이(가) 없습니다.")
    technician = dashboard.context(chromium, "tech-0193").new_page()
    refused = technician.goto("/nodes/pole-0007")
    assert refused is not None
    assert refused.status == 403


def test_recording_an_inspection_moves_its_site_out_of_the_due_list(
    dashboard: Dashboard, chromium: Browser
) -> None:
    seed.add_node(dashboard.engine, "pole-0101")
    seed.add_node(dashboard.engine, "pole-0102")
    seed.add_node(dashboard.engine, "pole-0900", site_id="centre-01", site_class="centre")
    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/inspections")
    expect(page.locator("#due-sites-table tbody tr")).to_have_count(3)
    expect(page.locator("[data-site=site-0101]")).to_contain_text("never inspected")
    page.select_option("select[name=site_class]", "centre")
    expect(page.locator("#due-sites-table tbody tr")).to_have_count(1)
    expect(page.locator("#due-sites-table tbody tr")).to_contain_text("centre-01")
    shoot(page, "inspections-desktop")

    # A refusal of record_inspection is shown next to its field: the kind is not the site's class.
    page.goto("/inspections?site_id=site-0101")
    expect(page.locator("#kind")).to_have_value("field")
    page.select_option("#kind", "centre")
    page.click("button[type=submit].primary")
    expect(page.locator("#kind-error")).to_contain_text("'field', the class of site site-0101")
    expect(page.locator("#kind")).to_have_attribute("aria-invalid", "true")
    page.fill("#site_id", "site-7777")
    page.select_option("#kind", "field")
    page.click("button[type=submit].primary")
    expect(page.locator("#site_id-error")).to_have_text("No site site-7777: give a site id from the list.")

    page.fill("#site_id", "site-0101")
    page.select_option("#result", "partial")
    page.fill("#notes", "lamp replaced")
    page.click("button[type=submit].primary")
    expect(page.locator("#recorded")).to_have_text("Inspection of site-0101 recorded.")
    expect(page.locator("[data-site=site-0101]")).to_have_count(0)
    expect(page.locator("#due-sites-table tbody tr")).to_have_count(2)

    phone = dashboard.context(chromium, "operator-7", phone=True).new_page()
    phone.goto("/inspections")
    expect(phone.locator("#due-sites-table tbody tr")).to_have_count(2)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the inspections page scrolls sideways on a phone ({width} px)"
    shoot(phone, "inspections-phone")

    viewer = dashboard.context(chromium, "viewer-1").new_page()
    viewer.goto("/inspections")
    expect(viewer.locator("#record")).to_contain_text("Your role cannot record inspections.")


def test_the_report_page_shows_the_month_and_downloads_its_csv(
    dashboard: Dashboard, chromium: Browser
) -> None:
    month.seed_database(dashboard.engine)  # November 2026 in Seoul: 13 faults opened
    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/reports")
    expect(page).to_have_url(re.compile(r"/reports/\d{4}-\d{2}$"))  # the previous month
    page.fill("#period", "2026-11")
    page.click(".report-pick button[type=submit]")
    expect(page).to_have_url(f"{dashboard.url}/reports/2026-11")
    expect(page.locator("h1")).to_have_text("Maintenance SLA report — 2026-11")
    expect(page.locator("[data-figure=faults]")).to_have_text("13")
    expect(page.locator("#report-faults tr.total")).to_contain_text("Total")
    # The inspections table as its CSV has it (how many are done depends on today's date: the
    # seeded month's last check is on the 28th).
    table = page.request.get("/reports/2026-11.csv?table=inspections").text()
    field = next(r for r in csv.DictReader(io.StringIO(table)) if r["kind"] == "field")
    expect(page.locator("#report-inspections [data-kind=field] td").nth(2)).to_have_text(field["done"])
    shoot(page, "report-desktop")

    with page.expect_download() as caught:
        page.click("#report-csv")
    download = caught.value
    assert download.suggested_filename == "sla-2026-11-faults.csv"
    rows = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert (rows[-1]["category"], rows[-1]["faults"]) == ("all", "13")

    printable = page.request.get("/reports/2026-11/print")
    assert printable.status == 200
    assert "@media print" in printable.text()

    bad = page.goto("/reports/2026-13")
    assert bad is not None
    assert bad.status == 422
    expect(page.locator("#period-error")).to_contain_text("2026-13 is not a month")

    phone = dashboard.context(chromium, "operator-7", phone=True, lang="ko").new_page()
    phone.goto("/reports/2026-11")
    expect(phone.locator("h1")).to_have_text("유지보수 SLA 보고서 — 2026-11")
    expect(phone.locator("#report-csv")).to_have_text("CSV 내려받기 (장애)")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the report page scrolls sideways on a phone ({width} px)"
    shoot(phone, "report-phone")
