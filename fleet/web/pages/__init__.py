"""The page routes, one module a page group, gathered into one router; `install(app)` adds
them, the static files and the sign-in redirects to the fleet's app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from fleet.web import live
from fleet.web.pages import alarms, campaigns, faults, inspections, nodes, overview, reports, signin, tech
from fleet.web.render import STATIC, page
from fleet.web.session import PageForbidden, SignInRequired, home_of

ROUTERS = (
    signin.router,
    overview.router,
    alarms.router,
    faults.router,
    nodes.router,
    inspections.router,
    reports.router,
    campaigns.router,
    tech.router,
    live.router,
)


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.headers.get("hx-request"):
            # A fragment fetched by htmx: send the whole page to the sign-in form.
            return Response(status_code=204, headers={"HX-Redirect": "/signin"})
        return RedirectResponse(f"/signin?next={exc.next_path}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        return page(request, "forbidden.html", exc.who, status_code=403, home=home_of(exc.who))
