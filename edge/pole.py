"""What the pole's inputs tell the agent, whichever way they are wired.

A pole has either a pole controller on a UART (edge.controller) or its bell, door and lamp
wired straight to the Pi's GPIO (edge.gpio). Both are turned into these few events, so the
local rules (edge.rules) and the outbox never ask which. Times are wall-clock milliseconds since
the Unix epoch, taken on the Pi when the event reached it (the controller's own ticks are not
wall-clock time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

InputSource = Literal["controller", "gpio"]
FaultCategory = Literal["bell-circuit", "bell-stuck", "temperature", "supply", "link", "controller"]


@dataclass(frozen=True, slots=True)
class BellPress:
    """A citizen pressed an emergency call bell (`presses` folded into one alarm)."""

    bell_id: str
    pressed_at_ms: int
    source: InputSource
    presses: int = 1


@dataclass(frozen=True, slots=True)
class DoorChange:
    """The pole's cabinet door opened or closed."""

    open: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class InputFault:
    """A supervised condition of the pole's inputs was raised or cleared."""

    category: FaultCategory
    raised: bool
    at_ms: int
    component: str | None = None
    value: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ControllerRestarted:
    """The pole controller (re)started; a watchdog reset means its firmware hung."""

    cause: str
    firmware: str
    at_ms: int


PoleEvent = BellPress | DoorChange | InputFault | ControllerRestarted


class PoleInputs(Protocol):
    """The pole's bell, door and lamp, as one source. A fake lives beside each real adapter."""

    async def next_event(self) -> PoleEvent: ...

    async def set_lamp(self, on: bool, *, seconds: int = 0) -> None:
        """Light (or put out) the "call received" lamp; `seconds` 0 means until told otherwise."""
        ...

    def stored(self, event: PoleEvent) -> None:
        """The agent has `event` on flash: a source that holds events until then lets go."""
        ...
