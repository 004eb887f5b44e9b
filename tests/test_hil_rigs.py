"""The HIL rig files: the simulated rig and the real rig bind a driver for every part the
scenarios use, so the same test files run on both (hil_tests/rig/rig.py looks them up)."""

from __future__ import annotations

from pathlib import Path

import pytest
from labgrid import Environment
from labgrid.protocol import DigitalOutputProtocol, PowerProtocol

from hil_tests.rig.protocols import ControllerFaultProtocol, DigitalInputProtocol, EdgeNodeProtocol

RIGS = Path(__file__).resolve().parents[1] / "hil_tests" / "rigs"

# (protocol, name) for every part hil_tests/rig/rig.py offers a scenario.
PARTS = [
    (EdgeNodeProtocol, None),
    (DigitalOutputProtocol, "bell"),
    (DigitalOutputProtocol, "door"),
    (DigitalOutputProtocol, "camera"),
    (DigitalInputProtocol, None),
    (PowerProtocol, None),
    (ControllerFaultProtocol, None),
]


def test_every_rig_file_is_listed_here() -> None:
    assert sorted(p.name for p in RIGS.glob("*.yaml")) == ["pi-pico.yaml", "sim.yaml"]


@pytest.mark.parametrize("rig_file", ["sim.yaml", "pi-pico.yaml"])
def test_the_rig_binds_every_part_a_scenario_uses(rig_file: str) -> None:
    env = Environment(str(RIGS / rig_file))
    target = env.get_target()
    assert target is not None
    for protocol, name in PARTS:
        # Bound, not activated: activating the real rig's drivers would reach for its hardware.
        driver = target.get_driver(protocol, name=name, activate=False)
        assert isinstance(driver, protocol)


def test_the_rigs_differ_in_the_features_scenarios_may_ask_for() -> None:
    sim = Environment(str(RIGS / "sim.yaml")).get_target_features()
    real = Environment(str(RIGS / "pi-pico.yaml")).get_target_features()
    assert sim == {"simulated"}
    assert real == {"real-hardware"}


def test_the_real_rig_tells_the_node_where_the_lab_is() -> None:
    env = Environment(str(RIGS / "pi-pico.yaml"))
    lab = env.config.get_target_option("main", "lab")
    assert lab["listen"] == "0.0.0.0"
    assert lab["address"] != "127.0.0.1"  # the Pi is another machine
