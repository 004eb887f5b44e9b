"""Building, signing and checking OTA releases: `watchpost ota keygen | build | sign | verify`
and the packaging beneath them (watchpost.ota.build)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import bsdiff4
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from protocols import errors, ota
from watchpost.cli import main
from watchpost.ota import build

OLD_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NEW_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def trust(*keys: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {ota.key_id(k.public_key()): k.public_key() for k in keys}


FILES = {"app/run.py": b"print('hello')\n", "app/__init__.py": b"", "bin/start": b"#!/bin/sh\n"}

file_names = st.lists(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_]{0,8}){0,2}\.py", fullmatch=True),
    min_size=1,
    max_size=6,
    unique=True,
)


@given(names=file_names, seed=st.binary(max_size=64))
def test_the_same_files_always_pack_to_the_same_bytes(names: list[str], seed: bytes) -> None:
    files = {name: seed + name.encode() for name in names}
    assert build.pack(files) == build.pack(dict(reversed(list(files.items()))))


def test_a_tar_holds_only_the_files_as_regular_members_with_fixed_metadata() -> None:
    data = build.pack(FILES, executables=["bin/start"])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == sorted(FILES)
        assert all(m.isreg() and m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
        assert {m.name: m.mode for m in members}["bin/start"] == 0o755
        assert {m.name: m.mode for m in members}["app/run.py"] == 0o644
        extracted = archive.extractfile("app/run.py")
        assert extracted is not None
        assert extracted.read() == FILES["app/run.py"]


@pytest.mark.parametrize("bad", ["../escape.py", "/etc/passwd", "a/../../b", "a\\b"])
def test_a_path_that_leaves_the_release_cannot_be_packed(bad: str) -> None:
    with pytest.raises(ValueError, match="plain relative path"):
        build.pack({bad: b"x"})


def test_a_signed_release_names_its_artifact_and_every_file(tmp_path: Path) -> None:
    built = build.build_release(
        component="edge-agent",
        release="1.2.0",
        hardware=["raspberrypi"],
        files=FILES,
        keys=[OLD_KEY],
        out_dir=tmp_path,
        executables=["bin/start"],
    )
    manifest = ota.verify(built.manifest_path.read_bytes(), trust(OLD_KEY))
    assert isinstance(manifest, ota.Manifest)
    artifact = built.artifact_path.read_bytes()
    assert manifest.artifact.path == "edge-agent-1.2.0.tar" == built.artifact_path.name
    assert manifest.artifact.size == len(artifact)
    assert manifest.artifact.sha256 == hashlib.sha256(artifact).hexdigest()
    listed = {f.path: (f.size, f.sha256, f.mode) for f in manifest.files}
    assert listed == {
        path: (len(data), hashlib.sha256(data).hexdigest(), "executable" if path == "bin/start" else "file")
        for path, data in FILES.items()
    }


def test_a_delta_turns_the_base_artifact_into_the_new_one(tmp_path: Path) -> None:
    base = build.build_release(
        component="edge-agent",
        release="1.2.0",
        hardware=["raspberrypi"],
        files=FILES,
        keys=[OLD_KEY],
        out_dir=tmp_path / "1.2.0",
    )
    changed = dict(FILES, **{"app/run.py": b"print('hello, pole')\n"})
    new = build.build_release(
        component="edge-agent",
        release="1.3.0",
        hardware=["raspberrypi"],
        files=changed,
        keys=[OLD_KEY],
        out_dir=tmp_path / "1.3.0",
        base=("1.2.0", base.artifact_path),
    )
    assert new.delta_path is not None
    assert new.manifest.delta is not None
    patch = new.delta_path.read_bytes()
    assert new.manifest.delta.base_sha256 == base.manifest.artifact.sha256
    assert new.manifest.delta.sha256 == hashlib.sha256(patch).hexdigest()
    assert bsdiff4.patch(base.artifact_path.read_bytes(), patch) == new.artifact_path.read_bytes()


def test_an_edge_agent_release_carries_the_node_packages_with_its_version_stamped() -> None:
    files = build.edge_agent_files("2.0.1")
    assert 'AGENT_VERSION = "2.0.1"' in files["edge/version.py"].decode()
    assert "edge/agent.py" in files
    assert "protocols/ota.py" in files
    assert "watchpost/cli.py" in files
    assert "protocols/vectors/link.json" in files  # package data travels with the code
    assert not [p for p in files if p.startswith("fleet/") or "__pycache__" in p or p.endswith(".pyc")]


@pytest.mark.parametrize(
    ("release", "hardware", "problem"),
    [("1.2", ["raspberrypi"], "version"), ("1.2.0", [], "hardware"), ("1.2.0", ["x" * 200], "hardware")],
)
def test_a_manifest_that_would_be_invalid_is_not_built(
    tmp_path: Path, release: str, hardware: list[str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        stamp_and_build(tmp_path, release, hardware)


def stamp_and_build(out_dir: Path, release: str, hardware: list[str]) -> build.BuiltRelease:
    files = dict(FILES, **{"edge/version.py": b'AGENT_VERSION = "0.1.0"\n'})
    build.stamp_version(files, "edge/version.py", release)
    return build.build_release(
        component="edge-agent", release=release, hardware=hardware, files=files, keys=[], out_dir=out_dir
    )


def test_a_second_signature_keeps_the_first_valid_during_a_key_rotation(tmp_path: Path) -> None:
    built = build.build_release(
        component="edge-agent",
        release="1.2.0",
        hardware=["raspberrypi"],
        files=FILES,
        keys=[],
        out_dir=tmp_path,
    )
    assert built.manifest_path.name == "manifest.unsigned.json"
    assert isinstance(
        ota.verify(
            json.dumps(
                {
                    "manifest": json.loads(built.manifest_path.read_bytes()),
                    "signatures": [{"key_id": "0" * 16, "ed25519": "AA=="}],
                }
            ).encode(),
            trust(OLD_KEY),
        ),
        errors.UnknownKey,
    )
    once = build.sign_document(built.manifest_path.read_bytes(), [OLD_KEY])
    twice = build.sign_document(once, [NEW_KEY])
    assert len(json.loads(twice)["signatures"]) == 2
    for key in (OLD_KEY, NEW_KEY):
        assert ota.verify(twice, trust(key)) == built.manifest
    assert build.sign_document(twice, [OLD_KEY]) == twice  # a key signs once


def test_nothing_invalid_gets_a_signature() -> None:
    with pytest.raises(build.BuildError, match="not a valid manifest"):
        build.sign_document(b'{"release": "1.0.0"}', [OLD_KEY])
    with pytest.raises(build.BuildError, match="not JSON"):
        build.sign_document(b"{", [OLD_KEY])


# --- the command line -------------------------------------------------------------------------


def test_keygen_build_sign_verify_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    keys, out = tmp_path / "keys", tmp_path / "out"
    result = runner.invoke(main, ["ota", "keygen", "--out", str(keys), "--name", "release"])
    assert result.exit_code == 0, result.output
    assert (keys / "release.key").stat().st_mode & 0o777 == 0o600
    again = runner.invoke(main, ["ota", "keygen", "--out", str(keys), "--name", "release"])
    assert again.exit_code != 0
    assert "never overwritten" in again.output

    result = runner.invoke(
        main,
        [
            "ota",
            "build",
            "--component",
            "edge-agent",
            "--release",
            "0.3.0",
            "--hardware",
            "raspberrypi",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "UNSIGNED" in result.output
    result = runner.invoke(
        main, ["ota", "sign", str(out / "manifest.unsigned.json"), "--key", str(keys / "release.key")]
    )
    assert result.exit_code == 0, result.output
    verify = ["ota", "verify", str(out / "manifest.json"), "--trust", str(keys / "release.pub")]
    result = runner.invoke(main, [*verify, "--artifact", str(out / "edge-agent-0.3.0.tar")])
    assert result.exit_code == 0, result.output
    assert "ok: edge-agent 0.3.0 for raspberrypi" in result.output

    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes((out / "edge-agent-0.3.0.tar").read_bytes()[:-1] + b"\x01")
    result = runner.invoke(main, [*verify, "--artifact", str(tampered)])
    assert result.exit_code == 1
    assert "refused (hash-mismatch)" in result.output


def test_a_signing_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["ota", "keygen", "--out", str(tmp_path), "--name", "k"]).exit_code == 0
    (tmp_path / "k.key").chmod(0o644)
    result = runner.invoke(
        main,
        [
            "ota",
            "build",
            "--component",
            "edge-agent",
            "--release",
            "0.3.0",
            "--hardware",
            "raspberrypi",
            "--out",
            str(tmp_path / "out"),
            "--key",
            str(tmp_path / "k.key"),
        ],
    )
    assert result.exit_code != 0
    assert "readable by others" in result.output
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_verify_names_the_reason_for_an_untrusted_key(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("a", "b"):
        assert runner.invoke(main, ["ota", "keygen", "--out", str(tmp_path), "--name", name]).exit_code == 0
    built = build.build_release(
        component="edge-agent",
        release="1.2.0",
        hardware=["raspberrypi"],
        files=FILES,
        keys=[],
        out_dir=tmp_path / "r",
    )
    assert (
        runner.invoke(
            main, ["ota", "sign", str(built.manifest_path), "--key", str(tmp_path / "a.key")]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        main, ["ota", "verify", str(tmp_path / "r" / "manifest.json"), "--trust", str(tmp_path / "b.pub")]
    )
    assert result.exit_code == 1
    assert "refused (unknown-key)" in result.output
