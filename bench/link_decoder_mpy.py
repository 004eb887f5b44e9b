# ruff: noqa: UP031
# Link decoder throughput under MicroPython: the pole controller's side of bench/link_decoder.py.
#
#   micropython -X heapsize=32M bench/link_decoder_mpy.py [PROTOCOLS_DIR [FRAMES [RUNS]]]
#   python                      bench/link_decoder_mpy.py [PROTOCOLS_DIR [FRAMES [RUNS]]]
#
# The whole stream is held in RAM: the unix port's default 2 MiB heap fits about 2,000
# frames, hence -X heapsize; on a board, pass a FRAMES that fits.
#
# Builds the same frame stream as bench/link_decoder.py (heartbeats, bell events, telemetry),
# feeds it to the very protocols/link.py the firmware deploys in 64-byte UART reads, and prints
# "key value" lines: the interpreter, the stream's size and CRC (so the caller can check that
# both sides timed the same bytes), one "run_us" per run and the best "frames_per_s".
# Exit status 1 if the decoder did not return every frame intact.
#
# Same MicroPython subset as link.py: no f-strings, no typing, no pathlib, %-formatting.

import gc
import sys

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    from time import perf_counter_ns

    def ticks_us():
        return perf_counter_ns() // 1000

    def ticks_diff(end, start):
        return end - start


# Keep in step with bench/link_decoder.py: the caller compares the stream CRC.
FRAMES = 20000
RUNS = 5
UART_READ = 64  # bytes per UART read
BELL_EVENT = b'{"k":"bell","st":"pressed","id":"bell-1","t":1734}'
TELEMETRY = (
    b'{"k":"tel","up":86400,"cpu_c":41.5,"supply_v":12.31,"heap":48512,'
    b'"door":0,"lamp":0,"bells":[0,0],"lerr":0,"q":0,"t":1734}'
)


def build_stream(link, frames):
    # Ten-frame cycle: 3 heartbeats, 2 bell events, 5 telemetry. Sequenced frames count
    # seq 1..255; ack stays 0 (the edge rarely sends sequenced commands).
    cycle = (
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
    stream = bytearray()
    sequenced = 0
    for i in range(frames):
        frame_type, payload = cycle[i % len(cycle)]
        seq = 0
        if payload:
            seq = sequenced % 255 + 1
            sequenced += 1
        stream.extend(link.encode_frame(frame_type, seq, 0, payload))
    return bytes(stream)


def decode_stream(link, stream):
    decoder = link.FrameDecoder()
    feed = decoder.feed
    for start in range(0, len(stream), UART_READ):
        feed(stream[start : start + UART_READ])
    return decoder


def _default_protocols_dir():
    # protocols/ beside the bench/ directory that holds this script.
    parts = __file__.split("/")
    if len(parts) == 1:  # run from inside bench/
        return "../protocols"
    repo = parts[:-2]
    repo.append("protocols")
    return "/".join(repo)


def main(argv):
    protocols_dir = argv[1] if len(argv) > 1 else _default_protocols_dir()
    frames = int(argv[2]) if len(argv) > 2 else FRAMES
    runs = int(argv[3]) if len(argv) > 3 else RUNS
    sys.path.insert(0, protocols_dir)
    import link  # noqa: PLC0415 - found only once protocols_dir is on the path

    impl = sys.implementation
    print("impl %s %d.%d.%d" % (impl.name, impl.version[0], impl.version[1], impl.version[2]))
    stream = build_stream(link, frames)
    print("stream_frames %d" % frames)
    print("stream_bytes %d" % len(stream))
    print("stream_crc 0x%04x" % link.crc16(stream))
    best_us = 0
    for _ in range(runs):
        gc.collect()
        start = ticks_us()
        decoder = decode_stream(link, stream)
        elapsed = ticks_diff(ticks_us(), start)
        if decoder.frames != frames or decoder.errors or decoder.pending():
            print("error decoded %d of %d frames, %d errors" % (decoder.frames, frames, decoder.errors))
            return 1
        print("run_us %d" % elapsed)
        if best_us == 0 or elapsed < best_us:
            best_us = elapsed
    print("frames_per_s %d" % (frames * 1000000 // max(best_us, 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
