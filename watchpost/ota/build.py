"""Packaging OTA releases (docs/adr/0009): the release's files, one deterministic tar, an
optional bsdiff4 delta from an earlier release, and the manifest that names them, signed.

Deterministic means the same files give the same tar, byte for byte (sorted members, mtime 0,
owner 0, fixed modes, no directory members), so a rebuild of a release has the same SHA-256 and a
delta between two releases carries only what changed. `watchpost ota build` and `sign`
(watchpost/ota/cli.py) are the shell around this; the fleet's upload and the node's install
check what this writes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols import ota
from protocols.messages import VERSION_PATTERN

Component = Literal["edge-agent", "controller-firmware"]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
# What an edge-agent release carries: the project's own packages the node runs. The fleet
# manager's code stays out (a pole never runs it); third-party packages are in the node's venv.
EDGE_PACKAGES: Final = ("watchpost", "edge", "protocols")
EDGE_VERSION_FILE: Final = "edge/version.py"
FIRMWARE_VERSION_FILE: Final = "version.py"
MANIFEST_NAME: Final = "manifest.json"
UNSIGNED_MANIFEST_NAME: Final = "manifest.unsigned.json"
_SKIPPED_PARTS: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_VERSION_ASSIGNMENT = re.compile(r"^(AGENT_VERSION|FIRMWARE_VERSION) = \"[^\"]*\"$", re.MULTILINE)


class BuildError(ValueError):
    """The release cannot be built as asked; the message says what to change."""


@dataclass(frozen=True, kw_only=True)
class BuiltRelease:
    manifest: ota.Manifest
    manifest_path: Path  # the signed document, or the unsigned manifest when no key was given
    artifact_path: Path
    delta_path: Path | None
    signed: bool


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_files(root: Path, packages: Iterable[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for package in packages:
        base = root / package
        if not (base / "__init__.py").is_file():
            raise BuildError(f"{base} is not a Python package (no __init__.py)")
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or _SKIPPED_PARTS.intersection(relative.parts):
                continue
            if path.suffix in {".pyc", ".pyo"}:
                continue
            files[relative.as_posix()] = path.read_bytes()
    return files


def stamp_version(files: dict[str, bytes], version_file: str, release: str) -> None:
    """Write `release` into the one `…_VERSION = "x"` assignment of `version_file`."""
    if not re.match(VERSION_PATTERN, release):
        raise BuildError(f"release version {release!r} is not a semantic version like 1.4.0")
    try:
        text = files[version_file].decode("utf-8")
    except KeyError:
        raise BuildError(f"the release has no {version_file} to stamp its version into") from None
    stamped, count = _VERSION_ASSIGNMENT.subn(lambda match: f'{match.group(1)} = "{release}"', text)
    if count != 1:
        raise BuildError(f"{version_file} must hold exactly one version assignment, found {count}")
    files[version_file] = stamped.encode("utf-8")


def edge_agent_files(release: str, *, root: Path = REPO_ROOT) -> dict[str, bytes]:
    """The files of an edge-agent release built from the source tree at `root`."""
    files = package_files(root, EDGE_PACKAGES)
    stamp_version(files, EDGE_VERSION_FILE, release)
    return files


def controller_firmware_files(release: str, *, source: Path | None = None) -> dict[str, bytes]:
    """The files of one controller firmware slot (as `watchpost firmware deploy` writes it)."""
    from watchpost.deploy import slot_files  # noqa: PLC0415  # pyserial: only firmware builds need it

    files = dict(slot_files(source))
    stamp_version(files, FIRMWARE_VERSION_FILE, release)
    return files


def pack(files: Mapping[str, bytes], executables: Iterable[str] = ()) -> bytes:
    """The deterministic tar of `files` (path -> content): regular files only, sorted."""
    executable = frozenset(executables)
    unknown = executable.difference(files)
    if unknown:
        raise BuildError(f"executable {sorted(unknown)!r} is not among the release's files")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(files):
            # The manifest's own rules (plain relative paths) apply to the tar's members too.
            ota.ManifestFile(path=path, size=len(files[path]), sha256="0" * 64)
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mode = 0o755 if path in executable else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(files[path]))
    return out.getvalue()


def make_delta(base_artifact: bytes, artifact: bytes) -> bytes:
    # The edge extra brings bsdiff4 (nodes apply deltas); a build without it says so here.
    import bsdiff4  # noqa: PLC0415

    patch: bytes = bsdiff4.diff(base_artifact, artifact)
    return patch


def artifact_name(component: Component, release: str) -> str:
    return f"{component}-{release}.tar"


def delta_name(component: Component, base_release: str, release: str) -> str:
    return f"{component}-{base_release}-to-{release}.bsdiff4"


def build_release(
    *,
    component: Component,
    release: str,
    hardware: list[str],
    files: Mapping[str, bytes],
    keys: list[Ed25519PrivateKey],
    out_dir: Path,
    executables: Iterable[str] = (),
    base: tuple[str, Path] | None = None,
    min_version: str | None = None,
    notes: str = "",
    created_at_ms: int | None = None,
) -> BuiltRelease:
    """Write the artifact, the delta from `base` (its release and artifact file) if given, and
    the manifest into `out_dir`: signed by `keys`, or unsigned (for `watchpost ota sign` on an
    offline machine) when there are none."""
    executables = tuple(executables)
    artifact = pack(files, executables)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact_path = out_dir / artifact_name(component, release)
    artifact_path.write_bytes(artifact)
    delta: ota.Delta | None = None
    delta_path: Path | None = None
    if base is not None:
        base_release, base_path = base
        base_artifact = base_path.read_bytes()
        patch = make_delta(base_artifact, artifact)
        delta_path = out_dir / delta_name(component, base_release, release)
        delta_path.write_bytes(patch)
        delta = ota.Delta(
            base_release=base_release,
            base_sha256=sha256_hex(base_artifact),
            path=delta_path.name,
            size=len(patch),
            sha256=sha256_hex(patch),
        )
    try:
        manifest = ota.Manifest(
            release=release,
            component=component,
            hardware=hardware,
            files=[
                ota.ManifestFile(
                    path=path,
                    size=len(data),
                    sha256=sha256_hex(data),
                    mode="executable" if path in executables else "file",
                )
                for path, data in sorted(files.items())
            ],
            artifact=ota.Artifact(path=artifact_path.name, size=len(artifact), sha256=sha256_hex(artifact)),
            created_at=created_at_ms if created_at_ms is not None else time.time_ns() // 1_000_000,
            min_version=min_version,
            delta=delta,
            notes=notes,
        )
        # Struct constructors do not check Meta constraints; a round trip through the
        # validating decoder does, so a bad --hardware or --release is refused here, not by
        # every node.
        manifest = msgspec.json.decode(msgspec.json.encode(manifest), type=ota.Manifest)
    except (msgspec.ValidationError, ValueError) as error:
        raise BuildError(f"the manifest would not be valid: {error}") from None
    if keys:
        manifest_path = out_dir / MANIFEST_NAME
        manifest_path.write_bytes(ota.sign(manifest, keys))
    else:
        manifest_path = out_dir / UNSIGNED_MANIFEST_NAME
        manifest_path.write_bytes(ota.canonical_bytes(manifest))
    return BuiltRelease(
        manifest=manifest,
        manifest_path=manifest_path,
        artifact_path=artifact_path,
        delta_path=delta_path,
        signed=bool(keys),
    )


def sign_document(document: bytes, keys: list[Ed25519PrivateKey]) -> bytes:
    """Sign an unsigned manifest, or add signatures to a signed one (a key rotation's overlap).
    The manifest's content is checked on the way: nothing invalid gets a signature."""
    if not keys:
        raise BuildError("at least one signing key is needed")
    try:
        data = msgspec.json.decode(document)
    except msgspec.DecodeError as error:
        raise BuildError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise BuildError("not a manifest: expected a JSON object")
    earlier: list[dict[str, str]] = []
    if "signatures" in data:
        earlier = list(data["signatures"])
        data = data.get("manifest")
    try:
        manifest = msgspec.convert(data, ota.Manifest)
    except msgspec.ValidationError as error:
        raise BuildError(f"not a valid manifest: {error}") from None
    del manifest  # checked; the bytes signed are the document's own, so earlier signatures hold
    body = ota.canonical_bytes(data)
    have = {entry.get("key_id") for entry in earlier}
    added = [
        {"key_id": ota.key_id(key.public_key()), "ed25519": base64.b64encode(key.sign(body)).decode()}
        for key in keys
        if ota.key_id(key.public_key()) not in have
    ]
    return msgspec.json.encode({"manifest": data, "signatures": earlier + added})
