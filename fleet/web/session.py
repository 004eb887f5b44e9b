"""Who is looking at a page: signed in with an API token (the same tokens and roles as the
API), kept in an HttpOnly, SameSite=Strict cookie so page scripts never see it. A page asks
for `Viewer` (anyone signed in) or `CentreUser` (not a technician: technicians see only their
own pages). Not signed in: the page answers with a redirect to /signin."""

from __future__ import annotations

from typing import Annotated, Final

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.access.roles import Role
from fleet.access.tokens import Principal

COOKIE: Final = "wp_session"


class SignInRequired(Exception):
    """Answered with a redirect to the sign-in page (then back to `next`)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """A signed-in user opened a page their role does not see."""

    def __init__(self, who: Principal, page: str) -> None:
        super().__init__(f"{who.subject} ({who.role}) cannot open {page}")
        self.who = who


def web_user(request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequired(request.url.path)
    engine: sa.Engine = request.app.state.engine
    with Session(engine) as db:
        try:
            return tokens.authenticate(db, token)
        except tokens.TokenError:
            raise SignInRequired(request.url.path) from None


Viewer = Annotated[Principal, Depends(web_user)]


def centre_user(request: Request, who: Viewer) -> Principal:
    if who.role is Role.TECHNICIAN:
        raise PageForbidden(who, request.url.path)
    return who


CentreUser = Annotated[Principal, Depends(centre_user)]


def home_of(who: Principal) -> str:
    return "/tech" if who.role is Role.TECHNICIAN else "/"
