"""Is this release for this node, signed by a key it trusts, and is what arrived what the
manifest names? Pure checks on values (the hashing helpers read files); edge.ota.node calls
them in order and reports the first failure's reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.ota.errors import OtaFailure
from protocols import ota
from protocols.errors import ContractError

# protocols.ota's error reasons that keep their own name on the node's report; any other
# problem with the document is "invalid-manifest".
_KEPT_REASONS = frozenset({"bad-signature", "unknown-key"})


def load_trusted_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """The node's pinned release keys by key id; ValueError names the file that is unusable."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            key = ota.parse_public_key(path.read_bytes())
        except OSError as error:
            raise ValueError(f"cannot read {path}: {error.strerror}") from None
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        keys[ota.key_id(key)] = key
    return keys


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def check_document(
    document: bytes,
    *,
    expected_sha256: str,
    offered_release: str,
    trusted: Mapping[str, Ed25519PublicKey],
) -> ota.Manifest:
    """The manifest the offer named, if its signature holds; OtaFailure otherwise."""
    actual = hashlib.sha256(document).hexdigest()
    if actual != expected_sha256:
        raise OtaFailure(
            "manifest-mismatch", f"the manifest's SHA-256 is {actual}, the offer said {expected_sha256}"
        )
    if not trusted:
        raise OtaFailure("no-trusted-keys", "this node trusts no release key (ota.trusted_keys is empty)")
    result = ota.verify(document, trusted)
    if isinstance(result, ContractError):
        reason = result.reason if result.reason in _KEPT_REASONS else "invalid-manifest"
        raise OtaFailure(reason, str(result))
    if result.release != offered_release:
        raise OtaFailure(
            "release-mismatch", f"the offer was for {offered_release}, the manifest is {result.release}"
        )
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFacts:
    """What the node is and runs, for the component the manifest is for."""

    hardware: str
    running: str | None  # the running release of that component (None: unknown)
    min_release: str | None  # ota.min_release: never install anything older


def check_applicable(manifest: ota.Manifest, facts: NodeFacts) -> None:
    if facts.hardware not in manifest.hardware:
        raise OtaFailure(
            "wrong-hardware",
            f"release {manifest.release} is for {', '.join(manifest.hardware)}; this "
            f"{manifest.component} is {facts.hardware}",
        )
    key = ota.version_key
    if facts.min_release is not None and key(manifest.release) < key(facts.min_release):
        raise OtaFailure(
            "downgrade",
            f"release {manifest.release} is older than ota.min_release {facts.min_release}",
        )
    if manifest.min_version is not None:
        if facts.running is None:
            raise OtaFailure(
                "min-version",
                f"release {manifest.release} installs only over {manifest.min_version} or later, "
                "and the running version is not known",
            )
        if key(facts.running) < key(manifest.min_version):
            raise OtaFailure(
                "min-version",
                f"release {manifest.release} installs only over {manifest.min_version} or later; "
                f"this node runs {facts.running}",
            )


def check_file(path: Path, *, size: int, sha256: str, what: str) -> None:
    actual_size = path.stat().st_size
    if actual_size < size:
        raise OtaFailure("truncated", f"{what} is {actual_size} bytes, the manifest says {size}")
    if actual_size != size:
        raise OtaFailure("size-mismatch", f"{what} is {actual_size} bytes, the manifest says {size}")
    actual = sha256_file(path)
    if actual != sha256:
        raise OtaFailure("hash-mismatch", f"{what} has SHA-256 {actual}, the manifest says {sha256}")
