"""Safe extraction: a tar member that is not a plain file at a plain relative path is refused
on its own ("unsafe-archive"), even where the manifest's hashes would catch it too; the tar's
content must be exactly the manifest's files; nothing is written outside the release."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.ota import archive
from edge.ota.errors import OtaFailure
from protocols import ota

FILES = {"edge/__init__.py": b"", "edge/agent.py": b"print('agent')\n", "bin/run": b"#!/bin/sh\n"}


def manifest_for(
    files: dict[str, bytes], executables: frozenset[str] = frozenset({"bin/run"})
) -> ota.Manifest:
    sha = hashlib.sha256
    return ota.Manifest(
        release="1.1.0",
        component="edge-agent",
        hardware=["raspberrypi"],
        files=[
            ota.ManifestFile(
                path=p,
                size=len(d),
                sha256=sha(d).hexdigest(),
                mode="executable" if p in executables else "file",
            )
            for p, d in sorted(files.items())
        ],
        artifact=ota.Artifact(path="a.tar", size=1, sha256="0" * 64),
        created_at=0,
    )


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def plain(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def good_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [plain(p, d, 0o755 if p == "bin/run" else 0o644) for p, d in sorted(FILES.items())]


def extract(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], manifest: ota.Manifest) -> Path:
    tar = tmp_path / "a.tar"
    tar.write_bytes(tar_of(members))
    dest = tmp_path / "root" / "releases" / "1.1.0"
    dest.parent.mkdir(parents=True, exist_ok=True)
    archive.extract_release(tar, manifest, dest)
    return dest


def test_a_good_archive_is_extracted_with_its_modes(tmp_path: Path) -> None:
    dest = extract(tmp_path, good_members(), manifest_for(FILES))
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == set(FILES)
    assert (dest / "edge/agent.py").read_bytes() == FILES["edge/agent.py"]
    assert (dest / "bin/run").stat().st_mode & 0o777 == 0o755
    assert (dest / "edge/agent.py").stat().st_mode & 0o777 == 0o644
    assert not dest.with_name("1.1.0.partial").exists()


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (plain("../evil.py", b"x"), "'..'"),
        (plain("/etc/evil.py", b"x"), "absolute"),
        (plain("edge/../../evil.py", b"x"), "'..'"),
        (plain("edge//agent.py", b"x"), "normal form"),
        (special("edge/link.py", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (special("edge/hard.py", tarfile.LNKTYPE, "edge/agent.py"), "hard link"),
        (special("edge/dev", tarfile.CHRTYPE), "device"),
        (special("edge/fifo", tarfile.FIFOTYPE), "FIFO"),
        (special("tmp", tarfile.DIRTYPE), "holds no listed file"),
        (plain("edge/agent.py", FILES["edge/agent.py"], 0o4755), "setuid"),
    ],
)
def test_unsafe_members_are_refused_on_their_own(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], why: str
) -> None:
    with pytest.raises(OtaFailure) as refused:
        extract(tmp_path, [*good_members(), member], manifest_for(FILES))
    assert refused.value.reason == "unsafe-archive"
    assert why in refused.value.detail
    assert not (tmp_path / "root" / "releases" / "1.1.0").exists()
    assert not (tmp_path / "root" / "releases" / "1.1.0.partial").exists()
    assert not (tmp_path / "evil.py").exists()


def test_a_member_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OtaFailure, match="appears twice") as refused:
        extract(tmp_path, [*good_members(), plain("edge/__init__.py", b"")], manifest_for(FILES))
    assert refused.value.reason == "unsafe-archive"


@pytest.mark.parametrize(
    ("members", "match"),
    [
        (good_members()[:-1], "lacks 1 listed files"),
        ([*good_members(), plain("edge/extra.py", b"")], "not among the manifest's files"),
        ([plain("bin/run", FILES["bin/run"], 0o644), *good_members()[1:]], "the manifest says executable"),
        ([plain("bin/run", b"#!/bin/bash\n", 0o755), *good_members()[1:]], "bytes, the manifest says"),
        ([plain("bin/run", b"#!/bin/zz\n", 0o755), *good_members()[1:]], "SHA-256"),
    ],
)
def test_the_archive_must_be_exactly_the_manifests_files(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], match: str
) -> None:
    with pytest.raises(OtaFailure, match=match) as refused:
        extract(tmp_path, members, manifest_for(FILES))
    assert refused.value.reason == "archive-mismatch"
    assert not (tmp_path / "root" / "releases" / "1.1.0").exists()


def test_a_full_disk_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    tar = tmp_path / "a.tar"
    tar.write_bytes(tar_of(good_members()))
    dest = tmp_path / "releases" / "1.1.0"
    dest.parent.mkdir()
    with pytest.raises(OtaFailure, match=r"needs .* bytes") as refused:
        archive.extract_release(tar, manifest_for(FILES), dest, free=lambda path: 10_000)
    assert refused.value.reason == "disk-full"
    assert list(dest.parent.iterdir()) == []


def test_not_a_tar_is_refused(tmp_path: Path) -> None:
    tar = tmp_path / "a.tar"
    tar.write_bytes(b"\x00garbage" * 200)
    with pytest.raises(OtaFailure) as refused:
        archive.extract_release(tar, manifest_for(FILES), tmp_path / "r")
    assert refused.value.reason in ("unsafe-archive", "archive-mismatch")


# --- any member name or type -------------------------------------------------------------------

NAME_PART = st.sampled_from(["edge", "..", ".", "", "agent.py", "a\\b", "/", "x\x00y", "etc", "bin", "run"])
NAMES = st.lists(NAME_PART, min_size=1, max_size=4).map("/".join) | st.text(max_size=30)
TYPES = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.AREGTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.DIRTYPE,
        tarfile.FIFOTYPE,
        tarfile.CONTTYPE,
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES, kind=TYPES, link=st.sampled_from(["", "/etc/passwd", "../x", "edge/agent.py"]))
def test_any_extra_member_is_refused_and_nothing_leaves_the_release(
    tmp_path_factory: pytest.TempPathFactory, name: str, kind: bytes, link: str
) -> None:
    base = tmp_path_factory.mktemp("x")
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 0
    members = [*good_members(), (info, b"")]
    try:
        data = tar_of(members)
    except (ValueError, UnicodeError):
        return  # tarfile itself cannot write that name
    (base / "a.tar").write_bytes(data)
    with tarfile.open(base / "a.tar") as written:
        info = written.getmembers()[-1]  # as the node reads it (a NUL ends a name, say)
    dest = base / "root" / "releases" / "1.1.0"
    dest.parent.mkdir(parents=True)
    harmless = info.type == tarfile.DIRTYPE and info.name.rstrip("/") in ("edge", "bin")
    if harmless:  # a directory entry that is a parent of listed files is all that may be added
        archive.extract_release(base / "a.tar", manifest_for(FILES), dest)
    else:
        with pytest.raises(OtaFailure) as refused:
            archive.extract_release(base / "a.tar", manifest_for(FILES), dest)
        assert refused.value.reason in ("unsafe-archive", "archive-mismatch")
        unsafe = info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE)
        if unsafe or archive.unsafe_name(info.name):
            assert refused.value.reason == "unsafe-archive", (name, kind, refused.value)
        assert not dest.exists()
    # Whatever happened, nothing was written outside releases/.
    outside = {p.relative_to(base).as_posix() for p in base.rglob("*")} - {"a.tar", "root", "root/releases"}
    assert all(p.startswith("root/releases/1.1.0") for p in outside), outside
