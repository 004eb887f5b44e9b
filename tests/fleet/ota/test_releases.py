"""Uploading releases over HTTP (a real uvicorn, SQLite and PostgreSQL): a signed release is
verified, kept, listed and served to nodes without a token, with HTTP Range; every bad upload
is refused with its reason, counted, audited, and leaves nothing behind."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
from pathlib import Path

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.access.roles import Role
from fleet.audit.models import AuditEntry
from fleet.ota.models import OtaRelease
from protocols import ota
from tests.fleet.api.conftest import Api, Response
from tests.fleet.ota.conftest import PUBLIC_URL, TRUSTED, UNTRUSTED, Release, make_release, multipart


def upload(api: Api, files: dict[str, bytes], role: Role = Role.ADMIN) -> Response:
    body, content_type = multipart(files)
    return api.as_(role).request("POST", "/api/v1/ota/releases", raw=body, content_type=content_type)


def fetch(api: Api, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """A node's plain GET, without a token."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def files_of(release: Release) -> dict[str, bytes]:
    files = {"manifest": release.document, "artifact": release.artifact}
    if release.delta is not None:
        files["delta"] = release.delta
    return files


def test_a_signed_release_is_kept_listed_and_served_with_ranges(ota_api: Api, tmp_path: Path) -> None:
    release = make_release(with_delta=True)
    answer = upload(ota_api, files_of(release))
    assert answer.status == 201, answer.text
    kept = answer.body
    base = f"{PUBLIC_URL}/ota/v1/releases/edge-agent-1.2.0/"
    assert kept["release_id"] == "edge-agent-1.2.0"
    assert (kept["manifest_url"], kept["artifact"]["url"]) == (
        base + "manifest.json",
        base + "edge-agent-1.2.0.tar",
    )
    assert kept["manifest_sha256"] == hashlib.sha256(release.document).hexdigest()
    assert kept["signed_by"] == [ota.key_id(TRUSTED.public_key())]
    assert kept["delta"]["base_release"] == "1.1.0"

    listed = ota_api.as_(Role.VIEWER).get("/api/v1/ota/releases").body
    assert [r["release_id"] for r in listed["items"]] == ["edge-agent-1.2.0"]
    assert ota_api.as_(Role.VIEWER).get("/api/v1/ota/releases/edge-agent-1.2.0").body == kept

    # What a node fetches, without a token: the manifest as signed, the files it names.
    status, body, _ = fetch(ota_api, "/ota/v1/releases/edge-agent-1.2.0/manifest.json")
    assert (status, body) == (200, release.document)
    assert isinstance(
        ota.verify(body, {ota.key_id(TRUSTED.public_key()): TRUSTED.public_key()}), ota.Manifest
    )
    status, body, headers = fetch(ota_api, "/ota/v1/releases/edge-agent-1.2.0/edge-agent-1.2.0.tar")
    assert (status, body, headers["accept-ranges"]) == (200, release.artifact, "bytes")
    # A cut download resumes where it stopped.
    status, body, headers = fetch(
        ota_api, "/ota/v1/releases/edge-agent-1.2.0/edge-agent-1.2.0.tar", {"Range": "bytes=100000-100999"}
    )
    assert (status, body) == (206, release.artifact[100_000:101_000])
    assert headers["content-range"] == f"bytes 100000-100999/{len(release.artifact)}"
    status, body, _ = fetch(
        ota_api, "/ota/v1/releases/edge-agent-1.2.0/edge-agent-1.2.0.tar", {"Range": "bytes=299000-"}
    )
    assert (status, body) == (206, release.artifact[299_000:])
    assert release.manifest.delta is not None
    status, body, _ = fetch(ota_api, f"/ota/v1/releases/edge-agent-1.2.0/{release.manifest.delta.path}")
    assert (status, body) == (200, release.delta)
    # Only the release's own files, of a release that was kept.
    for path in (
        "/ota/v1/releases/edge-agent-1.2.0/other.tar",
        "/ota/v1/releases/edge-agent-9.9.9/manifest.json",
    ):
        assert fetch(ota_api, path)[0] == 404
    assert fetch(ota_api, "/ota/v1/releases/edge-agent-1.2.0/..%2F..%2Fetc%2Fpasswd")[0] in (404, 422)

    # A release is never replaced.
    again = upload(ota_api, files_of(release))
    assert (again.status, again.code) == (409, "release-exists")
    with Session(ota_api.engine) as db:
        actions = list(
            db.scalars(
                sa.select(AuditEntry.action).where(AuditEntry.target == "ota-release/edge-agent-1.2.0")
            )
        )
    assert actions == ["ota.release.upload"]


def _tampered(release: Release) -> bytes:
    document = json.loads(release.document)
    document["manifest"]["notes"] = "not what was signed"
    return json.dumps(document).encode()


def test_every_bad_upload_is_refused_with_its_reason_and_nothing_is_kept(
    ota_api: Api, tmp_path: Path
) -> None:
    good = make_release(with_delta=True)
    plain = make_release("1.3.0")
    assert good.delta is not None
    unsigned_document = msgspec.json.encode(
        {"manifest": msgspec.to_builtins(good.manifest), "signatures": []}
    )
    cases: dict[str, dict[str, bytes]] = {
        "unsigned": {**files_of(good), "manifest": msgspec.json.encode(good.manifest)},
        "unsigned/empty": {**files_of(good), "manifest": unsigned_document},
        "bad-signature": {**files_of(good), "manifest": _tampered(good)},
        "unknown-key": files_of(make_release(keys=(UNTRUSTED,), with_delta=True)),
        "bad-json": {**files_of(good), "manifest": b"{not json"},
        "artifact-size-mismatch": {**files_of(good), "artifact": good.artifact + b"x"},
        "artifact-size-mismatch/short": {**files_of(good), "artifact": good.artifact[:-1]},
        "artifact-hash-mismatch": {**files_of(good), "artifact": bytes(len(good.artifact))},
        "delta-hash-mismatch": {**files_of(good), "delta": bytes(len(good.delta))},
        "missing-delta": {"manifest": good.document, "artifact": good.artifact},
        "unexpected-delta": {**files_of(plain), "delta": b"BSDIFF40"},
    }
    for case, files in cases.items():
        answer = upload(ota_api, files)
        reason = case.split("/")[0]
        assert (answer.status, answer.code) == (422, f"release-refused/{reason}"), (case, answer.text)
        assert answer.body["error"]["details"] == {"reason": reason}
        assert answer.body["error"]["message"], case
    # Nothing kept: no row, no file (not even a half-written one), nothing served.
    with Session(ota_api.engine) as db:
        assert db.scalars(sa.select(OtaRelease)).all() == []
        refusals = db.scalars(
            sa.select(AuditEntry.detail).where(AuditEntry.action == "ota.release.refuse")
        ).all()
    assert sorted(json.loads(d)["reason"] for d in refusals) == sorted(c.split("/")[0] for c in cases)
    assert list((tmp_path / "ota").rglob("*")) == []
    assert fetch(ota_api, "/ota/v1/releases/edge-agent-1.2.0/manifest.json")[0] == 404
    counted = ota_api.as_(Role.VIEWER).get("/api/v1/ota/releases").body["refused_since_start"]
    assert counted["unsigned"] == 2
    assert counted["artifact-size-mismatch"] == 2
    assert sum(counted.values()) == len(cases)
    # And then the good one goes in.
    assert upload(ota_api, files_of(good)).status == 201


def test_a_missing_part_is_named_and_only_an_admin_uploads(ota_api: Api) -> None:
    release = make_release()
    answer = upload(ota_api, {"manifest": release.document})
    assert (answer.status, answer.code) == (422, "invalid-request")
    assert [d["field"] for d in answer.body["error"]["details"]] == ["artifact"]
    answer = upload(ota_api, files_of(release), role=Role.OPERATOR)
    assert (answer.status, answer.code) == (403, "forbidden")


def test_a_firmware_release_and_a_release_signed_during_a_key_rotation(ota_api: Api) -> None:
    rotating = make_release(component="controller-firmware", keys=(UNTRUSTED, TRUSTED))
    answer = upload(ota_api, files_of(rotating))
    assert answer.status == 201, answer.text
    assert answer.body["release_id"] == "controller-firmware-1.2.0"
    assert sorted(answer.body["signed_by"]) == sorted(
        ota.key_id(k.public_key()) for k in (UNTRUSTED, TRUSTED)
    )
    assert dataclasses.asdict(rotating)  # the release itself is a plain value
