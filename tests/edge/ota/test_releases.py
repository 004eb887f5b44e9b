"""The release layout on disk, the boot selector's shell, and factory provisioning through
the CLI group (`watchpost ota node provision`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from click.testing import CliRunner

from edge.ota.boot import agent_command, select
from edge.ota.cli import ota_node
from edge.ota.files import StatePaths, read_struct, write_struct
from edge.ota.releases import ReleaseStore
from edge.ota.state import Outcome, Trial
from tests.edge.ota.conftest import Releases


def provision(root: Path, releases: Releases, key: Path, release: str = "1.0.0") -> None:
    built = releases.build(release)
    result = CliRunner().invoke(
        ota_node,
        [
            "provision",
            "--root",
            str(root),
            "--artifact",
            str(built.artifact_path),
            "--manifest",
            str(built.manifest_path),
            "--trusted-key",
            str(key),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"release {release} installed" in result.output


def test_provision_links_and_prune(tmp_path: Path, releases: Releases, trusted_key_file: Path) -> None:
    root = tmp_path / "root"
    provision(root, releases, trusted_key_file)
    store = ReleaseStore(root)
    assert (store.current(), store.committed()) == ("1.0.0", "1.0.0")
    assert os.readlink(root / "current") == "releases/1.0.0"  # relative: the root can move
    assert (store.dir_of("1.0.0") / "edge/version.py").read_text().count('"1.0.0"') == 1
    assert store.artifact_of("1.0.0").exists()
    for release in ("1.1.0", "1.2.0"):
        provision(root, releases, trusted_key_file, release)
    store.switch("committed", "1.1.0")
    assert store.prune(set()) == ["1.0.0"]
    assert store.installed() == ["1.1.0", "1.2.0"]
    assert not store.artifact_of("1.0.0").exists()


def test_provision_refuses_an_untrusted_release(tmp_path: Path, releases: Releases) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    from protocols import ota  # noqa: PLC0415

    other = tmp_path / "other.pem"
    other.write_bytes(ota.public_key_pem(Ed25519PrivateKey.generate().public_key()))
    built = releases.build("1.0.0")
    result = CliRunner().invoke(
        ota_node,
        [
            "provision",
            "--root",
            str(tmp_path / "root"),
            "--artifact",
            str(built.artifact_path),
            "--manifest",
            str(built.manifest_path),
            "--trusted-key",
            str(other),
        ],
    )
    assert result.exit_code == 1
    assert "refused (unknown-key)" in result.output
    assert not (tmp_path / "root" / "current").exists()


def test_the_boot_selector_counts_then_rolls_back(
    tmp_path: Path, releases: Releases, trusted_key_file: Path
) -> None:
    root, state = tmp_path / "root", tmp_path / "state"
    provision(root, releases, trusted_key_file)
    provision(root, releases, trusted_key_file, "1.1.0")
    store = ReleaseStore(root)
    store.switch("committed", "1.0.0")
    paths = StatePaths(state)
    write_struct(paths.trial, Trial(campaign_id="camp-1", release="1.1.0", previous="1.0.0"))
    for boot in (1, 2):
        select(root, state, max_trial_boots=2)
        trial = read_struct(paths.trial, Trial)
        assert trial is not None
        assert trial.boots == boot
        assert store.current() == "1.1.0"
    select(root, state, max_trial_boots=2)
    assert store.current() == "1.0.0"
    assert not paths.trial.exists()
    outcome = read_struct(paths.outcome, Outcome)
    assert outcome is not None
    assert (outcome.release, outcome.reason) == ("1.1.0", "did-not-start")
    command, env = agent_command(root, ["--config", "edge.toml"], {"PYTHONPATH": "/elsewhere"})
    assert command == [sys.executable, "-P", "-m", "edge.run", "--config", "edge.toml"]
    assert env["PYTHONPATH"] == env["WATCHPOST_RELEASE_DIR"] == str((root / "releases" / "1.0.0").resolve())


def test_status_shows_the_links(tmp_path: Path, releases: Releases, trusted_key_file: Path) -> None:
    provision(tmp_path / "root", releases, trusted_key_file)
    result = CliRunner().invoke(
        ota_node, ["status", "--root", str(tmp_path / "root"), "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert '"committed": "1.0.0"' in result.output
