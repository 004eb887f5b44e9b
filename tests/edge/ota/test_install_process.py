"""OTA on a real node: the boot selector and the agent as real processes under a stand-in for
systemd (Restart=always), a real Mosquitto, the test playing the fleet (it publishes the
`OtaOffer` and reads `OtaProgress` and births), and releases served over HTTP with Range.

Each test starts from release 1.0.0 provisioned and committed, as a factory leaves a node.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.ota.crash import ENV as CRASH_ENV
from edge.ota.releases import ReleaseStore
from protocols import messages as m
from protocols import ota
from protocols.topics import Kind, node_topic
from tests.edge.agent_process import SupervisedAgent
from tests.edge.ota.conftest import Published, Releases, agent_files
from tests.edge.ota.release_server import ReleaseServer
from tests.mqtt_observer import Observer, Seen
from watchpost.broker import MosquittoBroker, free_port

pytestmark = [pytest.mark.broker, pytest.mark.slow]

NODE = "pole-0042"
FINAL = ("committed", "failed", "rolled-back")
WAIT = 90.0  # a guard against hanging, not a performance figure


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Node:
    root: Path
    state: Path
    fleet: Observer
    agent: SupervisedAgent
    server: ReleaseServer
    releases: Releases
    campaigns: int = 0

    @property
    def store(self) -> ReleaseStore:
        return ReleaseStore(self.root)

    def offer(self, published: Published, *, campaign: str | None = None, **changes: Any) -> str:
        self.campaigns += 1
        campaign = campaign or f"camp-{self.campaigns}"
        offer = m.OtaOffer(
            ts=wall_ms(),
            campaign_id=campaign,
            release=published.built.manifest.release,
            manifest_url=published.manifest_url,
            manifest_sha256=published.manifest_sha256,
            expires_at=wall_ms() + 600_000,
        )
        offer = msgspec.structs.replace(offer, **changes)
        self.fleet.publish(node_topic(NODE, Kind.OTA_OFFER), m.encode(offer))
        return campaign

    def progress(self, campaign: str, messages: list[Seen] | None = None) -> list[dict[str, Any]]:
        seen = messages if messages is not None else self.fleet.messages
        return [b for b in (s.json() for s in list(seen) if s.kind == "ota") if b["campaign_id"] == campaign]

    def final(self, campaign: str) -> dict[str, Any]:
        """The campaign's last report, once there is one."""
        try:
            self.fleet.wait_for(
                lambda seen: any(p["state"] in FINAL for p in self.progress(campaign, seen)), WAIT
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\nagent stderr:\n{self.agent.stderr_tail()}") from None
        return next(p for p in self.progress(campaign) if p["state"] in FINAL)

    def births(self) -> list[str]:
        return [s.json()["agent_version"] for s in list(self.fleet.messages) if s.kind == "birth"]

    def wait_birth(self, version: str, after: int = 0) -> None:
        self.fleet.wait_for(lambda seen: version in self.births()[after:], WAIT)

    def runs(self, release: str) -> None:
        """The node is on `release`, committed, and says so in its birth."""
        assert (self.store.current(), self.store.committed()) == (release, release)
        self.wait_birth(release)


def write_config(
    tmp_path: Path, broker: MosquittoBroker, key: Path, root: Path, *, deadline_s: float
) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[node]
id = "{NODE}"
site_id = "site-0042"
state_dir = "{tmp_path / "state"}"

[http]
listen = "127.0.0.1"
port = {free_port()}

[uplink]
host = "{broker.host}"
port = {broker.port}
reconnect_max_s = 1

[ota]
root = "{root}"
trusted_keys = ["{key}"]
min_release = "1.0.0"
health_deadline_s = {deadline_s}
max_trial_boots = 2
"""
    )
    return path


@pytest.fixture
def start_node(
    tmp_path: Path,
    broker: MosquittoBroker,
    trusted_key_file: Path,
    releases: Releases,
    release_server: ReleaseServer,
) -> Iterator[Callable[..., Node]]:
    """Provision 1.0.0 (committed), start the boot selector under the supervisor, and wait for
    the node's birth."""
    stack: list[Any] = []

    def start(
        *, root: Path | None = None, deadline_s: float = 20.0, env: dict[str, str] | None = None
    ) -> Node:
        root = root or tmp_path / "root"
        built = releases.build("1.0.0")
        subprocess.run(
            [sys.executable, "-c", "from edge.ota.cli import ota_node; ota_node()", "provision",
             "--root", str(root), "--artifact", str(built.artifact_path), "--manifest",
             str(built.manifest_path), "--trusted-key", str(trusted_key_file)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        config = write_config(tmp_path, broker, trusted_key_file, root, deadline_s=deadline_s)
        # As the unit file runs it (deploy/systemd/watchpost-edge.service).
        command = [
            sys.executable,
            "-P",
            "-m",
            "edge.ota.boot",
            "--root",
            str(root),
            "--",
            "--config",
            str(config),
        ]
        environ = dict(os.environ, PYTHONPATH=str(root / "committed"), **(env or {}))
        fleet = Observer(broker, f"watchpost/v1/node/{NODE}/up/#").__enter__()
        stack.append(fleet)
        agent = SupervisedAgent(command, environ, tmp_path).__enter__()
        stack.append(agent)
        node = Node(root, tmp_path / "state", fleet, agent, release_server, releases)
        node.wait_birth("1.0.0")
        return node

    try:
        yield start
    finally:
        for item in reversed(stack):
            item.__exit__(None, None, None)


def test_a_good_release_installs_by_delta_and_commits(start_node: Callable[..., Node]) -> None:
    node = start_node()
    built = node.releases.build("1.1.0", base="1.0.0")
    assert built.delta_path is not None
    published = node.releases.publish(node.server, built)
    campaign = node.offer(published)
    final = node.final(campaign)
    assert final["state"] == "committed", final
    states = [p["state"] for p in node.progress(campaign)]
    assert [s for s in states if s != "downloading"] == [
        "notified", "downloaded", "verified", "installing", "restarting", "health-check", "committed",
    ]  # fmt: skip
    node.runs("1.1.0")
    assert node.agent.exits == [75]  # one restart, asked for by the agent itself
    # The delta was enough: the full artifact was never fetched.
    assert node.server.requests_for(published.prefix + built.delta_path.name)
    assert not node.server.requests_for(published.prefix + built.artifact_path.name)
    # The previous release is kept for a rollback, and the new one's tar for the next delta.
    assert node.store.installed() == ["1.0.0", "1.1.0"]
    assert node.store.artifact_of("1.1.0").read_bytes() == built.artifact_path.read_bytes()
    assert not (node.state / "ota" / "job.json").exists()
    assert not (node.state / "ota" / "trial.json").exists()


def test_a_release_that_cannot_start_rolls_back_by_itself(start_node: Callable[..., Node]) -> None:
    node = start_node()
    broken = {"edge/uplink/mqtt.py": b"raise ImportError('this release is broken')\n"}
    published = node.releases.publish(
        node.server, node.releases.build("1.1.0", files=agent_files("1.1.0", broken))
    )
    campaign = node.offer(published)
    final = node.final(campaign)
    assert (final["state"], final["reason"]) == ("rolled-back", "did-not-start"), final
    assert "started 2 times" in final["detail"]
    node.runs("1.0.0")
    births = node.births()
    assert births[0] == births[-1] == "1.0.0"
    assert "1.1.0" not in births
    # 75 (restart into 1.1.0), then 1.1.0 failing at import twice; 1.0.0 runs on.
    assert node.agent.exits == [75, 1, 1]


def test_a_release_that_never_connects_fails_its_health_check(start_node: Callable[..., Node]) -> None:
    node = start_node(deadline_s=3)
    source = agent_files("1.1.0")["edge/uplink/mqtt.py"].decode()
    start = "    async def run(self) -> None:\n        try:\n"
    assert start in source
    silent = source.replace(
        start, "    async def run(self) -> None:\n        await asyncio.Event().wait()\n        try:\n"
    )
    files = agent_files("1.1.0", {"edge/uplink/mqtt.py": silent.encode()})
    campaign = node.offer(node.releases.publish(node.server, node.releases.build("1.1.0", files=files)))
    final = node.final(campaign)
    assert (final["state"], final["reason"]) == ("rolled-back", "health-check"), final
    assert "uplink: not connected" in final["detail"]
    node.runs("1.0.0")
    assert node.agent.exits == [75, 75]  # into 1.1.0; out of it after the failed gate
    states = [p["state"] for p in node.progress(campaign)]
    assert "health-check" in states  # reported by 1.1.0 from the outbox, delivered by 1.0.0


def crafted(node: Node, key: Ed25519PrivateKey, release: str, extra: tarfile.TarInfo) -> Published:
    """A correctly signed release whose artifact holds one more, unsafe, member (the manifest
    cannot even name it)."""
    built = node.releases.build(release)
    buffer = io.BytesIO()
    with (
        tarfile.open(built.artifact_path) as source,
        tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as target,
    ):
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member))
        target.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isreg() else None)
    tar_bytes = buffer.getvalue()
    artifact = ota.Artifact(path=built.manifest.artifact.path, size=len(tar_bytes), sha256=sha256(tar_bytes))
    built.artifact_path.write_bytes(tar_bytes)
    built.manifest_path.write_bytes(
        ota.sign(msgspec.structs.replace(built.manifest, artifact=artifact), [key])
    )
    return node.releases.publish(node.server, built, name=f"crafted-{extra.name.replace('/', '_')}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_bad_input_is_refused_with_its_reason_and_the_node_keeps_running(
    start_node: Callable[..., Node], signing_key: Ed25519PrivateKey
) -> None:
    node = start_node()
    server, releases = node.server, node.releases

    def release(name: str, version: str = "1.1.0", **build: Any) -> Callable[[], Published]:
        return lambda: releases.publish(server, releases.build(version, **build), name=name)

    def tampered() -> Published:
        published = release("tampered")()
        url = published.prefix + "manifest.json"
        outer = msgspec.json.decode(server.files[url])
        outer["manifest"]["notes"] = "changed after signing"
        server.files[url] = msgspec.json.encode(outer)
        published.manifest_sha256 = sha256(server.files[url])
        return published

    def damaged(name: str, how: Callable[[bytes], bytes]) -> Callable[[], Published]:
        def make() -> Published:
            published = release(name)()
            path = published.prefix + published.built.artifact_path.name
            server.files[path] = how(server.files[path])
            return published

        return make

    symlink = tarfile.TarInfo("edge/evil.py")
    symlink.type, symlink.linkname = tarfile.SYMTYPE, "/etc/passwd"
    traversal = tarfile.TarInfo("../evil.py")
    traversal.size = 10
    stranger = Ed25519PrivateKey.generate()
    cases: list[tuple[str, Callable[[], Published], dict[str, Any]]] = [
        ("bad-signature", tampered, {}),
        ("unknown-key", release("stranger", keys=[stranger]), {}),
        ("truncated", damaged("short", lambda data: data[: len(data) // 2]), {}),
        ("hash-mismatch", damaged("flipped", lambda data: data[:-1] + bytes([data[-1] ^ 1])), {}),
        ("downgrade", release("old", "0.9.0"), {}),
        ("min-version", release("needs-2", min_version="2.0.0"), {}),
        ("wrong-hardware", release("rock", hardware=["rock-pi"]), {}),
        ("unsafe-archive", lambda: crafted(node, signing_key, "1.1.0", symlink), {}),
        ("unsafe-archive", lambda: crafted(node, signing_key, "1.1.0", traversal), {}),
        ("manifest-mismatch", release("other"), {"manifest_sha256": "0" * 64}),
        ("expired", release("late"), {"expires_at": wall_ms() - 1000}),
    ]
    for reason, make, changes in cases:
        campaign = node.offer(make(), **changes)
        final = node.final(campaign)
        assert (final["state"], final["reason"]) == ("failed", reason), (reason, final)
        assert final["detail"]
    # Never restarted, never switched: 1.0.0 ran throughout.
    assert node.agent.exits == []
    assert node.store.installed() == ["1.0.0"]
    node.runs("1.0.0")
    assert set(node.births()) == {"1.0.0"}
    assert not list((node.root / "releases").glob("*.partial"))
    assert not (node.root.parent / "evil.py").exists()


def test_a_full_disk_is_refused_and_the_node_keeps_running(
    tmp_path: Path, start_node: Callable[..., Node]
) -> None:
    with small_tmpfs(tmp_path / "root", "3m") as root:
        node = start_node(root=root)
        padding = {"edge/padding.bin": os.urandom(3 * 2**20)}
        published = node.releases.publish(
            node.server, node.releases.build("1.1.0", files=agent_files("1.1.0", padding))
        )
        final = node.final(node.offer(published))
        assert (final["state"], final["reason"]) == ("failed", "disk-full"), final
        assert node.agent.exits == []
        assert node.store.installed() == ["1.0.0"]
        node.runs("1.0.0")
        node.agent.__exit__(None, None, None)  # before the tmpfs goes


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_download_killed_half_way_resumes_with_range(start_node: Callable[..., Node]) -> None:
    node = start_node()
    built = node.releases.build("1.1.0")
    published = node.releases.publish(node.server, built)
    artifact = published.prefix + built.artifact_path.name
    half = built.manifest.artifact.size // 2
    node.server.behaviour.hold_at[artifact] = half
    campaign = node.offer(published)
    assert node.server.holding.wait(WAIT)
    # While it downloads: the same offer again is not a second job; another campaign is refused.
    node.offer(published, campaign=campaign)
    other = node.offer(published)
    assert node.final(other)["reason"] == "busy"
    part = node.state / "ota" / "download" / (built.artifact_path.name + ".part")
    wait_until(lambda: part.exists() and part.stat().st_size > 0)
    node.agent.kill()  # SIGKILL, with half the artifact on flash
    node.server.release_hold.set()
    final = node.final(campaign)
    assert final["state"] == "committed", final
    node.runs("1.1.0")
    ranges = [r.range for r in node.server.requests_for(artifact)]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0
    assert [p["state"] for p in node.progress(campaign)].count("notified") == 1
    assert node.agent.exits[0] == -9


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


STEPS = ["downloading", "verified", "extracting", "switched", "restarting", "health-check", "committing"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_install_step_leaves_a_good_release(
    tmp_path: Path, start_node: Callable[..., Node], step: str
) -> None:
    marker = tmp_path / "crashed"
    node = start_node(env={CRASH_ENV: f"{step}@{marker}"})
    built = node.releases.build("1.1.0")
    published = node.releases.publish(node.server, built)
    campaign = node.offer(published)
    final = node.final(campaign)
    assert marker.exists(), f"the process never reached {step}"
    assert -9 in node.agent.exits
    assert final["state"] == "committed", final
    node.runs("1.1.0")
    assert node.store.installed() == ["1.0.0", "1.1.0"]
    if step == "downloading":
        ranges = [r.range for r in node.server.requests_for(published.prefix + built.artifact_path.name)]
        assert ranges[0] is None
        assert ranges[-1] is not None
