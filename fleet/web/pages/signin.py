"""/signin, /signout and the language switch."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.web import i18n
from fleet.web.render import page
from fleet.web.session import COOKIE, home_of

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return None
    return target


@router.get("/signin")
def signin_form(request: Request, next: str | None = None) -> HTMLResponse:
    return page(request, "signin.html", None, next=_safe_next(next) or "", error=None)


@router.post("/signin")
def signin(
    request: Request, token: Annotated[str, Form(max_length=200)], next: Annotated[str, Form()] = ""
) -> Response:
    engine: sa.Engine = request.app.state.engine
    with Session(engine) as db:
        try:
            who = tokens.authenticate(db, token)
        except tokens.TokenError as error:
            return page(
                request, "signin.html", None, status_code=401, next=_safe_next(next) or "", error=str(error)
            )
    response = RedirectResponse(_safe_next(next) or home_of(who), status_code=303)
    response.set_cookie(
        COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,  # a control-room shift
    )
    return response


@router.post("/signout")
def signout() -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/lang/{language}")
def switch_language(request: Request, language: str, back: str = "/") -> Response:
    response = RedirectResponse(_safe_next(back) or "/", status_code=303)
    if language in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, language, samesite="lax", max_age=365 * 86400)
    return response
