"""The bell alarm and fault pages in Chromium: a bell pressed at the pole arrives live and its
acknowledgement goes back down to the pole over MQTT; open faults sorted by the nearest breach
with countdowns that tick; dispatch and pause through the page with the reasons for refused
forms beside their fields; what viewers and technicians may see."""

from __future__ import annotations

import json
import re
import time

import sqlalchemy as sa
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy.orm import Session

from fleet.alarms import service as alarms
from fleet.alarms.models import BellAlarmRecord
from fleet.audit.models import AuditEntry
from fleet.inventory.models import Site
from protocols import messages as m
from tests.fleet.api import seed
from tests.web.conftest import Dashboard, shoot

MINUTE = 60_000
LIVE_MS = 20_000  # generous: the live stream polls a few times a second


def wall_ms() -> int:
    return time.time_ns() // 1_000_000  # the dashboard fixture's fleet runs on the wall clock


def place(
    dashboard: Dashboard, node_id: str, *, address: str, district: str, at: tuple[float, float]
) -> None:
    """A node with its site as the city's inventory describes it."""
    seed.add_node(dashboard.engine, node_id, district=district)
    with Session(dashboard.engine) as db, db.begin():
        db.execute(
            sa.update(Site)
            .where(Site.site_id == node_id.replace("pole", "site"))
            .values(address=address, latitude=at[0], longitude=at[1], has_bell=True)
        )


def audit(dashboard: Dashboard, action: str) -> list[tuple[str, str, dict[str, object]]]:
    with Session(dashboard.engine) as db:
        rows = db.execute(
            sa.select(AuditEntry.actor, AuditEntry.target, AuditEntry.detail)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        ).all()
    return [(actor, target, json.loads(detail)) for actor, target, detail in rows]


def seconds_left(clock: Locator) -> int:
    """A countdown's h:mm:ss (negative once late) as seconds."""
    text = (clock.text_content() or "").strip()
    found = re.fullmatch(r"(-?)(\d+):(\d\d):(\d\d)", text)
    assert found, f"not a countdown: {text!r}"
    sign, hours, minutes, seconds = found.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return -total if sign else total


def test_a_bell_press_arrives_live_and_its_acknowledgement_reaches_the_pole(
    dashboard: Dashboard, chromium: Browser
) -> None:
    place(dashboard, "pole-0003", address="12 Sejong-daero", district="Jung-gu", at=(37.566295, 126.977945))
    now = wall_ms()
    # Yesterday's call, dealt with: it shows under the recently acknowledged.
    seed.press_bell(
        dashboard.engine, "pole-0003", alarm_id="alarm-90", pressed_at=now - 90_000, received_at=now - 89_700
    )
    with Session(dashboard.engine) as db, db.begin():
        alarms.acknowledge(db, "alarm-90", "operator-7", now - 60_000)
        alarms.clear(db, "alarm-90", "operator-7", now - 30_000)
    dashboard.send(
        "pole-0003",
        m.NodeBirth(
            ts=now,
            seq=0,
            bd_seq=1,
            site_id="site-0003",
            hardware="rpi4",
            agent_version="0.1.0",
            cameras=[
                m.CameraInfo(camera_id="cam-1", name="north"),
                m.CameraInfo(camera_id="cam-2", name="crossing"),
            ],
            bells=["bell-1"],
        ),
    )
    dashboard.until(lambda: dashboard.ingest.counters.applied >= 1)

    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/alarms")
    expect(page.locator("#latched-alarms")).to_contain_text("No bell alarm is waiting.")
    expect(page.locator("#recent-alarms [data-alarm=alarm-90]")).to_have_attribute("data-state", "cleared")

    pressed = wall_ms()
    published = time.monotonic()
    dashboard.send(
        "pole-0003",
        m.BellAlarm(
            ts=pressed, seq=1, alarm_id="alarm-91", bell_id="bell-1", pressed_at=pressed, source="controller"
        ),
    )
    card = page.locator("#latched-alarms [data-alarm=alarm-91]")
    expect(card).to_be_visible(timeout=LIVE_MS)  # no reload: the list followed the live stream
    print(f"\nbell press published to visible on /alarms: {(time.monotonic() - published) * 1000:.0f} ms")
    expect(card).to_contain_text("Site of pole-0003")
    expect(card).to_contain_text("12 Sejong-daero")
    expect(card).to_contain_text("Jung-gu")
    expect(card).to_contain_text("37.566295, 126.977945")
    expect(card.locator(".cameras li")).to_have_text(
        [re.compile("cam-1 · north"), re.compile("cam-2 · crossing")]
    )
    expect(card.locator(".bell-timeline")).to_contain_text("Pressed at the pole")
    shoot(page, "alarms-desktop")

    card.locator("button.acknowledge").click()
    seen = dashboard.pole.wait_for(
        lambda messages: any(s.topic.endswith("/pole-0003/down/alarm-ack") for s in messages)
    )
    (ack,) = [s.json() for s in seen if s.topic.endswith("/pole-0003/down/alarm-ack")]
    assert ack["alarm_id"] == "alarm-91"
    assert ack["operator"] == "operator-7"
    assert ack["lamp"] is True  # the pole lights its "call received" lamp
    expect(page.locator("#latched-alarms [data-alarm=alarm-91]")).to_have_count(0, timeout=LIVE_MS)
    acknowledged = page.locator("#recent-alarms [data-alarm=alarm-91]")
    expect(acknowledged).to_have_attribute("data-state", "acknowledged")
    expect(acknowledged.locator(".bell-timeline")).to_contain_text("by operator-7")
    assert audit(dashboard, "alarm.acknowledge") == [
        ("operator-7", "alarm/alarm-91", {"node": "pole-0003", "lamp": True})
    ]

    # On the alarm's own page: cleared once the call is dealt with.
    acknowledged.locator("h3 a").click()
    expect(page).to_have_url(f"{dashboard.url}/alarms/alarm-91")
    page.locator("button.clear").click()
    expect(page.locator("#alarm-detail [data-alarm=alarm-91]")).to_have_attribute("data-state", "cleared")
    assert [actor for actor, _, _ in audit(dashboard, "alarm.clear")] == ["operator-7"]

    phone = dashboard.context(chromium, "operator-7", phone=True).new_page()
    phone.goto("/alarms")
    expect(phone.locator("#recent-alarms [data-alarm=alarm-91]")).to_be_visible()
    shoot(phone, "alarms-phone")


def test_opening_an_alarm_marks_it_shown_once(dashboard: Dashboard, chromium: Browser) -> None:
    seed.add_node(dashboard.engine, "pole-0005")
    now = wall_ms()
    seed.press_bell(
        dashboard.engine, "pole-0005", alarm_id="alarm-5", pressed_at=now - 4_000, received_at=now - 3_800
    )

    def shown_at() -> int | None:
        with Session(dashboard.engine) as db:
            return db.scalar(
                sa.select(BellAlarmRecord.shown_at_ms).where(BellAlarmRecord.alarm_id == "alarm-5")
            )

    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/alarms/alarm-5")
    first = shown_at()
    assert first is not None
    expect(page.locator(".bell-timeline")).not_to_contain_text("Shown to an operator not yet")
    page.reload()
    assert shown_at() == first  # the first showing counts, later ones change nothing

    page.goto("/alarms/alarm-404")
    expect(page.locator("main")).to_contain_text("There is no bell alarm alarm-404.")


def test_faults_are_sorted_by_the_nearest_breach_and_worked_through_the_page(
    dashboard: Dashboard, chromium: Browser
) -> None:
    for n in (1, 2, 3):
        place(dashboard, f"pole-000{n}", address=f"{n} Mapo-daero", district="Mapo-gu", at=(37.55, 126.95))
    now = wall_ms()
    # Major: 2 h to respond, at risk in the last 30 min. Critical: breached after 2 h.
    at_risk = seed.open_fault(dashboard.engine, "pole-0001", at=now - 105 * MINUTE)
    breached = seed.open_fault(
        dashboard.engine,
        "pole-0002",
        at=now - 150 * MINUTE,
        kind="offline",
        component="node",
        severity="critical",
    )
    calm = seed.open_fault(
        dashboard.engine,
        "pole-0003",
        at=now - 10 * MINUTE,
        kind="camera",
        component="cam-1",
        severity="minor",
    )

    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto("/faults")
    rows = page.locator("tr.fault-row")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-ticket") for i in range(3)] == [breached, at_risk, calm]
    expect(page.locator(f"tr[data-ticket='{breached}'] [data-clock=response]")).to_have_class(
        re.compile(r"\bbreached\b")
    )
    expect(page.locator(f"tr[data-ticket='{calm}'] [data-clock=response]")).to_have_class(
        re.compile(r"\bok\b")
    )
    response = page.locator(f"tr[data-ticket='{at_risk}'] [data-clock=response]")
    expect(response).to_have_class(re.compile(r"\bat-risk\b"))
    before = seconds_left(response)
    assert 14 * 60 <= before <= 15 * 60
    page.wait_for_timeout(2_500)
    assert seconds_left(response) < before  # the countdown ticks in the browser

    # A new fault opens: the list follows the live stream.
    seed.open_fault(dashboard.engine, "pole-0003", at=now, kind="door", component="cabinet", severity="major")
    expect(rows).to_have_count(4, timeout=LIVE_MS)
    page.select_option("select[name=severity]", "critical")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-ticket", breached)
    page.select_option("select[name=severity]", "")
    expect(rows).to_have_count(4)
    shoot(page, "faults-desktop")

    page.click(f"tr[data-ticket='{at_risk}'] a")
    expect(page).to_have_url(f"{dashboard.url}/faults/{at_risk}")
    state = page.locator("#fault-status [data-state]")
    expect(state).to_have_attribute("data-state", "open")

    # Refused forms say why beside the field, and change nothing.
    page.fill("#technician", "")
    page.click("form.dispatch button.primary")
    expect(page.locator("#technician-error")).to_have_text(
        "Give the technician to send (or assign the ticket first)."
    )
    expect(page.locator("#technician")).to_have_attribute("aria-invalid", "true")
    page.fill("#technician", "tech-0193")
    page.click("form.dispatch button.primary")
    expect(page.locator("#dispatch-error")).to_contain_text("This ticket is open: it cannot dispatch now")
    expect(state).to_have_attribute("data-state", "open")

    page.click("form.acknowledge button")
    expect(state).to_have_attribute("data-state", "acknowledged")
    page.fill("#technician", "tech-0193")
    page.fill("#note", "bring a cabinet key")
    page.click("form.dispatch button.primary")
    expect(state).to_have_attribute("data-state", "dispatched")
    expect(page.locator("[data-field=assignee]")).to_have_text("tech-0193")

    page.fill("#reason", "")
    page.click("form.pause button")
    expect(page.locator("#reason-error")).to_have_text("Give a reason: what the work is waiting for.")
    expect(page.locator("#reason")).to_have_attribute("aria-invalid", "true")
    page.fill("#reason", "waiting for the power utility")
    page.click("form.pause button")
    expect(page.locator(".paused-note")).to_contain_text("waiting for the power utility")
    frozen = page.locator("#fault-status [data-clock=response]")
    expect(frozen).to_have_class(re.compile(r"\bpaused\b"))
    held = seconds_left(frozen)
    page.wait_for_timeout(1_500)
    assert seconds_left(frozen) == held  # a paused clock does not run down
    expect(page.locator("form.resume button")).to_be_visible()
    shoot(page, "fault-detail-desktop")

    assert [(a, t, d) for a, t, d in audit(dashboard, "ticket.dispatch")] == [
        ("operator-7", f"ticket/{at_risk}", {"technician": "tech-0193", "note": "bring a cabinet key"})
    ]
    assert audit(dashboard, "ticket.pause") == [
        ("operator-7", f"ticket/{at_risk}", {"reason": "waiting for the power utility"})
    ]

    phone = dashboard.context(chromium, "operator-7", phone=True).new_page()
    phone.goto("/faults")
    expect(phone.locator("tr.fault-row")).to_have_count(4)
    shoot(phone, "faults-phone")
    phone.goto(f"/faults/{at_risk}")
    expect(phone.locator(".paused-note")).to_be_visible()
    shoot(phone, "fault-detail-phone")


def test_a_viewer_sees_no_actions_and_a_technician_is_kept_out(
    dashboard: Dashboard, chromium: Browser
) -> None:
    seed.add_node(dashboard.engine, "pole-0001")
    now = wall_ms()
    ticket = seed.open_fault(dashboard.engine, "pole-0001", at=now - 5 * MINUTE)
    seed.press_bell(
        dashboard.engine, "pole-0001", alarm_id="alarm-1", pressed_at=now - 2_000, received_at=now - 1_900
    )

    viewer: Page = dashboard.context(chromium, "viewer-1").new_page()
    viewer.goto("/alarms")
    expect(viewer.locator("#latched-alarms [data-alarm=alarm-1]")).to_be_visible()
    expect(viewer.locator("main button")).to_have_count(0)
    viewer.goto("/alarms/alarm-1")
    expect(viewer.locator("main button")).to_have_count(0)
    viewer.goto(f"/faults/{ticket}")
    expect(viewer.locator("#fault-status [data-state]")).to_have_attribute("data-state", "open")
    expect(viewer.locator("main form")).to_have_count(0)
    with Session(dashboard.engine) as db:
        record = db.scalars(sa.select(BellAlarmRecord).where(BellAlarmRecord.alarm_id == "alarm-1")).one()
        assert record.shown_at_ms is None  # a viewer's screen is not an operator's
    # Posting by hand is refused as the API would refuse it.
    status = viewer.evaluate(f"fetch('/faults/{ticket}/acknowledge', {{method: 'POST'}}).then(r => r.status)")
    assert status == 403

    technician = dashboard.context(chromium, "tech-0193").new_page()
    for path in ("/alarms", "/faults", f"/faults/{ticket}", "/alarms/alarm-1"):
        answer = technician.goto(path)
        assert answer is not None
        assert answer.status == 403, path
        expect(technician.locator("main")).to_contain_text("/tech")


def test_a_failing_action_says_so_and_the_pages_speak_korean(dashboard: Dashboard, chromium: Browser) -> None:
    seed.add_node(dashboard.engine, "pole-0001")
    ticket = seed.open_fault(dashboard.engine, "pole-0001", at=wall_ms() - 5 * MINUTE)

    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto(f"/faults/{ticket}")
    expect(page.locator("#api-error")).to_be_hidden()
    # The fleet manager does not answer this one: the page says so instead of doing nothing.
    page.route(f"**/faults/{ticket}/acknowledge", lambda route: route.fulfill(status=503, body="busy"))
    page.click("form.acknowledge button")
    expect(page.locator("#api-error")).to_be_visible()
    expect(page.locator("#api-error")).to_contain_text("HTTP 503")
    expect(page.locator("#fault-status [data-state]")).to_have_attribute("data-state", "open")
    expect(page.locator("form.acknowledge button")).to_be_enabled()  # it can be tried again
    page.unroute(f"**/faults/{ticket}/acknowledge")
    page.click("form.acknowledge button")
    expect(page.locator("#fault-status [data-state]")).to_have_attribute("data-state", "acknowledged")
    expect(page.locator("#api-error")).to_be_hidden()

    korean = dashboard.context(chromium, "operator-7", lang="ko").new_page()
    korean.goto("/faults")
    expect(korean.locator("main h1")).to_have_text("장애")
    expect(korean.locator(f"tr[data-ticket='{ticket}']")).to_contain_text("접수")
    korean.goto(f"/faults/{ticket}")
    korean.fill("#reason", "")
    korean.click("form.pause button")
    expect(korean.locator("#reason-error")).to_have_text("이유를 입력하세요: 작업이 무엇을 기다리고 있는지.")
    korean.goto("/alarms")
    expect(korean.locator("main h1")).to_have_text("비상벨 알람")
    expect(korean.locator("#latched-alarms")).to_contain_text("대기 중인 비상벨 알람이 없습니다.")
