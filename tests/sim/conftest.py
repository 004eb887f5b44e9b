"""Fixtures for the simulated pole controller: a running `watchpost sim controller` on a
temporary state directory, stopped (with its interpreter) when the test ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

WATCHPOST = Path(sys.executable).parent / "watchpost"
MPREMOTE = Path(sys.executable).parent / "mpremote"


@dataclass
class SimulatedController:
    state_dir: Path
    console: Path
    process: subprocess.Popen[str]

    @property
    def flash(self) -> Path:
        return self.state_dir / "flash"

    def mpremote(self, *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MPREMOTE), "connect", str(self.console), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def log(self) -> str:
        return (self.state_dir.parent / "sim.log").read_text()

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        return self.process.returncode


def start_controller(state_dir: Path, *extra: str) -> SimulatedController:
    """Start `watchpost sim controller`; its log goes to `sim.log` beside the state directory."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir.parent / "sim.log").open("w") as log:
        process = subprocess.Popen(
            [str(WATCHPOST), "sim", "controller", "--state-dir", str(state_dir), *extra],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()  # "console <path>", printed once the console is open
    sim = SimulatedController(state_dir, Path(line.partition(" ")[2].strip()), process)
    if not line.startswith("console "):
        sim.stop()
        pytest.fail(f"the simulator did not start: {line!r}\n{sim.log}")
    return sim


@pytest.fixture
def controller(micropython: Path, tmp_path: Path) -> Iterator[SimulatedController]:
    """A simulated pole controller with an empty flash."""
    sim = start_controller(tmp_path / "pole")
    try:
        yield sim
    finally:
        sim.stop()


def interpreter_pids(state_dir: Path) -> list[int]:
    """MicroPython processes started for this state directory (their command line names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"heapsize=" in cmdline and str(state_dir).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
