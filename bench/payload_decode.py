"""MQTT payload decode+validate throughput: telemetry messages/s through protocols.messages.decode.

The fleet manager decodes and validates every node's telemetry, one message per node every
few seconds; the issue's target is at least 100,000 msg/s on one core. This encodes one
typical telemetry payload (two cameras, one storage device) with messages.encode and decodes
it repeatedly with messages.decode(Kind.TELEMETRY, ...), next to the reference `json.loads` of
the same bytes (parsing only, no validation) and, for interest, msgspec.json.decode without a
type (msgspec's parser alone).

    python bench/payload_decode.py [--quick]
"""

from __future__ import annotations

import json
import sys

import msgspec

from bench._report import Figure, print_figures, print_header, quick_flag, time_runs
from protocols import messages
from protocols.topics import Kind

MESSAGES, RUNS = 200_000, 5
QUICK_MESSAGES, QUICK_RUNS = 5_000, 3
TARGET = 100_000  # msg/s on one core, from the issue

DECODE = "messages.decode(TELEMETRY), decode+validate"
BARE = "msgspec.json.decode, untyped, no validation"
JSON_LOADS = "json.loads, no validation"


def telemetry() -> messages.Telemetry:
    """A pole node a few days after boot: two cameras streaming, the SD card healthy."""
    return messages.Telemetry(
        ts=1_734_000_000_000,
        seq=48_213,
        readings=messages.Readings(
            uptime_s=351_042,
            cpu_temp_c=54.2,
            throttled=False,
            mem_used_pct=41.7,
            disk_free_bytes=96_415_744_000,
            clock_synced=True,
            controller_temp_c=31.5,
            supply_v=12.31,
            outbox_backlog=0,
            cameras=[
                messages.CameraHealth(camera_id="cam-north", reachable=True, fps=25.0, bitrate_kbps=4096.0),
                messages.CameraHealth(camera_id="cam-south", reachable=True, fps=24.8, bitrate_kbps=3980.5),
            ],
            storage=[
                messages.StorageHealth(
                    device="/dev/mmcblk0p3", health="ok", free_bytes=96_415_744_000, wear_pct=7.0
                )
            ],
        ),
    )


def decode_many(payload: bytes, count: int) -> None:
    decode = messages.decode
    kind = Kind.TELEMETRY
    for _ in range(count):
        decode(kind, payload)


def loads_many(payload: bytes, count: int) -> None:
    loads = json.loads
    for _ in range(count):
        loads(payload)


def bare_many(payload: bytes, count: int) -> None:
    bare = msgspec.json.decode
    for _ in range(count):
        bare(payload)


def encoded_telemetry() -> bytes:
    message = telemetry()
    payload = messages.encode(message)
    if messages.decode(Kind.TELEMETRY, payload) != message:
        raise RuntimeError("the telemetry payload does not round-trip: the figure would time errors")
    return payload


def counts(quick: bool) -> tuple[int, int]:
    """(messages decoded per run, runs)"""
    return (QUICK_MESSAGES, QUICK_RUNS) if quick else (MESSAGES, RUNS)


def run(quick: bool) -> list[Figure]:
    count, runs = counts(quick)
    payload = encoded_telemetry()
    decode_s = time_runs(lambda: decode_many(payload, count), runs)
    loads_s = time_runs(lambda: loads_many(payload, count), runs)
    bare_s = time_runs(lambda: bare_many(payload, count), runs)
    return [
        Figure.from_runs(DECODE, decode_s, JSON_LOADS, loads_s, amount=count, unit="msg/s", target=TARGET),
        Figure.from_runs(BARE, bare_s, JSON_LOADS, loads_s, amount=count, unit="msg/s"),
    ]


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    payload = encoded_telemetry()
    count, runs = counts(quick)
    print_header(
        "MQTT payload decode throughput (protocols.messages.decode)",
        [
            ("msgspec", msgspec.__version__),
            ("payload", f"telemetry, {len(payload)} bytes: {payload.decode()}"),
            ("runs", f"{runs} of {count:,} decodes each, on one core"),
        ],
        quick=quick,
    )
    print_figures(run(quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
