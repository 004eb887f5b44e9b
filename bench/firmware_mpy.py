# ruff: noqa: UP031, PLC0415
# Pole controller firmware under MicroPython: the measuring half of bench/firmware.py.
#
#   micropython -X heapsize=32M bench/firmware_mpy.py FIRMWARE_DIR PROTOCOLS_DIR \
#       [PRESSES [FRAMES [RUNS]]]
#
# Builds the real Controller with firmware/main.py's build() on the fake board of
# firmware/hal.py (sys.platform is 'linux' here) and measures two things on the real clock:
#
# 1. Bell press -> EVENT frame on the wire. The loop is main.run()'s, step by step (read the
#    UART, tick, write pending_output to the UART, feed the watchdog, sleep LOOP_SLEEP_MS).
#    The edge is played in the same loop: it acks every sequenced frame the controller
#    writes, through the UART, so nothing stays in flight. Each press is scheduled at a real
#    ticks_us() that falls at a pseudo-random point of the loop's sleep; the button pin goes
#    down at the first loop step after that moment (a GPIO level the firmware samples on its
#    next poll), and the latency runs from the scheduled moment to the uart.write() of the
#    bell alarm. Then the button is released and the loop runs on until the release is
#    debounced and the alarm acked, so the next press is neither folded nor queued behind it.
#    Reference: link.encode_frame of the same alarm payload, timed alone.
# 2. Frames/s through Controller.on_bytes: a stream of COMMAND ping and HEARTBEAT frames in
#    64-byte UART reads (each ping is parsed and answered, the RESULT queued; at the queue
#    limit the oldest results are dropped, as on a pole whose edge stopped acking).
#    Reference: a bare link.FrameDecoder.feed on the same stream.
#
# Prints "key value" lines for bench/firmware.py: one "press_us" per press, one "encode_us"
# per encode, one "on_bytes_us" / "feed_us" per run, and the settings it used. Exit status 1
# if the firmware did not do what the measurement assumes (a press not sent, frames lost).
#
# Same MicroPython subset as the firmware: no f-strings, no typing, %-formatting.

import gc
import sys
import time

PRESSES = 200
FRAMES = 20000
RUNS = 5
UART_READ = 64  # bytes per UART read
ENCODE_CALLS = 200
PRESS_LIMIT_MS = 2000  # a press not on the wire by then is a failure, not a sample
BELL_ALARM = b'"k":"bell","st":"pressed"'
PING = b'{"cmd":"ping","id":7}'


def fail(message):
    print("error " + message)
    sys.exit(1)


class Bench:
    def __init__(self, link, main, hal):
        self.link = link
        self.main = main
        self.board = hal.fake_board()
        self.controller = main.build(self.board, time.ticks_ms())
        self.edge = link.FrameDecoder()
        self.loop_ms = main.LOOP_SLEEP_MS
        self.rand = 12345

    def phase_us(self):
        # Where in the loop's sleep the next press falls: a small LCG, the same every run.
        self.rand = (self.rand * 1103515245 + 12345) & 0x7FFFFFFF
        return self.rand % (self.loop_ms * 1000)

    def step(self):
        # One pass of main.run()'s loop, without its sleep. Returns (ticks_us when the
        # writes were done, the bytes written).
        link = self.link
        board = self.board
        c = self.controller
        now = time.ticks_ms()
        data = board.uart.read()
        if data:
            c.on_bytes(data, now)
        c.tick(now)
        for frame in c.pending_output(now):
            board.uart.write(frame)
        done = time.ticks_us()
        board.wdt.feed()
        out = board.uart.take()
        # The edge's side (not timed): ack every sequenced frame at once.
        alarm = False
        for item in self.edge.feed(out):
            if not isinstance(item, link.Frame):
                fail("controller wrote a bad frame: %r" % (item,))
            if item.seq:
                board.uart.feed(link.encode_frame(link.T_ACK, 0, item.seq))
                if item.frame_type == link.T_EVENT and BELL_ALARM in item.payload:
                    alarm = True
        return done, alarm

    def settle(self, limit_ms):
        # Run the loop until the button is up, nothing waits on the link and the bell is free.
        c = self.controller
        start = time.ticks_ms()
        while c.bell.down or c.bell_alarm_pending() or c.session.backlog():
            if time.ticks_diff(time.ticks_ms(), start) > limit_ms:
                fail("the controller did not settle within %d ms" % limit_ms)
            self.step()
            time.sleep_ms(self.loop_ms)

    def connect(self):
        # The edge says hello with a heartbeat; the controller sends HELLO and gets it acked.
        self.board.uart.feed(self.link.encode_frame(self.link.T_HEARTBEAT, 0, 0))
        self.step()
        self.settle(PRESS_LIMIT_MS)
        if not self.controller.session.peer_up or self.controller.session.acked < 1:
            fail("the controller never heard the edge")

    def press(self):
        pin = self.board.bell
        press_at = time.ticks_add(time.ticks_us(), self.phase_us())
        while time.ticks_diff(time.ticks_us(), press_at) < 0:
            self.step()
            time.sleep_ms(self.loop_ms)
        pin.set(0)  # active low: the button pulls the input to ground
        while True:
            done, alarm = self.step()
            if alarm:
                break
            if time.ticks_diff(done, press_at) > PRESS_LIMIT_MS * 1000:
                fail("no bell alarm on the wire %d ms after a press" % PRESS_LIMIT_MS)
            time.sleep_ms(self.loop_ms)
        elapsed = time.ticks_diff(done, press_at)
        pin.set(1)
        time.sleep_ms(self.loop_ms)
        self.settle(PRESS_LIMIT_MS)
        return elapsed


def measure_presses(link, main, hal, presses):
    bench = Bench(link, main, hal)
    c = bench.controller
    print("loop_ms %d" % bench.loop_ms)
    print("debounce_ms %d" % c.bell.debounce_ms)
    bench.connect()
    for _ in range(presses):
        print("press_us %d" % bench.press())
    if c.presses != presses or c.alarms != presses or c.exceptions:
        fail(
            "%d presses made, controller counted %d presses, %d alarms, %d exceptions (%s)"
            % (presses, c.presses, c.alarms, c.exceptions, c.error_where)
        )
    # The reference: framing the very payload the controller sent (n=1, a real tick).
    payload = b'{"k":"bell","st":"pressed","id":"%s","n":1,"t":%d}' % (c.bell_id, c.bell.pressed_at)
    print("payload_bytes %d" % len(payload))
    encode = link.encode_frame
    for i in range(ENCODE_CALLS):
        start = time.ticks_us()
        encode(link.T_EVENT, i % 255 + 1, 0, payload)
        print("encode_us %d" % time.ticks_diff(time.ticks_us(), start))


def build_stream(link, frames):
    # Alternating COMMAND ping (seq 1..255) and HEARTBEAT, as an edge would send them.
    stream = bytearray()
    commands = 0
    for i in range(frames):
        if i % 2 == 0:
            stream.extend(link.encode_frame(link.T_COMMAND, commands % 255 + 1, 0, PING))
            commands += 1
        else:
            stream.extend(link.encode_frame(link.T_HEARTBEAT, 0, 0))
    return bytes(stream), commands


def measure_decoding(link, main, hal, frames, runs):
    stream, commands = build_stream(link, frames)
    print("stream_frames %d" % frames)
    print("stream_commands %d" % commands)
    print("stream_bytes %d" % len(stream))
    n = len(stream)
    for _ in range(runs):
        controller = main.build(hal.fake_board(), 0)
        on_bytes = controller.on_bytes
        gc.collect()
        start = time.ticks_us()
        for at in range(0, n, UART_READ):
            on_bytes(stream[at : at + UART_READ], 0)
        elapsed = time.ticks_diff(time.ticks_us(), start)
        if (
            controller.decoder.frames != frames
            or controller.decoder.errors
            or controller.commands != commands
            or controller.exceptions
        ):
            fail(
                "on_bytes: %d of %d frames, %d errors, %d of %d commands, %d exceptions (%s)"
                % (
                    controller.decoder.frames,
                    frames,
                    controller.decoder.errors,
                    controller.commands,
                    commands,
                    controller.exceptions,
                    controller.error_where,
                )
            )
        print("on_bytes_us %d" % elapsed)
        print("dropped_results %d" % controller.session.dropped_events)
        controller = None
    for _ in range(runs):
        decoder = link.FrameDecoder()
        feed = decoder.feed
        gc.collect()
        start = time.ticks_us()
        for at in range(0, n, UART_READ):
            feed(stream[at : at + UART_READ])
        elapsed = time.ticks_diff(time.ticks_us(), start)
        if decoder.frames != frames or decoder.errors:
            fail("feed: %d of %d frames, %d errors" % (decoder.frames, frames, decoder.errors))
        print("feed_us %d" % elapsed)


def main(argv):
    if len(argv) < 3:
        fail("usage: firmware_mpy.py FIRMWARE_DIR PROTOCOLS_DIR [PRESSES [FRAMES [RUNS]]]")
    presses = int(argv[3]) if len(argv) > 3 else PRESSES
    frames = int(argv[4]) if len(argv) > 4 else FRAMES
    runs = int(argv[5]) if len(argv) > 5 else RUNS
    sys.path.insert(0, argv[2])
    sys.path.insert(0, argv[1])
    import hal
    import link
    import main as firmware_main
    from version import FIRMWARE_VERSION

    impl = sys.implementation
    print("impl %s %d.%d.%d" % (impl.name, impl.version[0], impl.version[1], impl.version[2]))
    print("firmware %s" % FIRMWARE_VERSION)
    measure_presses(link, firmware_main, hal, presses)
    gc.collect()
    measure_decoding(link, firmware_main, hal, frames, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
