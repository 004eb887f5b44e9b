"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the fleet
manager (ingest and API with its pages, in this process) on a real Mosquitto and a real
PostgreSQL. The test plays the pole over MQTT (`dashboard.pole`).

Every browser context made here refuses requests that leave the machine and records them;
the fixture fails the test if the pages tried any. Screenshots go to build/screenshots/.
Browser test modules mark themselves `browser`, `broker` and `postgres`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, BrowserContext, Page, Route
from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.access.roles import Role
from fleet.api.app import create_app
from fleet.db import make_engine, migrate
from fleet.ingest.apply import FaultPolicy
from fleet.ingest.mqtt import Ingest, IngestSettings
from protocols import messages as m
from protocols.topics import node_topic
from tests.mqtt_observer import Observer
from watchpost.apiserver import ApiServer
from watchpost.broker import MosquittoBroker

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone, portrait
USERS = {
    "admin-1": Role.ADMIN,
    "operator-7": Role.OPERATOR,
    "tech-0193": Role.TECHNICIAN,
    "tech-0200": Role.TECHNICIAN,
    "viewer-1": Role.VIEWER,
}


@dataclass
class Dashboard:
    url: str
    engine: sa.Engine
    ingest: Ingest
    pole: Observer
    tokens: dict[str, str]
    offsite: list[str] = field(default_factory=list)

    def send(self, node_id: str, message: m.Message) -> None:
        """Publish as the pole `node_id` would."""
        self.pole.publish(node_topic(node_id, m.kind_of(message)), m.encode(message))

    def until(self, condition: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.02)
        return value

    def context(
        self, browser: Browser, subject: str | None, *, phone: bool = False, lang: str = "en"
    ) -> BrowserContext:
        """A browser context signed in as `subject` (None: signed out), at desktop or phone size."""
        context = browser.new_context(
            base_url=self.url,
            viewport=PHONE if phone else DESKTOP,
            is_mobile=phone,
            has_touch=phone,
            locale="ko-KR" if lang == "ko" else "en-GB",
        )
        refuse_offsite(context, self.url, self.offsite)
        if subject is not None:
            context.add_cookies([{"name": "wp_session", "value": self.tokens[subject], "url": self.url}])
        return context


def refuse_offsite(context: BrowserContext, url: str, offsite: list[str]) -> None:
    """Abort every request of `context` to a host other than `url`'s, and record it in `offsite`."""
    here = urlsplit(url).netloc

    def guard(route: Route) -> None:
        if urlsplit(route.request.url).netloc != here:
            offsite.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)


def shoot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as build/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def dashboard(broker: MosquittoBroker, postgres_url: str) -> Iterator[Dashboard]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    with Session(engine) as db, db.begin():
        issued = {
            subject: tokens.issue(db, subject=subject, role=role, now_ms=0, by="test").token
            for subject, role in USERS.items()
        }
    ingest = Ingest(
        IngestSettings(host=broker.host, port=broker.port, host_id="fleet-web"),
        engine=engine,
        faults=FaultPolicy(),
    )
    ingest.start()
    try:
        with ApiServer(create_app(engine, node_link=ingest)) as server, Observer(broker) as pole:
            board = Dashboard(server.url, engine, ingest, pole, issued)
            yield board
            assert board.offsite == [], f"the pages asked for something off this machine: {board.offsite}"
    finally:
        ingest.stop()
        engine.dispose()
