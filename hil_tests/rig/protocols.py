"""What a scenario asks of a rig beyond labgrid's own protocols (DigitalOutputProtocol for a
hand on the bell or the door, PowerProtocol for the cabinet's supply, ConsoleProtocol for the
controller's USB console). Each rig file binds a driver for each: the simulated rig's in
`sim_drivers.py`, the real rig's in `real_drivers.py`."""

from __future__ import annotations

import abc
from pathlib import Path

from hil_tests.rig.lab import LabAddresses


class DigitalInputProtocol(abc.ABC):
    """A line the rig reads: the "call received" lamp's output through an optocoupler."""

    @abc.abstractmethod
    def get(self) -> bool:
        raise NotImplementedError


class EdgeNodeProtocol(abc.ABC):
    """The edge agent on the node, pointed at the lab: started, stopped, killed."""

    node_id: str
    site_id: str
    pin: str  # the diagnostics PIN the technician types

    @abc.abstractmethod
    def start(self, lab: LabAddresses, workdir: Path) -> None:
        """(Re)configure the agent for `lab` and start it; returns once it runs."""

    @abc.abstractmethod
    def stop(self) -> None:
        """An orderly stop (SIGTERM, as `systemctl stop` sends)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL, as a crash would; the supervisor (systemd) starts it again."""

    @property
    @abc.abstractmethod
    def diag_url(self) -> str:
        """The node's local HTTP (diagnostics), as a technician's phone reaches it."""

    @property
    @abc.abstractmethod
    def log_tail(self) -> str:
        """The last lines the agent logged, for a failing test's message."""


class ControllerFaultProtocol(abc.ABC):
    """Faults of the pole controller itself."""

    @abc.abstractmethod
    def hang(self) -> None:
        """Make the firmware stop feeding its watchdog (until the watchdog resets it)."""
