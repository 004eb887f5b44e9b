"""Telemetry roll-ups from the bulk telemetry path: several batches merge into 5-minute buckets
of each node's metrics with the exact min, max and mean (figures worked out by hand below)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.ingest.apply import apply, apply_telemetry
from fleet.inventory import rollups
from fleet.inventory.rollups import BUCKET_MS, TelemetryRollup
from protocols import messages as m

B0 = 1_764_000_000_000 - 1_764_000_000_000 % BUCKET_MS  # a bucket's start
B1 = B0 + BUCKET_MS


def reading(ts: int, cpu: float, *, supply: float | None = None, fps: float | None = None) -> m.Telemetry:
    cameras = [] if fps is None else [m.CameraHealth(camera_id="cam-1", reachable=True, fps=fps)]
    storage = [m.StorageHealth(device="mmcblk0", health="ok", wear_pct=cpu / 10, free_bytes=1000)]
    return m.Telemetry(
        ts=ts,
        seq=0,
        readings=m.Readings(cpu_temp_c=cpu, supply_v=supply, cameras=cameras, storage=storage),
    )


def born(session: Session, node_id: str) -> None:
    birth = m.NodeBirth(
        ts=B0,
        seq=0,
        bd_seq=1,
        site_id=node_id.replace("pole", "site"),
        hardware="rpi4",
        agent_version="0.1.0",
    )
    apply(session, node_id, birth, B0)


def stored(engine: sa.Engine) -> dict[tuple[str, str, int], tuple[float, float, float, int]]:
    with Session(engine) as session:
        rows = session.execute(
            sa.select(
                TelemetryRollup.node_id,
                TelemetryRollup.metric,
                TelemetryRollup.bucket_ms,
                TelemetryRollup.min_value,
                TelemetryRollup.max_value,
                TelemetryRollup.sum_value,
                TelemetryRollup.count,
            )
        ).all()
    return {
        (n, metric, b): (low, high, total / count, count) for n, metric, b, low, high, total, count in rows
    }


def test_batches_merge_into_five_minute_buckets(fleet_engine: sa.Engine) -> None:
    with Session(fleet_engine) as session, session.begin():
        born(session, "pole-0001")
        born(session, "pole-0002")
    # Batch 1: pole-0001 twice in bucket 0 (one also in bucket 1), pole-0002 once.
    with Session(fleet_engine) as session, session.begin():
        apply_telemetry(
            session,
            [
                ("pole-0001", reading(B0 + 10_000, 50.0, supply=12.0, fps=25.0), B0 + 10_000),
                ("pole-0001", reading(B0 + 20_000, 40.0, supply=11.5), B0 + 20_000),
                ("pole-0002", reading(B0 + 15_000, 70.0), B0 + 15_000),
                ("pole-0001", reading(B1 + 1, 45.0), B1 + 1),
            ],
        )
    # Batch 2: more of bucket 0 (a new low and a new high) and bucket 1's last moment.
    with Session(fleet_engine) as session, session.begin():
        apply_telemetry(
            session,
            [
                ("pole-0001", reading(B0 + 299_999, 62.0, fps=24.0), B0 + 299_999),
                ("pole-0001", reading(B0 + 30_000, 36.0), B0 + 30_000),
                ("pole-0001", reading(B1 + BUCKET_MS - 1, 47.0), B1 + BUCKET_MS - 1),
            ],
        )
    # Batch 3: one more of bucket 0, alone.
    with Session(fleet_engine) as session, session.begin():
        apply_telemetry(session, [("pole-0001", reading(B0 + 40_000, 52.0, supply=12.5), B0 + 40_000)])

    rows = stored(fleet_engine)
    # pole-0001 cpu in bucket 0: 50, 40, 62, 36, 52 → min 36, max 62, mean 240 / 5 = 48.
    assert rows[("pole-0001", "cpu_temp_c", B0)] == (36.0, 62.0, 48.0, 5)
    # bucket 1: 45, 47 → mean 46.
    assert rows[("pole-0001", "cpu_temp_c", B1)] == (45.0, 47.0, 46.0, 2)
    # supply only where measured: 12.0, 11.5, 12.5 → mean 36 / 3 = 12.
    assert rows[("pole-0001", "supply_v", B0)] == (11.5, 12.5, 12.0, 3)
    assert ("pole-0001", "supply_v", B1) not in rows
    # the camera's fps (per camera) and the card's wear (per device: cpu / 10 in `reading`).
    assert rows[("pole-0001", "fps:cam-1", B0)] == (24.0, 25.0, 24.5, 2)
    assert rows[("pole-0001", "wear_pct:mmcblk0", B0)] == pytest.approx((3.6, 6.2, 4.8, 5))
    assert rows[("pole-0001", "free_bytes:mmcblk0", B1)] == (1000.0, 1000.0, 1000.0, 2)
    # another node's buckets are its own.
    assert rows[("pole-0002", "cpu_temp_c", B0)] == (70.0, 70.0, 70.0, 1)
    assert len(rows) == 11


def test_telemetry_of_an_offline_or_unknown_node_is_not_rolled_up(fleet_engine: sa.Engine) -> None:
    with Session(fleet_engine) as session, session.begin():
        apply_telemetry(session, [("pole-0404", reading(B0, 50.0), B0)])
    assert stored(fleet_engine) == {}


def test_history_reads_a_window_and_every_part_of_a_metric(fleet_engine: sa.Engine) -> None:
    with Session(fleet_engine) as session, session.begin():
        born(session, "pole-0001")
        apply_telemetry(
            session,
            [
                ("pole-0001", reading(B0, 50.0, fps=25.0), B0),
                ("pole-0001", reading(B1, 40.0, fps=20.0), B1),
            ],
        )
    with Session(fleet_engine) as session:
        points = rollups.history(session, "pole-0001", ["cpu_temp_c", "fps:"], since_ms=B1, until_ms=B1 + 1)
    assert [(p.bucket_ms, p.metric, p.bucket.mean) for p in points] == [
        (B1, "cpu_temp_c", 40.0),
        (B1, "fps:cam-1", 20.0),
    ]


def test_aggregate_folds_a_batch_without_a_database() -> None:
    buckets = rollups.aggregate([("pole-0001", reading(B0 + 1, 10.0)), ("pole-0001", reading(B0 + 2, 30.0))])
    cpu = buckets[("pole-0001", "cpu_temp_c", B0)]
    assert (cpu.min_value, cpu.max_value, cpu.mean, cpu.count) == (10.0, 30.0, 20.0, 2)


def test_a_buffer_merges_batches_before_they_are_written(fleet_engine: sa.Engine) -> None:
    # As the ingest does: each committed batch's roll-ups into one buffer, written once a second.
    buffer = rollups.RollupBuffer()
    with Session(fleet_engine) as session, session.begin():
        born(session, "pole-0001")
    for batch in ([reading(B0 + 1_000, 40.0)], [reading(B0 + 2_000, 46.0)], [reading(B1 + 1, 50.0)]):
        with Session(fleet_engine) as session, session.begin():
            apply_telemetry(session, [("pole-0001", t, t.ts) for t in batch], rollup_into=buffer)
    assert stored(fleet_engine) == {}  # nothing written yet: it waits in the buffer
    assert len(buffer) == 6  # cpu, wear and free space, in two buckets
    with Session(fleet_engine) as session, session.begin():
        rollups.store(session, buffer.drain())
    assert len(buffer) == 0
    cpu = {key: value for key, value in stored(fleet_engine).items() if key[1] == "cpu_temp_c"}
    assert cpu == {
        ("pole-0001", "cpu_temp_c", B0): (40.0, 46.0, 43.0, 2),  # (40 + 46) / 2
        ("pole-0001", "cpu_temp_c", B1): (50.0, 50.0, 50.0, 1),
    }
