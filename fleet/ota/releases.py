"""The fleet's release shelf: an uploaded release is verified (signature by a trusted key
through protocols.ota.verify, then each file's size and SHA-256 against the manifest) and only
then kept, under `<artifact_dir>/<release_id>/`, with its row in `ota_release`; the node-facing
routes (fleet/ota/routes.py) serve files from there. A refused upload leaves nothing behind.

Files are written into a fresh `.incoming-*` directory, fsynced, and renamed into place in the
transaction that inserts the row: a release directory without a row (a crash between the two)
is never served, and the next upload of that release replaces it. Several fleet workers on
several machines need `artifact_dir` on storage they share.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import quote

import msgspec
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from fleet.ota.errors import ReleaseExists, ReleaseRefused
from fleet.ota.models import OtaRelease
from protocols import ota
from protocols.errors import ContractError

log = logging.getLogger(__name__)

MANIFEST_FILE: Final = "manifest.json"
NODE_PREFIX: Final = "/ota/v1/releases"  # the node-facing routes, without a token
_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OtaConfig:
    """What the API and the runner need of the `[ota]` settings."""

    trusted_keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)  # by key id
    artifact_dir: Path | None = None  # None: uploads are refused (nowhere to keep them)
    public_url: str = "http://127.0.0.1:8080"  # how nodes reach this fleet
    offer_ttl_ms: int = 24 * 3_600_000

    def manifest_url(self, release_id: str) -> str:
        return f"{self.public_url.rstrip('/')}{NODE_PREFIX}/{quote(release_id, safe='')}/{MANIFEST_FILE}"


def release_id_of(manifest: ota.Manifest) -> str:
    return f"{manifest.component}-{manifest.release}"


class ReleaseShelf:
    """`receive(...)` an upload; `file(...)` to serve. `refused` counts refusals by reason
    (this process, since it started)."""

    def __init__(self, config: OtaConfig) -> None:
        self.config = config
        self.refused: Counter[str] = Counter()

    def receive(
        self,
        session: Session,
        *,
        manifest: bytes,
        artifact: BinaryIO,
        delta: BinaryIO | None,
        by: str,
        now_ms: int,
    ) -> OtaRelease:
        """Verify and keep a release inside the caller's transaction; raises ReleaseRefused
        (counted), ReleaseExists, or OSError (the disk) with nothing kept."""
        try:
            return self._receive(session, manifest, artifact, delta, by=by, now_ms=now_ms)
        except ReleaseRefused as refused:
            self.refused[refused.reason] += 1
            log.warning("ota: release upload by %s refused (%s): %s", by, refused.reason, refused.detail)
            raise

    def file(self, session: Session, release_id: str, name: str) -> Path | None:
        """The file `name` of a release (its manifest, artifact or delta), or None."""
        row = session.scalars(sa.select(OtaRelease).where(OtaRelease.release_id == release_id)).one_or_none()
        if row is None or self.config.artifact_dir is None:
            return None
        if name not in (MANIFEST_FILE, row.artifact_name, row.delta_name):
            return None
        path = self.config.artifact_dir / release_id / name
        return path if path.is_file() else None

    # --- the steps --------------------------------------------------------------------------

    def _receive(
        self,
        session: Session,
        document: bytes,
        artifact: BinaryIO,
        delta: BinaryIO | None,
        *,
        by: str,
        now_ms: int,
    ) -> OtaRelease:
        if self.config.artifact_dir is None:
            raise ReleaseRefused("not-configured", "this fleet has no [ota] artifact_dir to keep releases in")
        manifest = self._verified(document)
        release_id = release_id_of(manifest)
        if _exists(session, release_id):
            raise ReleaseExists(release_id)
        names = [manifest.artifact.path] + ([manifest.delta.path] if manifest.delta else [])
        if MANIFEST_FILE in names or len(set(names)) != len(names):
            raise ReleaseRefused(
                "bad-file-name",
                f"the manifest's files {names} must differ from each other and from {MANIFEST_FILE!r}",
            )
        if manifest.delta is not None and delta is None:
            raise ReleaseRefused(
                "missing-delta", f"the manifest names the delta {manifest.delta.path}; upload it as `delta`"
            )
        if manifest.delta is None and delta is not None:
            raise ReleaseRefused("unexpected-delta", "a `delta` was uploaded but the manifest names none")

        root = self.config.artifact_dir
        root.mkdir(parents=True, exist_ok=True)
        incoming = root / f".incoming-{uuid.uuid4().hex}"
        incoming.mkdir()
        try:
            _copy_checked(artifact, incoming / manifest.artifact.path, "artifact", manifest.artifact)
            if manifest.delta is not None and delta is not None:
                _copy_checked(delta, incoming / manifest.delta.path, "delta", manifest.delta)
            _write_synced(incoming / MANIFEST_FILE, document)
            _fsync_dir(incoming)
            row = _row(manifest, document, by=by, now_ms=now_ms)
            session.add(row)
            try:
                with session.begin_nested():
                    session.flush()
            except sa.exc.IntegrityError:
                raise ReleaseExists(release_id) from None  # another worker's upload won
            final = root / release_id
            if final.exists():
                shutil.rmtree(final)  # a crash's leftover: no row ever named it
            incoming.rename(final)
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        log.info("ota: release %s kept (%d bytes, by %s)", release_id, manifest.artifact.size, by)
        return row

    def _verified(self, document: bytes) -> ota.Manifest:
        unsigned = _unsigned(document)
        if unsigned is not None:
            raise ReleaseRefused("unsigned", unsigned)
        verified = ota.verify(document, self.config.trusted_keys)
        if isinstance(verified, ContractError):
            if not self.config.trusted_keys and verified.reason == "unknown-key":
                raise ReleaseRefused(
                    verified.reason, f"{verified.detail} (this fleet trusts no key: set [ota] trusted_keys)"
                )
            raise ReleaseRefused(verified.reason, str(verified))
        return verified


def _unsigned(document: bytes) -> str | None:
    """Why the document is an unsigned manifest, or None (anything else is verify's to judge)."""
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    if "manifest" not in parsed and "release" in parsed:
        return "this is a bare manifest; sign it (`watchpost ota sign`) and upload the signed document"
    if "manifest" in parsed and not parsed.get("signatures"):
        return "the manifest carries no signature; sign it with a key this fleet trusts"
    return None


def _exists(session: Session, release_id: str) -> bool:
    found = session.scalars(sa.select(OtaRelease.id).where(OtaRelease.release_id == release_id)).first()
    return found is not None


def _copy_checked(source: BinaryIO, target: Path, what: str, expected: ota.Artifact | ota.Delta) -> None:
    digest = hashlib.sha256()
    size = 0
    with target.open("xb") as out:
        # Read at most one byte past the announced size: a far larger upload is refused early.
        while size <= expected.size:
            chunk = source.read(min(_CHUNK, expected.size + 1 - size))
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if size != expected.size:
        said = f"more than {expected.size}" if size > expected.size else str(size)
        raise ReleaseRefused(
            f"{what}-size-mismatch",
            f"the {what} is {said} bytes; the manifest says {expected.path} is {expected.size}",
        )
    if digest.hexdigest() != expected.sha256:
        raise ReleaseRefused(
            f"{what}-hash-mismatch",
            f"the {what}'s SHA-256 is {digest.hexdigest()}; the manifest says {expected.sha256}",
        )


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _row(manifest: ota.Manifest, document: bytes, *, by: str, now_ms: int) -> OtaRelease:
    signers = msgspec.json.decode(document).get("signatures", [])
    delta = manifest.delta
    return OtaRelease(
        release_id=release_id_of(manifest),
        component=manifest.component,
        release=manifest.release,
        hardware=json.dumps(list(manifest.hardware)),
        min_version=manifest.min_version,
        notes=manifest.notes,
        created_at_ms=manifest.created_at,
        manifest_sha256=hashlib.sha256(document).hexdigest(),
        manifest_size=len(document),
        key_ids=",".join(sorted({s["key_id"] for s in signers}))[:200],
        artifact_name=manifest.artifact.path,
        artifact_size=manifest.artifact.size,
        artifact_sha256=manifest.artifact.sha256,
        delta_name=delta.path if delta else None,
        delta_size=delta.size if delta else None,
        delta_sha256=delta.sha256 if delta else None,
        delta_base_release=delta.base_release if delta else None,
        uploaded_at_ms=now_ms,
        uploaded_by=by,
    )


def hardware_of(row: OtaRelease) -> list[str]:
    hardware: list[str] = json.loads(row.hardware)
    return hardware
