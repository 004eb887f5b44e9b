"""OTA release manifests and their Ed25519 signatures.

A signed manifest is one JSON document:

    {"manifest": {...}, "signatures": [{"key_id": "...", "ed25519": "<base64>"}]}

Each signature is over the manifest's canonical bytes: UTF-8 JSON with object keys sorted,
no insignificant whitespace, and no floating-point numbers (so every encoder writes the same
bytes). A node holds a set of trusted public keys; a manifest is accepted when at least one
signature by a trusted key verifies. Rotating keys means signing with the old and the new key
for a while, then dropping the old one from the nodes' trusted set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from msgspec import Meta

from protocols import CONTRACT_VERSION
from protocols.errors import (
    BadSignature,
    ContractError,
    InvalidJson,
    InvalidUtf8,
    InvalidValue,
    PayloadTooLarge,
    UnknownKey,
    UnknownVersion,
    WrongType,
)
from protocols.messages import EpochMs, Name, Text, Version

MAX_DOCUMENT_BYTES: Final = 1024 * 1024

Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
KeyId = Annotated[str, Meta(pattern=r"^[0-9a-f]{16}$")]


class ManifestFile(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    path: Annotated[str, Meta(min_length=1, max_length=255)]
    size: Annotated[int, Meta(ge=0, le=2**40)]
    sha256: Sha256
    mode: Literal["file", "executable"] = "file"

    def __post_init__(self) -> None:
        # Paths are relative to the release directory and may never leave it.
        normal = posixpath.normpath(self.path)
        if (
            self.path.startswith("/")
            or "\\" in self.path
            or "\x00" in self.path
            or normal != self.path
            or normal == ".."
            or normal.startswith("../")
        ):
            raise ValueError(f"file path {self.path!r} must be a plain relative path inside the release")


# Artifact and delta names are single file names, fetched relative to the manifest's URL.
FileName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")]


class Artifact(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The release as one uncompressed POSIX tar holding exactly `Manifest.files` (regular
    files only: no links, devices or directories outside the listed paths)."""

    path: FileName
    size: Annotated[int, Meta(ge=1, le=2**40)]
    sha256: Sha256
    format: Literal["tar"] = "tar"


class Delta(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A binary delta (bsdiff4) that turns the artifact of `base_release` (by its SHA-256) into
    this release's artifact; a node without that base, or whose patch fails, falls back to the
    full artifact."""

    base_release: Version
    base_sha256: Sha256
    path: FileName
    size: Annotated[int, Meta(ge=0, le=2**40)]
    sha256: Sha256
    format: Literal["bsdiff4"] = "bsdiff4"


# Unknown fields are refused here (unlike MQTT payloads): a node must never install from a
# manifest that says something it does not understand.
class Manifest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    v: int = CONTRACT_VERSION
    release: Version
    component: Literal["edge-agent", "controller-firmware"]
    hardware: Annotated[list[Name], Meta(min_length=1, max_length=32)]
    files: Annotated[list[ManifestFile], Meta(min_length=1, max_length=10_000)]
    artifact: Artifact
    created_at: EpochMs
    min_version: Version | None = None  # refuse to install over anything older
    delta: Delta | None = None
    notes: Text = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for entry in self.files:
            if entry.path in seen:
                raise ValueError(f"file {entry.path!r} is listed twice")
            seen.add(entry.path)


class Signature(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    key_id: KeyId
    ed25519: Annotated[str, Meta(min_length=1, max_length=200)]


class _Document(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    manifest: dict[str, Any]
    signatures: Annotated[list[Signature], Meta(min_length=1, max_length=8)]


_document_decoder = msgspec.json.Decoder(_Document)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The text form of a release-signing public key (PEM SubjectPublicKeyInfo), as
    `watchpost ota keygen` writes it and nodes and the fleet pin it."""
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def parse_public_key(pem: bytes) -> Ed25519PublicKey:
    """A release-signing public key from its PEM text; ValueError says what is wrong with it."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"a {type(key).__name__}, not an Ed25519 public key")
    return key


def version_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """Sort key for a `Version` (semantic versioning precedence): 1.2.0-rc.1 < 1.2.0 < 1.2.1.
    Build metadata (after `+`) does not order releases."""
    core, _, _build = version.partition("+")
    numbers, dash, pre = core.partition("-")
    major, minor, patch = (int(part) for part in numbers.split("."))
    if not dash:
        return (major, minor, patch, 1, ())
    # Numeric identifiers sort before alphanumeric ones, and numerically among themselves.
    identifiers = tuple((0, int(x)) if x.isdigit() else (1, x) for x in pre.split("."))
    return (major, minor, patch, 0, identifiers)


def canonical_bytes(manifest: Manifest | Mapping[str, Any]) -> bytes:
    data = msgspec.to_builtins(manifest) if isinstance(manifest, Manifest) else manifest
    return msgspec.json.encode(data, order="sorted")


def sign(manifest: Manifest, private_keys: list[Ed25519PrivateKey]) -> bytes:
    """The signed manifest document, signed by every key given (several during a rotation)."""
    if not private_keys:
        raise ValueError("at least one signing key is needed")
    body = canonical_bytes(manifest)
    signatures = [
        Signature(
            key_id=key_id(key.public_key()),
            ed25519=base64.b64encode(key.sign(body)).decode("ascii"),
        )
        for key in private_keys
    ]
    return msgspec.json.encode({"manifest": msgspec.to_builtins(manifest), "signatures": signatures})


MAX_DEPTH: Final = 8  # a manifest nests 4 levels; anything deeper is not one


def _shape_problem(value: Any) -> str | None:
    # Iterative, so a hostile document cannot exhaust the stack.
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, float):
            return "manifests carry no floating-point numbers (they have no canonical form)"
        if isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
    return None


def _signature_valid(public_key: Ed25519PublicKey, encoded: str, body: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(encoded, validate=True), body)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def verify(document: bytes, trusted: Mapping[str, Ed25519PublicKey]) -> Manifest | ContractError:
    """Check a signed manifest document against trusted keys (by key id). Never raises."""
    if len(document) > MAX_DOCUMENT_BYTES:
        return PayloadTooLarge(
            f"manifest is {len(document)} bytes, at most {MAX_DOCUMENT_BYTES} are accepted"
        )
    try:
        document.decode("utf-8")
        outer = _document_decoder.decode(document)
    except UnicodeDecodeError as exc:
        return InvalidUtf8(f"not valid UTF-8: {exc.reason} at byte {exc.start}")
    except msgspec.ValidationError as exc:
        return InvalidValue(f"not a signed manifest document: {exc}")
    except msgspec.DecodeError as exc:
        return InvalidJson(f"not valid JSON: {exc}")
    except RecursionError:
        return InvalidJson(f"not a manifest: nested deeper than {MAX_DEPTH} levels")
    problem = _shape_problem(outer.manifest)
    if problem is not None:
        return WrongType(problem)
    body = canonical_bytes(outer.manifest)
    rejected_by: list[str] = []
    for signature in outer.signatures:
        public_key = trusted.get(signature.key_id)
        if public_key is None:
            continue  # e.g. a key being rotated in that this node does not trust yet
        if _signature_valid(public_key, signature.ed25519, body):
            break
        rejected_by.append(signature.key_id)
    else:
        if rejected_by:
            return BadSignature(
                f"signature by key {', '.join(rejected_by)} does not match this manifest's bytes"
            )
        ids = ", ".join(s.key_id for s in outer.signatures)
        return UnknownKey(f"signed by {ids}; none of these keys is trusted here")
    version = outer.manifest.get("v")
    if version != CONTRACT_VERSION:
        return UnknownVersion(
            f"manifest version {version!r} is not supported (this side reads {CONTRACT_VERSION})"
        )
    try:
        return msgspec.convert(outer.manifest, Manifest)
    except msgspec.ValidationError as exc:
        return InvalidValue(f"manifest is signed but not valid: {exc}")
