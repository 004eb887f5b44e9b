"""The benchmarks run (--quick) and print each figure beside its reference. No timing is checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import payload_decode
from bench._report import Figure

BENCH = Path(__file__).resolve().parents[1] / "bench"

# "<label>  best <number>  median <number>  <unit>", the label indented for a reference.
FIGURE_LINE = re.compile(
    r"^(?P<label>\S.*?|  reference: .*?)"
    r"\s+best\s+(?P<best>[\d,.]+)\s+median\s+(?P<median>[\d,.]+)\s+(?P<unit>\S+)"
)


def run_quick(script: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        cwd=BENCH.parent,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def figures(output: str) -> dict[tuple[str, str], tuple[float, float]]:
    # (label, unit) -> (best, median); a reference is labelled "reference: <name>".
    found = {}
    for line in output.splitlines():
        match = FIGURE_LINE.match(line)
        if match:
            best, median = (float(match[key].replace(",", "")) for key in ("best", "median"))
            found[(match["label"].strip(), match["unit"])] = (best, median)
    return found


def assert_header(output: str) -> None:
    for key in ("date", "machine", "python"):
        assert re.search(rf"^  {key}\s+\S", output, re.MULTILINE), f"no {key} line in:\n{output}"


def assert_positive(found: dict[tuple[str, str], tuple[float, float]], unit: str, *labels: str) -> None:
    """Each labelled figure (and reference) was printed with a positive best and median."""
    for label in labels:
        best, median = found[(label, unit)]
        assert best > 0, (label, unit)
        assert median > 0, (label, unit)


@pytest.mark.micropython
def test_link_decoder_prints_cpython_and_micropython_figures_with_references(micropython: Path) -> None:
    output = run_quick("link_decoder.py")
    assert_header(output)
    found = figures(output)
    for unit in ("frames/s", "MB/s"):
        for label in (
            "link decoder, CPython",
            'reference: bytes.split(b"\\x00"), CPython',
            "link decoder, MicroPython unix port",
            "reference: link decoder, CPython",
        ):
            best, median = found[(label, unit)]
            assert best > 0, (label, unit)
            assert median > 0, (label, unit)


def test_payload_decode_prints_figures_with_references_and_target() -> None:
    output = run_quick("payload_decode.py")
    assert_header(output)
    found = figures(output)
    assert_positive(
        found,
        "msg/s",
        "messages.decode(TELEMETRY), decode+validate",
        "msgspec.json.decode, untyped, no validation",
        "reference: json.loads, no validation",
    )
    assert "target ≥ 100000 msg/s" in output


def test_run_returns_figures_for_a_report_generator() -> None:
    result = payload_decode.run(quick=True)
    assert [figure.name for figure in result] == [payload_decode.DECODE, payload_decode.BARE]
    assert all(isinstance(figure, Figure) for figure in result)
    assert all(figure.value > 0 and figure.reference_value > 0 for figure in result)
    assert result[0].target == 100_000


# "<label>  p50 <number>  p99 <number>  <unit>", the label indented for a reference.
LATENCY_LINE = re.compile(
    r"^(?P<label>\S.*?|  reference: .*?)\s+p50\s+(?P<p50>[\d,.]+)\s+p99\s+(?P<p99>[\d,.]+)\s+(?P<unit>\S+)"
)


@pytest.mark.micropython
def test_firmware_prints_press_latency_and_decoding_figures_with_references(micropython: Path) -> None:
    output = run_quick("firmware.py")
    assert_header(output)
    latencies = {}
    for line in output.splitlines():
        match = LATENCY_LINE.match(line)
        if match:
            latencies[match["label"].strip()] = (
                float(match["p50"].replace(",", "")),
                float(match["p99"].replace(",", "")),
                match["unit"],
            )
    for label in (
        "bell press -> EVENT frame on the UART, MicroPython unix port",
        "reference: link.encode_frame of that EVENT payload, MicroPython unix port",
    ):
        p50, p99, unit = latencies[label]
        assert unit == "ms", label
        assert 0 < p50 <= p99, label
    found = figures(output)
    assert_positive(
        found,
        "frames/s",
        "Controller.on_bytes (ping + heartbeat), MicroPython unix port",
        "reference: link.FrameDecoder.feed alone, MicroPython unix port",
    )


def test_outbox_append_prints_throughput_and_bytes_per_record_with_references_and_target() -> None:
    output = run_quick("outbox_append.py")
    assert_header(output)
    found = figures(output)
    for label, unit in (
        ("Outbox.append + group commit (WAL, synchronous=FULL)", "records/s"),
        ("reference: sqlite3 executemany, 5,000 rows per commit (WAL, synchronous=FULL)", "records/s"),
        ("bytes written per record, Outbox", "B/record"),
        ("reference: bytes written per record, raw sqlite3", "B/record"),
    ):
        best, median = found[(label, unit)]
        assert best > 0, label
        assert median > 0, label
    assert "target ≥ 50000 records/s" in output


def latencies_of(output: str) -> dict[str, tuple[float, float, str]]:
    found = {}
    for line in output.splitlines():
        match = LATENCY_LINE.match(line)
        if match:
            found[match["label"].strip()] = (
                float(match["p50"].replace(",", "")),
                float(match["p99"].replace(",", "")),
                match["unit"],
            )
    return found


@pytest.mark.broker
def test_edge_uplink_prints_replay_beside_mosquitto_pub_and_bell_latency_beside_idle() -> None:
    output = run_quick("edge_uplink.py")
    assert_header(output)
    found = figures(output)
    assert_positive(
        found,
        "records/s",
        "Uplink replay of the outbox backlog, QoS 1, PUBACK per record",
        "reference: mosquitto_pub -q 1 --repeat -M 64, same-size payload",
    )
    latencies = latencies_of(output)
    for label in (
        "bell frame in -> alarm at a subscriber, backlog draining",
        "reference: same, empty outbox",
    ):
        p50, p99, unit = latencies[label]
        assert unit == "ms", label
        assert 0 < p50 <= p99, label
    assert "target p99 <= 20 ms" in output


# "<label>  end <MB>  peak <MB>  MB"
RSS_LINE = re.compile(
    r"^(?P<label>\S.*?|  reference: .*?)\s+end\s+(?P<end>[\d.]+)\s+peak\s+(?P<peak>[\d.]+)\s+MB"
)


@pytest.mark.broker
@pytest.mark.micropython
def test_edge_rss_prints_the_agent_footprint_beside_its_idle_start(micropython: Path) -> None:
    output = run_quick("edge_rss.py")
    assert_header(output)
    rows = {
        m["label"].strip(): (float(m["end"]), float(m["peak"]))
        for m in map(RSS_LINE.match, output.splitlines())
        if m
    }
    assert set(rows) == {
        "agent RSS after 4 simulated minutes",
        "reference: the same process right after READY=1, idle",
    }
    for end, peak in rows.values():
        assert 10 < end <= peak < 1000  # MB: a Python process, not a unit mistake
    assert "target <= 60 MB" in output


@pytest.mark.broker
@pytest.mark.postgres
def test_fleet_ingest_prints_its_rate_beside_mosquitto_sub_and_the_target() -> None:
    output = run_quick("fleet_ingest.py")
    assert_header(output)
    found = figures(output)
    assert_positive(
        found,
        "msg/s",
        "fleet ingest: decode, node session in PostgreSQL, time series write",
        "reference: mosquitto_sub on the same stream",
    )
    assert "target ≥ 10000 msg/s" in output
    assert "rebirths  0 asked" in output  # every telemetry message found its node's session


@pytest.mark.broker
@pytest.mark.postgres
def test_fleet_api_prints_death_to_fault_and_node_listing_latencies_beside_references() -> None:
    output = run_quick("fleet_api.py")
    assert_header(output)
    latencies = latencies_of(output)
    for label in (
        "death published -> offline fault in GET /api/v1/faults",
        "reference: the same deaths delivered to mosquitto_sub (QoS 1)",
        "GET /api/v1/nodes, every node in one page, keep-alive",
        "reference: the route's own SQL alone, psycopg",
    ):
        p50, p99, unit = latencies[label]
        assert unit == "ms", label
        assert 0 < p50 <= p99, label
    assert "offline debounce set to 0 s" in output  # the figure is the pipeline, not the debounce
    assert "target p99 <= 1000 ms" in output
    for breakdown in (
        "publish -> the fleet's MQTT thread has the death",
        "list_nodes() called in-process",
        "GET /api/v1/health",
    ):
        assert breakdown in output
    assert re.search(r"^  listing\s+300 nodes \(30 offline, 45 with open faults\)", output, re.MULTILINE)


# "<label>  p50 <number>  p95 <number>  ms", the label indented for a reference.
P95_LINE = re.compile(
    r"^(?P<label>\S.*?|  reference: .*?)\s+p50\s+(?P<p50>[\d,.]+)\s+p95\s+(?P<p95>[\d,.]+)\s+ms"
)
WEIGHT_LINE = re.compile(r"^(?P<label>\S.*?|  reference: .*?)\s+total\s+(?P<bytes>[\d,]+) B")


@pytest.mark.postgres
@pytest.mark.browser
def test_dashboard_prints_paint_times_and_page_weight_beside_the_empty_fleet() -> None:
    output = run_quick("dashboard.py")
    assert_header(output)
    timings = {
        m["label"].strip(): (float(m["p50"].replace(",", "")), float(m["p95"].replace(",", "")))
        for m in map(P95_LINE.match, output.splitlines())
        if m
    }
    for label in (
        "first contentful paint, overview, 300 nodes",
        "reference: first contentful paint, overview, 0 nodes (the layout alone)",
        "first paint, overview, 300 nodes",
        "reference: first paint, overview, 0 nodes",
        "GET / HTML alone, keep-alive, no browser, 300 nodes",
        "reference: GET / HTML alone, keep-alive, no browser, 0 nodes",
    ):
        p50, p95 = timings[label]
        assert 0 < p50 <= p95, label
    weights = {
        m["label"].strip(): int(m["bytes"].replace(",", ""))
        for m in map(WEIGHT_LINE.match, output.splitlines())
        if m
    }
    full, empty = (
        weights["page weight, overview, 300 nodes"],
        weights["reference: page weight, overview, 0 nodes"],
    )
    assert 0 < empty < full  # the nodes' cells weigh something; the layout alone is the floor
    assert re.search(r"^  overview\s+300 nodes \(30 offline, 45 with open faults\)", output, re.MULTILINE)
    assert "target p95 < 1000 ms" in output


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.browser
def test_alarm_screen_prints_press_to_banner_beside_the_broker_delivery() -> None:
    output = run_quick("alarm_screen.py")
    assert_header(output)
    latencies = latencies_of(output)
    for label in (
        "bell alarm published -> banner on the operator's screen",
        "reference: the same alarms delivered to an MQTT subscriber",
    ):
        p50, p99, unit = latencies[label]
        assert unit == "ms", label
        assert 0 < p50 <= p99, label
    assert "target p99 <= 1000 ms" in output
    assert "3 alarms of one node" in output


def test_ota_delta_prints_the_delta_beside_the_full_and_gzipped_artifact() -> None:
    output = run_quick("ota_delta.py")
    assert_header(output)
    sizes = dict(re.findall(r"^(\S.*?|  reference: .*?)\s{2,}([\d,]+) bytes", output, re.MULTILINE))
    delta = int(sizes["download with the delta (bsdiff4)"].replace(",", ""))
    full = int(sizes["  reference: full artifact (tar)"].replace(",", ""))
    gzipped = int(sizes["  reference: full artifact, gzip -9"].replace(",", ""))
    assert 0 < delta < full
    assert 0 < gzipped < full
    assert_positive(
        figures(output),
        "MB/s",
        "applying the delta (bsdiff4.patch), output",
        "reference: SHA-256 of the same artifact",
    )


@pytest.mark.broker
@pytest.mark.postgres
def test_ota_campaign_prints_each_wave_plan_and_artifact_serving_beside_their_references() -> None:
    output = run_quick("ota_campaign.py")
    assert_header(output)
    plans = re.findall(r"^wave plan: (.+?)  \((\d+) committed", output, re.MULTILINE)
    assert [(name, int(committed)) for name, committed in plans] == [
        ("canary 1, then 10 %, then 100 %", 20),
        ("canary 15, then 100 %", 20),
    ]
    completed = [float(s) for s in re.findall(r"campaign completed\s+at\s+([\d.]+) s", output)]
    floors = [float(s) for s in re.findall(r"reference: 20 downloads alone, 16 at once\s+([\d.]+) s", output)]
    assert len(completed) == len(floors) == 2
    assert all(seconds > 0 for seconds in completed + floors)
    assert_positive(
        figures(output),
        "MB/s",
        "artifact serving, fleet node-facing route, 8 clients",
        "reference: the same file by socket.sendfile, no HTTP framework",
    )


@pytest.mark.broker
@pytest.mark.postgres
def test_fleet_scale_prints_births_telemetry_and_fault_detection_beside_mosquitto_sub() -> None:
    output = run_quick("fleet_scale.py")
    assert_header(output)
    assert re.search(r"^  nodes\s+2,000 through 4 MQTT connections$", output, re.MULTILINE)
    assert re.search(r"^  rebirths\s+0 asked", output, re.MULTILINE)
    assert re.search(r"^  timed out\s+0 nodes", output, re.MULTILINE)
    found = figures(output)
    for label, unit in (
        ("births applied (node sessions, sites)", "births/s"),
        ("telemetry applied and written", "msg/s"),
        ("deaths to open offline tickets", "deaths/s"),
    ):
        assert_positive(found, unit, label, "reference: mosquitto_sub on the same messages")
    assert re.search(r"^all 20 offline tickets open [\d.]+ s after the first death", output, re.MULTILINE)
