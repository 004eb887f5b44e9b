"""A pole's wiring on gpiozero's mock pins, beside the real GpioPole (edge.gpio.pole): tests and
the demo press the bell, open the door and look at the lamp without a Raspberry Pi.

Switches are modelled as what they are, a contact from the pin to ground: while it is closed
the pin reads low whatever pull the device asked for, so a door that is shut before the pole
opens still reads shut once GpioPole turns on the pull-up."""

from __future__ import annotations

from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin  # type: ignore[import-untyped]

from .pole import GpioPole, Level, Pin


class SwitchPin(MockPin):  # type: ignore[misc]  # gpiozero is untyped
    """A mock input pin with a switch to ground on it."""

    def __init__(self, factory: Any, info: Any) -> None:
        self.switch_closed = False
        super().__init__(factory, info)

    def close_switch(self) -> None:
        self.switch_closed = True
        self._settle()

    def open_switch(self) -> None:
        self.switch_closed = False
        self._settle()

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        self._settle()

    def _settle(self) -> None:
        if self._function != "input":
            return  # an output drives itself; the switch only matters on an input
        if self.switch_closed:
            self.drive_low()
        elif self._pull == "up":
            self.drive_high()
        elif self._pull == "down":
            self.drive_low()
        # Floating and open: the pin keeps whatever it last read.


class FakePoleWiring:
    """A MockFactory with a bell button, a door switch and a lamp on it, and the handles to
    work them. `pole()` builds the GpioPole that reads them; each instance is its own board,
    so two of them never see each other's pins."""

    def __init__(
        self,
        *,
        bell_pin: Pin = 17,
        door_pin: Pin = 27,
        lamp_pin: Pin = 22,
        door_open_when: Level = "high",
        door_open: bool = False,
    ) -> None:
        self.factory = MockFactory(pin_class=SwitchPin)
        self.bell_pin = bell_pin
        self.door_pin = door_pin
        self.lamp_pin = lamp_pin
        self.door_open_when = door_open_when
        self._bell: SwitchPin = self.factory.pin(bell_pin)
        self._door: SwitchPin = self.factory.pin(door_pin)
        self._lamp: MockPin = self.factory.pin(lamp_pin)
        self.set_door(open=door_open)

    def pole(self, **settings: Any) -> GpioPole:
        """A GpioPole on these pins; `settings` are GpioPole's other keyword arguments."""
        return GpioPole(
            bell_pin=self.bell_pin,
            door_pin=self.door_pin,
            lamp_pin=self.lamp_pin,
            door_open_when=self.door_open_when,
            pin_factory=self.factory,
            **settings,
        )

    # -- what a test (or the demo) does at the pole

    def press_bell(self) -> None:
        self._bell.close_switch()

    def release_bell(self) -> None:
        self._bell.open_switch()

    def chatter_bell(self, flips: int) -> None:
        """`flips` level changes in a burst, as a worn contact does when pressed or released."""
        for _ in range(flips):
            if self._bell.switch_closed:
                self.release_bell()
            else:
                self.press_bell()

    def open_door(self) -> None:
        self.set_door(open=True)

    def close_door(self) -> None:
        self.set_door(open=False)

    def set_door(self, *, open: bool) -> None:
        # "high" means open reads high: the switch is closed (pulling low) while the door is shut.
        closed_switch = not open if self.door_open_when == "high" else open
        if closed_switch:
            self._door.close_switch()
        else:
            self._door.open_switch()

    # -- what a test looks at

    def lamp_lit(self) -> bool:
        return self._lamp.function == "output" and bool(self._lamp.state)

    def bell_level(self) -> bool:
        """The bell pin's level (True: high, released)."""
        return bool(self._bell.state)

    def close(self) -> None:
        self.factory.close()
