"""Issue, check and revoke API tokens. A token reads `wp_<token id>_<secret>`: the id finds the
row, the secret's SHA-256 is compared in constant time. Only the hash is stored; the secret is
shown once, when issued."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.access.models import ApiToken
from fleet.access.roles import Role

_TOKEN = re.compile(r"wp_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})")
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class TokenError(Exception):
    """Why a presented token does not let its bearer in."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's holder and role."""

    subject: str
    role: Role
    token_id: str


@dataclass(frozen=True, slots=True)
class Issued:
    token: str  # the whole token: give it to its holder, it is not kept
    token_id: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(session: Session, *, subject: str, role: Role, now_ms: int, by: str) -> Issued:
    if not SUBJECT.fullmatch(subject):
        raise ValueError(f"subject {subject!r}: 1-128 letters, digits, '.', '_', '@' or '-'")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_id=token_id,
            secret_sha256=_digest(secret),
            subject=subject,
            role=role.value,
            created_at_ms=now_ms,
            created_by=by,
        )
    )
    return Issued(f"wp_{token_id}_{secret}", token_id)


def authenticate(session: Session, token: str) -> Principal:
    match = _TOKEN.fullmatch(token.strip())
    if match is None:
        raise TokenError("malformed token: expected wp_<id>_<secret>")
    token_id, secret = match.groups()
    row = session.scalars(sa.select(ApiToken).where(ApiToken.token_id == token_id)).one_or_none()
    # Compare even when the id is unknown, so timing tells nothing about which ids exist.
    expected = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _digest(secret)) or row is None:
        raise TokenError("unknown token")
    if row.revoked_at_ms is not None:
        raise TokenError(f"token {token_id} was revoked")
    return Principal(row.subject, Role(row.role), row.token_id)


def revoke(session: Session, token_id: str, *, now_ms: int) -> bool:
    """False when there is no such (unrevoked) token."""
    row = session.scalars(sa.select(ApiToken).where(ApiToken.token_id == token_id)).one_or_none()
    if row is None or row.revoked_at_ms is not None:
        return False
    row.revoked_at_ms = now_ms
    return True


def listing(session: Session) -> list[ApiToken]:
    return list(session.scalars(sa.select(ApiToken).order_by(ApiToken.id)))
