"""The simulated pole controller's inputs, set from the host: a hand on the bell button, the
cabinet door, the bell loop's wiring, the temperature and supply, and a way to hang the
firmware. Writes line commands to the FIFO `<state_dir>/dev/control` that the simulator
(`watchpost.sim.console`) creates and the firmware (firmware/hal.py, SimControl) polls.

The state lives in the firmware's fake pins, so a controller reset returns every input to idle
(button released, door shut, loop normal, 25 degC, 12 V) until it is set again.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

# A bell-loop ADC reading for each wiring state (firmware/bell.py's default bands).
LOOP_OPEN_RAW = 65535  # cut wire: pulled up
LOOP_SHORT_RAW = 0  # shorted pair: pulled down
LOOP_NORMAL_RAW = 32768  # through the end-of-line resistor

# Writes to a FIFO up to PIPE_BUF bytes are atomic; the firmware relies on whole lines.
_MAX_COMMAND = 256


class ControlError(Exception):
    """The simulator's control FIFO is missing or full."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Outputs:
    """The controller's output pins, as a probe on them would read."""

    lamp: bool
    buzzer: bool


class SimulatedInputs:
    """Set the inputs of the simulated pole controller running on `state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "dev" / "control"
        self._outputs = state_dir / "dev" / "outputs"
        self._asks = itertools.count(1)

    def send(self, command: str) -> None:
        """Write one raw control line, e.g. "loop 40000"."""
        line = (command.strip() + "\n").encode()
        if len(line) > _MAX_COMMAND or "\n" in command.strip():
            raise ValueError(f"control command {command!r}: expected one line under {_MAX_COMMAND} bytes")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise ControlError(
                f"{self.path} does not exist: is the simulator running?", path=self.path
            ) from exc
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a FIFO nobody holds open for reading
                raise ControlError(
                    f"{self.path} has no reader: is the simulator running?", path=self.path
                ) from exc
            raise
        try:
            os.write(fd, line)
        except BlockingIOError as exc:
            raise ControlError(
                f"{self.path} is full: the firmware is not reading it", path=self.path
            ) from exc
        finally:
            os.close(fd)

    # -- the bell button (a citizen's hand)

    def press_bell(self) -> None:
        self.send("bell 1")

    def release_bell(self) -> None:
        self.send("bell 0")

    # -- the cabinet door

    def open_door(self) -> None:
        self.send("door 1")

    def close_door(self) -> None:
        self.send("door 0")

    # -- the bell loop's wiring

    def break_loop(self) -> None:
        self.send(f"loop {LOOP_OPEN_RAW}")

    def short_loop(self) -> None:
        self.send(f"loop {LOOP_SHORT_RAW}")

    def restore_loop(self) -> None:
        self.send(f"loop {LOOP_NORMAL_RAW}")

    # -- sensors

    def set_temperature(self, celsius: float) -> None:
        self.send(f"temp {float(celsius):.2f}")

    def set_supply(self, volts: float) -> None:
        self.send(f"supply {float(volts):.3f}")

    # -- faults

    def hang(self) -> None:
        """The firmware spins without feeding its watchdog (until the watchdog resets it)."""
        self.send("hang")

    # -- outputs (read, not set)

    def outputs(self, timeout: float = 5.0) -> Outputs:
        """Ask the firmware for its output pins and wait for its answer in `dev/outputs`. The
        firmware answers between two turns of its loop, so a hung controller does not answer:
        TimeoutError."""
        ask = next(self._asks)
        self.send(f"outputs {ask}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                words = self._outputs.read_text().split()
            except FileNotFoundError:
                words = []
            if len(words) == 3 and words[0] == str(ask):
                return Outputs(lamp=words[1] == "1", buzzer=words[2] == "1")
            time.sleep(0.02)
        raise TimeoutError(f"the simulated controller did not report its outputs within {timeout} s")
