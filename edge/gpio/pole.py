"""A pole wired straight to the Pi's GPIO (no pole controller): bell and door switches in, the
"call received" lamp out, as edge.pole.PoleInputs. The I/O shell around edge.gpio.contacts,
which decides what an edge means; edge.gpio.fake wires it to gpiozero's mock pins.

The only module under edge/ that drives gpiozero devices. gpiozero calls back on its own
threads; each edge is stamped there and handed to the event loop, and everything after that
runs on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from gpiozero import DigitalInputDevice, DigitalOutputDevice  # type: ignore[import-untyped]
from gpiozero.exc import GPIOZeroError  # type: ignore[import-untyped]

from edge.pole import BellPress, DoorChange, InputFault, PoleEvent

from .contacts import BellChange, BellContact, BellOutcome, DoorContact
from .errors import PinUnavailable, PoleNotOpen

log = logging.getLogger(__name__)

Pin = int | str  # a BCM number (17) or any name gpiozero accepts ("GPIO17", "BOARD11")
Level = Literal["high", "low"]
Input = Literal["bell", "door"]

# gpiozero is untyped; a pin factory is a gpiozero.Factory (MockFactory in tests, the default
# lgpio factory on a Pi when None is given).
PinFactory = Any


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class GpioStatus:
    """A snapshot for the diagnostics page; levels are the debounced ones."""

    bell_pressed: bool
    bell_stuck: bool
    door_open: bool | None  # None before the pole is open
    lamp_on: bool
    presses: int  # presses reported since the pole opened


class GpioPole:
    """Use as `async with GpioPole(bell_pin=17, door_pin=27, lamp_pin=22) as pole:`, then
    `await pole.next_event()` and `await pole.set_lamp(True, seconds=30)`.

    Wiring: the bell is a push button from its pin to ground (internal pull-up, pressed reads
    low). The door is a switch from its pin to ground; `door_open_when` says which level means
    open ("high": the switch closes when the door shuts, the usual cabinet contact). The lamp
    is driven active-high.

    Debouncing is done here (edge.gpio.contacts), not by gpiozero's bounce_time: the mock pins
    ignore bounce_time, and one rule on every pin driver means the tests exercise what the
    Pi runs."""

    def __init__(
        self,
        *,
        bell_pin: Pin,
        door_pin: Pin,
        lamp_pin: Pin,
        bell_id: str = "bell-1",
        pin_factory: PinFactory = None,
        clock_ms: Callable[[], int] = wall_ms,
        debounce_s: float = 0.03,
        stuck_after_s: float = 10.0,
        door_open_when: Level = "high",
    ) -> None:
        pins = {"bell_pin": bell_pin, "door_pin": door_pin, "lamp_pin": lamp_pin}
        if len(set(pins.values())) != len(pins):
            raise ValueError(f"bell, door and lamp need three different pins, got {pins}")
        if door_open_when not in ("high", "low"):
            raise ValueError(f"door_open_when must be 'high' or 'low', got {door_open_when!r}")
        if not bell_id:
            raise ValueError("bell_id must name the bell (such as 'bell-1'), got an empty string")
        self.bell_pin = bell_pin
        self.door_pin = door_pin
        self.lamp_pin = lamp_pin
        self.bell_id = bell_id
        self.door_open_when = door_open_when
        self._pin_factory = pin_factory
        self._clock_ms = clock_ms
        # Both validate their timings (ValueError naming the value) before any pin is touched.
        self._bell = BellContact(debounce_s=debounce_s, stuck_after_s=stuck_after_s)
        self._door = DoorContact(debounce_s=debounce_s)
        self._opened = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bell_input: Any = None
        self._door_input: Any = None
        self._lamp: Any = None
        self._contact_timer: asyncio.TimerHandle | None = None
        self._contact_deadline: float | None = None
        self._lamp_timer: asyncio.TimerHandle | None = None
        # Unbounded on purpose: a bell press must never be dropped here.
        self.events: asyncio.Queue[PoleEvent] = asyncio.Queue()

    # -- lifecycle

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Claim the pins and report the door (and a bell already held) as they are now.
        Must run on the event loop that will read the events."""
        if self._opened:
            # The contacts remember the last session (a held bell, a stuck fault): start afresh.
            raise RuntimeError("a GpioPole opens once; make a new one to open the pins again")
        self._opened = True
        self._loop = asyncio.get_running_loop()
        try:
            self._bell_input = self._claim("bell", self.bell_pin, DigitalInputDevice, pull_up=True)
            self._door_input = self._claim("door", self.door_pin, DigitalInputDevice, pull_up=True)
            self._lamp = self._claim("lamp", self.lamp_pin, DigitalOutputDevice, initial_value=False)
        except BaseException:
            self.close()
            raise
        # Callbacks first, levels second: an edge in between reaches the loop after this
        # method returns, and the contacts ignore one that repeats the level read here.
        self._watch(self._bell_input, "bell")
        self._watch(self._door_input, "door")
        now = time.monotonic()
        self._emit_bell(self._bell.start(bool(self._bell_input.is_active), now))
        door_open = self._door.start(self._door_open(bool(self._door_input.is_active)), now)
        self.events.put_nowait(DoorChange(open=door_open, at_ms=self._clock_ms()))
        self._schedule_contacts()

    def close(self) -> None:
        """Release the pins (the lamp goes out). Safe to call twice."""
        for device in (self._bell_input, self._door_input):
            # gpiozero warns when a callback that was never set is set to None.
            if device is not None and device.when_activated is not None:
                device.when_activated = None
                device.when_deactivated = None
        for timer in (self._contact_timer, self._lamp_timer):
            if timer is not None:
                timer.cancel()
        self._contact_timer = self._lamp_timer = None
        if self._lamp is not None:
            with contextlib.suppress(GPIOZeroError):
                self._lamp.off()
        for device in (self._bell_input, self._door_input, self._lamp):
            if device is not None:
                device.close()
        self._bell_input = self._door_input = self._lamp = None
        self._loop = None

    def _claim(self, role: str, pin: Pin, device_class: Any, **settings: Any) -> Any:
        try:
            return device_class(pin, pin_factory=self._pin_factory, **settings)
        except GPIOZeroError as exc:
            raise PinUnavailable(role=role, pin=pin, detail=str(exc) or type(exc).__name__) from exc

    # -- PoleInputs

    async def next_event(self) -> PoleEvent:
        return await self.events.get()

    def stored(self, event: PoleEvent) -> None:
        """Nothing to release: a GPIO edge is not held anywhere until it is stored."""

    async def set_lamp(self, on: bool, *, seconds: float = 0) -> None:
        """Light or put out the lamp; with `seconds` > 0 a lit lamp goes out by itself after
        that long. Every call replaces the previous one's timer."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0 (0: until told otherwise), got {seconds!r}")
        if self._lamp is None or self._loop is None:
            raise PoleNotOpen("set the lamp")
        if self._lamp_timer is not None:
            self._lamp_timer.cancel()
            self._lamp_timer = None
        if on:
            self._lamp.on()
            if seconds > 0:
                self._lamp_timer = self._loop.call_later(seconds, self._lamp_expired)
        else:
            self._lamp.off()

    def _lamp_expired(self) -> None:
        self._lamp_timer = None
        if self._lamp is not None:
            self._lamp.off()

    # -- diagnostics

    def status(self) -> GpioStatus:
        return GpioStatus(
            bell_pressed=self._bell.pressed,
            bell_stuck=self._bell.stuck,
            door_open=self._door.reported if self._loop is not None else None,
            lamp_on=self._lamp is not None and bool(self._lamp.value),
            presses=self._bell.presses,
        )

    # -- edges: gpiozero's thread, then the loop

    def _watch(self, device: Any, name: Input) -> None:
        loop = self._loop
        assert loop is not None

        def changed(active: bool) -> None:
            # On gpiozero's thread: stamp the edge now, decide on the loop.
            at = time.monotonic()
            try:
                loop.call_soon_threadsafe(self._on_edge, name, active, at)
            except RuntimeError:
                log.debug("gpio %s edge after the event loop closed: ignored", name)

        device.when_activated = lambda: changed(True)
        device.when_deactivated = lambda: changed(False)

    def _on_edge(self, name: Input, active: bool, at: float) -> None:
        if self._loop is None:
            return  # closed while the edge was on its way
        if name == "bell":
            self._emit_bell(self._bell.edge(active, at))
        else:
            self._emit_door(self._door.edge(self._door_open(active), at))
        self._schedule_contacts()

    def _on_deadline(self) -> None:
        deadline = self._contact_deadline
        self._contact_timer = self._contact_deadline = None
        if self._loop is None or deadline is None:
            return
        # asyncio may run a timer up to its clock resolution early; it is due all the same.
        now = max(time.monotonic(), deadline)
        self._emit_bell(self._bell.poll(now))
        self._emit_door(self._door.poll(now))
        self._schedule_contacts()

    def _schedule_contacts(self) -> None:
        deadlines = [d for d in (self._bell.deadline(), self._door.deadline()) if d is not None]
        deadline = min(deadlines, default=None)
        if deadline == self._contact_deadline:
            return
        if self._contact_timer is not None:
            self._contact_timer.cancel()
            self._contact_timer = None
        self._contact_deadline = deadline
        if deadline is not None and self._loop is not None:
            # loop.time() is time.monotonic(), the clock the contacts are fed with.
            self._contact_timer = self._loop.call_at(deadline, self._on_deadline)

    def _door_open(self, active: bool) -> bool:
        # With the pull-up a device is active when its pin reads low.
        return active if self.door_open_when == "low" else not active

    def _emit_bell(self, changes: list[BellChange]) -> None:
        for change in changes:
            at_ms = self._clock_ms()
            if change.outcome is BellOutcome.PRESSED:
                self.events.put_nowait(BellPress(bell_id=self.bell_id, pressed_at_ms=at_ms, source="gpio"))
            elif change.outcome is BellOutcome.STUCK:
                detail = f"bell held {change.held_s:.1f} s (limit {self._bell.stuck_after_s:g} s)"
                self.events.put_nowait(self._stuck_fault(True, at_ms, change.held_s, detail))
            else:
                detail = f"bell released after {change.held_s:.1f} s"
                self.events.put_nowait(self._stuck_fault(False, at_ms, change.held_s, detail))

    def _stuck_fault(self, raised: bool, at_ms: int, held_s: float, detail: str) -> InputFault:
        return InputFault(
            category="bell-stuck",
            raised=raised,
            at_ms=at_ms,
            component=self.bell_id,
            value=round(held_s, 1),
            detail=detail,
        )

    def _emit_door(self, changes: list[bool]) -> None:
        for is_open in changes:
            self.events.put_nowait(DoorChange(open=is_open, at_ms=self._clock_ms()))
