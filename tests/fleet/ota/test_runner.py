"""The campaign runner and ingest against a real Mosquitto, on SQLite and a real PostgreSQL:
offers go out as real OtaOffer messages, the poles' OtaProgress comes back through the fleet's
ingest into each node's state, holds keep offers from a pole whose bell calls or whose fault is
being worked, waves open as the canary commits, and two workers ticking the same campaign at
once offer each node once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEntry
from fleet.db import make_engine
from fleet.ingest.mqtt import Ingest, IngestSettings
from fleet.ota import store
from fleet.ota.campaign import WavePlan
from fleet.ota.models import OtaCampaign, OtaCampaignNode
from fleet.ota.releases import OtaConfig
from fleet.ota.runner import CampaignRunner
from protocols import messages as m
from protocols.topics import Kind, node_topic
from tests.fleet.api import conftest as api_conftest
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0
from tests.fleet.ota.conftest import PUBLIC_URL, keep_release, make_release, ota_config
from tests.mqtt_observer import Observer, Seen
from watchpost.broker import MosquittoBroker

pytestmark = pytest.mark.broker
OFFERS = "watchpost/v1/node/+/down/ota-offer"


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def node_states(engine: sa.Engine) -> dict[str, tuple[str, str | None, str | None]]:
    with Session(engine) as db:
        rows = db.execute(
            sa.select(
                OtaCampaignNode.node_id, OtaCampaignNode.state, OtaCampaignNode.reason, OtaCampaignNode.hold
            )
        )
        return {node_id: (state, reason, hold) for node_id, state, reason, hold in rows}


def campaign_state(engine: sa.Engine) -> tuple[str, int]:
    with Session(engine) as db:
        state, opened = db.execute(sa.select(OtaCampaign.state, OtaCampaign.opened_waves)).one()
        return state, opened


def start_campaign(engine: sa.Engine, config: OtaConfig, nodes: int, plans: list[WavePlan]) -> str:
    for i in range(1, nodes + 1):
        seed.add_node(engine, f"pole-{i:04d}", last_seen_ms=T0)
    kept = keep_release(engine, config, make_release(artifact_size=1000))
    with Session(engine) as db, db.begin():
        created = store.create(
            db,
            store.CampaignRequest(release=kept, target=store.Target(), waves=plans, node_timeout_s=600),
            by="operator-1",
            now_ms=T0,
        )
        return created.row.campaign_id


@pytest.fixture
def ingest(fleet_engine: sa.Engine, broker: MosquittoBroker) -> Iterator[Ingest]:
    # The fleet's clock stands at T0, as the seeded nodes' last_seen: nobody goes silent.
    running = Ingest(
        IngestSettings(host=broker.host, port=broker.port, host_id="fleet-1"),
        engine=fleet_engine,
        clock_ms=api_conftest.TestClock(),
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def offers_to(seen: list[Seen], node_id: str) -> list[dict[str, object]]:
    return [s.json() for s in seen if s.topic == node_topic(node_id, Kind.OTA_OFFER)]


def test_offers_holds_waves_and_progress_through_a_real_broker(
    fleet_engine: sa.Engine, broker: MosquittoBroker, ingest: Ingest, tmp_path: Path
) -> None:
    config = ota_config(tmp_path)
    campaign_id = start_campaign(
        fleet_engine, config, 6, [WavePlan(nodes=1), WavePlan(percent=100, success_threshold=0.5)]
    )
    seed.press_bell(fleet_engine, "pole-0003", alarm_id="alarm-3", pressed_at=T0, received_at=T0 + 100)
    seed.open_fault(fleet_engine, "pole-0004", at=T0)
    runner = CampaignRunner(fleet_engine, ingest, config)

    with Observer(broker, "watchpost/v1/#") as poles:
        sent = {"pole-0001": 0, "pole-0002": 0, "pole-0005": 0, "pole-0006": 0}

        def say(node_id: str, state: str, **extra: object) -> None:
            sent[node_id] += 1
            progress = m.OtaProgress(
                ts=T0 + sent[node_id] * 1000,
                seq=sent[node_id],
                campaign_id=campaign_id,
                release="1.2.0",
                state=state,
                **extra,  # type: ignore[arg-type]
            )
            poles.publish(node_topic(node_id, Kind.OTA_PROGRESS), m.encode(progress))

        report = runner.run_once(T0 + 1000)
        assert report.offered == [(campaign_id, "pole-0001")]  # the canary
        seen = poles.wait_for(lambda s: len(offers_to(s, "pole-0001")) == 1)
        (offer,) = offers_to(seen, "pole-0001")
        assert offer == {
            "type": "ota-offer",
            "v": 1,
            "ts": T0 + 1000,
            "campaign_id": campaign_id,
            "release": "1.2.0",
            "manifest_url": f"{PUBLIC_URL}/ota/v1/releases/edge-agent-1.2.0/manifest.json",
            "manifest_sha256": offer["manifest_sha256"],
            "expires_at": T0 + 1000 + config.offer_ttl_ms,
        }
        assert m.decode(Kind.OTA_OFFER, json.dumps(offer).encode()) == m.OtaOffer(
            **{k: v for k, v in offer.items() if k != "type"}
        )  # type: ignore[arg-type]

        say("pole-0001", "downloading", progress=0.5)
        until(lambda: node_states(fleet_engine)["pole-0001"][0] == "downloading")
        assert runner.run_once(T0 + 2000).offered == []  # the canary is not through yet
        say("pole-0001", "committed")
        until(lambda: node_states(fleet_engine)["pole-0001"][0] == "committed")

        report = runner.run_once(T0 + 3000)
        assert sorted(n for _, n in report.offered) == ["pole-0002", "pole-0005", "pole-0006"]
        states = node_states(fleet_engine)
        assert states["pole-0003"] == ("queued", None, "bell-alarm")  # a citizen is calling
        assert states["pole-0004"] == ("queued", None, "open-fault")
        poles.wait_for(lambda s: sum(x.kind == "ota-offer" for x in s) == 4)

        say("pole-0002", "committed")
        say("pole-0005", "installing")
        say("pole-0005", "downloading")  # out of order: ignored
        say("pole-0006", "failed", reason="hash-mismatch", detail="artifact SHA-256 differs")
        until(lambda: node_states(fleet_engine)["pole-0006"][0] == "failed")
        until(lambda: node_states(fleet_engine)["pole-0005"][0] == "installing" and ingest.idle())
        assert node_states(fleet_engine)["pole-0006"][1] == "hash-mismatch"

        # 1 of 5 failed in the last wave: 0.2, over its abort_failure_rate (0.1): paused.
        runner.run_once(T0 + 4000)
        assert campaign_state(fleet_engine) == ("paused", 2)
        with Session(fleet_engine) as db:
            reason = db.scalars(sa.select(OtaCampaign.reason)).one()
            steps = list(
                db.scalars(
                    sa.select(AuditEntry.action).where(AuditEntry.target == f"ota-campaign/{campaign_id}")
                )
            )
        assert reason.startswith("abort: wave 1 has 1 of 5 failed")
        assert steps == ["ota.campaign.wave-open", "ota.campaign.wave-open", "ota.campaign.pause"]
        # Paused: nodes at work still time out, nobody new is offered.
        report = runner.run_once(T0 + 3000 + 600_000)
        assert (report.offered, report.timed_out) == ([], [(campaign_id, "pole-0005")])
    assert sum(1 for s in poles.messages if s.kind == "ota-offer") == 4


def test_two_workers_ticking_at_once_offer_each_node_once(
    fleet_engine: sa.Engine, broker: MosquittoBroker, ingest: Ingest, tmp_path: Path
) -> None:
    config = ota_config(tmp_path)
    start_campaign(fleet_engine, config, 30, [WavePlan(percent=100)])
    other_engine = make_engine(fleet_engine.url.render_as_string(hide_password=False))
    other_ingest = Ingest(
        IngestSettings(host=broker.host, port=broker.port, host_id="fleet-2"),
        engine=other_engine,
        clock_ms=api_conftest.TestClock(),
    )
    other_ingest.start()
    try:
        runners = [
            CampaignRunner(fleet_engine, ingest, config),
            CampaignRunner(other_engine, other_ingest, config),
        ]
        with Observer(broker, OFFERS) as poles:
            for tick in range(3):
                start = threading.Barrier(2)
                errors: list[BaseException] = []
                threads = [
                    threading.Thread(target=_tick_once, args=(r, T0 + tick, start, errors)) for r in runners
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert errors == []
            # A last message from each worker: the broker keeps each client's order, so once
            # both are in, every offer the workers sent is in too.
            for n, worker in enumerate((ingest, other_ingest)):
                worker.send(
                    f"sentinel-{n}",
                    m.OtaOffer(
                        ts=T0,
                        campaign_id="end",
                        release="0.0.0",
                        manifest_url="http://x/",
                        manifest_sha256="0" * 64,
                        expires_at=T0,
                    ),
                )
            seen = poles.wait_for(lambda s: sum("sentinel" in x.topic for x in s) == 2)
            per_node: dict[str, int] = {}
            for s in poles.messages:
                per_node[s.topic] = per_node.get(s.topic, 0) + 1
        per_node = {topic: n for topic, n in per_node.items() if "sentinel" not in topic}
        assert len(per_node) == 30
        assert set(per_node.values()) == {1}, seen
        assert {state for state, _, _ in node_states(fleet_engine).values()} == {"notified"}
    finally:
        other_ingest.stop()
        other_engine.dispose()


def _tick_once(
    runner: CampaignRunner, at: int, start: threading.Barrier, errors: list[BaseException]
) -> None:
    start.wait()  # both workers at once
    try:
        runner.run_once(at)
    except BaseException as error:
        errors.append(error)
