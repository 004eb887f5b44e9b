"""/ota: releases and campaigns for people (under /api/v1, with a token), and the release files
for nodes (under /ota/v1, without one: everything a node fetches is signed, and it checks).

Uploading a release is the admin's (`ota:release`); starting and steering a campaign is the
control centre's (`ota:campaign`); reading is everyone's. Every change is written to the audit
log, and so is every refused upload. The logic lives in releases.py, store.py and campaign.py;
this module only translates.
"""

from __future__ import annotations

import json
from datetime import time
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, File, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from fleet.access.roles import Permission
from fleet.access.tokens import Principal
from fleet.api.deps import ROW_ID_MAX, Audit, DbSession, NowMs, require
from fleet.api.errors import ApiError, error_body, not_found
from fleet.ota import campaign as core
from fleet.ota import store
from fleet.ota.campaign import CampaignAction, MaintenanceWindow, WavePlan
from fleet.ota.errors import IllegalCampaignTransition, PlanError, ReleaseExists, ReleaseRefused
from fleet.ota.models import OtaCampaign, OtaCampaignNode, OtaRelease
from fleet.ota.releases import MANIFEST_FILE, NODE_PREFIX, ReleaseShelf, hardware_of
from protocols.messages import VERSION_PATTERN
from protocols.ota import MAX_DOCUMENT_BYTES
from protocols.topics import ID_PATTERN

router = APIRouter(tags=["ota"])
node_router = APIRouter(tags=["ota (nodes)"])
Reader = Depends(require(Permission.READ))
Uploader = Annotated[Principal, Depends(require(Permission.OTA_RELEASE))]
Steerer = Annotated[Principal, Depends(require(Permission.OTA_CAMPAIGN))]

RELEASE_ID = r"^(edge-agent|controller-firmware)-\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
ReleaseId = Annotated[str, Path(pattern=RELEASE_ID, max_length=200)]
CampaignId = Annotated[str, Path(pattern=ID_PATTERN)]
FileName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")]
IdItem = Annotated[str, Field(pattern=ID_PATTERN)]
Note = Annotated[str, Field(max_length=4000)]


def shelf(request: Request) -> ReleaseShelf:
    found: ReleaseShelf = request.app.state.ota_shelf
    return found


Shelf = Annotated[ReleaseShelf, Depends(shelf)]


# --- wire shapes ------------------------------------------------------------------------------


class FileOut(BaseModel):
    name: str
    size: int
    sha256: str
    url: str


class DeltaOut(FileOut):
    base_release: str


class ReleaseOut(BaseModel):
    release_id: str
    component: str
    release: str
    hardware: list[str]
    min_version: str | None
    notes: str
    created_at_ms: int
    uploaded_at_ms: int
    uploaded_by: str
    signed_by: list[str]  # key ids on the manifest
    manifest_sha256: str
    manifest_url: str
    artifact: FileOut
    delta: DeltaOut | None


class ReleasePage(BaseModel):
    items: list[ReleaseOut]
    next_before: int | None
    refused_since_start: dict[str, int]  # refused uploads by reason, this fleet process


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a mistyped key is named, not ignored


class TargetIn(_Strict):
    site_ids: list[IdItem] = Field(default=[], max_length=5000)
    site_tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default=[], max_length=100)
    districts: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default=[], max_length=100)
    node_ids: list[IdItem] = Field(default=[], max_length=5000)
    versions: list[Annotated[str, Field(pattern=VERSION_PATTERN, max_length=64)]] = Field(
        default=[], max_length=100
    )
    hardware: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default=[], max_length=100)


class WaveIn(_Strict):
    nodes: int | None = Field(default=None, ge=1, le=100_000)
    percent: float | None = Field(default=None, gt=0, le=100)
    success_threshold: float = Field(default=0.9, gt=0, le=1)
    abort_failure_rate: float = Field(default=0.1, gt=0, le=1)


class WindowIn(_Strict):
    start: time  # local time, "01:00"
    end: time  # before start: the window runs over midnight
    time_zone: str = Field(min_length=1, max_length=64)  # IANA, "Asia/Seoul"


def _default_waves() -> list[WaveIn]:
    return [WaveIn(nodes=1), WaveIn(percent=10), WaveIn(percent=100)]


class CampaignIn(_Strict):
    release_id: Annotated[str, Field(pattern=RELEASE_ID, max_length=200)]
    target: TargetIn = Field(default_factory=TargetIn)
    waves: list[WaveIn] = Field(default_factory=_default_waves, min_length=1, max_length=20)
    require_approval: bool = False  # a person approves each wave after the first
    abort_action: Literal["pause", "cancel"] = "pause"
    node_timeout_s: int = Field(default=1800, ge=60, le=7 * 86_400)
    max_in_flight: int | None = Field(default=None, ge=1, le=100_000)
    maintenance_window: WindowIn | None = None
    note: Note = ""


class ActionIn(_Strict):
    note: Note = ""


class WaveOut(BaseModel):
    index: int
    size: int
    success_threshold: float
    abort_failure_rate: float
    opened: bool
    passed: bool
    committed: int
    failures: int  # failed (timed out included) + rolled back
    in_flight: int
    by_state: dict[str, int]


class CampaignOut(BaseModel):
    campaign_id: str
    release_id: str
    component: str
    release: str
    state: core.CampaignState
    reason: str
    note: str
    target: dict[str, list[str]]
    require_approval: bool
    abort_action: str
    node_timeout_s: int
    max_in_flight: int | None
    maintenance_window: dict[str, str] | None
    opened_waves: int
    created_at_ms: int
    created_by: str
    updated_at_ms: int
    finished_at_ms: int | None
    nodes: int
    by_state: dict[str, int]
    held: dict[str, int]  # queued nodes by what held them back at the last tick
    waves: list[WaveOut]
    skipped: dict[str, int] | None = None  # on creation: nodes left out, by reason


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    next_before: int | None


class CampaignNodeOut(BaseModel):
    node_id: str
    wave: int
    state: core.NodeState
    reason: str | None
    detail: str
    progress: float | None
    hold: str | None
    offers: int
    offered_at_ms: int | None
    last_heard_ms: int | None
    reported_ts: int | None
    updated_at_ms: int
    finished_at_ms: int | None


class CampaignNodePage(BaseModel):
    items: list[CampaignNodeOut]
    next_after: str | None  # pass as `after` for the next page; null on the last


# --- releases -----------------------------------------------------------------------------------


def _release_out(row: OtaRelease, shelf: ReleaseShelf) -> ReleaseOut:
    manifest_url = shelf.config.manifest_url(row.release_id)
    base = manifest_url.removesuffix(MANIFEST_FILE)
    delta = None
    if row.delta_name is not None:
        delta = DeltaOut(
            name=row.delta_name,
            size=row.delta_size or 0,
            sha256=row.delta_sha256 or "",
            url=base + row.delta_name,
            base_release=row.delta_base_release or "",
        )
    return ReleaseOut(
        release_id=row.release_id,
        component=row.component,
        release=row.release,
        hardware=hardware_of(row),
        min_version=row.min_version,
        notes=row.notes,
        created_at_ms=row.created_at_ms,
        uploaded_at_ms=row.uploaded_at_ms,
        uploaded_by=row.uploaded_by,
        signed_by=[k for k in row.key_ids.split(",") if k],
        manifest_sha256=row.manifest_sha256,
        manifest_url=manifest_url,
        artifact=FileOut(
            name=row.artifact_name,
            size=row.artifact_size,
            sha256=row.artifact_sha256,
            url=base + row.artifact_name,
        ),
        delta=delta,
    )


@router.post("/ota/releases", status_code=201, response_model=ReleaseOut)
def upload_release(
    *,
    manifest: Annotated[UploadFile, File(description="the signed manifest document")],
    artifact: Annotated[UploadFile, File(description="the release's tar")],
    delta: Annotated[UploadFile | None, File(description="the bsdiff4 delta the manifest names")] = None,
    db: DbSession,
    who: Uploader,
    now: NowMs,
    audit: Audit,
    shelf: Shelf,
) -> ReleaseOut | JSONResponse:
    """Verify a signed release and keep it: signature by a trusted key, each file's size and
    SHA-256 as the manifest says. Anything else is refused (422 `release-refused/<reason>`)
    and nothing of it is kept; a release id is uploaded once (409 `release-exists`)."""
    document = manifest.file.read(MAX_DOCUMENT_BYTES + 1)
    try:
        row = shelf.receive(
            db,
            manifest=document,
            artifact=artifact.file,
            delta=delta.file if delta is not None else None,
            by=who.subject,
            now_ms=now,
        )
    except ReleaseRefused as refused:
        # Answered, not raised: the refusal's audit entry is all this transaction commits (a
        # refused upload by a valid token is worth knowing about: a wrong key in use, or worse).
        audit("ota.release.refuse", "ota-release", reason=refused.reason, detail=refused.detail)
        return JSONResponse(
            error_body(f"release-refused/{refused.reason}", refused.detail, {"reason": refused.reason}),
            status_code=422,
        )
    except ReleaseExists as exists:
        raise ApiError(409, "release-exists", str(exists)) from None
    except OSError as error:
        raise ApiError(507, "insufficient-storage", f"the release could not be kept: {error}") from None
    audit(
        "ota.release.upload",
        f"ota-release/{row.release_id}",
        artifact_sha256=row.artifact_sha256,
        delta=row.delta_name,
        signed_by=row.key_ids,
    )
    return _release_out(row, shelf)


@router.get("/ota/releases", dependencies=[Reader])
def list_releases(
    *,
    db: DbSession,
    shelf: Shelf,
    component: Literal["edge-agent", "controller-firmware"] | None = None,
    before: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReleasePage:
    """Newest upload first."""
    query = sa.select(OtaRelease).order_by(OtaRelease.id.desc()).limit(limit)
    if component is not None:
        query = query.where(OtaRelease.component == component)
    if before is not None:
        query = query.where(OtaRelease.id < before)
    rows = list(db.scalars(query))
    return ReleasePage(
        items=[_release_out(r, shelf) for r in rows],
        next_before=rows[-1].id if len(rows) == limit else None,
        refused_since_start=dict(shelf.refused),
    )


@router.get("/ota/releases/{release_id}", dependencies=[Reader])
def get_release(*, release_id: ReleaseId, db: DbSession, shelf: Shelf) -> ReleaseOut:
    row = db.scalars(sa.select(OtaRelease).where(OtaRelease.release_id == release_id)).one_or_none()
    if row is None:
        raise not_found("release", release_id)
    return _release_out(row, shelf)


# --- what nodes fetch -------------------------------------------------------------------------

# A release's files never change under its id: caches may keep them.
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def _file(db: Session, shelf: ReleaseShelf, release_id: str, name: str, media_type: str) -> FileResponse:
    path = shelf.file(db, release_id, name)
    if path is None:
        raise not_found("file", f"{release_id}/{name}")
    return FileResponse(path, media_type=media_type, headers=_IMMUTABLE)


@node_router.get(f"{NODE_PREFIX}/{{release_id}}/{MANIFEST_FILE}", response_class=FileResponse)
def release_manifest(*, release_id: ReleaseId, db: DbSession, shelf: Shelf) -> FileResponse:
    """The signed manifest document, as uploaded (no token: the node verifies it)."""
    return _file(db, shelf, release_id, MANIFEST_FILE, "application/json")


@node_router.get(f"{NODE_PREFIX}/{{release_id}}/{{file_name}}", response_class=FileResponse)
def release_file(*, release_id: ReleaseId, file_name: FileName, db: DbSession, shelf: Shelf) -> FileResponse:
    """The artifact or delta the manifest names (relative to the manifest's URL), with HTTP
    Range support so a node resumes a cut download."""
    return _file(db, shelf, release_id, file_name, "application/octet-stream")


# --- campaigns ----------------------------------------------------------------------------------


def _plan_error(error: PlanError) -> ApiError:
    return ApiError(
        422,
        "invalid-request",
        str(error),
        details=[{"field": error.field, "problem": error.detail, "where": "body"}],
    )


def _campaign_out(db: Session, row: OtaCampaign, counted: dict[tuple[int, str], int]) -> CampaignOut:
    release = store.release_of(db, row)
    campaign = store.core_of(row)
    tallies = core.tally_counts(campaign, counted)
    by_state: dict[str, int] = {}
    for (_, state), n in counted.items():
        by_state[state] = by_state.get(state, 0) + n
    return CampaignOut(
        campaign_id=row.campaign_id,
        release_id=release.release_id,
        component=release.component,
        release=release.release,
        state=campaign.state,
        reason=row.reason,
        note=row.note,
        target=_json_obj(row.target),
        require_approval=row.require_approval,
        abort_action=row.abort_action,
        node_timeout_s=row.node_timeout_s,
        max_in_flight=row.max_in_flight,
        maintenance_window=store.window_of(row),
        opened_waves=row.opened_waves,
        created_at_ms=row.created_at_ms,
        created_by=row.created_by,
        updated_at_ms=row.updated_at_ms,
        finished_at_ms=row.finished_at_ms,
        nodes=sum(counted.values()),
        by_state=by_state,
        held=store.holds(db, row.id),
        waves=[
            WaveOut(
                index=t.index,
                size=t.size,
                success_threshold=wave.success_threshold,
                abort_failure_rate=wave.abort_failure_rate,
                opened=t.opened,
                passed=t.passed,
                committed=t.committed,
                failures=t.failures,
                in_flight=t.in_flight,
                by_state=dict(t.by_state),
            )
            for t, wave in zip(tallies, campaign.waves, strict=True)
        ],
    )


def _json_obj(text: str) -> Any:
    return json.loads(text)


def _campaign(db: Session, campaign_id: str, *, lock: bool = False) -> OtaCampaign:
    row = store.get(db, campaign_id, lock=lock)
    if row is None:
        raise not_found("campaign", campaign_id)
    return row


@router.post("/ota/campaigns", status_code=201)
def create_campaign(
    *, body: CampaignIn, db: DbSession, who: Steerer, now: NowMs, audit: Audit
) -> CampaignOut:
    """Resolve the targets now, split them into waves, and start: the runner offers the first
    wave at its next tick."""
    release = db.scalars(sa.select(OtaRelease).where(OtaRelease.release_id == body.release_id)).one_or_none()
    if release is None:
        raise ApiError(
            422,
            "invalid-request",
            f"release_id: no release {body.release_id!r} was uploaded",
            details=[{"field": "release_id", "problem": "no such release", "where": "body"}],
        )
    try:
        window = None
        if body.maintenance_window is not None:
            w = body.maintenance_window
            window = MaintenanceWindow(start=w.start, end=w.end, time_zone=w.time_zone)
        created = store.create(
            db,
            store.CampaignRequest(
                release=release,
                target=store.Target(
                    site_ids=tuple(body.target.site_ids),
                    site_tags=tuple(body.target.site_tags),
                    districts=tuple(body.target.districts),
                    node_ids=tuple(body.target.node_ids),
                    versions=tuple(body.target.versions),
                    hardware=tuple(body.target.hardware),
                ),
                waves=[
                    WavePlan(
                        nodes=w.nodes,
                        percent=w.percent,
                        success_threshold=w.success_threshold,
                        abort_failure_rate=w.abort_failure_rate,
                    )
                    for w in body.waves
                ],
                require_approval=body.require_approval,
                abort_action=body.abort_action,
                node_timeout_s=body.node_timeout_s,
                max_in_flight=body.max_in_flight,
                window=window,
                note=body.note,
            ),
            by=who.subject,
            now_ms=now,
        )
    except PlanError as error:
        raise _plan_error(error) from None
    row = created.row
    waves = [w.size for w in store.waves_of(row)]
    audit(
        "ota.campaign.create",
        f"ota-campaign/{row.campaign_id}",
        release=release.release_id,
        nodes=sum(waves),
        waves=waves,
        skipped=created.skipped,
    )
    out = _campaign_out(db, row, store.counts(db, [row.id])[row.id])
    out.skipped = created.skipped
    return out


@router.get("/ota/campaigns", dependencies=[Reader])
def list_campaigns(
    *,
    db: DbSession,
    state: core.CampaignState | None = None,
    before: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CampaignPage:
    """Newest first."""
    query = sa.select(OtaCampaign).order_by(OtaCampaign.id.desc()).limit(limit)
    if state is not None:
        query = query.where(OtaCampaign.state == state.value)
    if before is not None:
        query = query.where(OtaCampaign.id < before)
    rows = list(db.scalars(query))
    counted = store.counts(db, [r.id for r in rows])
    return CampaignPage(
        items=[_campaign_out(db, r, counted[r.id]) for r in rows],
        next_before=rows[-1].id if len(rows) == limit else None,
    )


@router.get("/ota/campaigns/{campaign_id}", dependencies=[Reader])
def get_campaign(*, campaign_id: CampaignId, db: DbSession) -> CampaignOut:
    row = _campaign(db, campaign_id)
    return _campaign_out(db, row, store.counts(db, [row.id])[row.id])


@router.get("/ota/campaigns/{campaign_id}/nodes", dependencies=[Reader])
def list_campaign_nodes(
    *,
    campaign_id: CampaignId,
    db: DbSession,
    state: core.NodeState | None = None,
    wave: Annotated[int | None, Query(ge=0, le=ROW_ID_MAX)] = None,
    after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> CampaignNodePage:
    """Each targeted node's state, by node id (`after` = the last id of the previous page)."""
    row = _campaign(db, campaign_id)
    query = (
        sa.select(OtaCampaignNode)
        .where(OtaCampaignNode.campaign_pk == row.id)
        .order_by(OtaCampaignNode.node_id)
        .limit(limit)
    )
    if state is not None:
        query = query.where(OtaCampaignNode.state == state.value)
    if wave is not None:
        query = query.where(OtaCampaignNode.wave == wave)
    if after is not None:
        query = query.where(OtaCampaignNode.node_id > after)
    items = [
        CampaignNodeOut(
            node_id=n.node_id,
            wave=n.wave,
            state=core.NodeState(n.state),
            reason=n.reason,
            detail=n.detail,
            progress=n.progress,
            hold=n.hold,
            offers=n.offers,
            offered_at_ms=n.offered_at_ms,
            last_heard_ms=n.last_heard_ms,
            reported_ts=n.reported_ts,
            updated_at_ms=n.updated_at_ms,
            finished_at_ms=n.finished_at_ms,
        )
        for n in db.scalars(query)
    ]
    return CampaignNodePage(items=items, next_after=items[-1].node_id if len(items) == limit else None)


def _act(
    db: Session, campaign_id: str, action: CampaignAction, *, body: ActionIn | None, now: int, audit: Audit
) -> CampaignOut:
    row = _campaign(db, campaign_id, lock=True)
    note = body.note if body is not None else ""
    before = row.state
    try:
        store.act(db, row, action, note=note, now_ms=now)
    except IllegalCampaignTransition as error:
        raise ApiError(409, "illegal-transition", str(error)) from None
    audit(f"ota.campaign.{action.value}", f"ota-campaign/{campaign_id}", before=before, note=note)
    return _campaign_out(db, row, store.counts(db, [row.id])[row.id])


OptionalAction = Annotated[ActionIn | None, Body()]


@router.post("/ota/campaigns/{campaign_id}/pause")
def pause_campaign(
    *,
    campaign_id: CampaignId,
    body: OptionalAction = None,
    db: DbSession,
    who: Steerer,
    now: NowMs,
    audit: Audit,
) -> CampaignOut:
    """No more offers until resumed; nodes at work carry on (and may still time out)."""
    return _act(db, campaign_id, CampaignAction.PAUSE, body=body, now=now, audit=audit)


@router.post("/ota/campaigns/{campaign_id}/resume")
def resume_campaign(
    *,
    campaign_id: CampaignId,
    body: OptionalAction = None,
    db: DbSession,
    who: Steerer,
    now: NowMs,
    audit: Audit,
) -> CampaignOut:
    """Offers again. The failures so far are accepted: only new ones count to the next abort."""
    return _act(db, campaign_id, CampaignAction.RESUME, body=body, now=now, audit=audit)


@router.post("/ota/campaigns/{campaign_id}/cancel")
def cancel_campaign(
    *,
    campaign_id: CampaignId,
    body: OptionalAction = None,
    db: DbSession,
    who: Steerer,
    now: NowMs,
    audit: Audit,
) -> CampaignOut:
    """For good: queued nodes are never offered; nodes at work finish and their reports are kept."""
    return _act(db, campaign_id, CampaignAction.CANCEL, body=body, now=now, audit=audit)


@router.post("/ota/campaigns/{campaign_id}/approve")
def approve_campaign(
    *,
    campaign_id: CampaignId,
    body: OptionalAction = None,
    db: DbSession,
    who: Steerer,
    now: NowMs,
    audit: Audit,
) -> CampaignOut:
    """The next wave may start (a campaign with `require_approval` awaits this after each wave)."""
    return _act(db, campaign_id, CampaignAction.APPROVE, body=body, now=now, audit=audit)
