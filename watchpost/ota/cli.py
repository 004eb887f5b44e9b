"""`watchpost ota …`: make signing keys, build and sign releases, check a release as a node
would. The work is in watchpost.ota.build and watchpost.ota.keys; this is the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from edge.ota.cli import ota_node  # the node's side (provision, status): standard library and msgspec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from watchpost.ota.build import Component


@click.group()
def ota() -> None:
    """Signed OTA releases: keys, builds, signatures; `ota node` on a pole's node."""


ota.add_command(ota_node)


@ota.command("keygen")
@click.option("--out", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--name", required=True, help="File name stem, e.g. release-2026 (writes .key and .pub).")
def keygen(directory: Path, name: str) -> None:
    """Make an Ed25519 release-signing key pair."""
    from watchpost.ota.keys import KeyFileError, generate

    try:
        private_path, public_path, key_id = generate(directory, name)
    except KeyFileError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"key {key_id}: private {private_path} (keep offline), public {public_path} (pin it)")


def _load_keys(paths: tuple[Path, ...]) -> list[Ed25519PrivateKey]:
    from watchpost.ota.keys import KeyFileError, load_private

    try:
        return [load_private(path) for path in paths]
    except KeyFileError as error:
        raise click.ClickException(str(error)) from None


@ota.command("build")
@click.option(
    "--component",
    type=click.Choice(["edge-agent", "controller-firmware"]),
    required=True,
)
@click.option("--release", required=True, help="Semantic version of the release, e.g. 1.4.0.")
@click.option("--hardware", multiple=True, required=True, help="Hardware it runs on (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--key",
    "key_paths",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sign with this private key (repeatable); without: an unsigned manifest for `ota sign`.",
)
@click.option("--base-release", default=None, help="Also make a delta from this earlier release…")
@click.option(
    "--base-artifact",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="…whose artifact (.tar) is this file.",
)
@click.option("--min-version", default=None, help="Refuse to install over releases older than this.")
@click.option("--notes", default="", help="Release notes shown to operators.")
@click.option(
    "--source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Source tree (default: this checkout): the repo root, or the firmware directory.",
)
def build(
    component: str,
    release: str,
    hardware: tuple[str, ...],
    out_dir: Path,
    key_paths: tuple[Path, ...],
    base_release: str | None,
    base_artifact: Path | None,
    min_version: str | None,
    notes: str,
    source: Path | None,
) -> None:
    """Package an edge-agent release or a controller firmware bundle with its manifest."""
    from watchpost.ota import build as b

    if (base_release is None) != (base_artifact is None):
        raise click.UsageError("--base-release and --base-artifact go together")
    keys = _load_keys(key_paths)
    try:
        if component == "edge-agent":
            files = b.edge_agent_files(release, root=source or b.REPO_ROOT)
        else:
            files = b.controller_firmware_files(release, source=source)
        built = b.build_release(
            component=cast("Component", component),
            release=release,
            hardware=list(hardware),
            files=files,
            keys=keys,
            out_dir=out_dir,
            base=(base_release, base_artifact) if base_release and base_artifact else None,
            min_version=min_version,
            notes=notes,
        )
    except (b.BuildError, OSError) as error:
        raise click.ClickException(str(error)) from None
    artifact = built.manifest.artifact
    click.echo(f"artifact {built.artifact_path} ({artifact.size} bytes, sha256 {artifact.sha256})")
    if built.delta_path is not None and built.manifest.delta is not None:
        share = built.manifest.delta.size / artifact.size
        click.echo(f"delta    {built.delta_path} ({built.manifest.delta.size} bytes, {share:.1%} of full)")
    state = "signed" if built.signed else "UNSIGNED: run `watchpost ota sign` before uploading"
    click.echo(f"manifest {built.manifest_path} ({len(built.manifest.files)} files, {state})")


@ota.command("sign")
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--key", "key_paths", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Default: manifest.json beside an unsigned manifest, or the signed file itself.",
)
def sign(manifest: Path, key_paths: tuple[Path, ...], out_path: Path | None) -> None:
    """Sign a manifest, or add a signature to a signed one (during a key rotation)."""
    from watchpost.ota.build import MANIFEST_NAME, BuildError, sign_document

    keys = _load_keys(key_paths)
    try:
        signed = sign_document(manifest.read_bytes(), keys)
    except BuildError as error:
        raise click.ClickException(f"{manifest}: {error}") from None
    target = out_path or (manifest.parent / MANIFEST_NAME)
    target.write_bytes(signed)
    click.echo(f"signed {target} with {len(keys)} key(s)")


@ota.command("verify")
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--trust", "public_paths", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--artifact", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None)
def verify(manifest: Path, public_paths: tuple[Path, ...], artifact: Path | None) -> None:
    """Check a signed manifest (and its artifact) as a node will."""
    from protocols import ota as contract
    from watchpost.ota.build import sha256_hex
    from watchpost.ota.keys import KeyFileError, load_public

    try:
        trusted = {contract.key_id(key): key for key in (load_public(p) for p in public_paths)}
    except KeyFileError as error:
        raise click.ClickException(str(error)) from None
    result = contract.verify(manifest.read_bytes(), trusted)
    if not isinstance(result, contract.Manifest):
        click.echo(f"refused ({result.reason}): {result}", err=True)
        sys.exit(1)
    if artifact is not None:
        data = artifact.read_bytes()
        if len(data) != result.artifact.size or sha256_hex(data) != result.artifact.sha256:
            expected = result.artifact
            click.echo(
                f"refused (hash-mismatch): {artifact} is not the artifact the manifest names "
                f"({len(data)} bytes; expected {expected.size} bytes, sha256 {expected.sha256})",
                err=True,
            )
            sys.exit(1)
    click.echo(f"ok: {result.component} {result.release} for {', '.join(result.hardware)}")
