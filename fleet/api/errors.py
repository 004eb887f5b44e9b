"""Every error the API returns has one JSON shape, and a reason a person can act on:

    {"error": {"code": "illegal-transition", "message": "...", "details": [...]}}

Invalid requests are 4xx with that reason, never a 500: FastAPI's validation errors are
rewritten to name the field, and the domains' typed errors map to a status here.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet.alarms.service import AlarmError
from fleet.faults.errors import IllegalTransition, StepRefused
from fleet.faults.store import UnknownTicket

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise from a route: becomes `status` with this code and message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def not_found(what: str, key: str) -> ApiError:
    return ApiError(404, "not-found", f"no {what} {key!r}")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": _field(e.get("loc", ())), "problem": e.get("msg", "invalid"), "where": e["loc"][0]}
            for e in exc.errors()
        ]
        message = "; ".join(f"{d['field']}: {d['problem']}" for d in details) or "invalid request"
        return JSONResponse(error_body("invalid-request", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        message = str(exc.detail) if exc.status_code != 404 else f"no such path: {request.url.path}"
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(IllegalTransition)
    async def _illegal(request: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(error_body("illegal-transition", str(exc)), status_code=409)

    @app.exception_handler(StepRefused)
    async def _refused(request: Request, exc: StepRefused) -> JSONResponse:
        return JSONResponse(error_body(f"step-refused/{exc.reason}", str(exc)), status_code=409)

    @app.exception_handler(UnknownTicket)
    async def _no_ticket(request: Request, exc: UnknownTicket) -> JSONResponse:
        return JSONResponse(error_body("not-found", f"no fault ticket {exc.ticket_id!r}"), status_code=404)

    @app.exception_handler(AlarmError)
    async def _alarm(request: Request, exc: AlarmError) -> JSONResponse:
        return JSONResponse(error_body("alarm-refused", str(exc)), status_code=409)
