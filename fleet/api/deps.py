"""What routes ask FastAPI for, as `Annotated` aliases:

    def route(session: DbSession, who: Caller, now: NowMs) -> ...
    @router.post(..., dependencies=[Depends(require(Permission.TICKET_DISPATCH))])

`DbSession` is one transaction per request, committed when the route returns (rolled back on
an error); `Caller` is the token's holder (401 without a valid token); `require(permission)`
answers 403 naming the missing permission; `NowMs` is the app's clock (injected in tests);
`Audit` writes one audit entry inside the request's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Protocol

import sqlalchemy as sa
from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.access.roles import Permission, allowed
from fleet.access.tokens import Principal
from fleet.api.errors import ApiError
from fleet.audit import log as audit_log
from protocols import messages as m
from protocols.topics import ID_PATTERN

# Ids in paths: the contract's id pattern (node, site, camera, alarm ids; ticket and token ids
# are lowercase hex), so a garbled URL is a 422 naming the parameter, not a database error.
PathId = Annotated[str, Path(pattern=ID_PATTERN)]
# The largest row id (the tables' INTEGER primary keys, 32-bit on PostgreSQL): a larger paging
# cursor is the caller's mistake (422), not the database driver's overflow (500).
ROW_ID_MAX = 2**31 - 1


async def no_nul_characters(request: Request) -> None:
    """Refuse NUL characters anywhere in a request: PostgreSQL cannot store them in text, and
    no name, note or id of this API has a use for one."""
    if "\x00" in request.url.path or "%00" in request.url.query:
        raise ApiError(422, "invalid-request", "the URL contains a NUL character")
    if request.headers.get("content-type", "").startswith(("multipart/", "application/x-www-form")):
        return  # a page's form: its fields are checked where they are read
    body = await request.body()
    if b"\x00" in body or b"\\u0000" in body:
        raise ApiError(422, "invalid-request", "the body contains a NUL character")


class NodeLink(Protocol):
    """Sends a message down to a node (a bell alarm's acknowledgement, a command)."""

    def send(self, node_id: str, message: m.Message) -> None: ...


class AppState(Protocol):
    engine: sa.Engine
    clock_ms: Callable[[], int]
    node_link: NodeLink


def _state(request: Request) -> Any:
    return request.app.state


def session(request: Request) -> Iterator[Session]:
    engine: sa.Engine = _state(request).engine
    with Session(engine, expire_on_commit=False) as db, db.begin():
        yield db


# scope="function": committed when the route returns, before the response goes out, so a client
# that got its answer finds the change made (and a failed commit is an error, not a 200).
DbSession = Annotated[Session, Depends(session, scope="function")]


def now_ms(request: Request) -> int:
    clock: Callable[[], int] = _state(request).clock_ms
    return clock()


NowMs = Annotated[int, Depends(now_ms)]


def node_link(request: Request) -> NodeLink:
    link: NodeLink = _state(request).node_link
    return link


Nodes = Annotated[NodeLink, Depends(node_link)]


def caller(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'")
    engine: sa.Engine = _state(request).engine
    # Its own short transaction: a refused token must not hold the request's.
    with Session(engine) as db:
        try:
            return tokens.authenticate(db, token)
        except tokens.TokenError as error:
            raise ApiError(401, "unauthenticated", str(error)) from None


Caller = Annotated[Principal, Depends(caller)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    def check(who: Caller) -> Principal:
        if not allowed(who.role, permission):
            raise ApiError(
                403, "forbidden", f"{who.subject} ({who.role}) lacks the permission {permission.value!r}"
            )
        return who

    return check


class Auditor:
    """Records the caller's state-changing actions in the request's transaction."""

    def __init__(self, db: Session, who: Principal, at_ms: int) -> None:
        self._db, self._who, self._at = db, who, at_ms

    def __call__(self, action: str, target: str, **detail: Any) -> None:
        audit_log.record(
            self._db,
            at_ms=self._at,
            actor=self._who.subject,
            role=self._who.role.value,
            action=action,
            target=target,
            detail=detail,
        )


def auditor(db: DbSession, who: Caller, now: NowMs) -> Auditor:
    return Auditor(db, who, now)


Audit = Annotated[Auditor, Depends(auditor)]
