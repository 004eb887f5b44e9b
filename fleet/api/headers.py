"""Security headers on every answer of the fleet manager, pages and API alike.

The dashboard's scripts are its own files (vendored, no CDN), so the policy allows scripts from
this origin only: an injected <script> or inline handler does not run. Inline styles stay
allowed (charts set them); no page may be framed by another site (clickjacking); a page's
address is not sent on to other sites; the browser must not guess content types.
FastAPI's own /docs page loads Swagger UI from a CDN with an inline script, so it alone goes
without the policy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def install(app: FastAPI, *, docs_path: str) -> None:
    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path != docs_path:
            response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
