"""Fleet time series through influxdb-client into a real VictoriaMetrics (its /api/v2/write)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

from fleet.tsdb import NodeReading, TimeSeriesError, TimeSeriesWriter, points
from protocols import messages as m
from watchpost.victoriametrics import VictoriaMetrics

NOW = int(time.time() * 1000) // 1000 * 1000  # whole seconds: VictoriaMetrics keeps ms


def telemetry(ts: int, **readings: object) -> m.Telemetry:
    return m.Telemetry(ts=ts, seq=3, readings=m.Readings(**readings))  # type: ignore[arg-type]


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float], int]:
    """InfluxDB line protocol (no escapes needed here): measurement,tags fields timestamp."""
    head, fields, ts = line.split(" ")
    measurement, *tags = head.split(",")
    return (
        measurement,
        dict(tag.split("=") for tag in tags),
        {k: float(v) for k, v in (f.split("=") for f in fields.split(","))},  # no "i": floats
        int(ts),
    )


def export(server: VictoriaMetrics, selector: str) -> list[dict[str, object]]:
    query = urllib.parse.urlencode({"match[]": selector})
    with urllib.request.urlopen(f"{server.url}/api/v1/export?{query}", timeout=10) as response:
        return [json.loads(line) for line in response.read().splitlines() if line]


def test_points_carry_what_the_node_measured_and_nothing_it_did_not() -> None:
    reading = NodeReading(
        "pole-0412",
        "site-0412",
        telemetry(
            NOW,
            cpu_temp_c=51.5,
            throttled=False,
            cameras=[m.CameraHealth(camera_id="cam-1", reachable=True, fps=25.0)],
            storage=[m.StorageHealth(device="/dev/sda", health="failing", free_bytes=10)],
        ),
    )
    parsed = [parse_line(p.to_line_protocol()) for p in points([reading])]
    assert parsed == [
        ("node", {"node": "pole-0412", "site": "site-0412"}, {"cpu_temp_c": 51.5, "throttled": 0.0}, NOW),
        ("camera", {"camera": "cam-1", "node": "pole-0412"}, {"fps": 25.0, "reachable": 1.0}, NOW),
        (
            "storage",
            {"device": "/dev/sda", "node": "pole-0412"},
            {"failing": 1.0, "free_bytes": 10.0, "read_only": 0.0},
            NOW,
        ),
    ]
    assert points([NodeReading("pole-1", "site-1", telemetry(NOW))]) == []  # nothing measured


def test_telemetry_written_with_influxdb_client_reads_back_from_victoriametrics(
    victoriametrics: VictoriaMetrics,
) -> None:
    writer = TimeSeriesWriter(url=victoriametrics.url)
    try:
        readings = [
            NodeReading("pole-tsdb", "site-0412", telemetry(NOW - 2000, cpu_temp_c=50.0, outbox_backlog=7)),
            NodeReading("pole-tsdb", "site-0412", telemetry(NOW - 1000, cpu_temp_c=52.5, outbox_backlog=0)),
        ]
        assert writer.write(readings) == 2
    finally:
        writer.close()
    with urllib.request.urlopen(f"{victoriametrics.url}/internal/force_flush", timeout=10):
        pass
    (series,) = export(victoriametrics, 'node_cpu_temp_c{node="pole-tsdb"}')
    assert series["values"] == [50.0, 52.5]
    assert series["timestamps"] == [NOW - 2000, NOW - 1000]
    assert series["metric"]["site"] == "site-0412"  # type: ignore[index]


def test_an_unreachable_server_is_a_retryable_error() -> None:
    writer = TimeSeriesWriter(url="http://127.0.0.1:9", timeout_ms=2000)
    try:
        with pytest.raises(TimeSeriesError) as caught:
            writer.write([NodeReading("pole-1", "site-1", telemetry(NOW, cpu_temp_c=40.0))])
        assert caught.value.retryable
    finally:
        writer.close()
