"""The pole's inputs as seen through its pole controller: turns what `ControllerLink` delivers
into the agent's pole events (edge.pole) and keeps the controller's latest readings for
telemetry. A bell press is acknowledged on the link only when the agent says it is stored.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.controller import payloads
from edge.controller.link import ControllerLink, ControllerReset, LinkDown, LinkItem, LinkUp
from edge.pole import BellPress, ControllerRestarted, DoorChange, InputFault, PoleEvent

log = logging.getLogger(__name__)

TICKS_MOD = 1 << 30  # the controller's ticks wrap here (protocols.link)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class ControllerReadings:
    """The controller's last telemetry, for the node's own telemetry and diagnostics."""

    temp_c: float | None = None
    supply_v: float | None = None
    heap_free: int | None = None
    loop: str | None = None
    bell_down: bool | None = None
    door_open: bool | None = None
    lamp_on: bool | None = None
    bell_presses: int | None = None
    firmware: str | None = None
    reset_cause: str | None = None
    link_up: bool = False
    counters: dict[str, int] = field(default_factory=dict)


def event_of(item: LinkItem, at_ms: int) -> PoleEvent | None:
    """The pole event a controller message or link status stands for, if any (pure)."""
    match item:
        case payloads.BellPressed(id=bell_id, n=presses):
            return BellPress(bell_id, at_ms, "controller", presses)
        case payloads.BellStuck(id=bell_id, st=state):
            return InputFault("bell-stuck", state == "stuck", at_ms, component=bell_id)
        case payloads.CircuitChanged(st=state, raw=raw):
            detail = {"open": "bell circuit open (cable cut?)", "short": "bell circuit shorted"}.get(
                state, ""
            )
            return InputFault("bell-circuit", state != "normal", at_ms, value=raw, detail=detail)
        case payloads.DoorChanged(st=state):
            return DoorChange(state == "open", at_ms)
        case payloads.TemperatureChanged(st=state, c=celsius):
            return InputFault("temperature", state == "high", at_ms, component="controller", value=celsius)
        case payloads.SupplyChanged(st=state, v=volts):
            return InputFault("supply", state == "low", at_ms, value=volts)
        case LinkDown():
            return InputFault("link", True, at_ms, component="controller", detail="pole controller not heard")
        case LinkUp():
            return InputFault("link", False, at_ms, component="controller")
        case ControllerReset(hello=hello):
            return ControllerRestarted(hello.rst, hello.fw, at_ms)
    return None


class ControllerPole:
    """`PoleInputs` over a running `ControllerLink` (made with `confirm_delivery=True`)."""

    def __init__(self, controller: ControllerLink, *, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.controller = controller
        self.readings = ControllerReadings()
        self._clock_ms = clock_ms
        self._ids = itertools.count(1)
        # wall ms - controller ticks, from the last fresh frame: dates a press retransmitted late.
        self._tick_offset: int | None = None
        self._items: dict[int, LinkItem] = {}  # id(event) -> the link item it came from

    async def next_event(self) -> PoleEvent:
        while True:
            item = await self.controller.items.get()
            now = self._clock_ms()
            self._note(item, now)
            event = event_of(item, self._press_time(item, now))
            if event is None:
                self.controller.confirm_stored(item)  # readings only: nothing to store
                continue
            self._items[id(event)] = item
            return event

    def stored(self, event: PoleEvent) -> None:
        item = self._items.pop(id(event), None)
        if item is not None:
            self.controller.confirm_stored(item)

    async def set_lamp(self, on: bool, *, seconds: int = 0) -> None:
        result = await self.controller.send_command(payloads.lamp(on, seconds, id=self._next_id()))
        if not result.ok:
            raise RuntimeError(f"the controller refused the lamp command: {result.err}")

    async def command(self, name: str) -> payloads.CommandResult:
        """Run one of the controller's own commands: "self-test", "status", "ping", "reboot"."""
        builders = {
            "self-test": payloads.self_test,
            "status": payloads.status,
            "ping": payloads.ping,
            "reboot": payloads.reboot,
        }
        if name not in builders:
            raise ValueError(f"controller command {name!r} unknown; accepted: {', '.join(builders)}")
        return await self.controller.send_command(builders[name](id=self._next_id()))

    def _next_id(self) -> str:
        return f"edge-{next(self._ids)}"

    def _press_time(self, item: LinkItem, now: int) -> int:
        # A press retransmitted after a link outage arrives late; its own tick says when.
        if not isinstance(item, payloads.BellPressed) or self._tick_offset is None:
            return now
        age = (self._tick_offset + item.t - now) % TICKS_MOD
        age = age - TICKS_MOD if age > TICKS_MOD // 2 else age
        return now + age if -3_600_000 < age <= 0 else now

    def _note(self, item: LinkItem, now: int) -> None:
        r = self.readings
        match item:
            case payloads.Telemetry() as t:
                r.temp_c, r.supply_v, r.heap_free, r.loop = t.c, t.v, t.heap, t.loop
                r.bell_down, _, r.door_open, r.lamp_on = (bool(flag) for flag in t.inputs)
                r.bell_presses = t.bp
                self._tick_offset = now - t.t
            case payloads.Counters() as c:
                r.counters = {"link_" + k: v for k, v in zip(_LINK_COUNTERS, c.ln, strict=False)}
                r.counters["exceptions"] = c.exc
                self._tick_offset = now - c.t
            case ControllerReset(hello=hello):
                r.firmware, r.reset_cause = hello.fw, hello.rst
                self._tick_offset = now - hello.t
            case LinkUp():
                r.link_up = True
            case LinkDown():
                r.link_up = False
            case payloads.CommandResult(ok=False, err=err):
                log.warning("controller: unmatched failed result: %s", err)


_LINK_COUNTERS = (
    "sent",
    "retransmits",
    "duplicates",
    "delivered",
    "dropped_telemetry",
    "dropped_events",
    "downs",
)
