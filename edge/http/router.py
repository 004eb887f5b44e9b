"""Which handler answers a request: routes by method and path, where a `{name}` segment matches
any one segment, and prefix routes that take everything under a path. The router answers what
no route takes: 404, or 405 naming the methods the path does accept (Allow).

Routes are tried in the order they were added, so a prefix route added last sees only what the
routes before it did not take (a wrong path, or a wrong method on a right one).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .messages import Request, Response, json_response

Handler = Callable[[Request], Awaitable[Response]]

ANY_METHOD = "*"

_METHOD = re.compile(r"[A-Z]+|\*")
_PARAMETER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class _Route:
    method: str
    handler: Handler
    segments: tuple[str, ...] = ()  # of a path route; "{name}" takes one segment
    prefix: str | None = None  # of a prefix route

    def match(self, path: str, segments: list[str]) -> dict[str, str] | None:
        if self.prefix is not None:
            return {} if path.startswith(self.prefix) else None
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for wanted, given in zip(self.segments, segments, strict=True):
            parameter = _PARAMETER.fullmatch(wanted)
            if parameter is not None and given:
                params[parameter.group(1)] = given
            elif wanted != given:
                return None
        return params

    def takes(self, method: str) -> bool:
        # HEAD is GET without the body (the server leaves it out).
        return self.method in (method, ANY_METHOD) or (method == "HEAD" and self.method == "GET")


class Router:
    """`router.get(path, handler)`, `router.post(...)`, `router.add(method, ...)` for one path;
    `router.add_prefix(method, "/diag/", handler)` for everything under a path (method
    ANY_METHOD for any). A handler is `async def handler(request) -> Response`."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        _check_method(method)
        if not path.startswith("/"):
            raise ValueError(f"route path {path!r} is not allowed: it must start with '/'")
        segments = tuple(path.split("/"))
        for segment in segments:
            if ("{" in segment or "}" in segment) and _PARAMETER.fullmatch(segment) is None:
                raise ValueError(
                    f"route path {path!r} is not allowed: a parameter is a whole segment like '{{name}}'"
                )
        self._routes.append(_Route(method, handler, segments=segments))

    def get(self, path: str, handler: Handler) -> None:
        self.add("GET", path, handler)

    def post(self, path: str, handler: Handler) -> None:
        self.add("POST", path, handler)

    def add_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        _check_method(method)
        if not (prefix.startswith("/") and prefix.endswith("/")):
            raise ValueError(f"route prefix {prefix!r} is not allowed: it must start and end with '/'")
        self._routes.append(_Route(method, handler, prefix=prefix))

    async def handle(self, request: Request) -> Response:
        """The matching route's answer, or the router's 404 or 405."""
        path = request.path
        segments = [urllib.parse.unquote(s) for s in request.raw_path.split("/")]
        allowed: set[str] = set()
        for route in self._routes:
            params = route.match(path, segments)
            if params is None:
                continue
            if route.takes(request.method):
                request.path_params = params
                return await route.handler(request)
            allowed.add(route.method)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            methods = sorted(allowed)
            return json_response(
                {
                    "error": f"{request.method} is not accepted on {path}: use {' or '.join(methods)}",
                    "reason": "wrong-method",
                },
                status=405,
                headers={"Allow": ", ".join(methods)},
            )
        return json_response({"error": f"nothing at {path}", "reason": "not-found"}, status=404)


def _check_method(method: str) -> None:
    if _METHOD.fullmatch(method) is None:
        raise ValueError(
            f"route method {method!r} is not allowed: use an upper-case method like 'GET', or '*'"
        )
