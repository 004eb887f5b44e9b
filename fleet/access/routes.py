"""/tokens (admin) and /whoami (anyone with a token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from fleet.access import tokens
from fleet.access.roles import PERMISSIONS, Permission, Role
from fleet.api.deps import Audit, Caller, DbSession, NowMs, PathId, require
from fleet.api.errors import ApiError, not_found

router = APIRouter(tags=["access"])
Admin = Annotated[tokens.Principal, Depends(require(Permission.TOKEN_ADMIN))]


class WhoAmI(BaseModel):
    subject: str
    role: Role
    token_id: str
    permissions: list[Permission]


class NewToken(BaseModel):
    subject: str = Field(pattern=tokens.SUBJECT.pattern, description="who will hold it, e.g. tech-0193")
    role: Role


class IssuedToken(BaseModel):
    token: str = Field(description="shown once: the fleet keeps only its hash")
    token_id: str
    subject: str
    role: Role


class TokenInfo(BaseModel):
    token_id: str
    subject: str
    role: Role
    created_at_ms: int
    created_by: str
    revoked_at_ms: int | None


@router.get("/whoami")
def whoami(*, who: Caller) -> WhoAmI:
    return WhoAmI(
        subject=who.subject, role=who.role, token_id=who.token_id, permissions=sorted(PERMISSIONS[who.role])
    )


@router.post("/tokens", status_code=201)
def issue_token(*, body: NewToken, db: DbSession, who: Admin, now: NowMs, audit: Audit) -> IssuedToken:
    issued = tokens.issue(db, subject=body.subject, role=body.role, now_ms=now, by=who.subject)
    audit("token.issue", f"token/{issued.token_id}", subject=body.subject, role=body.role.value)
    return IssuedToken(token=issued.token, token_id=issued.token_id, subject=body.subject, role=body.role)


@router.get("/tokens")
def list_tokens(*, db: DbSession, who: Admin) -> list[TokenInfo]:
    return [
        TokenInfo(
            token_id=t.token_id,
            subject=t.subject,
            role=Role(t.role),
            created_at_ms=t.created_at_ms,
            created_by=t.created_by,
            revoked_at_ms=t.revoked_at_ms,
        )
        for t in tokens.listing(db)
    ]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(*, token_id: PathId, db: DbSession, who: Admin, now: NowMs, audit: Audit) -> None:
    if token_id == who.token_id:
        raise ApiError(409, "own-token", "revoke your own token with another admin's")
    if not tokens.revoke(db, token_id, now_ms=now):
        raise not_found("active token", token_id)
    audit("token.revoke", f"token/{token_id}")
