"""The updates (OTA campaigns) pages in Chromium: a campaign started through the API, its offers
sent by the campaign runner over MQTT, and the nodes' OtaProgress reports arriving through the
real ingest; the per-node table, the waves and the list follow them live (no reload). Pausing
from the page goes through the API's path and into the audit log; a viewer sees no steps and
is refused one posted by hand."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEntry
from fleet.ota.models import OtaCampaign
from fleet.ota.runner import CampaignRunner
from protocols import messages as m
from tests.fleet.api import seed
from tests.fleet.ota.conftest import keep_release, make_release, ota_config
from tests.web.conftest import Dashboard, shoot

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.postgres]

LIVE_MS = 20_000  # generous: the live stream polls a few times a second
NODES = ("pole-0001", "pole-0002", "pole-0003", "pole-0004")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000  # the dashboard fixture's fleet runs on the wall clock


class Poles:
    """The targeted poles as the fleet hears them over MQTT: born at agent 1.1.0, then
    reporting their update with rising `seq` and `ts`, as a node's agent does."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.seq = dict.fromkeys(NODES, 0)

    def born(self) -> None:
        for node_id in NODES:
            seed.add_node(self.dashboard.engine, node_id)
            self.dashboard.send(
                node_id,
                m.NodeBirth(
                    ts=wall_ms(),
                    seq=0,
                    bd_seq=1,
                    site_id=node_id.replace("pole", "site"),
                    hardware="raspberrypi",
                    agent_version="1.1.0",
                ),
            )
        self.dashboard.until(lambda: self.dashboard.ingest.counters.applied >= len(NODES))

    def report(self, node_id: str, campaign_id: str, state: str, **more: Any) -> None:
        self.seq[node_id] += 1
        self.dashboard.send(
            node_id,
            m.OtaProgress(
                ts=wall_ms(),
                seq=self.seq[node_id],
                campaign_id=campaign_id,
                release="1.2.0",
                state=state,
                **more,
            ),
        )


def start_campaign(dashboard: Dashboard) -> str:
    """As the control centre does: POST /api/v1/ota/campaigns with the operator's token."""
    body = {"release_id": "edge-agent-1.2.0", "waves": [{"nodes": 1}, {"percent": 100}], "note": "agent 1.2"}
    request = urllib.request.Request(
        f"{dashboard.url}/api/v1/ota/campaigns",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {dashboard.tokens['operator-7']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        created: dict[str, Any] = json.loads(response.read())
    assert created["waves"][0]["size"] == 1
    assert created["waves"][1]["size"] == 3
    return str(created["campaign_id"])


def offers_seen(dashboard: Dashboard, n: int) -> None:
    dashboard.pole.wait_for(lambda seen: sum(s.kind == "ota-offer" for s in seen) >= n)


def node_row(page: Page, node_id: str) -> Any:
    return page.locator(f"#campaign-nodes tr[data-node={node_id}]")


def audit_of(dashboard: Dashboard, action: str) -> list[tuple[str, str, dict[str, object]]]:
    with Session(dashboard.engine) as db:
        rows = db.execute(
            sa.select(AuditEntry.actor, AuditEntry.target, AuditEntry.detail)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        ).all()
    return [(actor, target, json.loads(detail)) for actor, target, detail in rows]


def test_a_campaigns_nodes_follow_their_reports_live_and_the_operator_pauses_it(
    dashboard: Dashboard, chromium: Browser, tmp_path: Path
) -> None:
    poles = Poles(dashboard)
    poles.born()
    config = ota_config(tmp_path)
    keep_release(dashboard.engine, config, make_release("1.2.0"))
    campaign_id = start_campaign(dashboard)
    runner = CampaignRunner(dashboard.engine, dashboard.ingest, config)
    assert [node for _, node in runner.run_once().offered] == ["pole-0001"]  # the canary
    offers_seen(dashboard, 1)

    listing = dashboard.context(chromium, "operator-7").new_page()
    listing.goto("/campaigns")
    expect(listing.locator(".bar nav a[aria-current=page]")).to_have_text("Updates")
    row = listing.locator(f"tr[data-campaign='{campaign_id}']")
    expect(row).to_contain_text("edge-agent-1.2.0")
    expect(row).to_have_attribute("data-state", "running")
    expect(row.locator("[data-field=progress]")).to_contain_text("0 of 4")
    expect(row.locator("[data-field=waves]")).to_have_text("1 of 2")

    page = dashboard.context(chromium, "operator-7").new_page()
    page.goto(f"/campaigns/{campaign_id}")
    expect(page.locator("[data-field=campaign-state]")).to_have_text("running")
    expect(node_row(page, "pole-0001").locator("[data-field=state]")).to_have_text("offered")
    expect(node_row(page, "pole-0002").locator("[data-field=state]")).to_have_text("queued")

    # The canary downloads, installs and commits: its row follows each report, no reload.
    poles.report("pole-0001", campaign_id, "downloading", progress=0.4)
    canary = node_row(page, "pole-0001")
    expect(canary.locator("[data-field=state]")).to_have_text("downloading", timeout=LIVE_MS)
    expect(canary.locator("[data-field=progress]")).to_contain_text("40 %")
    poles.report("pole-0001", campaign_id, "downloading", progress=0.9)
    expect(canary.locator("[data-field=progress]")).to_contain_text("90 %", timeout=LIVE_MS)
    expect(page.locator("[data-count=in_flight]")).to_have_text("1")
    poles.report("pole-0001", campaign_id, "committed", progress=1.0)
    expect(canary.locator("[data-field=state]")).to_have_text("committed", timeout=LIVE_MS)
    expect(page.locator("[data-count=committed]")).to_have_text("1")
    expect(page.locator("tr.wave[data-wave='1'] [data-field=status]")).to_have_text("passed")
    expect(page.locator("tr.wave[data-wave='2'] [data-field=status]")).to_have_text("not opened")
    expect(page.locator("tr.wave[data-wave='1']")).to_contain_text("90 %")  # the default thresholds
    expect(row.locator("[data-field=progress]")).to_contain_text("1 of 4", timeout=LIVE_MS)  # the list too

    # The canary passed: the runner opens the second wave and offers its three nodes.
    assert sorted(node for _, node in runner.run_once().offered) == ["pole-0002", "pole-0003", "pole-0004"]
    offers_seen(dashboard, 4)
    expect(node_row(page, "pole-0003").locator("[data-field=state]")).to_have_text("offered", timeout=LIVE_MS)
    expect(page.locator("tr.wave[data-wave='2'] [data-field=status]")).to_have_text("open")
    expect(row.locator("[data-field=waves]")).to_have_text("2 of 2", timeout=LIVE_MS)
    poles.report("pole-0003", campaign_id, "installing", progress=0.5)
    poles.report(
        "pole-0002",
        campaign_id,
        "failed",
        reason="hash-mismatch",
        detail="artifact sha256 differs from the manifest",
    )
    failed = node_row(page, "pole-0002")
    expect(failed.locator("[data-field=state]")).to_have_text("failed", timeout=LIVE_MS)
    expect(failed.locator("[data-field=reason]")).to_contain_text("hash-mismatch")
    expect(failed.locator("[data-field=reason]")).to_contain_text("artifact sha256 differs from the manifest")
    expect(node_row(page, "pole-0003").locator("[data-field=state]")).to_have_text(
        "installing", timeout=LIVE_MS
    )
    expect(page.locator("tr.wave[data-wave='2'] [data-field=failures]")).to_have_text("1")
    expect(row.locator("[data-field=failures]")).to_have_text("1", timeout=LIVE_MS)

    # The state filter narrows the node table (and keeps narrowing it as it refreshes).
    page.select_option("#node-filter select[name=state]", "failed")
    expect(page.locator("#campaign-nodes tr[data-node]")).to_have_count(1)
    expect(page.locator("#campaign-nodes tr[data-node]")).to_have_attribute("data-node", "pole-0002")
    page.select_option("#node-filter select[name=state]", "")
    expect(page.locator("#campaign-nodes tr[data-node]")).to_have_count(4)

    # Only the steps a running campaign allows, for an operator.
    steps = page.locator("#campaign-actions button")
    expect(steps).to_have_text(["Pause", "Cancel the campaign"])
    shoot(page, "campaign-desktop")
    phone = dashboard.context(chromium, "operator-7", phone=True).new_page()
    phone.goto(f"/campaigns/{campaign_id}")
    expect(node_row(phone, "pole-0002").locator("[data-field=state]")).to_have_text("failed")
    shoot(phone, "campaign-phone")

    # The note typed survives a live refresh of the steps (another report arrives meanwhile).
    page.fill("#campaign-note", "pole-0002 hash mismatch: checking the mirror")
    poles.report("pole-0003", campaign_id, "restarting")
    expect(node_row(page, "pole-0003").locator("[data-field=state]")).to_have_text(
        "restarting", timeout=LIVE_MS
    )
    expect(page.locator("#campaign-note")).to_have_value("pole-0002 hash mismatch: checking the mirror")
    page.locator("#campaign-actions button.pause").click()
    expect(page.locator("#campaign-outcome")).to_have_text("Paused: no more offers until resumed.")
    expect(page.locator("[data-field=campaign-state]")).to_have_text("paused")
    expect(steps).to_have_text(["Resume", "Cancel the campaign"])
    expect(page.locator("#campaign-note")).to_have_value("")
    expect(row).to_have_attribute("data-state", "paused", timeout=LIVE_MS)  # the list page, live
    with Session(dashboard.engine) as db:
        assert db.scalars(
            sa.select(OtaCampaign.state).where(OtaCampaign.campaign_id == campaign_id)
        ).one() == ("paused")
    assert audit_of(dashboard, "ota.campaign.pause") == [
        (
            "operator-7",
            f"ota-campaign/{campaign_id}",
            {"before": "running", "note": "pole-0002 hash mismatch: checking the mirror"},
        )
    ]
    assert runner.run_once().offered == []  # paused: nothing more goes out
    shoot(listing, "campaigns-desktop")
    phone.goto("/campaigns")
    expect(phone.locator(f"tr[data-campaign='{campaign_id}']")).to_have_attribute("data-state", "paused")
    shoot(phone, "campaigns-phone")

    # A step the state no longer allows is refused with the reason, beside the steps.
    stale = dashboard.context(chromium, "admin-1").new_page()
    stale.goto(f"/campaigns/{campaign_id}")
    page.locator("#campaign-actions button.resume").click()
    expect(page.locator("[data-field=campaign-state]")).to_have_text("running")
    expect(stale.locator("#campaign-actions button")).to_have_text(
        ["Pause", "Cancel the campaign"], timeout=LIVE_MS
    )
    response = stale.request.post(f"/campaigns/{campaign_id}/approve", headers={"HX-Request": "true"})
    assert response.status == 200
    assert "This campaign is running: it cannot approve now (allowed: pause, cancel)." in response.text()
    assert [actor for actor, _, _ in audit_of(dashboard, "ota.campaign.resume")] == ["operator-7"]
    assert audit_of(dashboard, "ota.campaign.approve") == []


def test_a_viewer_sees_the_campaign_without_any_step_and_korean_reads_it(
    dashboard: Dashboard, chromium: Browser, tmp_path: Path
) -> None:
    poles = Poles(dashboard)
    poles.born()
    config = ota_config(tmp_path)
    keep_release(dashboard.engine, config, make_release("1.2.0"))
    campaign_id = start_campaign(dashboard)
    CampaignRunner(dashboard.engine, dashboard.ingest, config).run_once()
    offers_seen(dashboard, 1)

    page = dashboard.context(chromium, "viewer-1").new_page()
    page.goto(f"/campaigns/{campaign_id}")
    expect(page.locator("[data-field=campaign-state]")).to_have_text("running")
    expect(page.locator("#campaign-nodes tr[data-node]")).to_have_count(4)
    expect(page.locator("#campaign-body button")).to_have_count(0)
    expect(page.locator("#campaign-actions")).to_have_count(0)
    poles.report("pole-0001", campaign_id, "downloading", progress=0.25)  # a viewer's page is live too
    expect(node_row(page, "pole-0001").locator("[data-field=progress]")).to_contain_text(
        "25 %", timeout=LIVE_MS
    )
    refused = page.request.post(f"/campaigns/{campaign_id}/pause", form={"note": "by hand"})
    assert refused.status == 403
    with Session(dashboard.engine) as db:
        assert db.scalars(
            sa.select(OtaCampaign.state).where(OtaCampaign.campaign_id == campaign_id)
        ).one() == ("running")
    assert audit_of(dashboard, "ota.campaign.pause") == []

    korean = dashboard.context(chromium, "operator-7", lang="ko").new_page()
    korean.goto(f"/campaigns/{campaign_id}")
    expect(korean.locator(".bar nav a[aria-current=page]")).to_have_text("업데이트")
    expect(korean.locator("[data-field=campaign-state]")).to_have_text("진행 중")
    expect(node_row(korean, "pole-0001").locator("[data-field=state]")).to_have_text("다운로드 중")
    expect(korean.locator("#campaign-actions button")).to_have_text(["일시 정지", "캠페인 취소"])
    shoot(korean, "campaign-ko-desktop")
