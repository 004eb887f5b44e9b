"""The technicians' diagnostics over the node's local HTTP: the phone page and its JSON API under
/diag/, mounted on the agent's one edge.http Router beside the camera metadata endpoint.

Transport only: the PIN gate (edge.diagnostics.auth) says who may call, edge.diagnostics.bodies
what a body may hold, and the target (the agent) decides everything else: what its status is,
what a self-test does, how a visit is signed and kept until the uplink takes it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from edge.http import (
    ANY_METHOD,
    BodyTooLarge,
    Handler,
    Request,
    Response,
    Router,
    html_response,
    redirect,
)
from protocols.messages import SiteVisit, VisitAction

from .auth import PinGate
from .bodies import MAX_BODY_BYTES, LoginRequest, VisitRequest, decode_body
from .errors import (
    DiagnosticsError,
    InvalidRequest,
    LockedOut,
    NotAuthorized,
    SelfTestBusy,
    UnknownSelfTest,
    WrongPin,
)
from .page import PAGE_HEADERS, PAGE_HTML

log = logging.getLogger(__name__)

PREFIX = "/diag"


class DiagnosticsTarget(Protocol):
    """What the diagnostics need from the node; edge.agent.Agent provides it."""

    @property
    def self_tests(self) -> Sequence[str]:
        """The names `self_test` accepts, in the order the page shows them."""
        ...

    def status(self) -> dict[str, Any]:
        """Everything a technician looks at, as JSON-ready values; "uplink"."state" is read."""
        ...

    async def self_test(self, name: str) -> dict[str, Any]:
        """Run one self-test; raises ValueError for a name it does not know."""
        ...

    async def site_visit(
        self, action: VisitAction, technician: str, *, fault_id: str | None = None, note: str = ""
    ) -> SiteVisit:
        """Sign the visit and keep it until it reaches the fleet."""
        ...


@dataclass
class DiagnosticsCounters:
    """For the node's status. `requests` is keyed by route, `rejections` by the reason code
    answered; the latest rejection's words are kept for whoever wonders why a call failed."""

    enabled: bool = True
    requests: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    last_rejection: str = ""
    logins: int = 0
    lockouts: int = 0
    self_tests: dict[str, int] = field(default_factory=dict)  # runs by name
    visits: dict[str, int] = field(default_factory=dict)  # stored by action
    sessions: int = 0  # live tokens


# The API's routes, for the 405 that names the right method and the 404 that lists them.
ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/diag/"),
    ("POST", "/diag/api/login"),
    ("POST", "/diag/api/logout"),
    ("GET", "/diag/api/status"),
    ("GET", "/diag/api/self-tests"),
    ("POST", "/diag/api/self-tests/{name}"),
    ("POST", "/diag/api/visits"),
)


class Diagnostics:
    """Made by add_diagnostics_routes; `counters()` is a snapshot for the node's status."""

    def __init__(self, target: DiagnosticsTarget, gate: PinGate | None) -> None:
        self._target = target
        self._gate = gate
        self._counters = DiagnosticsCounters(enabled=gate is not None)
        self._running: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self._gate is not None

    def counters(self) -> DiagnosticsCounters:
        counters = self._counters
        return dataclasses.replace(
            counters,
            requests=dict(counters.requests),
            rejections=dict(counters.rejections),
            self_tests=dict(counters.self_tests),
            visits=dict(counters.visits),
            lockouts=self._gate.lockouts if self._gate else 0,
            sessions=self._gate.sessions() if self._gate else 0,
        )

    def add_routes(self, router: Router) -> None:
        if self._gate is None:
            router.add(ANY_METHOD, PREFIX, self._route("disabled", self._disabled))
            router.add_prefix(ANY_METHOD, PREFIX + "/", self._route("disabled", self._disabled))
            return
        router.get(PREFIX, self._route("page", self._to_page))
        router.get(PREFIX + "/", self._route("page", self._page))
        router.post(PREFIX + "/api/login", self._route("login", self._login))
        router.post(PREFIX + "/api/logout", self._route("logout", self._logout))
        router.get(PREFIX + "/api/status", self._route("status", self._status))
        router.get(PREFIX + "/api/self-tests", self._route("self-tests", self._self_tests))
        router.post(PREFIX + "/api/self-tests/{name}", self._route("self-test", self._self_test))
        router.post(PREFIX + "/api/visits", self._route("visit", self._visit))
        # Last, so it only sees what no route above took: a wrong path or a wrong method.
        router.add_prefix(ANY_METHOD, PREFIX + "/", self._route("unknown", self._unknown))

    # --- the routes -----------------------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        return html_response(PAGE_HTML, headers=PAGE_HEADERS)

    async def _to_page(self, request: Request) -> Response:
        return redirect(PREFIX + "/")

    async def _login(self, request: Request) -> Response:
        body = decode_body(_read_json(request), LoginRequest)
        gate = self._require_gate()
        session = gate.login(body.pin)
        self._counters.logins += 1
        log.info("diagnostics: technician logged in from %s", request.remote)
        return _json({"token": session.token, "expires_in_s": session.expires_in_s})

    async def _logout(self, request: Request) -> Response:
        token = self._authorize(request)
        self._require_gate().logout(token)
        return _json({"logged_out": True})

    async def _status(self, request: Request) -> Response:
        self._authorize(request)
        try:
            status = dict(self._target.status())
        except Exception as error:
            log.exception("diagnostics: the node's status failed")
            return self._refuse(500, "status-error", f"the node could not report its status: {error}")
        status["self_tests"] = list(self._target.self_tests)
        status["diagnostics"] = dataclasses.asdict(self.counters())
        return _json(status)

    async def _self_tests(self, request: Request) -> Response:
        self._authorize(request)
        return _json({"self_tests": list(self._target.self_tests)})

    async def _self_test(self, request: Request) -> Response:
        self._authorize(request)
        name = request.path_params["name"]
        accepted = tuple(self._target.self_tests)
        if name not in accepted:
            raise UnknownSelfTest(name, accepted)
        if name in self._running:
            raise SelfTestBusy(name)
        self._running.add(name)
        started = time.monotonic()
        try:
            result = await self._target.self_test(name)
        except Exception as error:  # the name was checked: whatever it raises, it could not run
            log.exception("diagnostics: self-test %s could not run", name)
            return self._refuse(500, "self-test-error", f"self-test {name!r} could not run: {error}")
        finally:
            self._running.discard(name)
        self._counters.self_tests[name] = self._counters.self_tests.get(name, 0) + 1
        return _json(
            {
                "name": name,
                "ok": result.get("ok") is True,
                "took_ms": round((time.monotonic() - started) * 1000),
                "result": result,
            }
        )

    async def _visit(self, request: Request) -> Response:
        self._authorize(request)
        body = decode_body(_read_json(request), VisitRequest)
        try:
            visit = await self._target.site_visit(
                body.action, body.technician.strip(), fault_id=body.fault_id, note=body.note
            )
        except Exception as error:
            log.exception("diagnostics: site visit (%s) not stored", body.action)
            return self._refuse(
                503, "visit-not-stored", f"the visit was not stored, try again: {error}", retry_after_s=5
            )
        self._counters.visits[body.action] = self._counters.visits.get(body.action, 0) + 1
        node_id, uplink = self._node_and_uplink()
        online = uplink == "online"
        return _json(
            {
                "visit": msgspec.to_builtins(visit),
                "node_id": node_id,
                "uplink": uplink,
                "uplink_online": online,
                "detail": (
                    "signed and stored: the uplink is online, it is on its way to the centre"
                    if online
                    else "signed and stored: queued, will be sent when the uplink is back"
                ),
            },
            status=201,
        )

    async def _disabled(self, request: Request) -> Response:
        return self._refuse(
            404,
            "disabled",
            "diagnostics are disabled on this node: set http.pin_file in the agent's config "
            "to a file holding the PIN, and restart the agent",
        )

    async def _unknown(self, request: Request) -> Response:
        allowed = sorted({method for method, path in ROUTES if _matches(path, request.path)})
        if allowed:
            return self._refuse(
                405,
                "wrong-method",
                f"{request.method} is not accepted on {request.path}: use {' or '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        routes = "; ".join(f"{method} {path}" for method, path in ROUTES)
        return self._refuse(404, "not-found", f"no diagnostics at {request.path}; there are: {routes}")

    # --- plumbing -------------------------------------------------------------------------------

    def _route(self, name: str, handler: Handler) -> Handler:
        async def counted(request: Request) -> Response:
            self._counters.requests[name] = self._counters.requests.get(name, 0) + 1
            try:
                return await handler(request)
            except DiagnosticsError as error:
                return self._answer(error)

        return counted

    def _authorize(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        self._require_gate().check(token)
        return token

    def _require_gate(self) -> PinGate:
        assert self._gate is not None, "routes needing the PIN are mounted only with one"
        return self._gate

    def _node_and_uplink(self) -> tuple[str | None, str]:
        # Read after the visit is stored, so the answer says what happens to it next.
        try:
            status = self._target.status()
            return status["node"]["id"], str(status["uplink"]["state"])
        except Exception:
            log.exception("diagnostics: no status for the visit's answer")
            return None, "unknown"

    def _answer(self, error: DiagnosticsError) -> Response:
        match error:
            case WrongPin(attempts_left=left):
                return self._refuse(401, "wrong-pin", str(error), attempts_left=left)
            case LockedOut(retry_after_s=seconds, just_now=just_now):
                if just_now:
                    log.warning("diagnostics: login locked for %d s after wrong PINs in a row", seconds)
                return self._refuse(429, "locked-out", str(error), retry_after_s=seconds)
            case NotAuthorized(reason=reason, detail=detail):
                return self._refuse(
                    401, reason, detail, headers={"WWW-Authenticate": 'Bearer realm="watchpost diagnostics"'}
                )
            case InvalidRequest(status=status, reason=reason, detail=detail, field=name):
                response = self._refuse(status, reason, detail, field=name)
                if status == 413:
                    # The rest of an oversized body may still be coming: close, do not read it.
                    response.close = True
                return response
            case UnknownSelfTest(accepted=accepted):
                return self._refuse(404, "unknown-self-test", str(error), accepted=list(accepted))
            case SelfTestBusy():
                return self._refuse(409, "self-test-running", str(error))
        return self._refuse(400, "refused", str(error))

    def _refuse(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        retry_after_s: int | None = None,
        **extra: Any,
    ) -> Response:
        counters = self._counters
        counters.rejections[reason] = counters.rejections.get(reason, 0) + 1
        counters.last_rejection = f"{status} {reason}: {detail}"
        log.info("diagnostics: refused (%d %s): %s", status, reason, detail)
        answer: dict[str, Any] = {"error": detail, "reason": reason, **extra}
        headers = dict(headers or {})
        if retry_after_s is not None:
            answer["retry_after_s"] = retry_after_s
            headers["Retry-After"] = str(retry_after_s)
        return _json(answer, status=status, headers=headers)


def add_diagnostics_routes(
    router: Router,
    target: DiagnosticsTarget,
    *,
    pin: str | None,
    clock: Callable[[], float] = time.monotonic,
) -> Diagnostics:
    """Mount /diag/ on the agent's router. `pin` None leaves diagnostics disabled: every /diag
    route answers 404 saying so. `clock` (monotonic seconds) times sessions and lockouts."""
    gate = None if pin is None else PinGate(pin, clock=clock)
    diagnostics = Diagnostics(target, gate)
    diagnostics.add_routes(router)
    return diagnostics


def _read_json(request: Request) -> bytes:
    if request.content_type != "application/json" or (request.charset or "utf-8").lower() != "utf-8":
        given = request.headers.get("Content-Type")
        said = "no Content-Type" if given is None else f"Content-Type {given!r}"
        raise InvalidRequest(415, "wrong-content-type", f"{said} is not accepted: send application/json")
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise InvalidRequest(413, "too-large", f"the body is {length} bytes, at most {MAX_BODY_BYTES}")
    try:
        body = request.body
    except BodyTooLarge as error:  # over the server's own limit: cut off unread
        limit = min(error.limit, MAX_BODY_BYTES)
        raise InvalidRequest(413, "too-large", f"the body is over {limit} bytes") from None
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(413, "too-large", f"the body is over {MAX_BODY_BYTES} bytes")
    return body


def _json(value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        msgspec.json.encode(value),
        {"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})},
    )


def _matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\{[a-z]+\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None
