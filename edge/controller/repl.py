"""A raw-REPL client for the pole controller's console (the Pico's USB serial, or the simulated
controller's console pty): interrupt the firmware, run MicroPython snippets and read what they
print, then soft-reset from the friendly REPL so the flash's main.py runs again. The same bytes
mpremote sends for `exec`, without its process. Used by edge.controller.firmware_update; beside
edge.controller.link, the only module under edge/ that imports pyserial.

Every snippet is prefixed with a watchdog feed (`feed_watchdog`): the firmware started the
RP2040 watchdog (8 s, it cannot be stopped), and nobody feeds it while the board sits in the
REPL. Kept fed while this client works, it resets the board into its firmware a few seconds
after this client stops talking, for instance because the process running it was killed."""

from __future__ import annotations

import contextlib
import time
from types import TracebackType
from typing import Self

import serial  # type: ignore[import-untyped]  # pyserial ships no type hints

CTRL_A = b"\x01"  # enter raw REPL
CTRL_B = b"\x02"  # leave raw REPL
CTRL_C = b"\x03"  # interrupt
CTRL_D = b"\x04"  # end of input; soft reset at an empty prompt
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"soft reboot\r\n"
FRIENDLY_PROMPT = b">>> "
RAW_PASTE_REQUEST = b"\x05A\x01"
PLAIN_CHUNK = 256  # bytes per write when the device cannot raw-paste (mpremote's pacing)

# Defined once per session, called before every snippet. On the Pico, machine.WDT() restarts
# the running watchdog's count (or starts one: then it is kept fed too). On the simulator the
# host-side watchdog is a FIFO named in $WATCHPOST_WDT (watchpost/sim/console.py).
WATCHDOG_HELPER = """\
import os, sys
def _wp_feed():
    if sys.platform == 'rp2':
        import machine
        machine.WDT(timeout=8000)
    else:
        p = os.getenv('WATCHPOST_WDT')
        if p:
            f = open(p, 'wb')
            f.write(b'1')
            f.close()
"""


ENTER_ATTEMPT_S = 2.0  # how long one interrupt-and-CTRL-A waits for the raw REPL banner


class ReplError(Exception):
    """The console did not behave like a MicroPython REPL; `step` says what was being done."""

    def __init__(self, step: str, detail: str, *, port: str) -> None:
        self.step = step
        self.detail = detail
        self.port = port
        super().__init__(f"{port}: {step}: {detail}")


class ReplExecError(ReplError):
    """A snippet raised on the device; `stderr` holds its traceback."""

    def __init__(self, stdout: str, stderr: str, *, port: str) -> None:
        self.stdout = stdout
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "(no message)"
        super().__init__("running a snippet", last, port=port)


class RawRepl:
    """`with RawRepl(port) as repl: repl.enter(); repl.exec("print(1)"); repl.restart_firmware()`.

    Blocking, for a worker thread. `timeout` bounds each wait for the device's answer."""

    def __init__(self, port: str, *, timeout: float = 10.0) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout {timeout}: expected seconds > 0")
        self.port = port
        self.timeout = timeout
        self._serial: serial.Serial | None = None
        self._raw_paste = True  # until the device says it cannot
        self._buffer = bytearray()  # read from the port, not yet consumed

    def open(self) -> None:
        try:
            self._serial = serial.Serial(self.port, baudrate=115200, timeout=0.02, write_timeout=self.timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ReplError("opening the console", str(exc), port=self.port) from exc

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- bytes

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise ReplError("using the console", "not open", port=self.port)
        return self._serial

    def _write(self, data: bytes, step: str) -> None:
        try:
            self._port().write(data)
        except (serial.SerialException, OSError) as exc:
            raise ReplError(step, f"writing: {exc}", port=self.port) from exc

    def _fill(self, step: str) -> None:
        # Wait up to the port's read timeout for a byte, then take all that waits.
        try:
            port = self._port()
            data: bytes = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise ReplError(step, f"reading: {exc}", port=self.port) from exc
        self._buffer += data

    def _read_until(self, ending: bytes, step: str, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while (at := self._buffer.find(ending)) < 0:
            if time.monotonic() > deadline:
                tail = bytes(self._buffer[-200:]).decode(errors="replace")
                raise ReplError(step, f"no {ending!r} from the device; it sent {tail!r}", port=self.port)
            self._fill(step)
        end = at + len(ending)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def _read_exactly(self, size: int, step: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        while len(self._buffer) < size:
            if time.monotonic() > deadline:
                got = bytes(self._buffer)
                raise ReplError(step, f"expected {size} bytes from the device, got {got!r}", port=self.port)
            self._fill(step)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _drain(self, quiet: float = 0.1) -> None:
        # Discard what the firmware printed until the line has been quiet for `quiet` s.
        deadline = time.monotonic() + quiet
        while time.monotonic() < deadline:
            before = len(self._buffer)
            self._fill("draining the console")
            if len(self._buffer) > before:
                deadline = time.monotonic() + quiet
        self._buffer.clear()

    # -- the REPL

    def enter(self) -> None:
        """Interrupt whatever runs and soft-reset into raw REPL: a fresh interpreter whose
        heap the firmware no longer holds, and main.py does not run (raw REPL skips it)."""
        step = "entering raw REPL"
        deadline = time.monotonic() + self.timeout
        while True:
            self._write(b"\r" + CTRL_C, step)
            time.sleep(0.1)
            self._write(CTRL_C, step)  # a second one, should the first land in a try/except
            self._drain()
            self._write(b"\r" + CTRL_A, step)
            # A board still booting, or unwinding from the interrupt, can miss the CTRL-A: ask
            # again until the whole timeout has gone, not once.
            left = deadline - time.monotonic()
            try:
                self._read_until(RAW_BANNER + b">", step, timeout=max(0.0, min(ENTER_ATTEMPT_S, left)))
                break
            except ReplError:
                if time.monotonic() >= deadline:
                    raise
        self._write(CTRL_D, step)
        self._read_until(SOFT_REBOOT, "soft-resetting in raw REPL")
        self._read_until(RAW_BANNER, "soft-resetting in raw REPL")
        self.exec(WATCHDOG_HELPER, feed=False)

    def exec(self, code: str, *, timeout: float | None = None, feed: bool = True) -> str:
        """Run `code` in raw REPL; return what it printed. Raises ReplExecError when it raised."""
        source = (("_wp_feed()\n" if feed else "") + code).encode()
        step = "running a snippet"
        self._read_until(b">", step)  # the raw REPL's prompt
        if self._raw_paste:
            self._write(RAW_PASTE_REQUEST, step)
            answer = self._read_exactly(2, step)
            if answer == b"R\x01":
                self._paste(source, step)
            else:
                self._raw_paste = False
                if answer != b"R\x00":  # an old firmware echoed the request: back to the prompt
                    self._read_until(RAW_BANNER + b">", step)
                self._plain(source, step)
        else:
            self._plain(source, step)
        stdout = self._read_until(CTRL_D, step, timeout)[:-1]
        stderr = self._read_until(CTRL_D, step, timeout)[:-1]
        if stderr:
            raise ReplExecError(
                stdout.decode(errors="replace"), stderr.decode(errors="replace"), port=self.port
            )
        return stdout.decode(errors="replace")

    def _paste(self, source: bytes, step: str) -> None:
        # Raw-paste: the device grants a window of bytes and sends \x01 for each new window.
        window = int.from_bytes(self._read_exactly(2, step), "little")
        remaining = window
        sent = 0
        while sent < len(source):
            while remaining == 0 or self._buffer or self._port().in_waiting:
                flag = self._read_exactly(1, step)
                if flag == b"\x01":
                    remaining += window
                elif flag == CTRL_D:  # the device ended the paste (a syntax error comes next)
                    self._write(CTRL_D, step)
                    return
                else:
                    raise ReplError(step, f"unexpected {flag!r} during raw paste", port=self.port)
            chunk = source[sent : sent + remaining]
            self._write(chunk, step)
            sent += len(chunk)
            remaining -= len(chunk)
        self._write(CTRL_D, step)
        self._read_until(CTRL_D, step)  # the device has all of it and starts compiling

    def _plain(self, source: bytes, step: str) -> None:
        for at in range(0, len(source), PLAIN_CHUNK):
            self._write(source[at : at + PLAIN_CHUNK], step)
            time.sleep(0.01)
        self._write(CTRL_D, step)
        if self._read_exactly(2, step) != b"OK":
            raise ReplError(step, "the device did not take the snippet", port=self.port)

    def restart_firmware(self) -> None:
        """Leave raw REPL and soft-reset from the friendly prompt, so the flash's main.py
        runs as after power-on. Returns once the reset is under way."""
        step = "restarting the firmware"
        self._write(b"\r" + CTRL_B, step)
        self._read_until(FRIENDLY_PROMPT, step)
        self._write(CTRL_D, step)
        self._read_until(SOFT_REBOOT, step)
