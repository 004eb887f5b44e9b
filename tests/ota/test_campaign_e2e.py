"""OTA campaigns end to end, every part a real process: `watchpost fleet serve` on PostgreSQL
and Mosquitto, three edge agents under their boot selector (each provisioned with 1.0.0), and
releases built by watchpost.ota.build, uploaded through the fleet's API, and offered wave by
wave by the fleet's campaign runner over MQTT.

What it shows: a good release goes canary first and then to the rest; a release that cannot
pass its health check is taken back by the pole itself and stops the campaign at the abort
threshold before anyone else gets it; a release the fleet does not trust never gets that far.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.edge.ota.conftest import Releases, agent_files
from tests.ota.conftest import BASE_RELEASE, WAIT, FleetProcess, Poles

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]


def create_campaign(fleet: FleetProcess, release_id: str, site_id: str, **body: Any) -> dict[str, Any]:
    status, created = fleet.call(
        "POST",
        "/ota/campaigns",
        {"release_id": release_id, "target": {"site_ids": [site_id], "versions": [BASE_RELEASE]}, **body},
    )
    assert status == 201, created
    return dict(created)


def campaign_until(
    fleet: FleetProcess, poles: Poles, campaign_id: str, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    try:
        return dict(fleet.until(f"/ota/campaigns/{campaign_id}", wanted, timeout=WAIT))
    except AssertionError as error:
        raise AssertionError(f"{error}\n{poles.diagnostics()}\nfleet:\n{fleet.stderr_tail()}") from None


def campaign_nodes(fleet: FleetProcess, campaign_id: str) -> dict[str, dict[str, Any]]:
    status, page = fleet.call("GET", f"/ota/campaigns/{campaign_id}/nodes")
    assert status == 200, page
    return {row["node_id"]: row for row in page["items"]}


def test_a_signed_release_reaches_the_nodes_in_waves(
    fleet: FleetProcess, dist: Releases, start_poles: Callable[..., Poles]
) -> None:
    poles = start_poles("site-waves", ["pole-w1", "pole-w2", "pole-w3"], deadline_s=30)
    built = dist.build("1.1.0", base=BASE_RELEASE)
    assert built.delta_path is not None
    status, release = fleet.upload(built)
    assert status == 201, release
    assert (release["release_id"], release["delta"]["base_release"]) == ("edge-agent-1.1.0", BASE_RELEASE)

    created = create_campaign(fleet, "edge-agent-1.1.0", "site-waves", waves=[{"nodes": 1}, {"percent": 100}])
    assert created["nodes"] == 3
    assert [w["size"] for w in created["waves"]] == [1, 2]
    campaign_id = created["campaign_id"]
    done = campaign_until(fleet, poles, campaign_id, lambda c: c["state"] == "completed")
    assert done["by_state"] == {"committed": 3}
    assert [(w["passed"], w["committed"]) for w in done["waves"]] == [(True, 1), (True, 2)]

    rows = campaign_nodes(fleet, campaign_id)
    canary, rest = rows["pole-w1"], [rows["pole-w2"], rows["pole-w3"]]
    assert (canary["wave"], [r["wave"] for r in rest]) == (0, [1, 1])
    assert all(r["state"] == "committed" and r["offers"] == 1 for r in rows.values()), rows
    # The second wave was offered only once the canary's commit was in (fleet clock).
    assert all(canary["finished_at_ms"] <= r["offered_at_ms"] for r in rest), rows
    # And on the wire: the canary's offer, its commit, then the other two offers.
    wire = list(
        dict.fromkeys(  # at least once on the wire: a repeat adds nothing
            (s.topic.split("/")[3], s.kind, s.json().get("state"))
            for s in list(poles.mqtt.messages)
            if s.kind == "ota-offer" or (s.kind == "ota" and s.json().get("state") == "committed")
        )
    )
    assert wire[0] == ("pole-w1", "ota-offer", None), wire
    assert wire.index(("pole-w1", "ota", "committed")) < wire.index(("pole-w2", "ota-offer", None)), wire
    assert wire.index(("pole-w1", "ota", "committed")) < wire.index(("pole-w3", "ota-offer", None)), wire
    assert sorted(wire[1:]) == sorted(
        [("pole-w1", "ota", "committed"), ("pole-w2", "ota-offer", None), ("pole-w3", "ota-offer", None),
         ("pole-w2", "ota", "committed"), ("pole-w3", "ota", "committed")]
    ), wire  # fmt: skip

    for pole in poles.nodes:
        births = poles.births(pole.node_id)
        assert (births[0], births[-1]) == (BASE_RELEASE, "1.1.0"), (pole.node_id, births)
        assert fleet.call("GET", f"/nodes/{pole.node_id}")[1]["agent_version"] == "1.1.0"
        # Switched and committed, with 1.0.0 kept beside it for a rollback.
        assert (pole.store.current(), pole.store.committed()) == ("1.1.0", "1.1.0")
        assert pole.store.installed() == [BASE_RELEASE, "1.1.0"]
        assert pole.agent.exits == [75]  # one restart, asked for by the agent to start 1.1.0
        # The fleet served the delta, and it was enough: the agent rebuilt the tar from 1.0.0's.
        assert f"edge-agent-1.1.0.tar rebuilt from {BASE_RELEASE}" in pole.agent.stderr_path.read_text()
        assert "fetching the whole artifact" not in pole.agent.stderr_path.read_text()


def never_connects(release: str) -> dict[str, bytes]:
    """The agent's files as `release`, with an uplink that never connects (its run loop waits
    for ever): the agent starts, but cannot pass its health check."""
    source = agent_files(release)["edge/uplink/mqtt.py"].decode()
    start = "    async def run(self) -> None:\n        try:\n"
    assert start in source, "edge/uplink/mqtt.py changed: update how this test breaks it"
    silent = source.replace(
        start, "    async def run(self) -> None:\n        await asyncio.Event().wait()\n        try:\n"
    )
    return agent_files(release, {"edge/uplink/mqtt.py": silent.encode()})


def test_a_release_that_fails_its_health_check_rolls_back_and_the_wave_aborts(
    fleet: FleetProcess, dist: Releases, start_poles: Callable[..., Poles]
) -> None:
    poles = start_poles("site-rollback", ["pole-r1", "pole-r2", "pole-r3"], deadline_s=3)
    status, release = fleet.upload(dist.build("1.2.0", files=never_connects("1.2.0")))
    assert status == 201, release
    created = create_campaign(
        fleet,
        "edge-agent-1.2.0",
        "site-rollback",
        waves=[{"nodes": 1, "abort_failure_rate": 0.5}, {"percent": 100}],
        abort_action="pause",
    )
    campaign_id = created["campaign_id"]
    paused = campaign_until(fleet, poles, campaign_id, lambda c: c["state"] != "running")
    assert paused["state"] == "paused", paused
    assert paused["reason"].startswith("abort: wave 0 has 1 of 1"), paused["reason"]
    assert paused["opened_waves"] == 1

    rows = campaign_nodes(fleet, campaign_id)
    canary = rows["pole-r1"]
    assert (canary["state"], canary["reason"]) == ("rolled-back", "health-check"), canary
    assert "uplink: not connected" in canary["detail"]
    for node_id in ("pole-r2", "pole-r3"):
        assert (rows[node_id]["state"], rows[node_id]["offers"]) == ("queued", 0), rows[node_id]
        assert rows[node_id]["offered_at_ms"] is None

    # The person reads the abort and stops the campaign: the queued nodes are never offered.
    status, cancelled = fleet.call("POST", f"/ota/campaigns/{campaign_id}/cancel", {"note": "bad build"})
    assert (status, cancelled["state"]) == (200, "cancelled"), cancelled
    rows = campaign_nodes(fleet, campaign_id)
    assert [rows[n]["state"] for n in ("pole-r1", "pole-r2", "pole-r3")] == [
        "rolled-back",
        "queued",
        "queued",
    ]

    canary_pole = poles.nodes[0]
    # 1.0.0 is back, from the canary's own decision: into 1.2.0, out again after the gate failed.
    poles.mqtt.wait_for(lambda seen: poles.births(canary_pole.node_id).count(BASE_RELEASE) >= 2, WAIT)
    assert canary_pole.agent.exits == [75, 75]
    for pole in poles.nodes:
        assert set(poles.births(pole.node_id)) == {BASE_RELEASE}, pole.node_id
        assert (pole.store.current(), pole.store.committed()) == (BASE_RELEASE, BASE_RELEASE)
        assert (
            fleet.until(f"/nodes/{pole.node_id}", lambda n: n["online"], timeout=WAIT)["agent_version"]
            == BASE_RELEASE
        )
    assert {s.topic.split("/")[3] for s in poles.mqtt.of_kind("ota-offer")} == {"pole-r1"}
    assert poles.nodes[1].agent.exits == poles.nodes[2].agent.exits == []


def test_a_release_refused_by_the_fleet_never_reaches_a_node(fleet: FleetProcess, dist: Releases) -> None:
    before = fleet.call("GET", "/ota/releases")[1]["refused_since_start"].get("unknown-key", 0)
    stranger = Ed25519PrivateKey.generate()
    status, refused = fleet.upload(dist.build("1.3.0", keys=[stranger]))
    assert status == 422, refused
    assert refused["error"]["code"] == "release-refused/unknown-key"
    assert refused["error"]["details"] == {"reason": "unknown-key"}
    # Nothing kept: no release in the API, nothing for a node to fetch.
    assert fleet.call("GET", "/ota/releases/edge-agent-1.3.0")[0] == 404
    assert fleet.public("/ota/v1/releases/edge-agent-1.3.0/manifest.json") == 404
    assert fleet.call("GET", "/ota/releases")[1]["refused_since_start"]["unknown-key"] == before + 1

    status, answer = fleet.call(
        "POST", "/ota/campaigns", {"release_id": "edge-agent-1.3.0", "waves": [{"percent": 100}]}
    )
    assert status in (404, 422), answer
    assert [d["field"] for d in answer["error"]["details"]] == ["release_id"]
    listed = fleet.call("GET", "/ota/campaigns")[1]["items"]
    assert all(c["release_id"] != "edge-agent-1.3.0" for c in listed)
