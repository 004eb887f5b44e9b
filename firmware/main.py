# Pole controller entry point: build the board (hal.py) and the Controller, then loop:
# read the UART, tick, write what the link has to say, feed the watchdog, sleep ~5 ms.
# On the Pico this file runs at boot; on the unix port the simulator (watchpost/sim) runs it
# with the UART on a pty and the inputs set through board.control, and tests call run() with
# a fake board and a loop limit.

import time

import hal
import link
from bell import Bell, BellCircuit
from controller import Controller
from door import Door
from lamp import Lamp
from sensors import Sensors
from version import FIRMWARE_VERSION

LOOP_SLEEP_MS = 5


def build(board, now):
    return Controller(
        session=link.LinkSession(now),
        decoder=link.FrameDecoder(),
        bell=Bell(board.bell, now=now),
        circuit=BellCircuit(board.bell_loop, now=now),
        door=Door(board.door, now=now),
        sensors=Sensors(board.temp, board.supply, divider_ratio=hal.SUPPLY_DIVIDER, now=now),
        lamp=Lamp(board.lamp, board.buzzer),
        now=now,
        reset_cause=board.reset_cause,
        reset=board.reset,
        telemetry_ms=board.telemetry_ms,
    )


def run(board, loops=-1, ticks_ms=time.ticks_ms, sleep_ms=time.sleep_ms):
    controller = build(board, ticks_ms())
    print("watchpost-controller %s ready reset=%s" % (FIRMWARE_VERSION, board.reset_cause))
    uart = board.uart
    wdt = board.wdt
    control = board.control
    while loops != 0:
        if loops > 0:
            loops -= 1
        now = ticks_ms()
        if control is not None:
            control.poll()
        data = uart.read()
        if data:
            controller.on_bytes(data, now)
        controller.tick(now)
        for frame in controller.pending_output(now):
            uart.write(frame)
        wdt.feed()
        sleep_ms(LOOP_SLEEP_MS)
    return controller


if __name__ == "__main__":
    run(hal.board())
