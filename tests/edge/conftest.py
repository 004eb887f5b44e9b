"""Fixtures for the edge agent's tests: a simulated pole controller running the real firmware
(as tests/sim/test_device.py starts it), stopped when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sim.conftest import SimulatedController, start_controller
from watchpost.sim.controls import SimulatedInputs
from watchpost.sim.pole import install_firmware

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Pole:
    sim: SimulatedController
    inputs: SimulatedInputs

    @property
    def uart(self) -> str:
        return str(self.sim.state_dir / "uart")


@pytest.fixture
def start_pole(micropython: Path, tmp_path: Path) -> Iterator[Callable[..., Pole]]:
    """Start a simulated controller with the real firmware in its flash; extra arguments go
    to `watchpost sim controller` (e.g. "--watchdog", "2")."""
    poles: list[Pole] = []

    def start(*extra: str) -> Pole:
        install_firmware(tmp_path / "pole" / "flash")
        sim = start_controller(tmp_path / "pole", *extra)
        pole = Pole(sim, SimulatedInputs(sim.state_dir))
        poles.append(pole)
        return pole

    try:
        yield start
    finally:
        for pole in poles:
            pole.sim.stop()
