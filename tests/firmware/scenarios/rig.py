# A pole controller on the MicroPython unix port, driven line by line over stdin/stdout:
# the test (CPython) writes one JSON command per line, the rig answers one JSON line.
# It builds the firmware's Controller from the fake board of firmware/hal.py and a fake
# clock; the test plays the edge node with protocols/link.py on its side of the "UART".
#
#   micropython rig.py FIRMWARE_DIR PROTOCOLS_DIR
#
# Commands ({"op": ...}):
#   init   {"t0":ms, "telemetry_ms":.., "queue_limit":.., "reset_cause":.., ...}  -> {"t":now}
#   pin    {"name":"bell"|"door", "v":0|1}                       set a fake input pin
#   adc    {"name":"loop"|"temp"|"supply", "raw":0..65535}       set a fake ADC
#   run    {"ms":M, "step":S, "rx":"hex"}   feed rx (if any), then tick every S ms for M ms,
#                                           collecting the UART output -> {"t":now,"out":hex}
# The rig's clock `t` counts on; the controller sees it modulo 2**30, as ticks_ms() wraps.
#   state  -> pins, lamp, counters, session figures, resets
#   break  {"part":"door"|"circuit", "on":true|false}  make that part's input raise (or heal)
#   mem    -> gc.collect(); {"free":gc.mem_free()}
#   quit
# Same MicroPython subset as the firmware: no f-strings, %-formatting.

import gc
import json
import sys
from binascii import hexlify, unhexlify

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])

import hal
import link
from bell import Bell, BellCircuit
from controller import Controller
from door import Door
from lamp import Lamp
from sensors import Sensors


class BrokenInput:
    # An input whose driver fails: every read raises, as a wedged I2C or ADC might.
    def value(self, v=None):
        raise OSError(5)

    def read_u16(self):
        raise OSError(5)


TICKS_MASK = (1 << 30) - 1


class Rig:
    def __init__(self, cfg):
        self.now = cfg.get("t0", 0)
        self.board = hal.fake_board(cfg.get("reset_cause", "power-on"))
        self.resets = 0
        b = self.board
        now = self.now & TICKS_MASK
        self.controller = Controller(
            session=link.LinkSession(now, queue_limit=cfg.get("queue_limit", 32)),
            decoder=link.FrameDecoder(),
            bell=Bell(
                b.bell,
                debounce_ms=cfg.get("debounce_ms", 30),
                stuck_after_ms=cfg.get("stuck_after_ms", 20000),
                now=now,
            ),
            circuit=BellCircuit(b.bell_loop, now=now),
            door=Door(b.door, now=now),
            sensors=Sensors(b.temp, b.supply, divider_ratio=hal.SUPPLY_DIVIDER, now=now),
            lamp=Lamp(b.lamp, b.buzzer),
            now=now,
            reset_cause=b.reset_cause,
            reset=self.reset,
            telemetry_ms=cfg.get("telemetry_ms", 60000),
        )

    def reset(self):
        self.resets += 1

    def run(self, ms, step, rx):
        c = self.controller
        out = bytearray()
        if rx:
            c.on_bytes(rx, self.now & TICKS_MASK)
        for frame in c.pending_output(self.now & TICKS_MASK):
            out.extend(frame)
        end = self.now + ms
        while self.now < end:
            self.now += step
            tick = self.now & TICKS_MASK
            c.tick(tick)
            for frame in c.pending_output(tick):
                out.extend(frame)
        return out

    def state(self):
        c = self.controller
        s = c.session
        b = self.board
        return {
            "t": self.now,
            "lamp": b.lamp.value(),
            "buzzer": b.buzzer.value(),
            "bell_down": c.bell.down,
            "stuck": c.bell.stuck,
            "loop": c.circuit.state,
            "door_open": c.door.is_open,
            "temp_c": c.sensors.temp_c,
            "supply_v": c.sensors.supply_v,
            "presses": c.presses,
            "alarms": c.alarms,
            "commands": c.commands,
            "unknown_commands": c.unknown_commands,
            "bad_commands": c.bad_commands,
            "exceptions": c.exceptions,
            "error_where": c.error_where,
            "peer_up": s.peer_up,
            "backlog": s.backlog(),
            "sent": s.sent,
            "acked": s.acked,
            "retransmits": s.retransmits,
            "duplicates": s.duplicates,
            "delivered": s.delivered,
            "dropped_telemetry": s.dropped_telemetry,
            "dropped_events": s.dropped_events,
            "link_downs": s.link_downs,
            "decoder_errors": c.decoder.errors,
            "resets": self.resets,
        }


def main():
    rig = None
    pins = None
    adcs = None
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "init":
            rig = Rig(cmd)
            b = rig.board
            pins = {"bell": b.bell, "door": b.door}
            adcs = {"loop": b.bell_loop, "temp": b.temp, "supply": b.supply}
            reply = {"t": rig.now}
        elif op == "pin":
            pins[cmd["name"]].set(cmd["v"])
            reply = {"t": rig.now}
        elif op == "adc":
            adcs[cmd["name"]].set(cmd["raw"])
            reply = {"t": rig.now}
        elif op == "run":
            rx = cmd.get("rx")
            out = rig.run(cmd["ms"], cmd.get("step", 10), unhexlify(rx) if rx else b"")
            reply = {"t": rig.now, "out": hexlify(out).decode()}
        elif op == "state":
            reply = rig.state()
        elif op == "break":
            c = rig.controller
            broken = cmd.get("on", True)
            if cmd["part"] == "door":
                c.door.pin = BrokenInput() if broken else rig.board.door
            else:
                c.circuit.adc = BrokenInput() if broken else rig.board.bell_loop
            reply = {"t": rig.now}
        elif op == "mem":
            gc.collect()
            reply = {"free": gc.mem_free()}
        elif op == "quit":
            break
        else:
            reply = {"error": "unknown op " + op}
        print(json.dumps(reply))


main()
