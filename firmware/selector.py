# Boot selector, installed as /main.py: the one file an OTA update never replaces. It runs the
# firmware of slot /a or /b and takes a trial firmware back out when it fails to come up. The
# firmware itself lives in the slot (its main.py); edge/controller/firmware_update.py fills the
# other slot and switches. Small on purpose: it is compiled on the device at every boot.
#
# /slot is one line: "a" runs /a. "b trial" runs /b on trial (the Pi has just switched); the
# selector first rewrites it to "b booted". A firmware confirms itself (main.confirm_trial)
# by rewriting "b" once it hears the edge. Finding "b booted" at boot means the trial reset
# before confirming (crash, watchdog, power): back to "a". A trial that raises or returns
# unconfirmed is taken back at once, and the board reset. No /slot: "a".
# Every write goes to /slot.new, renamed over /slot: a power cut leaves one whole line.
# Renames name both files relative to the root (the working directory at boot): the unix
# port's VfsPosix loses the first of two absolute paths, and littlefs does not mind.

import gc
import os
import sys


def _state():
    try:
        with open("/slot") as f:
            w = f.read().split()
    except OSError:
        w = []
    if not w or w[0] not in ("a", "b"):
        return ["a"]
    return w


def _write(line):
    with open("/slot.new", "w") as f:
        f.write(line)
    os.rename("slot.new", "slot")


def _arm_watchdog():
    # A trial that hangs before its own loop starts the watchdog must still be reset.
    if sys.platform == "rp2":
        import machine

        machine.WDT(timeout=8000)
    else:
        p = os.getenv("WATCHPOST_WDT")  # the simulator's host-side watchdog
        if p:
            with open(p, "wb") as f:
                f.write(b"\x01")


def _boot():
    w = _state()
    slot = w[0]
    other = "b" if slot == "a" else "a"
    trial = len(w) > 1
    if trial and w[1] != "trial":
        print("boot: trial firmware in /%s did not confirm, back to /%s" % (slot, other))
        _write(other)
        slot, trial = other, False
    elif trial:
        _write(slot + " booted")
        _arm_watchdog()
    # The slot first, and not the flash root: files of an older flat install stay unseen.
    sys.path[:] = ["/" + slot] + [p for p in sys.path if p and p[0] != "/"] + ["/lib"]
    gc.collect()  # what compiling this file left behind, before the firmware compiles
    try:
        import main  # the slot's main.py: this file runs as __main__, so the name is free

        if hasattr(main, "start"):
            main.start()
    except Exception as e:  # not KeyboardInterrupt (the Pi's Ctrl-C) nor SystemExit (reboot)
        sys.print_exception(e)
    if trial and _state() == [slot, "booted"]:
        print("boot: trial firmware in /%s failed, back to /%s" % (slot, other))
        _write(other)
        if sys.platform == "rp2":
            import machine

            machine.reset()
        raise SystemExit  # the simulator restarts the interpreter, as a reset


_boot()
