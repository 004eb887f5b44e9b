"""Pole controller firmware on the MicroPython unix port: bell press latency and link decoding.

Runs bench/firmware_mpy.py under the real MicroPython unix port, which builds the firmware's
Controller with firmware/main.py's build() on the fake board of firmware/hal.py and prints
raw samples; this side turns them into figures, each beside a reference from the same run:

- bell press -> EVENT frame written to the UART, p50/p99 in ms, with main.run()'s loop
  (UART read, tick, write, watchdog, LOOP_SLEEP_MS sleep) on the real clock. Reference:
  link.encode_frame of the same alarm payload, the part of that path that is not waiting.
  By design the press cannot be faster than the bell's debounce (printed in the header).
- frames/s through Controller.on_bytes (COMMAND ping + HEARTBEAT in 64-byte reads, every ping
  parsed and answered). Reference: a bare link.FrameDecoder.feed on the same stream.

    python bench/firmware.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench._micropython import ScriptOutput, run_script
from bench._micropython import version as micropython_version
from bench._report import Figure, Latency, print_figures, print_header, print_latencies, quick_flag
from protocols import link

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = ROOT / "firmware"
PROTOCOLS_DIR = Path(link.__file__).parent
MICROPYTHON_SCRIPT = Path(__file__).with_name("firmware_mpy.py")
# Compiling the firmware from source needs ~84K on this 64-bit port; the 20,000-frame stream
# is held in RAM as well. This measures speed, not the heap: the heap is tests/firmware's job.
MICROPYTHON_HEAP = "32M"

PRESS = "bell press -> EVENT frame on the UART, MicroPython unix port"
ENCODE = "link.encode_frame of that EVENT payload, MicroPython unix port"
ON_BYTES = "Controller.on_bytes (ping + heartbeat), MicroPython unix port"
FEED = "link.FrameDecoder.feed alone, MicroPython unix port"


@dataclass(frozen=True, slots=True)
class Counts:
    presses: int
    frames: int
    runs: int


FULL = Counts(presses=200, frames=20_000, runs=7)
QUICK = Counts(presses=20, frames=2_000, runs=3)


def run_micropython(counts: Counts) -> ScriptOutput:
    return run_script(
        MICROPYTHON_SCRIPT,
        str(FIRMWARE_DIR),
        str(PROTOCOLS_DIR),
        str(counts.presses),
        str(counts.frames),
        str(counts.runs),
        heap=MICROPYTHON_HEAP,
    )


def figures_from(out: ScriptOutput) -> list[Figure | Latency]:
    frames = int(out.one("stream_frames"))
    on_bytes_s = [us / 1e6 for us in out.ints("on_bytes_us")]
    feed_s = [us / 1e6 for us in out.ints("feed_us")]
    return [
        Latency.from_samples(PRESS, out.ints("press_us"), ENCODE, out.ints("encode_us")),
        Figure.from_runs(ON_BYTES, on_bytes_s, FEED, feed_s, amount=frames, unit="frames/s"),
    ]


def run(quick: bool) -> list[Figure | Latency]:
    return figures_from(run_micropython(QUICK if quick else FULL))


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    counts = QUICK if quick else FULL
    out = run_micropython(counts)
    results = figures_from(out)
    loop_ms = int(out.one("loop_ms"))
    debounce_ms = int(out.one("debounce_ms"))
    dropped = out.ints("dropped_results")
    print_header(
        "pole controller firmware on the MicroPython unix port (firmware/ via main.build)",
        [
            ("micropython", f"{micropython_version()}, heap {MICROPYTHON_HEAP}"),
            ("firmware", out.one("firmware")),
            (
                "bell press",
                f"{counts.presses} presses, main.run() loop with LOOP_SLEEP_MS = {loop_ms} ms on the "
                f"real clock; each press at a pseudo-random point of the sleep; edge acks at once",
            ),
            (
                "press floor",
                f"by design ≥ the bell debounce, {debounce_ms} ms, plus up to one loop "
                f"({loop_ms} ms sleep + the loop's work) before the level is first seen",
            ),
            (
                "stream",
                f"{int(out.one('stream_frames')):,} frames ({int(out.one('stream_commands')):,} COMMAND "
                f"ping, the rest HEARTBEAT), {int(out.one('stream_bytes')):,} bytes, 64-byte reads; "
                f"unacked results beyond the queue limit dropped: {dropped[0] if dropped else 0:,} per run",
            ),
            ("runs", f"{counts.runs} of each decoding run; latency p99 by nearest rank"),
        ],
        quick=quick,
    )
    print_latencies([r for r in results if isinstance(r, Latency)])
    print()
    print_figures([r for r in results if isinstance(r, Figure)])
    presses_ms = [us / 1000 for us in out.ints("press_us")]
    print(
        f"bell press latency: min {min(presses_ms):.3f} ms, max {max(presses_ms):.3f} ms, "
        f"standard deviation {statistics.pstdev(presses_ms):.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
