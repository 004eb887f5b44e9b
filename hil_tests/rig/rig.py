"""A rig as a scenario sees it: the pole's parts by what they do (the bell button, the door
switch, the lamp, the camera's port, the cabinet's power, the node's agent), whichever driver
the rig file binds to each, and the lab (broker, network relay, fleet, an MQTT observer).

The scenarios speak in the field's terms (`rig.press_bell()`, `rig.lab.net.cut()`,
`rig.power.cycle()`); nothing in them knows whether a finger or a FIFO presses the button.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from labgrid import Target
from labgrid.protocol import DigitalOutputProtocol, PowerProtocol

from hil_tests.rig.lab import WAIT_S, Lab
from hil_tests.rig.protocols import ControllerFaultProtocol, DigitalInputProtocol, EdgeNodeProtocol
from tests.mqtt_observer import Observer, Seen

BUTTON_HOLD_S = 0.3  # longer than the firmware's debounce, as a thumb is
BUTTON_RELEASE_S = 0.3  # and let go as long, so two presses in a row are two presses

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], *, timeout: float = WAIT_S) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class Rig:
    target: Target
    lab: Lab
    mqtt: Observer  # everything under the node's topics, both ways, in arrival order

    # -- the pole's parts (labgrid drivers, looked up by protocol and name)

    @property
    def node(self) -> EdgeNodeProtocol:
        driver: EdgeNodeProtocol = self.target.get_driver(EdgeNodeProtocol)
        return driver

    @property
    def bell(self) -> DigitalOutputProtocol:
        driver: DigitalOutputProtocol = self.target.get_driver(DigitalOutputProtocol, name="bell")
        return driver

    @property
    def door(self) -> DigitalOutputProtocol:
        driver: DigitalOutputProtocol = self.target.get_driver(DigitalOutputProtocol, name="door")
        return driver

    @property
    def camera(self) -> DigitalOutputProtocol:
        """The camera's power (PoE): off, the camera is unreachable."""
        driver: DigitalOutputProtocol = self.target.get_driver(DigitalOutputProtocol, name="camera")
        return driver

    @property
    def lamp(self) -> DigitalInputProtocol:
        driver: DigitalInputProtocol = self.target.get_driver(DigitalInputProtocol)
        return driver

    @property
    def power(self) -> PowerProtocol:
        driver: PowerProtocol = self.target.get_driver(PowerProtocol)
        return driver

    @property
    def controller(self) -> ControllerFaultProtocol:
        driver: ControllerFaultProtocol = self.target.get_driver(ControllerFaultProtocol)
        return driver

    @property
    def node_id(self) -> str:
        return self.node.node_id

    # -- what people do at the pole

    def press_bell(self) -> None:
        self.bell.set(True)
        time.sleep(BUTTON_HOLD_S)
        self.bell.set(False)
        time.sleep(BUTTON_RELEASE_S)

    # -- what the node sent

    def sent(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda body: True) -> list[Seen]:
        """Messages of `kind` the node published (up/), in arrival order, whose body matches."""
        prefix = f"watchpost/v1/node/{self.node_id}/up/"
        mine = [s for s in list(self.mqtt.messages) if s.topic.startswith(prefix) and s.kind == kind]
        return [s for s in mine if match(s.json())]

    def wait_sent(
        self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda body: True, *, count: int = 1
    ) -> list[Seen]:
        return wait_until(
            f"{count} {kind} message(s) from {self.node_id}",
            lambda: found if len(found := self.sent(kind, match)) >= count else None,
        )

    def wait_online(self, *, timeout: float = WAIT_S) -> dict[str, Any]:
        node: dict[str, Any] = self.lab.fleet.until(
            f"/nodes/{self.node_id}", lambda n: n if n["online"] else None, timeout=timeout
        )
        return node

    def diagnostics(self) -> str:
        """What to print when a scenario fails: the agent's last log lines."""
        return f"--- {self.node_id} agent log:\n{self.node.log_tail}"
