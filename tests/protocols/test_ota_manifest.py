"""Signed OTA manifests: signing, verification, key rotation, and refusal of bad documents."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from protocols import errors, ota

OLD_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NEW_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))


def trust(*keys: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {ota.key_id(k.public_key()): k.public_key() for k in keys}


MANIFEST = ota.Manifest(
    release="0.2.0",
    component="edge-agent",
    hardware=["rpi4b", "rpi5"],
    files=[
        ota.ManifestFile(path="watchpost-0.2.0-py3-none-any.whl", size=412_331, sha256="1f" * 32),
        ota.ManifestFile(path="bin/watchpost", size=220, sha256="2e" * 32, mode="executable"),
    ],
    artifact=ota.Artifact(path="edge-agent-0.2.0.tar", size=430_080, sha256="5b" * 32),
    created_at=1_764_000_000_000,
    min_version="0.1.0",
    delta=ota.Delta(
        base_release="0.1.0", base_sha256="3d" * 32, path="delta.bsdiff4", size=9_000, sha256="4c" * 32
    ),
)


def tampered(document: bytes, change: dict[str, Any]) -> bytes:
    data = json.loads(document)
    data["manifest"].update(change)
    return json.dumps(data).encode()


def test_signed_manifest_verifies() -> None:
    assert ota.verify(ota.sign(MANIFEST, [OLD_KEY]), trust(OLD_KEY)) == MANIFEST


def test_key_id_is_stable() -> None:
    # First 16 hex digits of SHA-256 over the raw 32-byte public key.
    raw = OLD_KEY.public_key().public_bytes_raw()
    assert ota.key_id(OLD_KEY.public_key()) == hashlib.sha256(raw).hexdigest()[:16]


def test_canonical_bytes_do_not_depend_on_key_order_or_spacing() -> None:
    document = json.loads(ota.sign(MANIFEST, [OLD_KEY]))
    reordered = {
        "signatures": document["signatures"],
        "manifest": dict(reversed(list(document["manifest"].items()))),
    }
    respaced = json.dumps(reordered, indent=3).encode()
    assert ota.verify(respaced, trust(OLD_KEY)) == MANIFEST


def test_rotation_old_and_new_keys_both_accepted_during_the_overlap() -> None:
    document = ota.sign(MANIFEST, [OLD_KEY, NEW_KEY])
    assert ota.verify(document, trust(OLD_KEY)) == MANIFEST
    assert ota.verify(document, trust(NEW_KEY)) == MANIFEST


def test_node_that_dropped_the_old_key_refuses_its_signature() -> None:
    result = ota.verify(ota.sign(MANIFEST, [OLD_KEY]), trust(NEW_KEY))
    assert isinstance(result, errors.UnknownKey)
    assert "none of these keys is trusted" in str(result)


def test_signature_over_other_bytes_is_refused() -> None:
    document = tampered(ota.sign(MANIFEST, [OLD_KEY]), {"min_version": "0.0.1"})
    result = ota.verify(document, trust(OLD_KEY))
    assert isinstance(result, errors.BadSignature)
    assert ota.key_id(OLD_KEY.public_key()) in str(result)


def test_a_good_signature_by_an_untrusted_key_does_not_help_a_bad_trusted_one() -> None:
    good_by_new = json.loads(ota.sign(MANIFEST, [NEW_KEY]))["signatures"][0]
    forged = json.loads(ota.sign(MANIFEST, [OLD_KEY]))
    forged["signatures"][0]["ed25519"] = good_by_new["ed25519"]
    assert isinstance(ota.verify(json.dumps(forged).encode(), trust(OLD_KEY)), errors.BadSignature)


def test_signature_that_is_not_base64_is_refused() -> None:
    document = json.loads(ota.sign(MANIFEST, [OLD_KEY]))
    document["signatures"][0]["ed25519"] = "%%%"
    assert isinstance(ota.verify(json.dumps(document).encode(), trust(OLD_KEY)), errors.BadSignature)


def test_truncated_document() -> None:
    result = ota.verify(ota.sign(MANIFEST, [OLD_KEY])[:-10], trust(OLD_KEY))
    assert isinstance(result, errors.InvalidJson)


def test_oversized_document() -> None:
    assert isinstance(ota.verify(b" " * (ota.MAX_DOCUMENT_BYTES + 1), trust(OLD_KEY)), errors.PayloadTooLarge)


def test_unsigned_document() -> None:
    document = json.dumps({"manifest": msgspec.to_builtins(MANIFEST), "signatures": []}).encode()
    result = ota.verify(document, trust(OLD_KEY))
    assert isinstance(result, errors.InvalidValue)
    assert "signatures" in str(result)


def test_floats_have_no_canonical_form_and_are_refused() -> None:
    document = json.loads(ota.sign(MANIFEST, [OLD_KEY]))
    document["manifest"]["created_at"] = 1.5
    assert isinstance(ota.verify(json.dumps(document).encode(), trust(OLD_KEY)), errors.WrongType)


def signed_variant(**change: Any) -> bytes:
    """A manifest that is validly signed but breaks a rule: the signer made a bad manifest."""
    data = msgspec.to_builtins(MANIFEST) | change
    body = ota.canonical_bytes(data)
    signature = {
        "key_id": ota.key_id(OLD_KEY.public_key()),
        "ed25519": base64.b64encode(OLD_KEY.sign(body)).decode(),
    }
    return json.dumps({"manifest": data, "signatures": [signature]}).encode()


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "./a", "a//b", "", "a/./b"]
)
def test_paths_that_leave_the_release_directory_are_refused(path: str) -> None:
    files = [{"path": path, "size": 1, "sha256": "ab" * 32, "mode": "file"}]
    result = ota.verify(signed_variant(files=files), trust(OLD_KEY))
    assert isinstance(result, errors.InvalidValue), result


def test_duplicate_file_is_refused() -> None:
    entry = {"path": "a.whl", "size": 1, "sha256": "ab" * 32, "mode": "file"}
    result = ota.verify(signed_variant(files=[entry, entry]), trust(OLD_KEY))
    assert isinstance(result, errors.InvalidValue)
    assert "twice" in str(result)


def test_unknown_manifest_field_is_refused() -> None:
    result = ota.verify(signed_variant(run_as_root=True), trust(OLD_KEY))
    assert isinstance(result, errors.InvalidValue)
    assert "run_as_root" in str(result)


def test_unknown_manifest_version_is_refused() -> None:
    assert isinstance(ota.verify(signed_variant(v=2), trust(OLD_KEY)), errors.UnknownVersion)


def test_bad_hash_format_is_refused() -> None:
    files = [{"path": "a.whl", "size": 1, "sha256": "XYZ", "mode": "file"}]
    assert isinstance(ota.verify(signed_variant(files=files), trust(OLD_KEY)), errors.InvalidValue)


@given(st.binary(max_size=3000))
def test_arbitrary_bytes_give_a_typed_error(document: bytes) -> None:
    assert isinstance(ota.verify(document, trust(OLD_KEY)), errors.ContractError)


@given(st.integers(0, 2000), st.binary(min_size=1, max_size=6))
def test_any_corruption_of_a_signed_document_is_refused_or_harmless(at: int, junk: bytes) -> None:
    document = ota.sign(MANIFEST, [OLD_KEY])
    at = min(at, len(document))
    result = ota.verify(document[:at] + junk + document[at + len(junk) :], trust(OLD_KEY))
    # Either refused with a reason, or the change did not touch the signed content
    # (e.g. whitespace or an equivalent escape).
    assert isinstance(result, errors.ContractError) or result == MANIFEST


@pytest.mark.parametrize("depth", [9, 900, 5000])
def test_deeply_nested_document_is_refused_not_a_crash(depth: int) -> None:
    nested = '{"a":' * depth + "1" + "}" * depth
    signature = '{"key_id":"0123456789abcdef","ed25519":"AA=="}'
    document = f'{{"manifest":{nested},"signatures":[{signature}]}}'.encode()
    result = ota.verify(document, trust(OLD_KEY))
    assert isinstance(result, errors.InvalidJson | errors.WrongType)
    assert "nested" in str(result)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("0.9.9", "0.10.0"),  # numerically, not as text
        ("1.2.0-rc.1", "1.2.0"),  # a pre-release comes before its release
        ("1.2.0-alpha", "1.2.0-alpha.1"),
        ("1.2.0-alpha.2", "1.2.0-alpha.10"),
        ("1.2.0-alpha.10", "1.2.0-beta"),  # numeric identifiers before alphanumeric ones
        ("1.2.0", "1.2.1-rc.1"),
    ],
)
def test_versions_order_by_semantic_versioning_precedence(older: str, newer: str) -> None:
    assert ota.version_key(older) < ota.version_key(newer)


def test_build_metadata_does_not_order_releases() -> None:
    assert ota.version_key("1.2.0+build.7") == ota.version_key("1.2.0+build.9")


def test_a_public_key_survives_its_pem_text() -> None:
    pem = ota.public_key_pem(OLD_KEY.public_key())
    assert ota.key_id(ota.parse_public_key(pem)) == ota.key_id(OLD_KEY.public_key())


@pytest.mark.parametrize(
    "text", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]
)
def test_anything_but_an_ed25519_public_key_is_refused(text: bytes) -> None:
    with pytest.raises(ValueError, match="public key"):
        ota.parse_public_key(text)
