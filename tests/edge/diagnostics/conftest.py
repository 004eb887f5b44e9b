"""Fixtures for the diagnostics tests: a small node standing in for the agent (it really signs
visits, with protocols.visits), served by the node's real HTTP server (edge.http) on a free
loopback port in a thread of its own, so urllib and `watchpost diag` can call it from the test's thread."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.diagnostics import Diagnostics, add_diagnostics_routes
from edge.http import HttpServer, Router
from protocols.messages import SiteVisit, VisitAction
from protocols.ota import key_id
from protocols.visits import sign_visit

PIN = "482913"
NODE_ID = "pole-0042"
NOW_MS = 1_764_000_000_000


class FakeNode:
    """What the agent offers the diagnostics, with values a test can set. `hold` keeps a
    self-test running until it is set (from the test's thread); `entered` says one is waiting."""

    def __init__(self, self_tests: Sequence[str] = ("bell-circuit", "mqtt")) -> None:
        self.self_tests = tuple(self_tests)
        self.key = Ed25519PrivateKey.generate()
        self.uplink_state = "offline"
        self.backlog = {"alarm": 0, "event": 3, "telemetry": 17, "video": 250}
        self.outbox: list[SiteVisit] = []  # visits kept until the uplink takes them
        self.ran: list[str] = []
        self.broken_tests: dict[str, Exception] = {}
        self.store_error: Exception | None = None
        self.hold: threading.Event | None = None
        self.entered = threading.Event()
        self._numbers = itertools.count(1)

    def status(self) -> dict[str, Any]:
        return {
            "node": {
                "id": NODE_ID,
                "site_id": "site-harbour-7",
                "agent_version": "0.1.0",
                "uptime_s": 7384,
                "time_ms": NOW_MS,
                "node_key_id": key_id(self.key.public_key()),
            },
            "uplink": {
                "state": self.uplink_state,
                "broker": "mqtt.city.example:8883",
                "last_error": None if self.uplink_state == "online" else "connection refused",
                "in_flight": 0,
            },
            "outbox": {"backlog": dict(self.backlog), "bytes": 81_920, "disk_full": False, "counters": {}},
            "pole": {
                "wiring": "controller",
                "link_up": True,
                "firmware": "1.4.2",
                "temp_c": 31.5,
                "supply_v": 12.1,
                "loop": "normal",
                "bell_down": False,
                "bell_presses": 12,
                "door_open": True,
                "lamp_on": False,
                "link_counters": {"frames": 5120, "retransmits": 3},
            },
            "lamp_on_until_ms": None,
            "cameras": [
                {"camera_id": "cam-north", "reachable": True, "latency_ms": 12.5, "detail": "RTSP 200"},
                {"camera_id": "cam-south", "reachable": False, "latency_ms": None, "detail": "[red]timeout"},
            ],
            "storage": [
                {
                    "device": "/dev/sda",
                    "health": "ok",
                    "reasons": [],
                    "wear_pct": 7,
                    "free_bytes": 412_000_000_000,
                }
            ],
            "counters": {"alarms": 2, "events": 40},
        }

    async def self_test(self, name: str) -> dict[str, Any]:
        if name not in self.self_tests:
            raise ValueError(f"unknown self-test {name!r}")
        self.entered.set()
        while self.hold is not None and not self.hold.is_set():
            await asyncio.sleep(0.01)
        if name in self.broken_tests:
            raise self.broken_tests[name]
        self.ran.append(name)
        if name == "mqtt":
            if self.uplink_state != "online":
                return {"ok": False, "detail": "no PUBACK within 10 s (uplink offline)"}
            return {"ok": True, "round_trip_ms": 41.0}
        return {"ok": True, "loop": "normal", "raw": 512}

    async def site_visit(
        self, action: VisitAction, technician: str, *, fault_id: str | None = None, note: str = ""
    ) -> SiteVisit:
        if self.store_error is not None:
            raise self.store_error
        now = NOW_MS + next(self._numbers)
        visit = sign_visit(
            NODE_ID,
            self.key,
            ts=now,
            visit_id=f"visit.{now}",
            action=action,
            technician=technician,
            at=now,
            fault_id=fault_id,
            note=note,
        )
        self.outbox.append(visit)
        return visit


@dataclass
class Clock:
    """Monotonic seconds, moved by the test."""

    now: float = 5_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ServedNode:
    url: str
    target: FakeNode
    clock: Clock
    diagnostics: Diagnostics
    pin: str | None = PIN


@contextlib.contextmanager
def serve(target: FakeNode, *, pin: str | None = PIN, clock: Clock | None = None) -> Iterator[ServedNode]:
    clock = clock or Clock()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="diagnostics-server", daemon=True)
    thread.start()

    async def start() -> tuple[HttpServer, Diagnostics, str]:
        router = Router()
        diagnostics = add_diagnostics_routes(router, target, pin=pin, clock=clock)
        server = HttpServer(router, "127.0.0.1", 0)
        await server.start()
        return server, diagnostics, f"http://127.0.0.1:{server.port}"

    try:
        server, diagnostics, url = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        try:
            yield ServedNode(url=url, target=target, clock=clock, diagnostics=diagnostics, pin=pin)
        finally:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture
def node() -> Iterator[ServedNode]:
    with serve(FakeNode()) as served:
        yield served


@pytest.fixture
def disabled_node() -> Iterator[ServedNode]:
    with serve(FakeNode(), pin=None) as served:
        yield served


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request with urllib; an error status is an Answer too, not an exception."""
    sent = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, headers=sent, method=method)
    try:
        with _opener.open(request, timeout=30) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        answer = Answer(error.code, dict(error.headers), error.read())
        error.close()
        return answer


def login(node: ServedNode, pin: str = PIN) -> str:
    answer = call(node.url, "POST", "/diag/api/login", {"pin": pin})
    assert answer.status == 200, answer.body
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


@pytest.fixture
def token(node: ServedNode) -> str:
    return login(node)


def in_thread(work: Callable[[], Answer]) -> tuple[threading.Thread, list[Answer]]:
    """Run a request in a thread of its own; its answer lands in the list."""
    answers: list[Answer] = []
    thread = threading.Thread(target=lambda: answers.append(work()), daemon=True)
    thread.start()
    return thread, answers
