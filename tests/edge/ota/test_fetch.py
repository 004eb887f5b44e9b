"""Downloads with Range resume against a real HTTP server: a cut connection resumes where the
flash has it (also from a `.part` left by an earlier process), a server that ignores Range is
read from the start, and a short or long file on the server is named for what it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.ota.errors import OtaFailure
from edge.ota.fetch import TransientFetchError, fetch, fetch_document, part_path
from tests.edge.ota.release_server import ReleaseServer

DATA = os.urandom(300_000)
PATH = "/ota/v1/releases/edge-agent-1.1.0/edge-agent-1.1.0.tar"


def test_a_cut_download_resumes_with_range(tmp_path: Path, release_server: ReleaseServer) -> None:
    release_server.files[PATH] = DATA
    release_server.behaviour.cut_at[PATH] = 100_000
    dest = tmp_path / "a.tar"
    with pytest.raises(TransientFetchError) as cut:
        fetch(release_server.url(PATH), dest, size=len(DATA))
    assert cut.value.got == 100_000
    assert part_path(dest).stat().st_size == 100_000
    seen: list[int] = []
    fetched = fetch(release_server.url(PATH), dest, size=len(DATA), progress=seen.append)
    assert fetched.resumed_from == 100_000
    assert dest.read_bytes() == DATA
    assert not part_path(dest).exists()
    assert [r.range for r in release_server.requests_for(PATH)] == [None, "bytes=100000-"]
    assert seen[-1] == len(DATA)


def test_a_part_left_by_an_earlier_process_is_resumed(tmp_path: Path, release_server: ReleaseServer) -> None:
    release_server.files[PATH] = DATA
    dest = tmp_path / "a.tar"
    part_path(dest).write_bytes(DATA[:12_345])
    assert fetch(release_server.url(PATH), dest, size=len(DATA)).resumed_from == 12_345
    assert dest.read_bytes() == DATA


def test_a_server_that_ignores_range_is_read_from_the_start(
    tmp_path: Path, release_server: ReleaseServer
) -> None:
    release_server.files[PATH] = DATA
    release_server.behaviour.ignore_range = True
    dest = tmp_path / "a.tar"
    part_path(dest).write_bytes(b"junk" * 1000)
    fetched = fetch(release_server.url(PATH), dest, size=len(DATA))
    assert fetched.resumed_from == 0
    assert dest.read_bytes() == DATA


def test_a_short_file_on_the_server_is_truncated(tmp_path: Path, release_server: ReleaseServer) -> None:
    release_server.files[PATH] = DATA[:200_000]
    dest = tmp_path / "a.tar"
    with pytest.raises(OtaFailure) as short:
        fetch(release_server.url(PATH), dest, size=len(DATA))
    assert short.value.reason == "truncated"


def test_416_after_the_whole_short_file_is_truncated(tmp_path: Path, release_server: ReleaseServer) -> None:
    release_server.files[PATH] = DATA[:200_000]
    dest = tmp_path / "a.tar"
    part_path(dest).write_bytes(DATA[:200_000])
    with pytest.raises(OtaFailure) as short:
        fetch(release_server.url(PATH), dest, size=len(DATA))
    assert short.value.reason == "truncated"
    assert release_server.requests_for(PATH)[-1].range == "bytes=200000-"


def test_a_longer_file_is_cut_at_the_manifests_size(tmp_path: Path, release_server: ReleaseServer) -> None:
    release_server.files[PATH] = DATA + b"more"
    with pytest.raises(OtaFailure) as long:
        fetch(release_server.url(PATH), tmp_path / "a.tar", size=len(DATA))
    assert long.value.reason == "size-mismatch"


def test_missing_file_and_dead_server(tmp_path: Path, release_server: ReleaseServer) -> None:
    with pytest.raises(OtaFailure) as missing:
        fetch(release_server.url("/nope"), tmp_path / "a.tar", size=10)
    assert (missing.value.reason, "404" in missing.value.detail) == ("download-failed", True)
    with pytest.raises(TransientFetchError):
        fetch("http://127.0.0.1:9/x", tmp_path / "b.tar", size=10, timeout_s=2)


def test_a_document_is_fetched_whole_up_to_its_cap(release_server: ReleaseServer) -> None:
    release_server.files["/m.json"] = b"{}" * 10
    assert fetch_document(release_server.url("/m.json"), max_bytes=20) == b"{}" * 10
    with pytest.raises(OtaFailure) as big:
        fetch_document(release_server.url("/m.json"), max_bytes=19)
    assert big.value.reason == "size-mismatch"
