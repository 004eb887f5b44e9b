"""A simulated pole controller with the real firmware in its flash, as its own process
(`watchpost sim controller`): for the demo and the benchmarks. The edge tests start theirs
through tests/sim/conftest.py, which adds logs and mpremote."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from watchpost.deploy import install_into
from watchpost.processes import dying_with_parent

REPO = Path(__file__).resolve().parents[2]
WATCHPOST = Path(sys.executable).parent / "watchpost"


def install_firmware(flash: Path, source: Path = REPO / "firmware") -> None:
    """What `watchpost firmware deploy` puts on a Pico: the boot selector as /main.py, the
    firmware and the link codec in slot /a, and /slot saying "a"."""
    flash.mkdir(parents=True, exist_ok=True)
    install_into(flash, source)


def micropython_available() -> bool:
    return (Path(sys.executable).parent / "micropython").exists()


@contextlib.contextmanager
def simulated_pole(state_dir: Path) -> Iterator[Path]:
    """Run the firmware on the simulated device until the block ends; yields the UART the edge
    agent opens (`<state_dir>/uart`). Its inputs: watchpost.sim.controls.SimulatedInputs."""
    install_firmware(state_dir / "flash")
    process = subprocess.Popen(
        dying_with_parent([str(WATCHPOST), "sim", "controller", "--state-dir", str(state_dir)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        if not process.stdout.readline().startswith("console "):
            raise RuntimeError("the simulated pole controller did not start")
        yield state_dir / "uart"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
