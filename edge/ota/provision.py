"""The first release on a node, committed at once (a factory or a technician's install): the
same checks and the same layout as an update (edge.ota.releases), without campaign or trial.
`watchpost ota node provision` (edge.ota.cli) is its shell."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.ota import archive, verify
from edge.ota.errors import OtaFailure
from edge.ota.releases import ReleaseStore
from protocols import ota
from protocols.errors import ContractError


def provision(
    root: Path, *, artifact: Path, document: bytes, trusted: Mapping[str, Ed25519PublicKey]
) -> ota.Manifest:
    """Install the release `document` (a signed manifest) names from `artifact`, and point
    `current` and `committed` at it. OtaFailure says why not."""
    result = ota.verify(document, trusted)
    if isinstance(result, ContractError):
        raise OtaFailure(result.reason, str(result))
    manifest = result
    if manifest.component != "edge-agent":
        raise OtaFailure(
            "wrong-component", f"a node provisions an edge-agent release, not {manifest.component}"
        )
    verify.check_file(
        artifact, size=manifest.artifact.size, sha256=manifest.artifact.sha256, what=str(artifact)
    )
    store = ReleaseStore(root)
    store.releases.mkdir(parents=True, exist_ok=True)
    if manifest.release not in (store.current(), store.committed()):
        archive.extract_release(artifact, manifest, store.dir_of(manifest.release))
    store.keep_artifact(manifest.release, artifact)
    store.switch("current", manifest.release)
    store.switch("committed", manifest.release)
    return manifest
