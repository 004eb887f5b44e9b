"""`watchpost fleet serve`: the fleet manager in one process. The REST API (uvicorn), the MQTT
ingest (its own threads), the escalation hooks and the OTA campaign runner (a thread each)
around one database, migrated at start-up. Several such processes may share one PostgreSQL and
one broker (`mqtt.share_group`).

Start-up order: settings checked, database migrated, the first admin token written if there is
none, ingest connected, then the API listens. Stop (SIGINT/SIGTERM): the API stops taking
requests, the ingest announces itself offline and leaves, the hooks and the campaign runner
finish their run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
import uvicorn
from sqlalchemy.orm import Session

from fleet.access import tokens
from fleet.access.models import ApiToken
from fleet.access.roles import Role
from fleet.api.app import NoNodeLink, create_app, wall_ms
from fleet.db import make_engine, migrate
from fleet.escalations.runner import Escalator
from fleet.ingest.apply import FaultPolicy
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.ota.runner import CampaignRunner
from fleet.settings import FleetSettings, read_secret
from fleet.tsdb import TimeSeriesWriter

log = logging.getLogger(__name__)


def ensure_admin_token(engine: sa.Engine, path: Path, *, now_ms: int) -> bool:
    """With no admin token in the database, issue one for "admin" and write it to `path`
    (mode 0600): the way in for the first operator. False when one existed already."""
    with Session(engine) as db, db.begin():
        exists = db.scalars(
            sa.select(ApiToken.id).where(ApiToken.role == Role.ADMIN.value, ApiToken.revoked_at_ms.is_(None))
        ).first()
        if exists is not None:
            return False
        issued = tokens.issue(db, subject="admin", role=Role.ADMIN, now_ms=now_ms, by="fleet/serve")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(issued.token + "\n")
    return True


def serve(settings: FleetSettings, *, clock_ms: Callable[[], int] = wall_ms) -> None:
    if settings.database_url.startswith("sqlite:///"):
        settings.fleet.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    token_file = settings.api.admin_token_file or settings.fleet.data_dir / "admin.token"
    if ensure_admin_token(engine, token_file, now_ms=clock_ms()):
        log.warning("fleet: first admin token written to %s (keep it safe; issue others with it)", token_file)

    ts = settings.timeseries
    tsdb = (
        TimeSeriesWriter(
            url=ts.url,
            token=read_secret(ts.token_file, key="timeseries.token_file") or "",
            org=ts.org,
            bucket=ts.bucket,
        )
        if ts.url
        else None
    )
    faults = FaultPolicy(rules=settings.fault_rules(), sla=settings.sla_policy())
    ingest = None
    if settings.mqtt.enabled:
        mq = settings.mqtt
        ingest = Ingest(
            IngestSettings(
                host=mq.host,
                port=mq.port,
                host_id=settings.fleet.host_id,
                share_group=mq.share_group,
                username=mq.username,
                password=read_secret(mq.password_file, key="mqtt.password_file"),
            ),
            engine=engine,
            tsdb=tsdb,
            faults=faults,
            clock_ms=clock_ms,
        )
    hooks = settings.escalations()
    stop = threading.Event()
    escalating = None
    if hooks.enabled:
        escalator = Escalator(engine, hooks, policy=faults.sla, clock_ms=clock_ms)
        escalating = threading.Thread(
            target=escalator.run, args=(stop,), name="fleet-escalations", daemon=True
        )

    ota = settings.ota_config()
    # Without MQTT the runner still times nodes out and steers campaigns; its offers wait.
    runner = CampaignRunner(engine, ingest or NoNodeLink(), ota, clock_ms=clock_ms)
    campaigning = threading.Thread(
        target=runner.run, args=(stop, settings.ota.tick_s), name="fleet-ota-campaigns", daemon=True
    )

    app = create_app(engine, clock_ms=clock_ms, node_link=ingest, sla_policy=faults.sla, ota=ota)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.api.host, port=settings.api.port, log_level="info", access_log=False
        )
    )
    try:
        if ingest is not None:
            ingest.start()
            log.info("fleet: ingest connected to %s:%s", settings.mqtt.host, settings.mqtt.port)
        if escalating is not None:
            escalating.start()
        campaigning.start()
        # uvicorn takes SIGINT/SIGTERM while it runs and raises them again once it stopped; these
        # handlers take that second delivery, so the shutdown below runs and the exit is clean.
        # (A signal before uvicorn runs tells it to stop as soon as it starts.)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: setattr(server, "should_exit", True))
        server.run()
    finally:
        stop.set()
        if campaigning.is_alive():
            campaigning.join(timeout=30)  # before the ingest goes: the runner sends through it
        if ingest is not None:
            ingest.stop()
        if escalating is not None:
            escalating.join(timeout=30)
        if tsdb is not None:
            tsdb.close()
        engine.dispose()
