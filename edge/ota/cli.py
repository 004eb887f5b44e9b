"""`watchpost ota node …`: the node's side of OTA from a shell. `provision` installs the first
release (committed at once) from an artifact and its signed manifest; `status` shows the
releases on disk, the links, and any job, trial or outcome. The group is `ota_node`,
attached to `watchpost ota` by watchpost/cli.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from edge.ota.errors import OtaFailure
from edge.ota.files import StatePaths, read_struct
from edge.ota.provision import provision
from edge.ota.releases import ReleaseStore
from edge.ota.state import Job, Outcome, Trial
from edge.ota.verify import load_trusted_keys

_ROOT = click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="ota.root of the node, e.g. /opt/watchpost.",
)


@click.group("node")
def ota_node() -> None:
    """Releases on this node (edge.ota)."""


@ota_node.command("provision")
@_ROOT
@click.option("--artifact", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--manifest", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--trusted-key",
    "trusted_keys",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A release-signing public key (PEM); repeat for several.",
)
def provision_command(root: Path, artifact: Path, manifest: Path, trusted_keys: tuple[Path, ...]) -> None:
    """Install a first edge-agent release and commit it (no health check: nothing runs yet)."""
    try:
        trusted = load_trusted_keys(trusted_keys)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--trusted-key") from None
    try:
        installed = provision(root, artifact=artifact, document=manifest.read_bytes(), trusted=trusted)
    except OtaFailure as failure:
        click.echo(f"refused ({failure.reason}): {failure.detail}", err=True)
        sys.exit(1)
    where = root / "releases" / installed.release
    click.echo(f"release {installed.release} installed in {where}; current and committed")


@ota_node.command("status")
@_ROOT
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/var/lib/watchpost"),
    show_default=True,
    help="node.state_dir (job, trial and outcome files).",
)
def status_command(root: Path, state_dir: Path) -> None:
    """The links, the releases kept, and what an update left in the state directory."""
    store = ReleaseStore(root)
    paths = StatePaths(state_dir)
    report = {
        "current": store.current(),
        "committed": store.committed(),
        "installed": store.installed(),
        "job": read_struct(paths.job, Job),
        "trial": read_struct(paths.trial, Trial),
        "outcome": read_struct(paths.outcome, Outcome),
    }
    click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())
