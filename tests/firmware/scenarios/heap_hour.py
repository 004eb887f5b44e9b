# A compressed hour of a pole's life on a small heap: the firmware's Controller and, in the
# same interpreter, an edge node's LinkSession exchanging every byte in memory. Simulated
# time advances in STEP_MS ticks; bell presses, door openings, a hot spell, a cut and a
# shorted bell loop, a supply dip, edge commands every two minutes and a minute without a
# link. Prints JSON lines: {"mem": free, "t": s} after gc.collect() before the controller is
# built (t = -1), once it is built (t = 0) and every ten minutes of simulated time (at the
# start of that second's tick, so always at the same point of the telemetry cycle), then
# {"summary": ...}.
#
#   micropython -X heapsize=64K heap_hour.py FIRMWARE_DIR PROTOCOLS_DIR \
#       [SECONDS [STEP_MS [BUDGET_BYTES]]]
#
# tests/firmware/test_heap.py passes directories of .mpy files precompiled from firmware/ and
# protocols/link.py, as a board loads them: compiling the sources would need more heap than
# running them. BUDGET_BYTES (0: none) caps the heap further with a ballast taken once the
# modules are loaded.

import gc
import json
import sys

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])

import hal
import link
from bell import Bell, BellCircuit
from controller import Controller
from door import Door
from lamp import Lamp
from sensors import Sensors

SECONDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3600
STEP_MS = int(sys.argv[4]) if len(sys.argv) > 4 else 50
BUDGET = int(sys.argv[5]) if len(sys.argv) > 5 else 0
SAMPLE_S = 600

COMMANDS = (
    b'{"cmd":"lamp","on":true,"s":5,"id":1}',
    b'{"cmd":"status","id":2}',
    b'{"cmd":"self-test","id":3}',
    b'{"cmd":"frobnicate","id":4}',
    b'{"cmd":',
    b'{"cmd":"ping","id":6}',
)


def temp_raw(c):
    return int((0.706 - (c - 27) * 0.001721) / 3.3 * 65535)


def supply_raw(v):
    return int(v / hal.SUPPLY_DIVIDER / 3.3 * 65535)


def sample(t):
    gc.collect()
    print(json.dumps({"mem": gc.mem_free(), "t": t}))


def main():
    gc.collect()
    total = gc.mem_free() + gc.mem_alloc()
    # In pieces, as what the compiler left behind is fragmented; until what is in use now
    # plus what is still free is no more than the budget.
    in_use = gc.mem_alloc()  # the ballast's own list is part of the ballast
    ballast = [None] * 256  # sized up front: growing it would need a hole of its own
    pieces = 0
    if BUDGET:
        piece = 4096
        while in_use + gc.mem_free() > BUDGET:
            try:
                ballast[pieces] = bytearray(max(min(piece, in_use + gc.mem_free() - BUDGET), 16))
                pieces += 1
            except MemoryError:
                piece //= 2  # no hole that big left: smaller pieces fill the rest
                if piece < 16:
                    raise
            gc.collect()
    print(json.dumps({"heap_total": total, "budget": BUDGET, "ballast_pieces": pieces}))
    sample(-1)
    now = 0
    board = hal.fake_board()
    controller = Controller(
        session=link.LinkSession(now),
        decoder=link.FrameDecoder(),
        bell=Bell(board.bell, now=now),
        circuit=BellCircuit(board.bell_loop, now=now),
        door=Door(board.door, now=now),
        sensors=Sensors(board.temp, board.supply, divider_ratio=hal.SUPPLY_DIVIDER, now=now),
        lamp=Lamp(board.lamp, board.buzzer),
        now=now,
        reset_cause="power-on",
    )
    edge = link.LinkSession(now)
    edge_decoder = link.FrameDecoder()
    to_controller = []
    presses_made = 0
    presses_heard = 0
    alarms = 0
    events = 0
    telemetry = 0
    results = 0
    hello = 0
    link_up = True
    ticks = SECONDS * 1000 // STEP_MS
    sample(0)
    for i in range(1, ticks + 1):
        now = i * STEP_MS
        ms = now % 1000
        s = now // 1000
        if ms == 0:
            # The scenario, once a simulated second.
            if s % 300 == 10 or (2710 <= s <= 2750 and s % 20 == 10):
                board.bell.set(0)
                presses_made += 1
            if s % 600 == 100:
                board.door.set(1)
            elif s % 600 == 130:
                board.door.set(0)
            if s == 1200:
                board.temp.set(temp_raw(75))
            elif s == 1500:
                board.temp.set(temp_raw(25))
            if s == 1800:
                board.bell_loop.set(65000)
            elif s == 2400:
                board.bell_loop.set(1000)
            elif s in (1860, 2460):
                board.bell_loop.set(32768)
            if s == 3000:
                board.supply.set(supply_raw(10))
            elif s == 3100:
                board.supply.set(supply_raw(12))
            if s % 120 == 50:
                edge.send(link.T_COMMAND, COMMANDS[(s // 120) % len(COMMANDS)], link.CLASS_EVENT)
            if s == 2700:
                link_up = False
            elif s == 2760:
                link_up = True
            if s and s % SAMPLE_S == 0:
                sample(s)
        elif ms == 200:
            board.bell.set(1)  # each press is held 200 ms

        # The controller's loop, as main.py runs it.
        if to_controller:
            for data in to_controller:
                controller.on_bytes(data, now)
            to_controller = []
        controller.tick(now)
        out = controller.pending_output(now)
        # The edge's side of the UART.
        if link_up:
            for data in out:
                for item in edge_decoder.feed(data):
                    frame = edge.on_frame(item, now)
                    if frame is None:
                        continue
                    t = frame.frame_type
                    if t == link.T_EVENT:
                        body = json.loads(frame.payload)
                        if body.get("k") == "bell":
                            if body.get("st") == "pressed":
                                alarms += 1
                                presses_heard += body["n"]
                        else:
                            events += 1
                    elif t == link.T_TELEMETRY:
                        telemetry += 1
                    elif t == link.T_RESULT:
                        results += 1
                    elif t == link.T_HELLO:
                        hello += 1
            to_controller = edge.poll(now)
        else:
            edge.poll(now)
    c = controller
    print(
        json.dumps(
            {
                "summary": {
                    "seconds": SECONDS,
                    "step_ms": STEP_MS,
                    "ticks": ticks,
                    "hello": hello,
                    "presses_made": presses_made,
                    "presses": c.presses,
                    "presses_heard": presses_heard,
                    "alarms": alarms,
                    "events": events,
                    "telemetry": telemetry,
                    "results": results,
                    "commands": c.commands,
                    "unknown_commands": c.unknown_commands,
                    "bad_commands": c.bad_commands,
                    "exceptions": c.exceptions,
                    "error_where": c.error_where,
                    "link_downs": c.session.link_downs,
                    "dropped_events": c.session.dropped_events,
                    "backlog": c.session.backlog(),
                }
            }
        )
    )


main()
