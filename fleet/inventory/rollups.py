"""Telemetry history kept in the fleet's own database, so a node's charts work on the embedded
SQLite too (the time series database, fleet.tsdb, may not be there): each metric of each node
as min, max, sum and count per 5-minute bucket of the node's own `ts`.

`aggregate` folds a batch of readings in Python (pure); `store` writes buckets as one
multi-row upsert that merges into buckets already stored; `RollupBuffer` gathers the buckets
of several batches (the ingest writes it once a second); `history` reads them back for the
node page.

Metric names: the reading's field for node-wide values (`cpu_temp_c`), `field:part` for a
camera's or a storage device's (`fps:cam-1`, `wear_pct:mmcblk0`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from fleet.db import Base
from protocols import messages as m

BUCKET_MS: Final = 5 * 60 * 1000
NODE_METRICS: Final = ("cpu_temp_c", "controller_temp_c", "supply_v", "link_errors")
CAMERA_METRICS: Final = ("bitrate_kbps", "fps")
STORAGE_METRICS: Final = ("wear_pct", "free_bytes")


class TelemetryRollup(Base):
    """One metric of one node over one bucket [bucket_ms, bucket_ms + BUCKET_MS). The key
    (node, metric, bucket) is the primary key: unique, the upsert's conflict target and the
    index the charts read by; no surrogate id to run out on a table this size."""

    __tablename__ = "telemetry_rollup"

    node_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    bucket_ms: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)  # bucket start, epoch ms
    min_value: Mapped[float] = mapped_column(sa.Float)
    max_value: Mapped[float] = mapped_column(sa.Float)
    sum_value: Mapped[float] = mapped_column(sa.Float)
    count: Mapped[int] = mapped_column(sa.Integer)


@dataclass(slots=True)
class Bucket:
    """A bucket's figures; `mean` is what a chart draws."""

    min_value: float
    max_value: float
    sum_value: float
    count: int

    def add(self, value: float) -> None:
        self.min_value = min(self.min_value, value)
        self.max_value = max(self.max_value, value)
        self.sum_value += value
        self.count += 1

    def merge(self, other: Bucket) -> None:
        self.min_value = min(self.min_value, other.min_value)
        self.max_value = max(self.max_value, other.max_value)
        self.sum_value += other.sum_value
        self.count += other.count

    @property
    def mean(self) -> float:
        return self.sum_value / self.count


Key = tuple[str, str, int]  # node id, metric, bucket start


def bucket_of(ts_ms: int) -> int:
    return ts_ms - ts_ms % BUCKET_MS


def values(readings: m.Readings) -> Iterable[tuple[str, float]]:
    """The metrics one reading holds, by name (absent ones left out)."""
    for name in NODE_METRICS:
        value = getattr(readings, name)
        if value is not None:
            yield name, float(value)
    for camera in readings.cameras:
        if camera.bitrate_kbps is not None:
            yield f"bitrate_kbps:{camera.camera_id}", float(camera.bitrate_kbps)
        if camera.fps is not None:
            yield f"fps:{camera.camera_id}", float(camera.fps)
    for disk in readings.storage:
        if disk.wear_pct is not None:
            yield f"wear_pct:{disk.device}", float(disk.wear_pct)
        if disk.free_bytes is not None:
            yield f"free_bytes:{disk.device}", float(disk.free_bytes)


class RollupBuffer:
    """Buckets gathered over several batches and written together (`drain` then `store`): a
    node's readings within one 5-minute bucket merge here, so the database takes one row per
    node and metric a flush instead of one per reading. Used by one thread (the ingest's)."""

    def __init__(self) -> None:
        self._buckets: dict[Key, Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def add(self, buckets: dict[Key, Bucket]) -> None:
        for key, bucket in buckets.items():
            found = self._buckets.get(key)
            if found is None:
                self._buckets[key] = Bucket(
                    bucket.min_value, bucket.max_value, bucket.sum_value, bucket.count
                )
            else:
                found.merge(bucket)

    def drain(self) -> dict[Key, Bucket]:
        buckets, self._buckets = self._buckets, {}
        return buckets


def aggregate(readings: Iterable[tuple[str, m.Telemetry]]) -> dict[Key, Bucket]:
    """A batch of (node id, telemetry) folded into buckets: one entry per key, as one upsert
    statement needs (PostgreSQL refuses to update a row twice in one statement)."""
    buckets: dict[Key, Bucket] = {}
    for node_id, telemetry in readings:
        start = bucket_of(telemetry.ts)
        for metric, value in values(telemetry.readings):
            key = (node_id, metric, start)
            found = buckets.get(key)
            if found is None:
                buckets[key] = Bucket(value, value, value, 1)
            else:
                found.add(value)
    return buckets


def store(session: Session, buckets: dict[Key, Bucket]) -> None:
    """Merge the batch's buckets into those stored: one upsert, sent as multi-row INSERTs."""
    if not buckets:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = (postgresql.insert if postgres else sqlite.insert)(TelemetryRollup)
    table = TelemetryRollup.__table__.c
    smaller, larger = (sa.func.least, sa.func.greatest) if postgres else (sa.func.min, sa.func.max)
    rows = [
        {
            "node_id": node_id,
            "metric": metric,
            "bucket_ms": start,
            "min_value": b.min_value,
            "max_value": b.max_value,
            "sum_value": b.sum_value,
            "count": b.count,
        }
        # Sorted: concurrent workers lock the rows in one order, so they cannot deadlock.
        for (node_id, metric, start), b in sorted(buckets.items())
    ]
    statement = insert.on_conflict_do_update(
        index_elements=["node_id", "metric", "bucket_ms"],
        set_={
            "min_value": smaller(table.min_value, insert.excluded.min_value),
            "max_value": larger(table.max_value, insert.excluded.max_value),
            "sum_value": table.sum_value + insert.excluded.sum_value,
            "count": table.count + insert.excluded.count,
        },
    )
    # A list of rows: SQLAlchemy sends them as multi-row INSERTs ("insertmanyvalues") from one
    # cached compilation, where building one literal VALUES list would compile it anew each batch.
    session.execute(statement, rows)


@dataclass(frozen=True, slots=True)
class Point:
    bucket_ms: int
    metric: str
    bucket: Bucket


def history(
    session: Session, node_id: str, metrics: Iterable[str], *, since_ms: int, until_ms: int
) -> list[Point]:
    """The stored buckets of `node_id` whose start is in [since_ms, until_ms), for the metrics
    named exactly or, with a trailing ':', for every part of one (`fps:` gives each camera's)."""
    exact = [name for name in metrics if not name.endswith(":")]
    prefixes = [name for name in metrics if name.endswith(":")]
    if not exact and not prefixes:
        return []
    row = TelemetryRollup
    chosen: list[sa.ColumnElement[bool]] = [row.metric.in_(exact)] if exact else []
    chosen += [row.metric.startswith(prefix, autoescape=True) for prefix in prefixes]
    query = (
        sa.select(row.bucket_ms, row.metric, row.min_value, row.max_value, row.sum_value, row.count)
        .where(row.node_id == node_id, row.bucket_ms >= since_ms, row.bucket_ms < until_ms, sa.or_(*chosen))
        .order_by(row.bucket_ms, row.metric)
    )
    return [
        Point(bucket_ms, metric, Bucket(low, high, total, count))
        for bucket_ms, metric, low, high, total, count in session.execute(query)
    ]
