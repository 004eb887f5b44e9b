"""The manifest and artifact checks, each refusal with its reason: the offer's hash, the
signature against the pinned keys (several during a rotation), hardware, ota.min_release, the
manifest's min_version, and the artifact's size and hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.ota.errors import OtaFailure
from edge.ota.verify import NodeFacts, check_applicable, check_document, check_file, load_trusted_keys
from protocols import ota
from tests.edge.ota.conftest import Releases


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def refused(reason: str) -> pytest.RaisesContext[OtaFailure]:
    return pytest.raises(OtaFailure, match=f"^{reason}: ")


def test_signature_and_key_rotation(
    tmp_path: Path, releases: Releases, signing_key: Ed25519PrivateKey
) -> None:
    built = releases.build("1.1.0")
    document = built.manifest_path.read_bytes()
    trusted = {ota.key_id(signing_key.public_key()): signing_key.public_key()}
    manifest = check_document(
        document, expected_sha256=sha(document), offered_release="1.1.0", trusted=trusted
    )
    assert manifest.release == "1.1.0"
    # Signed by a new key only: refused until the node pins it; then accepted beside the old one.
    new_key = Ed25519PrivateKey.generate()
    rotated = ota.sign(manifest, [new_key])
    with refused("unknown-key"):
        check_document(rotated, expected_sha256=sha(rotated), offered_release="1.1.0", trusted=trusted)
    both = {**trusted, ota.key_id(new_key.public_key()): new_key.public_key()}
    assert check_document(rotated, expected_sha256=sha(rotated), offered_release="1.1.0", trusted=both)
    # The pinned keys come from PEM files, one per key.
    pems = []
    for n, key in enumerate((signing_key, new_key)):
        pems.append(tmp_path / f"k{n}.pem")
        pems[-1].write_bytes(ota.public_key_pem(key.public_key()))
    assert load_trusted_keys(pems).keys() == both.keys()


def test_refusals(releases: Releases, signing_key: Ed25519PrivateKey) -> None:
    document = releases.build("1.1.0").manifest_path.read_bytes()
    trusted = {ota.key_id(signing_key.public_key()): signing_key.public_key()}
    with refused("manifest-mismatch"):
        check_document(document, expected_sha256="0" * 64, offered_release="1.1.0", trusted=trusted)
    with refused("release-mismatch"):
        check_document(document, expected_sha256=sha(document), offered_release="1.2.0", trusted=trusted)
    with refused("no-trusted-keys"):
        check_document(document, expected_sha256=sha(document), offered_release="1.1.0", trusted={})
    outer = msgspec.json.decode(document)
    outer["manifest"]["notes"] = "changed after signing"
    tampered = msgspec.json.encode(outer)
    with refused("bad-signature"):
        check_document(tampered, expected_sha256=sha(tampered), offered_release="1.1.0", trusted=trusted)
    with refused("invalid-manifest"):
        check_document(b"[]", expected_sha256=sha(b"[]"), offered_release="1.1.0", trusted=trusted)


def test_applicability(releases: Releases) -> None:
    manifest = releases.build("1.1.0", min_version="1.0.0").manifest
    check_applicable(manifest, NodeFacts(hardware="raspberrypi", running="1.0.0", min_release="1.0.0"))
    with refused("wrong-hardware"):
        check_applicable(manifest, NodeFacts(hardware="rock-pi", running="1.0.0", min_release=None))
    with refused("downgrade"):
        check_applicable(manifest, NodeFacts(hardware="raspberrypi", running="1.0.0", min_release="1.2.0"))
    with refused("min-version"):
        check_applicable(manifest, NodeFacts(hardware="raspberrypi", running="0.9.0", min_release=None))
    with refused("min-version"):
        check_applicable(manifest, NodeFacts(hardware="raspberrypi", running=None, min_release=None))
    # Pre-releases sort before their release (semantic versioning).
    with refused("downgrade"):
        check_applicable(
            releases.build("1.2.0-rc.1").manifest,
            NodeFacts(hardware="raspberrypi", running="1.0.0", min_release="1.2.0"),
        )


def test_artifact_size_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(b"x" * 100)
    check_file(path, size=100, sha256=sha(b"x" * 100), what="a.tar")
    with refused("truncated"):
        check_file(path, size=101, sha256=sha(b"x" * 100), what="a.tar")
    with refused("size-mismatch"):
        check_file(path, size=99, sha256=sha(b"x" * 100), what="a.tar")
    with refused("hash-mismatch"):
        check_file(path, size=100, sha256="0" * 64, what="a.tar")
