"""Fixtures for OTA end to end: one `watchpost fleet serve` per module (real PostgreSQL, real
Mosquitto, `[ota]` pinned to a test key), and poles started per test as real edge agents under
their boot selector, each provisioned with release 1.0.0 from the real build tool.

The fleet is shared by the module's tests; each test keeps to its own site, node ids and
release version, so nothing one test does is visible in another's campaign.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.ota.releases import ReleaseStore
from protocols import ota
from tests.edge.agent_process import SupervisedAgent
from tests.edge.ota.conftest import Releases
from tests.fleet.ota.conftest import multipart
from tests.fleet.test_serve import Fleet
from tests.mqtt_observer import Observer, Seen
from watchpost.broker import MosquittoBroker, free_port
from watchpost.fleetprocess import FleetProcess as RunningFleet
from watchpost.ota.build import BuiltRelease
from watchpost.postgres import PostgresCluster

WAIT = 120.0  # a guard against hanging, not a performance figure
BASE_RELEASE = "1.0.0"


class FleetProcess(Fleet):
    """The fleet process with the calls these tests need beyond JSON: multipart uploads and
    the token-free paths nodes fetch from."""

    def upload(self, built: BuiltRelease) -> tuple[int, Any]:
        parts = {"manifest": built.manifest_path.read_bytes(), "artifact": built.artifact_path.read_bytes()}
        if built.delta_path is not None:
            parts["delta"] = built.delta_path.read_bytes()
        body, content_type = multipart(parts)
        return self._send("POST", "/api/v1/ota/releases", body, content_type)

    def public(self, path: str) -> int:
        """The status of a GET without a token, as a node asks."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def _send(self, method: str, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ota-e2e")


@pytest.fixture(scope="module")
def release_key() -> Ed25519PrivateKey:
    """The key releases are signed with; the fleet and every node trust its public half."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def trusted_pem(e2e_dir: Path, release_key: Ed25519PrivateKey) -> Path:
    path = e2e_dir / "release.pem"
    path.write_bytes(ota.public_key_pem(release_key.public_key()))
    return path


@pytest.fixture(scope="module")
def dist(e2e_dir: Path, release_key: Ed25519PrivateKey) -> Releases:
    """Releases built by watchpost.ota.build into one folder (each version in its own); 1.0.0,
    what every pole is provisioned with, is built once here so later deltas start from it."""
    releases = Releases(e2e_dir / "dist", release_key)
    releases.build(BASE_RELEASE)
    return releases


@pytest.fixture(scope="module")
def module_broker() -> Iterator[MosquittoBroker]:
    # The project's Mosquitto, once for the module: the fleet process outlives one test.
    with MosquittoBroker() as running:
        yield running


@pytest.fixture(scope="module")
def fleet(
    e2e_dir: Path, module_broker: MosquittoBroker, postgres_cluster: PostgresCluster, trusted_pem: Path
) -> Iterator[FleetProcess]:
    """`watchpost fleet serve` on its own database, trusting `trusted_pem`, ticking campaigns
    every 0.2 s, announcing its own API as the place nodes fetch releases from."""
    port = free_port()
    database = postgres_cluster.create_database(f"t_ota_e2e_{os.getpid()}_{port}")
    home = e2e_dir / "fleet"
    home.mkdir()
    settings = home / "fleet.toml"
    settings.write_text(
        f"""
[fleet]
host_id = "fleet-e2e"
data_dir = "{home / "data"}"
[database]
url = "{database}"
[mqtt]
host = "{module_broker.host}"
port = {module_broker.port}
[api]
host = "127.0.0.1"
port = {port}
[ota]
trusted_keys = ["{trusted_pem}"]
public_url = "http://127.0.0.1:{port}"
tick_s = 0.2
"""
    )
    with RunningFleet(settings, data_dir=home / "data", port=port) as running:
        assert running.process is not None
        yield FleetProcess(running.process, port, running.token, running.stderr_path)


@dataclass
class Pole:
    """One node: its release root, and the boot selector under the supervisor."""

    node_id: str
    root: Path
    agent: SupervisedAgent

    @property
    def store(self) -> ReleaseStore:
        return ReleaseStore(self.root)


@dataclass
class Poles:
    nodes: list[Pole]
    mqtt: Observer  # everything under watchpost/v1/node/+/#, up and down, in arrival order

    def of(self, node_id: str, kind: str) -> list[Seen]:
        prefix = f"watchpost/v1/node/{node_id}/"
        return [s for s in list(self.mqtt.messages) if s.topic.startswith(prefix) and s.kind == kind]

    def births(self, node_id: str) -> list[str]:
        return [s.json()["agent_version"] for s in self.of(node_id, "birth")]

    def diagnostics(self) -> str:
        return "\n".join(
            f"--- {p.node_id} (exits {p.agent.exits}):\n{p.agent.stderr_tail()}" for p in self.nodes
        )


def write_edge_config(
    home: Path, broker: MosquittoBroker, key: Path, *, node_id: str, site_id: str, deadline_s: float
) -> Path:
    path = home / "edge.toml"
    path.write_text(
        f"""
[node]
id = "{node_id}"
site_id = "{site_id}"
state_dir = "{home / "state"}"

[http]
listen = "127.0.0.1"
port = {free_port()}

[uplink]
host = "{broker.host}"
port = {broker.port}
reconnect_max_s = 1

[ota]
root = "{home / "root"}"
trusted_keys = ["{key}"]
min_release = "{BASE_RELEASE}"
health_deadline_s = {deadline_s}
max_trial_boots = 2
"""
    )
    return path


def provision_command(root: Path, release_dir: Path, key: Path) -> list[str]:
    """`watchpost ota node provision` of 1.0.0 (checked, installed, committed at once)."""
    return [
        sys.executable, "-c", "from edge.ota.cli import ota_node; ota_node()", "provision",
        "--root", str(root), "--artifact", str(release_dir / f"edge-agent-{BASE_RELEASE}.tar"),
        "--manifest", str(release_dir / "manifest.json"), "--trusted-key", str(key),
    ]  # fmt: skip


@pytest.fixture
def start_poles(
    tmp_path: Path,
    module_broker: MosquittoBroker,
    trusted_pem: Path,
    dist: Releases,
    fleet: FleetProcess,
) -> Iterator[Callable[..., Poles]]:
    """Provision each pole with 1.0.0 (committed, as a factory leaves it), start its boot
    selector under the Restart=always stand-in, and wait until the fleet has it online at
    1.0.0. Everything is stopped at the end of the test."""
    stack: list[Any] = []

    def start(site_id: str, node_ids: list[str], *, deadline_s: float) -> Poles:
        base = dist.out / BASE_RELEASE
        homes = {node_id: tmp_path / node_id for node_id in node_ids}
        provisioning = [
            subprocess.Popen(
                provision_command(home / "root", base, trusted_pem),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for home in homes.values()
        ]
        for process in provisioning:
            output, _ = process.communicate(timeout=60)
            assert process.returncode == 0, output.decode(errors="replace")
        mqtt = Observer(module_broker, "watchpost/v1/node/+/#").__enter__()
        stack.append(mqtt)
        nodes = []
        for node_id, home in homes.items():
            config = write_edge_config(
                home, module_broker, trusted_pem, node_id=node_id, site_id=site_id, deadline_s=deadline_s
            )
            # As deploy/systemd/watchpost-edge.service runs it: the selector from `committed`.
            command = [sys.executable, "-P", "-m", "edge.ota.boot", "--root", str(home / "root"),
                       "--", "--config", str(config)]  # fmt: skip
            environ = dict(os.environ, PYTHONPATH=str(home / "root" / "committed"))
            agent = SupervisedAgent(command, environ, home).__enter__()
            stack.append(agent)
            nodes.append(Pole(node_id, home / "root", agent))
        poles = Poles(nodes, mqtt)
        for pole in nodes:
            try:
                fleet.until(
                    f"/nodes/{pole.node_id}",
                    lambda n: n["online"] and n["agent_version"] == BASE_RELEASE,
                    timeout=WAIT,
                )
            except AssertionError as error:
                raise AssertionError(f"{error}\n{poles.diagnostics()}") from None
        return poles

    try:
        yield start
    finally:
        for item in reversed(stack):
            item.__exit__(None, None, None)
