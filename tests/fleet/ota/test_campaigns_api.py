"""Campaigns over the API (a real uvicorn, SQLite and PostgreSQL): targets resolved and split
into waves, the per-wave summary and the per-node listing paged by key, pause / resume /
cancel / approve with illegal moves refused, invalid requests named by field, every change
audited."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.access.roles import Role
from fleet.audit.models import AuditEntry
from fleet.inventory.models import Site, SiteTag
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0, Api
from tests.fleet.ota.conftest import keep_release, make_release, ota_config


def fleet_of(api: Api, tmp_path: Path) -> None:
    for i in range(1, 21):
        seed.add_node(
            api.engine, f"pole-{i:04d}", district="Jung-gu" if i <= 10 else "Mapo-gu", last_seen_ms=T0
        )
    with Session(api.engine) as db, db.begin():
        site = db.scalars(sa.select(Site).where(Site.site_id == "site-0015")).one()
        db.add(SiteTag(site=site, tag="school-zone"))
    keep_release(api.engine, ota_config(tmp_path), make_release())


def test_a_campaign_over_the_api(ota_api: Api, tmp_path: Path) -> None:
    fleet_of(ota_api, tmp_path)
    operator = ota_api.as_(Role.OPERATOR)
    created = operator.post(
        "/api/v1/ota/campaigns",
        {
            "release_id": "edge-agent-1.2.0",
            "target": {"districts": ["Jung-gu"], "site_tags": ["school-zone"]},
            "waves": [{"nodes": 1, "success_threshold": 1.0}, {"percent": 50}, {"percent": 100}],
            "require_approval": True,
            "maintenance_window": {"start": "01:00", "end": "05:00", "time_zone": "Asia/Seoul"},
            "note": "agent 1.2.0 to Jung-gu",
        },
    )
    assert created.status == 201, created.text
    campaign = created.body
    assert (campaign["state"], campaign["nodes"], campaign["skipped"]) == ("running", 11, {})
    assert [(w["size"], w["opened"]) for w in campaign["waves"]] == [(1, False), (5, False), (5, False)]
    assert campaign["maintenance_window"] == {"start": "01:00", "end": "05:00", "time_zone": "Asia/Seoul"}
    cid = campaign["campaign_id"]

    viewer = ota_api.as_(Role.VIEWER)
    assert [c["campaign_id"] for c in viewer.get("/api/v1/ota/campaigns").body["items"]] == [cid]
    assert viewer.get(f"/api/v1/ota/campaigns/{cid}").body["by_state"] == {"queued": 11}
    page = viewer.get(f"/api/v1/ota/campaigns/{cid}/nodes?limit=6").body
    assert [n["node_id"] for n in page["items"]][:2] == ["pole-0001", "pole-0002"]
    assert page["next_after"] == "pole-0006"
    rest = viewer.get(f"/api/v1/ota/campaigns/{cid}/nodes?limit=6&after=pole-0006").body
    assert [n["node_id"] for n in rest["items"]] == [
        "pole-0007",
        "pole-0008",
        "pole-0009",
        "pole-0010",
        "pole-0015",
    ]
    assert rest["next_after"] is None
    assert viewer.get(f"/api/v1/ota/campaigns/{cid}/nodes?wave=0").body["items"][0]["state"] == "queued"

    # The same nodes cannot be in two campaigns of one component at once.
    second = operator.post(
        "/api/v1/ota/campaigns", {"release_id": "edge-agent-1.2.0", "target": {"node_ids": ["pole-0001"]}}
    )
    assert (second.status, second.code) == (422, "invalid-request")
    assert second.body["error"]["details"][0]["field"] == "target"
    assert "1 in-another-campaign" in second.body["error"]["message"]

    # Steering: pause, resume, approve only when awaiting, cancel for good.
    assert operator.post(f"/api/v1/ota/campaigns/{cid}/approve").code == "illegal-transition"
    assert (
        operator.post(f"/api/v1/ota/campaigns/{cid}/pause", {"note": "storm tonight"}).body["state"]
        == "paused"
    )
    refused = operator.post(f"/api/v1/ota/campaigns/{cid}/pause")
    assert (refused.status, refused.code) == (409, "illegal-transition")
    assert "allowed: resume, cancel" in refused.body["error"]["message"]
    assert operator.post(f"/api/v1/ota/campaigns/{cid}/resume").body["state"] == "running"
    cancelled = operator.post(f"/api/v1/ota/campaigns/{cid}/cancel", {"note": "wrong release"}).body
    assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "wrong release")
    assert cancelled["finished_at_ms"] is not None
    with Session(ota_api.engine) as db:
        actions = list(
            db.scalars(
                sa.select(AuditEntry.action)
                .where(AuditEntry.target == f"ota-campaign/{cid}")
                .order_by(AuditEntry.id)
            )
        )
        detail = json.loads(
            db.scalars(sa.select(AuditEntry.detail).where(AuditEntry.action == "ota.campaign.create")).one()
        )
    assert actions == [
        "ota.campaign.create",
        "ota.campaign.pause",
        "ota.campaign.resume",
        "ota.campaign.cancel",
    ]
    assert (detail["release"], detail["waves"]) == ("edge-agent-1.2.0", [1, 5, 5])
    # Over: the nodes are free for the next campaign.
    assert operator.post("/api/v1/ota/campaigns", {"release_id": "edge-agent-1.2.0"}).status == 201


def test_invalid_campaigns_are_named_by_field(ota_api: Api, tmp_path: Path) -> None:
    fleet_of(ota_api, tmp_path)
    operator = ota_api.as_(Role.OPERATOR)
    base = {"release_id": "edge-agent-1.2.0"}
    cases = [
        ({"release_id": "edge-agent-9.9.9"}, "release_id"),
        ({"release_id": "not a release"}, "release_id"),
        ({**base, "waves": [{"nodes": 1}]}, "waves"),  # reaches 1 of 20
        ({**base, "waves": []}, "waves"),
        ({**base, "waves": [{"nodes": 1, "percent": 100}]}, "waves.0"),
        ({**base, "waves": [{"percent": 100, "abort_failure_rate": 0}]}, "waves.0.abort_failure_rate"),
        (
            {**base, "maintenance_window": {"start": "01:00", "end": "05:00", "time_zone": "Mars/Olympus"}},
            "maintenance_window.time_zone",
        ),
        (
            {**base, "maintenance_window": {"start": "25:00", "end": "05:00", "time_zone": "UTC"}},
            "maintenance_window.start",
        ),
        ({**base, "target": {"node_ids": ["Pole One"]}}, "target.node_ids.0"),
        ({**base, "target": {"site": ["x"]}}, "target.site"),
        ({**base, "target": {"versions": ["1.2.0"]}}, "target"),  # selects nobody: all are at 0.1.0
        ({**base, "abort_action": "explode"}, "abort_action"),
        ({**base, "node_timeout_s": 5}, "node_timeout_s"),
    ]
    for body, field in cases:
        answer = operator.post("/api/v1/ota/campaigns", body)
        assert (answer.status, answer.code) == (422, "invalid-request"), (body, answer.text)
        assert answer.body["error"]["details"][0]["field"] == field, (body, answer.text)
    assert ota_api.as_(Role.VIEWER).get("/api/v1/ota/campaigns").body["items"] == []
    assert ota_api.as_(Role.VIEWER).get("/api/v1/ota/campaigns/nope/nodes").code == "not-found"
    assert ota_api.as_(Role.VIEWER).get("/api/v1/ota/campaigns?state=lost").status == 422
