"""`watchpost fleet serve` as a real process with [ota] set (real Mosquitto, real PostgreSQL):
a release uploaded through its API is served to nodes, a campaign's runner thread offers it to a
pole over MQTT, and the pole's progress through the process's ingest completes the campaign."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocols import messages as m
from protocols import ota
from protocols.topics import Kind, node_topic
from tests.fleet.ota.conftest import TRUSTED, make_release, multipart
from tests.fleet.test_serve import Fleet
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker, free_port
from watchpost.fleetprocess import FleetProcess

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
NODE = "pole-0412"
T0 = 1_764_000_000_000


def call(fleet: Fleet, method: str, path: str, body: bytes | None, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{fleet.port}{path}",
        method=method,
        data=body,
        headers={"Authorization": f"Bearer {fleet.token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def fleet(tmp_path: Path, broker: MosquittoBroker, postgres_url: str) -> Iterator[Fleet]:
    port = free_port()
    (tmp_path / "release.pub").write_bytes(ota.public_key_pem(TRUSTED.public_key()))
    settings = tmp_path / "fleet.toml"
    settings.write_text(
        f"""
[fleet]
host_id = "fleet-a"
data_dir = "{tmp_path / "data"}"
[database]
url = "{postgres_url}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
[api]
port = {port}
[ota]
trusted_keys = ["{tmp_path / "release.pub"}"]
public_url = "http://fleet.test:{port}"
tick_s = 0.2
"""
    )
    with FleetProcess(settings, data_dir=tmp_path / "data", port=port) as running:
        assert running.process is not None
        yield Fleet(running.process, port, running.token, running.stderr_path)


def test_a_release_and_a_campaign_through_the_fleet_process(fleet: Fleet, broker: MosquittoBroker) -> None:
    release = make_release(hardware=("rpi4",), artifact_size=5000)
    body, content_type = multipart({"manifest": release.document, "artifact": release.artifact})
    status, answer = call(fleet, "POST", "/api/v1/ota/releases", body, content_type)
    assert status == 201, answer
    status, served = call(fleet, "GET", "/ota/v1/releases/edge-agent-1.2.0/manifest.json", None, "")
    assert (status, served) == (200, release.document)

    with Observer(broker) as pole:
        pole.publish(
            node_topic(NODE, Kind.BIRTH),
            m.encode(
                m.NodeBirth(
                    ts=T0, seq=0, bd_seq=1, site_id="site-0412", hardware="rpi4", agent_version="1.1.0"
                )
            ),
        )
        fleet.until(f"/nodes/{NODE}", lambda n: n["online"])
        status, created = fleet.call(
            "POST", "/ota/campaigns", {"release_id": "edge-agent-1.2.0", "waves": [{"percent": 100}]}
        )
        assert status == 201, created
        seen = pole.wait_for(lambda s: any(x.kind == "ota-offer" for x in s))
        (offer,) = [x.json() for x in seen if x.kind == "ota-offer"]
        assert offer["campaign_id"] == created["campaign_id"]
        assert (
            offer["manifest_url"]
            == f"http://fleet.test:{fleet.port}/ota/v1/releases/edge-agent-1.2.0/manifest.json"
        )
        for seq, state in enumerate(("downloading", "installing", "committed"), start=1):
            progress = m.OtaProgress(
                ts=T0 + seq, seq=seq, campaign_id=created["campaign_id"], release="1.2.0", state=state
            )
            pole.publish(node_topic(NODE, Kind.OTA_PROGRESS), m.encode(progress))
        done = fleet.until(f"/ota/campaigns/{created['campaign_id']}", lambda c: c["state"] == "completed")
        assert done["by_state"] == {"committed": 1}
    assert json.loads(answer)["release_id"] == "edge-agent-1.2.0"
