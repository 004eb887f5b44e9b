"""GET /api/v1/reports/sla/{year}-{month}: JSON, .csv and .html of the seeded month, behind a
token with the read permission, and the API's JSON errors for a bad period or no token.

Requests go straight to the ASGI app (the dev environment has no httpx for TestClient): one
`http.request` in, the response's start and body collected."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.access.roles import Role
from fleet.api import errors
from fleet.reports.routes import report_settings
from fleet.reports.routes import router as report_routes
from fleet.reports.service import ReportSettings
from tests.fleet.reports.seed import AS_OF, SETTINGS, seed_database


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def get(app: FastAPI, path: str, *, token: str | None, query: str = "") -> Reply:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body)


@pytest.fixture
def app(fleet_engine: sa.Engine) -> FastAPI:
    seed_database(fleet_engine)
    api = FastAPI()
    api.state.engine = fleet_engine
    api.state.clock_ms = lambda: AS_OF
    api.state.node_link = None
    errors.install(api)
    api.include_router(report_routes, prefix="/api/v1")
    api.dependency_overrides[report_settings] = lambda: SETTINGS  # the city's own schedule
    return api


@pytest.fixture
def viewer(fleet_engine: sa.Engine) -> str:
    with Session(fleet_engine) as session, session.begin():
        return tokens.issue(session, subject="viewer-1", role=Role.VIEWER, now_ms=AS_OF, by="test").token


def test_json_report_of_the_month(app: FastAPI, viewer: str) -> None:
    reply = get(app, "/api/v1/reports/sla/2026-11", token=viewer)
    assert reply.status == 200
    body = reply.json()
    assert (body["period"], body["time_zone"], body["final"]) == ("2026-11", "Asia/Seoul", False)
    total = body["total"]
    # The hand-worked figures of test_sla_month_figures: 13 faults, 9 handled, 8/12 and 7/10.
    assert (total["faults"], total["handled"], total["open_at_month_end"]) == (13, 9, 2)
    assert (total["response"]["met"], total["response"]["breached"]) == (8, 4)
    assert total["resolution"]["share"] == pytest.approx(0.7)
    assert (total["mtta_ms"], total["mttr_ms"]) == (960_000, 12_800_000)
    assert [i["expected"] for i in body["inspections"]] == [4, 2, None]


def test_csv_by_suffix_or_by_format(app: FastAPI, viewer: str) -> None:
    by_suffix = get(app, "/api/v1/reports/sla/2026-11.csv", token=viewer)
    by_query = get(app, "/api/v1/reports/sla/2026-11", token=viewer, query="format=csv")
    assert by_suffix.status == by_query.status == 200
    assert by_suffix.body == by_query.body
    assert by_suffix.headers["content-type"].startswith("text/csv")
    assert 'filename="sla-2026-11-faults.csv"' in by_suffix.headers["content-disposition"]
    total = list(csv.DictReader(io.StringIO(by_suffix.body.decode())))[-1]
    assert (total["category"], total["faults"], total["response_met_pct"]) == ("all", "13", "66.7")
    inspections = get(app, "/api/v1/reports/sla/2026-11.csv", token=viewer, query="table=inspections")
    rows = list(csv.DictReader(io.StringIO(inspections.body.decode())))
    assert [(r["kind"], r["done"]) for r in rows] == [("field", "3"), ("centre", "1"), ("remote", "3")]


def test_printable_html(app: FastAPI, viewer: str) -> None:
    reply = get(app, "/api/v1/reports/sla/2026-11.html", token=viewer)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.body.decode()
    assert "@media print" in page
    assert "213.3" in page  # MTTR, minutes
    assert "<script" not in page


def test_no_token_is_401_in_the_api_s_error_shape(app: FastAPI) -> None:
    reply = get(app, "/api/v1/reports/sla/2026-11", token=None)
    assert reply.status == 401
    assert reply.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("period", ["2026-13", "2026-1", "26-11", "2026-11.pdf", "november"])
def test_a_bad_period_is_named(app: FastAPI, viewer: str, period: str) -> None:
    reply = get(app, f"/api/v1/reports/sla/{period}", token=viewer)
    assert reply.status == 422
    error = reply.json()["error"]
    assert error["code"] == "invalid-request"
    assert repr(period) in error["message"]
    assert error["details"][0]["field"] == "period"


def test_a_format_contradicting_the_suffix_is_refused(app: FastAPI, viewer: str) -> None:
    reply = get(app, "/api/v1/reports/sla/2026-11.csv", token=viewer, query="format=html")
    assert reply.status == 422
    assert "contradicts" in reply.json()["error"]["message"]


def test_default_settings_are_seoul_and_monthly_centre_checks() -> None:
    settings = report_settings()
    assert settings == ReportSettings()
    assert (settings.time_zone, settings.schedule.centre_every_months) == ("Asia/Seoul", 1)
