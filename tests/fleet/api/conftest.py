"""The fleet API served for real: uvicorn on a free loopback port, in a thread, around the
test's database (SQLite and a real PostgreSQL) with the test's clock. `api.as_(role)` calls it
with a token of that role, over HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.access.roles import Role
from fleet.api.app import create_app
from protocols import messages as m
from watchpost.apiserver import ApiServer

T0 = 1_764_000_000_000  # 2025-11-24 16:00 UTC


@dataclass
class TestClock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class SentToNodes:
    """The link down to the nodes, recording what the API sent (the MQTT path itself is
    tested with a real broker in test_alarms_e2e)."""

    messages: list[tuple[str, m.Message]] = field(default_factory=list)

    def send(self, node_id: str, message: m.Message) -> None:
        self.messages.append((node_id, message))


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str]
    text: str

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code: str = self.body["error"]["code"]
            return code
        return None


class Client:
    def __init__(self, port: int, token: str | None) -> None:
        self.port = port
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if payload is not None:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        kind = response.getheader("content-type", "")
        parsed = json.loads(text) if kind.startswith("application/json") and text else None
        return Response(response.status, parsed, {k.lower(): v for k, v in response.getheaders()}, text)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Response:
        return self.request("POST", path, body if body is not None else {})


class Api:
    def __init__(self, engine: sa.Engine, port: int, clock: TestClock, nodes: SentToNodes) -> None:
        self.engine = engine
        self.port = port
        self.clock = clock
        self.nodes = nodes
        self._tokens: dict[str, str] = {}

    def token(self, role: Role, subject: str | None = None) -> str:
        subject = subject or f"{role.value}-1"
        if subject not in self._tokens:
            with Session(self.engine) as db, db.begin():
                issued = tokens.issue(db, subject=subject, role=role, now_ms=self.clock.now, by="test")
            self._tokens[subject] = issued.token
        return self._tokens[subject]

    def as_(self, role: Role, subject: str | None = None) -> Client:
        return Client(self.port, self.token(role, subject))

    def anonymous(self) -> Client:
        return Client(self.port, None)


def serve(app: Any) -> ApiServer:
    return ApiServer(app)


@pytest.fixture
def api(fleet_engine: sa.Engine) -> Iterator[Api]:
    clock, nodes = TestClock(), SentToNodes()
    with ApiServer(create_app(fleet_engine, clock_ms=clock, node_link=nodes)) as server:
        yield Api(fleet_engine, server.port, clock, nodes)
