"""The fleet manager in `watchpost demo story`: the real ingest and REST API in this process, on an
embedded SQLite in the demo's scratch directory. The demo's operator and technician work it
through the API with their own tokens, as the control centre and a phone would."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.access.roles import Role
from fleet.api.app import create_app, wall_ms
from fleet.db import make_engine, migrate
from fleet.ingest.apply import FaultPolicy
from fleet.ingest.mqtt import Ingest, IngestSettings
from watchpost.apiserver import ApiServer


class DemoFleet:
    """`with DemoFleet(host, port, work) as fleet:` then `fleet.get(...)`, `fleet.post(...)`."""

    def __init__(self, broker_host: str, broker_port: int, work: Path) -> None:
        url = f"sqlite:///{work / 'fleet.db'}"
        migrate(url)
        self.engine = make_engine(url)
        self.ingest = Ingest(
            IngestSettings(host=broker_host, port=broker_port, host_id="fleet-demo"),
            engine=self.engine,
            faults=FaultPolicy(),
        )
        with Session(self.engine) as db, db.begin():
            self.tokens = {
                subject: tokens.issue(db, subject=subject, role=role, now_ms=wall_ms(), by="demo").token
                for subject, role in (("operator-7", Role.OPERATOR), ("tech-0193", Role.TECHNICIAN))
            }
        self._stack = contextlib.ExitStack()
        self.api: ApiServer | None = None

    def __enter__(self) -> Self:
        self.ingest.start()
        self._stack.callback(self.ingest.stop)
        self.api = self._stack.enter_context(ApiServer(create_app(self.engine, node_link=self.ingest)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
        self.engine.dispose()

    def call(self, method: str, path: str, body: Any = None, *, who: str = "operator-7") -> Any:
        assert self.api is not None
        request = urllib.request.Request(
            f"{self.api.url}/api/v1{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.tokens[who]}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def get(self, path: str, *, who: str = "operator-7") -> Any:
        return self.call("GET", path, who=who)

    def post(self, path: str, body: Any = None, *, who: str = "operator-7") -> Any:
        return self.call("POST", path, body if body is not None else {}, who=who)

    def until(self, path: str, wanted: Callable[[Any], Any], *, timeout: float = 20.0) -> Any:
        """Poll `path` until `wanted(answer)` is truthy; returns that value."""
        deadline = time.monotonic() + timeout
        while True:
            found = wanted(self.get(path))
            if found:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fleet's {path} did not show it within {timeout} s")
            time.sleep(0.05)
