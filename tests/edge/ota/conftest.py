"""Fixtures for the node's OTA tests: a signing key and its pinned public half, releases built
with the real build tool (watchpost.ota.build) from this source tree, and the Range-capable
release server."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols import ota
from tests.edge.ota.release_server import ReleaseServer
from watchpost.ota.build import BuiltRelease, build_release, edge_agent_files

HARDWARE = "raspberrypi"  # node.hardware's default


@functools.cache
def _agent_files(release: str) -> dict[str, bytes]:
    # Only what the agent imports: keeps releases small and installs quick.
    return {p: d for p, d in edge_agent_files(release).items() if p.startswith(("edge/", "protocols/"))}


def agent_files(release: str, patch: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """The edge agent's own files as release `release` (edge/version.py stamped), with `patch`
    replacing or adding files."""
    return {**_agent_files(release), **(patch or {})}


@dataclass
class Published:
    built: BuiltRelease
    manifest_url: str
    manifest_sha256: str
    prefix: str  # the server's path of the release's folder


class Releases:
    """Builds signed releases into a folder and publishes them on the release server."""

    def __init__(self, out: Path, key: Ed25519PrivateKey) -> None:
        self.out = out
        self.key = key

    def build(
        self,
        release: str,
        *,
        files: Mapping[str, bytes] | None = None,
        base: str | None = None,
        hardware: list[str] | None = None,
        min_version: str | None = None,
        keys: list[Ed25519PrivateKey] | None = None,
        component: str = "edge-agent",
    ) -> BuiltRelease:
        base_pair = (base, self.out / base / f"edge-agent-{base}.tar") if base else None
        return build_release(
            component=component,  # type: ignore[arg-type]
            release=release,
            hardware=hardware or [HARDWARE],
            files=files if files is not None else agent_files(release),
            keys=keys if keys is not None else [self.key],
            out_dir=self.out / release,
            base=base_pair,
            min_version=min_version,
            created_at_ms=1_764_000_000_000,
        )

    def publish(self, server: ReleaseServer, built: BuiltRelease, *, name: str | None = None) -> Published:
        prefix = f"/ota/v1/releases/{name or 'edge-agent-' + built.manifest.release}/"
        document = built.manifest_path.read_bytes()
        server.files[prefix + "manifest.json"] = document
        server.files[prefix + built.artifact_path.name] = built.artifact_path.read_bytes()
        if built.delta_path is not None:
            server.files[prefix + built.delta_path.name] = built.delta_path.read_bytes()
        return Published(
            built=built,
            manifest_url=server.url(prefix + "manifest.json"),
            manifest_sha256=hashlib.sha256(document).hexdigest(),
            prefix=prefix,
        )


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trusted_key_file(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "keys" / "release.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ota.public_key_pem(signing_key.public_key()))
    return path


@pytest.fixture
def releases(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Releases:
    return Releases(tmp_path / "dist", signing_key)


@pytest.fixture
def release_server() -> Iterator[ReleaseServer]:
    with ReleaseServer() as server:
        yield server
