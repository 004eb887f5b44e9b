"""OTA releases for the fleet's tests: signed with a fixed test key (the fleet trusts it) or
another one (it does not), and the API served for real with an [ota] set-up in the test's
directory. Nodes and sites are made as a birth leaves them (tests.fleet.api.seed)."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from fleet.api.app import create_app
from fleet.ota.models import OtaRelease
from fleet.ota.releases import OtaConfig, ReleaseShelf
from protocols import ota
from tests.fleet.api.conftest import T0, Api, SentToNodes, TestClock
from watchpost.apiserver import ApiServer

TRUSTED = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
UNTRUSTED = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
PUBLIC_URL = "http://fleet.test:8080"


@dataclass(frozen=True)
class Release:
    manifest: ota.Manifest
    document: bytes  # the signed manifest document
    artifact: bytes
    delta: bytes | None

    @property
    def release_id(self) -> str:
        return f"{self.manifest.component}-{self.manifest.release}"


def make_release(
    release: str = "1.2.0",
    *,
    component: str = "edge-agent",
    hardware: tuple[str, ...] = ("raspberrypi",),
    keys: tuple[Ed25519PrivateKey, ...] = (TRUSTED,),
    artifact_size: int = 300_000,
    with_delta: bool = False,
) -> Release:
    # Bytes that differ at every offset, so a wrong range is a wrong answer.
    artifact = (hashlib.sha256(release.encode()).digest() * (artifact_size // 32 + 1))[:artifact_size]
    artifact = bytes((b + i) % 256 for i, b in enumerate(artifact))
    delta = b"BSDIFF40" + artifact[:1000] if with_delta else None
    manifest = ota.Manifest(
        release=release,
        component=component,  # type: ignore[arg-type]
        hardware=list(hardware),
        files=[ota.ManifestFile(path="edge/version.py", size=10, sha256="0" * 64)],
        artifact=ota.Artifact(
            path=f"{component}-{release}.tar", size=len(artifact), sha256=hashlib.sha256(artifact).hexdigest()
        ),
        delta=ota.Delta(
            base_release="1.1.0",
            base_sha256="1" * 64,
            path=f"{component}-1.1.0-to-{release}.bsdiff4",
            size=len(delta),
            sha256=hashlib.sha256(delta).hexdigest(),
        )
        if delta is not None
        else None,
        created_at=T0,
        notes="test release",
    )
    return Release(manifest, ota.sign(manifest, list(keys)), artifact, delta)


def ota_config(tmp_path: Path) -> OtaConfig:
    public = TRUSTED.public_key()
    return OtaConfig(
        trusted_keys={ota.key_id(public): public},
        artifact_dir=tmp_path / "ota",
        public_url=PUBLIC_URL,
        offer_ttl_ms=3_600_000,
    )


def keep_release(engine: sa.Engine, config: OtaConfig, release: Release, *, now: int = T0) -> OtaRelease:
    """A release on the shelf as an upload leaves it (verified, files in place, row written)."""

    with Session(engine, expire_on_commit=False) as db, db.begin():
        return ReleaseShelf(config).receive(
            db,
            manifest=release.document,
            artifact=io.BytesIO(release.artifact),
            delta=io.BytesIO(release.delta) if release.delta is not None else None,
            by="admin-1",
            now_ms=now,
        )


def multipart(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body of file parts, and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def ota_api(fleet_engine: sa.Engine, tmp_path: Path) -> Iterator[Api]:
    clock, nodes = TestClock(), SentToNodes()
    app = create_app(fleet_engine, clock_ms=clock, node_link=nodes, ota=ota_config(tmp_path))
    with ApiServer(app) as server:
        yield Api(fleet_engine, server.port, clock, nodes)
