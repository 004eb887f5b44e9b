"""The fleet's FastAPI app. `create_app` takes what the process owns (the database engine, the
clock, the link down to nodes), so tests build it around a real database with their own clock.
Routes are versioned under /api/v1; the OpenAPI document is /api/v1/openapi.json."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from fastapi import Depends, FastAPI

from fleet.access.routes import router as access_routes
from fleet.alarms.routes import router as alarm_routes
from fleet.api import errors, headers
from fleet.api.deps import NodeLink, no_nul_characters
from fleet.audit.routes import router as audit_routes
from fleet.faults.routes import router as fault_routes
from fleet.faults.sla import SlaPolicy
from fleet.inspections.routes import router as inspection_routes
from fleet.inventory.routes import router as inventory_routes
from fleet.ota.releases import OtaConfig, ReleaseShelf
from fleet.ota.routes import node_router as ota_node_routes
from fleet.ota.routes import router as ota_routes
from fleet.reports.routes import router as report_routes
from fleet.web import pages
from protocols import messages as m

API_PREFIX = "/api/v1"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class NoNodeLink:
    """For an API without MQTT (tests of the API alone, a read replica): sending is refused."""

    def send(self, node_id: str, message: m.Message) -> None:
        raise ConnectionError("this fleet process has no MQTT link to the nodes")


def create_app(
    engine: sa.Engine,
    *,
    clock_ms: Callable[[], int] = wall_ms,
    node_link: NodeLink | None = None,
    sla_policy: SlaPolicy | None = None,
    ota: OtaConfig | None = None,
) -> FastAPI:
    app = FastAPI(
        title="watchpost fleet manager",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        dependencies=[Depends(no_nul_characters)],
    )
    app.state.engine = engine
    app.state.clock_ms = clock_ms
    app.state.node_link = node_link or NoNodeLink()
    app.state.sla_policy = sla_policy or SlaPolicy()
    # Without [ota] settings (tests of other domains): no trusted key, nowhere to keep uploads.
    app.state.ota_shelf = ReleaseShelf(ota or OtaConfig())
    errors.install(app)
    headers.install(app, docs_path=f"{API_PREFIX}/docs")
    routers = (
        access_routes,
        inventory_routes,
        fault_routes,
        alarm_routes,
        inspection_routes,
        report_routes,
        ota_routes,
        audit_routes,
    )
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(ota_node_routes)  # /ota/v1: what nodes fetch, without a token

    pages.install(app)  # the dashboard and the technicians' view, beside the API

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness, without a token: the process answers and its database does."""
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok"}

    return app
