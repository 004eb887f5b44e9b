"""The technicians' handheld view in Chromium, on a phone's viewport: my jobs with where to go
and a running countdown; check in, resolve with a note (refused without one, the reason by the
field), report; another technician's job refused; the centre seeing every job; Korean."""

from __future__ import annotations

import json
import re
import time

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEntry
from fleet.faults.store import FaultTicketRow
from fleet.inventory.models import Site
from tests.fleet.api import seed
from tests.web.conftest import Dashboard, shoot

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.postgres]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def place(engine: sa.Engine, site_id: str, *, address: str, lat: float, lon: float) -> None:
    with Session(engine) as db, db.begin():
        db.execute(
            sa.update(Site)
            .where(Site.site_id == site_id)
            .values(address=address, latitude=lat, longitude=lon, has_bell=True)
        )


def job_for(
    dashboard: Dashboard, n: int, technician: str | None, *, kind: str = "door", ago_ms: int = 0
) -> str:
    """A pole with an open fault, its ticket assigned to `technician`: the ticket id."""
    node = f"pole-{n:04d}"
    seed.add_node(dashboard.engine, node, district="Mapo-gu", last_seen_ms=now_ms() - 90_000)
    place(
        dashboard.engine, node.replace("pole", "site"), address=f"{n} Worldcup-ro", lat=37.5563, lon=126.9236
    )
    ticket = seed.open_fault(dashboard.engine, node, at=now_ms() - ago_ms, kind=kind)
    if technician is not None:
        seed.assign(dashboard.engine, ticket, technician)
    return ticket


def ticket_state(dashboard: Dashboard, ticket: str) -> str:
    with Session(dashboard.engine) as db:
        return db.scalars(sa.select(FaultTicketRow.state).where(FaultTicketRow.ticket_id == ticket)).one()


def audit_of(dashboard: Dashboard, ticket: str) -> list[tuple[str, str, dict[str, object]]]:
    with Session(dashboard.engine) as db:
        rows = db.execute(
            sa.select(AuditEntry.action, AuditEntry.actor, AuditEntry.detail)
            .where(AuditEntry.target == f"ticket/{ticket}")
            .order_by(AuditEntry.id)
        ).all()
    return [(action, actor, json.loads(detail)) for action, actor, detail in rows]


def test_my_jobs_lists_my_ticket_with_where_to_go_and_a_running_countdown(
    dashboard: Dashboard, chromium: Browser
) -> None:
    later = job_for(dashboard, 2, "tech-0193", kind="camera")
    mine = job_for(dashboard, 1, "tech-0193", ago_ms=10 * 60_000)  # opened 10 min ago: more urgent
    job_for(dashboard, 3, "tech-0200")  # someone else's
    page = dashboard.context(chromium, "tech-0193", phone=True).new_page()
    page.goto("/tech")
    expect(page.locator("h1")).to_have_text("My jobs")
    jobs = page.locator(".tech-job")
    expect(jobs).to_have_count(2)
    # The one opened first has the least time left on its response clock: it comes first.
    assert [jobs.nth(i).get_attribute("data-ticket") for i in range(2)] == [mine, later]
    first = jobs.nth(0)
    expect(first).to_contain_text("Site of pole-0001")
    expect(first).to_contain_text("1 Worldcup-ro")
    expect(first).to_contain_text("Mapo-gu · 37.556300, 126.923600")
    expect(first.locator("a.tech-map")).to_have_attribute("href", "geo:37.556300,126.923600")
    countdown = first.locator("[data-deadline]")
    expect(countdown).to_have_text(re.compile(r"^1:49:\d\d$"))  # the 2 h response clock
    shown = countdown.inner_text()
    expect(countdown).not_to_have_text(shown, timeout=3000)  # it runs
    expect(countdown).not_to_have_class(re.compile("breached"))
    # The tabs are at the bottom of the phone's screen, big enough for a thumb.
    bar = page.locator(".tech-bar").bounding_box()
    assert bar is not None
    assert bar["y"] + bar["height"] >= 844 - 1
    assert bar["height"] >= 48
    shoot(page, "tech-jobs-phone")

    desktop = dashboard.context(chromium, "tech-0193").new_page()
    desktop.goto("/tech")
    expect(desktop.locator(".tech-job")).to_have_count(2)
    shoot(desktop, "tech-jobs-desktop")


def test_the_technician_checks_in_resolves_with_a_note_and_reports_on_the_phone(
    dashboard: Dashboard, chromium: Browser
) -> None:
    ticket = job_for(dashboard, 7, "tech-0193")
    page = dashboard.context(chromium, "tech-0193", phone=True).new_page()
    page.goto("/tech")
    page.locator(f".tech-job[data-ticket='{ticket}'] .tech-job-link").click()
    expect(page).to_have_url(f"{dashboard.url}/tech/jobs/{ticket}")
    expect(page.locator("h1")).to_have_text("Site of pole-0007")
    status = page.locator("#tech-job-status")
    expect(status.locator("[data-online]")).to_have_text("online")
    expect(status.locator(".tech-last-seen")).to_have_text(re.compile(r"^1 min ago$"))
    expect(status.locator(".tech-door")).to_have_text("open")  # its door fault is raised
    expect(status.locator(".tech-faults li")).to_have_text([re.compile(r"door · cabinet · major")])
    shoot(page, "tech-job-phone")

    page.click("text=Check in: I am at the pole")
    expect(page.locator(".tech-state-name")).to_have_text("on site")
    assert ticket_state(dashboard, ticket) == "on_site"
    expect(page.locator(".tech-steps li").last).to_contain_text("self-reported")

    # Resolving without a note: refused by the server, the reason next to the field.
    page.click("button:has-text('Resolve')")
    expect(page.locator("#note-error")).to_have_text("A note is required: say what you found and did.")
    expect(page.locator("#note")).to_have_attribute("aria-invalid", "true")
    assert ticket_state(dashboard, ticket) == "on_site"

    page.fill("#note", "Door contact loose; re-seated and tested.")
    page.click("button:has-text('Resolve')")
    expect(page.locator(".tech-state-name")).to_have_text("resolved, report due")
    expect(page.locator(".tech-steps li").last).to_contain_text("Door contact loose")
    page.fill("#note", "Replaced nothing; contact re-seated, 20 min on site.")
    page.click("button:has-text('Send the work report')")
    expect(page.locator(".tech-closed")).to_be_visible()
    assert ticket_state(dashboard, ticket) == "reported"

    # The API's own steps and audit entries, as if through /api/v1/faults.
    assert [(action, actor) for action, actor, _ in audit_of(dashboard, ticket)] == [
        ("ticket.check-in", "tech-0193"),
        ("ticket.resolve", "tech-0193"),
        ("ticket.report", "tech-0193"),
    ]
    assert audit_of(dashboard, ticket)[0][2] == {"verification": "self-reported"}
    page.goto("/tech")
    expect(page.locator(".tech-job")).to_have_count(0)  # reported: no longer my job

    desktop = dashboard.context(chromium, "tech-0193").new_page()
    desktop.goto(f"/tech/jobs/{ticket}")
    shoot(desktop, "tech-job-desktop")


def test_the_job_page_follows_the_pole_live(dashboard: Dashboard, chromium: Browser) -> None:
    ticket = job_for(dashboard, 8, "tech-0193")
    page = dashboard.context(chromium, "tech-0193", phone=True).new_page()
    page.goto(f"/tech/jobs/{ticket}")
    expect(page.locator("[data-online]")).to_have_text("online")
    with Session(dashboard.engine) as db, db.begin():  # the node drops off, as ingest records a death
        db.execute(sa.text("UPDATE node SET online = false WHERE node_id = 'pole-0008'"))
    expect(page.locator("[data-online]")).to_have_text("offline")  # over the live stream, no reload


def test_another_technicians_job_is_not_listed_and_is_refused(
    dashboard: Dashboard, chromium: Browser
) -> None:
    ticket = job_for(dashboard, 9, "tech-0193")
    page = dashboard.context(chromium, "tech-0200", phone=True).new_page()
    page.goto("/tech")
    expect(page.locator(".tech-none")).to_be_visible()
    response = page.goto(f"/tech/jobs/{ticket}")
    assert response is not None
    assert response.status == 403
    expect(page.locator(".tech-refusal")).to_have_text(
        f"Job {ticket} is assigned to tech-0193, not to you (tech-0200)."
    )
    refused = page.request.post(f"/tech/jobs/{ticket}/check-in")
    assert refused.status == 403
    assert ticket_state(dashboard, ticket) == "open"
    assert audit_of(dashboard, ticket) == []


def test_the_centre_sees_every_open_job_and_a_viewer_none(dashboard: Dashboard, chromium: Browser) -> None:
    job_for(dashboard, 11, "tech-0193")
    job_for(dashboard, 12, "tech-0200")
    job_for(dashboard, 13, None)
    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/tech")
    expect(page.locator(".tech-job")).to_have_count(3)
    page.fill("#technician", "tech-0200")
    page.click(".tech-filter button")
    expect(page.locator(".tech-job")).to_have_count(1)
    expect(page.locator(".tech-job-who")).to_have_text("Assigned to: tech-0200")
    viewer = dashboard.context(chromium, "viewer-1").new_page()
    response = viewer.goto("/tech")
    assert response is not None
    assert response.status == 403


def test_a_technician_lands_on_tech_and_is_kept_off_the_centre_pages(
    dashboard: Dashboard, chromium: Browser
) -> None:
    page = dashboard.context(chromium, None, phone=True).new_page()
    page.goto("/signin")
    page.fill("#token", dashboard.tokens["tech-0193"])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{dashboard.url}/tech")
    response = page.goto("/")
    assert response is not None
    assert response.status == 403
    expect(page.locator("main a[href='/tech']")).to_be_visible()


def test_the_phone_view_switches_to_korean(dashboard: Dashboard, chromium: Browser) -> None:
    ticket = job_for(dashboard, 21, "tech-0193")
    page = dashboard.context(chromium, "tech-0193", phone=True).new_page()
    page.goto(f"/tech/jobs/{ticket}")
    page.click(".tech-bar a.lang")
    expect(page).to_have_url(f"{dashboard.url}/tech/jobs/{ticket}")
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator(".tech-state-name")).to_have_text("접수")
    expect(page.locator("button.big")).to_have_text("현장 도착 체크인")
    page.click(".tech-bar a[href='/tech']")
    expect(page.locator("h1")).to_have_text("내 작업")
    shoot(page, "tech-jobs-phone-ko")
