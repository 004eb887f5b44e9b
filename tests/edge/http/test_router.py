"""The router (edge.http.router) on its own, no sockets: which route takes a request, `{name}`
segments, prefix routes, and the 404 and 405 it answers itself."""

from __future__ import annotations

import asyncio
import json

import pytest

from edge.http import ANY_METHOD, Headers, Request, Response, Router, json_response
from edge.http.router import Handler


def named(name: str) -> Handler:
    async def handler(request: Request) -> Response:
        return json_response({"route": name, "params": request.path_params})

    return handler


def answer(router: Router, method: str, target: str) -> tuple[int, object, dict[str, str]]:
    response = asyncio.run(router.handle(Request(method, target, Headers())))
    return response.status, json.loads(response.body), response.headers


def diag_like() -> Router:
    router = Router()
    router.get("/diag", named("page-redirect"))
    router.get("/diag/", named("page"))
    router.post("/diag/api/login", named("login"))
    router.post("/diag/api/self-tests/{name}", named("self-test"))
    router.add_prefix(ANY_METHOD, "/diag/", named("unknown"))
    return router


@pytest.mark.parametrize(
    ("method", "target", "route", "params"),
    [
        ("GET", "/diag", "page-redirect", {}),
        ("GET", "/diag/", "page", {}),
        ("HEAD", "/diag/", "page", {}),
        ("POST", "/diag/api/login", "login", {}),
        ("POST", "/diag/api/self-tests/bell-circuit", "self-test", {"name": "bell-circuit"}),
        ("POST", "/diag/api/self-tests/a%2Fb", "self-test", {"name": "a/b"}),
        # What the routes above do not take goes to the prefix route added last.
        ("GET", "/diag/api/login", "unknown", {}),
        ("POST", "/diag/api/self-tests/", "unknown", {}),
        ("POST", "/diag/api/self-tests/a/b", "unknown", {}),
        ("DELETE", "/diag/anything/below", "unknown", {}),
    ],
)
def test_the_first_route_that_takes_the_request_answers_it(
    method: str, target: str, route: str, params: dict[str, str]
) -> None:
    status, body, _ = answer(diag_like(), method, target)

    assert (status, body) == (200, {"route": route, "params": params})


def test_a_path_no_route_knows_is_404() -> None:
    status, body, _ = answer(diag_like(), "GET", "/diagnostics")

    assert (status, body) == (404, {"error": "nothing at /diagnostics", "reason": "not-found"})


def test_a_path_known_for_other_methods_is_405_naming_them() -> None:
    router = Router()
    router.get("/api/cameras", named("list"))
    router.post("/api/cameras", named("add"))

    status, body, headers = answer(router, "DELETE", "/api/cameras")

    assert status == 405
    assert headers["Allow"] == "GET, HEAD, POST"
    assert body == {
        "error": "DELETE is not accepted on /api/cameras: use GET or HEAD or POST",
        "reason": "wrong-method",
    }


def test_the_query_is_not_part_of_the_path() -> None:
    router = Router()
    router.get("/status", named("status"))

    assert answer(router, "GET", "/status?verbose=1")[0] == 200


@pytest.mark.parametrize(
    ("add", "words"),
    [
        (lambda r: r.add("GET", "status", named("x")), "must start with '/'"),
        (lambda r: r.add("get", "/status", named("x")), "upper-case method"),
        (lambda r: r.add("GET", "/items/{Name}", named("x")), "a parameter is a whole segment"),
        (lambda r: r.add("GET", "/items/x{name}", named("x")), "a parameter is a whole segment"),
        (lambda r: r.add_prefix(ANY_METHOD, "/diag", named("x")), "must start and end with '/'"),
    ],
)
def test_a_malformed_route_is_refused_when_added(add: object, words: str) -> None:
    assert callable(add)
    with pytest.raises(ValueError, match=words):
        add(Router())
