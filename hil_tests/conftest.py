"""The HIL suite's fixtures. The rig comes from the labgrid environment file given with
`--lg-env` (hil_tests/rigs/sim.yaml here, hil_tests/rigs/pi-pico.yaml in a lab); every test
gets a fresh lab (broker, network relay, fleet manager on its own database) and the pole
powered on, its agent pointed at that lab and online, and leaves them stopped.

Scenarios that need what only one kind of rig has are marked with labgrid's
`@pytest.mark.lg_feature(...)`: `simulated` (faults only a simulator can make) or
`real-hardware`; on the other rig they are skipped with "unsupported feature(s): ...".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from labgrid import Environment

from hil_tests.rig.lab import Lab
from hil_tests.rig.rig import Rig
from tests.mqtt_observer import Observer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.hil)


@pytest.fixture(scope="session")
def rig_env(env: Environment | None) -> Environment:
    # labgrid's `env` fixture skips the suite without --lg-env; that reason is fine for a
    # checkout where someone runs `pytest hil_tests` without choosing a rig.
    assert env is not None
    return env


@pytest.fixture
def rig(rig_env: Environment, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    target = rig_env.get_target()
    assert target is not None, "the rig file has no `main` target"
    lab_options = _lab_options(rig_env)
    for resource in target.resources:
        if hasattr(resource, "workdir"):  # the simulated pole keeps its files under the test's
            resource.workdir = tmp_path / "pole"
            resource.workdir.mkdir()
    fleet_marker = request.node.get_closest_marker("fleet_config")  # TOML a scenario adds
    with (
        Lab(
            tmp_path / "lab",
            listen_host=lab_options.get("listen", "127.0.0.1"),
            advertise_host=lab_options.get("address", "127.0.0.1"),
            fleet_settings=fleet_marker.args[0] if fleet_marker is not None else "",
        ) as lab,
        Observer(lab.broker, "watchpost/v1/node/#") as seen,
    ):
        built = Rig(target, lab, seen)
        try:
            _power_up(built, tmp_path, request)
            yield built
        finally:
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                print(built.diagnostics())
            built.node.stop()
            built.power.off()
            for driver in list(target.drivers):
                target.deactivate(driver)


def _power_up(rig: Rig, workdir: Path, request: pytest.FixtureRequest) -> None:
    rig.camera.set(True)
    rig.power.on()
    extra = getattr(rig.node, "config_extra", None)
    if extra is not None:  # the driver lives for the session; what a scenario adds, for one test
        extra.clear()
        rig.node.env_extra.clear()  # type: ignore[attr-defined]
        rig.node.exec_start = None  # type: ignore[attr-defined]
    marker = request.node.get_closest_marker("node_config")
    if marker is not None:  # a scenario that needs more of the agent (e.g. [ota])
        if extra is None:
            raise pytest.UsageError("node_config needs a node driver that writes the agent's config")
        extra.update(marker.args[0](rig, workdir))
    rig.node.start(rig.lab.addresses, workdir)
    rig.wait_online()


def _lab_options(env: Environment) -> dict[str, str]:
    """The rig file's `lab` option: where the relay listens and the address the node is given
    (a real rig's Pi is another machine); the simulated rig has none: loopback."""
    try:
        options: dict[str, str] = dict(env.config.get_target_option("main", "lab"))
    except KeyError:
        return {}
    return options


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # The rig fixture prints the agent's log when the test body failed.
    report = yield
    if call.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
