"""The overview and the sign-in, in Chromium: counts and nodes from the fleet, a bell alarm's
banner arriving live (no reload), sign-in refusing a bad token, the language switch."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from fleet.api.app import create_app
from protocols import messages as m
from tests.fleet.api import seed
from tests.web.conftest import Dashboard, shoot
from watchpost.apiserver import ApiServer
from watchpost.broker import free_port

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.postgres]
T0 = 1_764_000_000_000


def test_the_overview_shows_the_fleet_and_a_bell_alarm_arrives_live(
    dashboard: Dashboard, chromium: Browser
) -> None:
    for n in range(1, 13):
        seed.add_node(
            dashboard.engine, f"pole-{n:04d}", district=("Jung-gu", "Mapo-gu")[n % 2], online=n != 4
        )
    seed.open_fault(dashboard.engine, "pole-0007", at=T0)
    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/")
    expect(page.locator("[data-count=nodes]")).to_have_text("12")
    expect(page.locator("[data-count=offline]")).to_have_text("1")
    expect(page.locator("[data-count=with_faults]")).to_have_text("1")
    expect(page.locator(".cell.offline")).to_have_text(["pole-0004"])
    expect(page.locator(".cell.fault")).to_have_text(["pole-0007"])

    page.select_option("select[name=district]", "Mapo-gu")
    expect(page.locator(".cell")).to_have_count(6)
    page.fill("#search", "0011")
    expect(page.locator(".cell")).to_have_text(["pole-0011"])
    shoot(page, "overview-desktop")
    phone = dashboard.context(chromium, "operator-7", phone=True).new_page()
    phone.goto("/")
    expect(phone.locator("[data-count=nodes]")).to_have_text("12")
    shoot(phone, "overview-phone")

    # The pole's node is born and its bell is pressed: the banner comes over the live stream.
    dashboard.send(
        "pole-0003",
        m.NodeBirth(ts=T0, seq=0, bd_seq=1, site_id="site-0003", hardware="rpi4", agent_version="0.1.0"),
    )
    dashboard.until(lambda: dashboard.ingest.counters.applied >= 1)
    dashboard.send(
        "pole-0003",
        m.BellAlarm(
            ts=T0 + 5, seq=1, alarm_id="alarm-77", bell_id="bell-1", pressed_at=T0 + 5, source="controller"
        ),
    )
    banner = page.locator(".alarm-banner")
    expect(banner).to_contain_text("Bell pressed at Site of pole-0003 (pole-0003)")
    expect(page.locator("[data-count=latched]")).to_have_text("1")
    assert page.evaluate("document.body.dataset.lastChime") == "alarm-77"  # the chime played for it


def test_sign_in_refuses_a_bad_token_and_admits_a_good_one(dashboard: Dashboard, chromium: Browser) -> None:
    page = dashboard.context(chromium, None).new_page()
    page.goto("/")
    expect(page).to_have_url(f"{dashboard.url}/signin?next=/")
    page.fill("#token", "wp_000000000000_" + "x" * 43)
    page.click("button[type=submit]")
    expect(page.locator("#token-error")).to_contain_text("unknown token")
    expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    page.fill("#token", dashboard.tokens["operator-7"])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{dashboard.url}/")
    expect(page.locator(".who")).to_have_text("operator-7 · operator")


def test_the_language_switches_and_stays(dashboard: Dashboard, chromium: Browser) -> None:
    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Fleet overview")
    page.click("a.lang")
    expect(page.locator("h1")).to_have_text("전체 현황")
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    page.reload()
    expect(page.locator("h1")).to_have_text("전체 현황")  # the choice is kept (a cookie)
    shoot(page, "overview-desktop-ko")
    korean_browser = dashboard.context(chromium, "operator-7", lang="ko").new_page()
    korean_browser.goto("/")
    expect(korean_browser.locator("h1")).to_have_text("전체 현황")  # no choice yet: the browser's language


def test_a_lost_live_stream_is_shown_and_what_happened_meanwhile_arrives(
    dashboard: Dashboard, chromium: Browser
) -> None:
    seed.add_node(dashboard.engine, "pole-0001")
    # A fleet process of this test's own, to stop and start again on the same port.
    port = free_port()
    fleet = ApiServer(create_app(dashboard.engine), port=port).__enter__()
    context = chromium.new_context(base_url=f"http://127.0.0.1:{port}")
    context.add_cookies(
        [{"name": "wp_session", "value": dashboard.tokens["operator-7"], "url": f"http://127.0.0.1:{port}"}]
    )
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.locator("body")).to_have_attribute("data-live-open", "1")
        expect(page.locator("#live-lost")).to_be_hidden()
        fleet.__exit__(None, None, None)  # the fleet process goes away
        expect(page.locator("#live-lost")).to_be_visible()
        expect(page.locator("#live-lost")).to_have_text("Live updates lost: reconnecting…")
        # A bell is pressed while the page cannot hear: it must still reach the screen.
        seed.press_bell(
            dashboard.engine, "pole-0001", alarm_id="alarm-5", pressed_at=T0, received_at=T0 + 100
        )
        fleet = ApiServer(create_app(dashboard.engine), port=port).__enter__()
        expect(page.locator("#live-lost")).to_be_hidden(timeout=15_000)
        expect(page.locator(".alarm-banner")).to_contain_text("pole-0001")
        expect(page.locator("[data-count=latched]")).to_have_text("1")
    finally:
        context.close()
        fleet.__exit__(None, None, None)
