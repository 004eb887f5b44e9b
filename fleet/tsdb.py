"""Time series of the fleet: node telemetry written as InfluxDB line protocol to any
`/api/v2/write` endpoint (InfluxDB 2.x/3.x in production; VictoriaMetrics in the tests). The only
module of the project that imports influxdb-client.

One reading becomes a `node` point (tags: node, site) plus one `camera` point per camera and one
`storage` point per storage device, timestamped with the node's own `ts` (ms). Writes are
synchronous and batched by the caller (ingest flushes a batch per database transaction), so a
failed write is an exception the ingest can retry, not a lost background thread's log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from influxdb_client import InfluxDBClient, Point, WritePrecision  # type: ignore[attr-defined]
from influxdb_client.client.write_api import SYNCHRONOUS

from protocols import messages as m

_NODE_FIELDS = (
    "uptime_s",
    "cpu_temp_c",
    "mem_used_pct",
    "disk_free_bytes",
    "controller_temp_c",
    "supply_v",
    "controller_heap_free",
    "link_errors",
    "outbox_backlog",
    "outbox_dropped",
)


class TimeSeriesError(RuntimeError):
    """A write was refused or could not be sent; `retryable` when trying again may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One telemetry message of one node, as ingest hands it over."""

    node_id: str
    site_id: str
    telemetry: m.Telemetry


def points(readings: Iterable[NodeReading]) -> list[Point]:
    """The points for a batch of readings (pure: no I/O)."""
    out: list[Point] = []
    for reading in readings:
        r = reading.telemetry.readings
        ts = reading.telemetry.ts
        node = (
            Point("node")
            .tag("node", reading.node_id)
            .tag("site", reading.site_id)
            .time(ts, WritePrecision.MS)
        )
        fields = 0
        for name in _NODE_FIELDS:
            value = getattr(r, name)
            if value is not None:
                node = node.field(name, float(value))
                fields += 1
        for flag in ("throttled", "clock_synced"):
            value = getattr(r, flag)
            if value is not None:
                node = node.field(flag, 1.0 if value else 0.0)
                fields += 1
        if fields:
            out.append(node)
        for camera in r.cameras:
            point = (
                Point("camera")
                .tag("node", reading.node_id)
                .tag("camera", camera.camera_id)
                .field("reachable", 1.0 if camera.reachable else 0.0)
                .time(ts, WritePrecision.MS)
            )
            if camera.fps is not None:
                point = point.field("fps", camera.fps)
            if camera.bitrate_kbps is not None:
                point = point.field("bitrate_kbps", camera.bitrate_kbps)
            out.append(point)
        for disk in r.storage:
            point = (
                Point("storage")
                .tag("node", reading.node_id)
                .tag("device", disk.device)
                .field("failing", 1.0 if disk.health == "failing" else 0.0)
                .field("read_only", 1.0 if disk.read_only else 0.0)
                .time(ts, WritePrecision.MS)
            )
            if disk.free_bytes is not None:
                point = point.field("free_bytes", float(disk.free_bytes))
            if disk.wear_pct is not None:
                point = point.field("wear_pct", disk.wear_pct)
            out.append(point)
    return out


class TimeSeriesWriter:
    """`writer.write(readings)` sends one batch; `close()` at shutdown."""

    def __init__(
        self,
        *,
        url: str,
        token: str = "",
        org: str = "watchpost",
        bucket: str = "watchpost",
        timeout_ms: int = 10_000,
    ) -> None:
        self.bucket = bucket
        self.org = org
        self._client = InfluxDBClient(url=url, token=token or "unused", org=org, timeout=timeout_ms)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self.points_written = 0

    def write(self, readings: Sequence[NodeReading]) -> int:
        batch = points(readings)
        if not batch:
            return 0
        try:
            # Each point carries its own precision (ms): no write_precision here.
            self._write_api.write(bucket=self.bucket, org=self.org, record=batch)
        except Exception as error:  # influxdb-client raises ApiException, urllib3 errors, OSError...
            status = getattr(error, "status", None)
            retryable = status is None or status >= 500 or status == 429
            raise TimeSeriesError(
                f"time-series write of {len(batch)} points failed: {error}", retryable=retryable
            ) from error
        self.points_written += len(batch)
        return len(batch)

    def close(self) -> None:
        self._write_api.close()
        self._client.close()
