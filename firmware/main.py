# Pole controller entry point: build the board (hal.py) and the Controller, then loop:
# read the UART, tick, write what the link has to say, feed the watchdog, sleep ~5 ms.
# On the board this is the main.py of a firmware slot (/a or /b): the boot selector
# (selector.py, the flash's /main.py) imports it and calls start(). On the unix port the
# simulator (watchpost/sim) runs it with the UART on a pty and the inputs set through
# board.control, and tests call run() with a fake board and a loop limit.

import os
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


def confirm_trial(path="slot"):
    # The selector runs a new firmware on trial ("b booted" in /slot) and takes it back if
    # the board resets before it confirms. Confirm: rewrite the line without the trial word,
    # through a new file renamed over the old, as the selector writes it. Called once the
    # edge is heard and before HELLO goes out, so a HELLO announcing this version means the
    # trial is already kept. Returns whether there was a trial to confirm. `path` is relative
    # to the root, the working directory at boot (selector.py says why).
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        return False  # not installed in slots (tests, an old flat install)
    if len(words) < 2:
        return False
    with open(path + ".new", "w") as f:
        f.write(words[0])
    os.rename(path + ".new", path)
    print("watchpost-controller %s confirmed in /%s" % (FIRMWARE_VERSION, words[0]))
    return True


def run(board, loops=-1, ticks_ms=time.ticks_ms, sleep_ms=time.sleep_ms, on_link_up=None):
    # on_link_up: called once, when the edge is first heard, before any frame answers it.
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
            if on_link_up is not None and controller.session.peer_up:
                try:
                    on_link_up()
                except Exception as e:  # unconfirmed: the next reset reverts; keep running
                    print("watchpost-controller: confirming failed: %r" % e)
                on_link_up = None
        controller.tick(now)
        for frame in controller.pending_output(now):
            uart.write(frame)
        wdt.feed()
        sleep_ms(LOOP_SLEEP_MS)
    return controller


def start():
    run(hal.board(), on_link_up=confirm_trial)


if __name__ == "__main__":  # run directly (an older flat install, mpremote run)
    start()
