"""Serial-link decoder throughput: frames/s through protocols.link.FrameDecoder.feed.

The edge agent decodes the pole controller's UART stream with protocols/link.py, and the
controller runs the same file under MicroPython. This feeds a stream of heartbeats, bell
events and telemetry to the decoder in 64-byte UART reads (each read a fresh bytes object,
as a driver returns it) and prints frames/s and MB/s on CPython and on the MicroPython unix
port (bench/link_decoder_mpy.py, same stream, checked by CRC). The CPython reference is
`bytes.split(b"\\x00")` over the whole stream: the floor of any delimiter-based framing.

    python bench/link_decoder.py [--quick]
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench._micropython import run_script
from bench._micropython import version as micropython_version
from bench._report import Figure, print_figures, print_header, quick_flag, time_runs
from protocols import link

UART_READ = 64  # bytes per UART read

# Keep in step with bench/link_decoder_mpy.py: the stream CRCs are compared.
BELL_EVENT = b'{"k":"bell","st":"pressed","id":"bell-1","t":1734}'
TELEMETRY = (
    b'{"k":"tel","up":86400,"cpu_c":41.5,"supply_v":12.31,"heap":48512,'
    b'"door":0,"lamp":0,"bells":[0,0],"lerr":0,"q":0,"t":1734}'
)
# Ten-frame cycle: 3 heartbeats, 2 bell events, 5 telemetry.
CYCLE: tuple[tuple[int, bytes], ...] = (
    (link.T_HEARTBEAT, b""),
    (link.T_TELEMETRY, TELEMETRY),
    (link.T_EVENT, BELL_EVENT),
    (link.T_TELEMETRY, TELEMETRY),
    (link.T_HEARTBEAT, b""),
    (link.T_TELEMETRY, TELEMETRY),
    (link.T_EVENT, BELL_EVENT),
    (link.T_TELEMETRY, TELEMETRY),
    (link.T_HEARTBEAT, b""),
    (link.T_TELEMETRY, TELEMETRY),
)

MICROPYTHON_SCRIPT = Path(__file__).with_name("link_decoder_mpy.py")
MICROPYTHON_HEAP = "32M"  # the unix port's default 2 MiB cannot hold the 20,000-frame stream
PROTOCOLS_DIR = Path(link.__file__).parent

DECODER = "link decoder, CPython"
DECODER_MPY = "link decoder, MicroPython unix port"
SPLIT = 'bytes.split(b"\\x00"), CPython'


@dataclass(frozen=True, slots=True)
class Counts:
    frames: int
    runs: int  # on CPython
    micropython_runs: int


FULL = Counts(frames=20_000, runs=15, micropython_runs=7)
QUICK = Counts(frames=2_000, runs=3, micropython_runs=3)


@dataclass(frozen=True, slots=True)
class Stream:
    """The controller's side of the wire: encoded frames back to back."""

    data: bytes
    frames: int
    by_type: dict[str, int]

    @property
    def crc(self) -> int:
        return link.crc16(self.data)

    def describe(self) -> str:
        mix = ", ".join(f"{count:,} {name}" for name, count in self.by_type.items())
        return f"{self.frames:,} frames ({mix}), {len(self.data):,} bytes, fed in {UART_READ}-byte reads"


@dataclass(frozen=True, slots=True)
class MicroPythonRuns:
    stream_bytes: int
    stream_crc: int
    seconds: list[float]


def build_stream(frames: int) -> Stream:
    """Sequenced frames count seq 1..255; ack stays 0 (the edge rarely sends commands)."""
    data = bytearray()
    by_type: Counter[str] = Counter()
    sequenced = 0
    for i in range(frames):
        frame_type, payload = CYCLE[i % len(CYCLE)]
        seq = 0
        if payload:
            seq = sequenced % 255 + 1
            sequenced += 1
        data += link.encode_frame(frame_type, seq, 0, payload)
        by_type[link.TYPE_NAMES[frame_type]] += 1
    return Stream(bytes(data), frames, dict(by_type))


def decode_stream(stream: bytes) -> link.FrameDecoder:
    decoder = link.FrameDecoder()
    feed = decoder.feed
    for start in range(0, len(stream), UART_READ):
        feed(stream[start : start + UART_READ])
    return decoder


def check_decoder(stream: Stream) -> None:
    decoder = decode_stream(stream.data)
    if decoder.frames != stream.frames or decoder.errors or decoder.pending():
        raise RuntimeError(
            f"decoder returned {decoder.frames} of {stream.frames} frames and {decoder.errors} errors: "
            "the figure would not measure decoding"
        )


def time_micropython(frames: int, runs: int) -> MicroPythonRuns:
    out = run_script(MICROPYTHON_SCRIPT, str(PROTOCOLS_DIR), str(frames), str(runs), heap=MICROPYTHON_HEAP)
    return MicroPythonRuns(
        stream_bytes=int(out.one("stream_bytes")),
        stream_crc=int(out.one("stream_crc"), 16),
        seconds=[us / 1e6 for us in out.ints("run_us")],
    )


def run(quick: bool) -> list[Figure]:
    counts = QUICK if quick else FULL
    stream = build_stream(counts.frames)
    check_decoder(stream)

    decoder_s = time_runs(lambda: decode_stream(stream.data), counts.runs)
    split_s = time_runs(lambda: stream.data.split(b"\x00"), counts.runs)
    mpy = time_micropython(counts.frames, counts.micropython_runs)
    if (mpy.stream_bytes, mpy.stream_crc) != (len(stream.data), stream.crc):
        raise RuntimeError(
            f"MicroPython built a different stream ({mpy.stream_bytes} bytes, CRC 0x{mpy.stream_crc:04x}) "
            f"than CPython ({len(stream.data)} bytes, CRC 0x{stream.crc:04x}): keep the two scripts in step"
        )

    figures = []
    for amount, unit in ((stream.frames, "frames/s"), (len(stream.data) / 1e6, "MB/s")):
        figures += [
            Figure.from_runs(DECODER, decoder_s, SPLIT, split_s, amount=amount, unit=unit),
            Figure.from_runs(DECODER_MPY, mpy.seconds, DECODER, decoder_s, amount=amount, unit=unit),
        ]
    return figures


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    counts = QUICK if quick else FULL
    print_header(
        "link decoder throughput (protocols.link.FrameDecoder.feed)",
        [
            ("micropython", f"{micropython_version()}, heap {MICROPYTHON_HEAP}"),
            ("stream", build_stream(counts.frames).describe()),
            ("runs", f"{counts.runs} on CPython, {counts.micropython_runs} on MicroPython; MB = 10^6 bytes"),
        ],
        quick=quick,
    )
    print_figures(run(quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
