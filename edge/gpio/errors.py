"""Errors of edge.gpio, details as attributes. Input faults (a stuck bell) are events on the
pole's queue, not errors; these are for a pole that cannot be wired up or is used closed."""

from __future__ import annotations


class GpioError(Exception):
    """Base of every error about the pole's directly wired inputs and lamp."""


class PinUnavailable(GpioError):
    """gpiozero refused a pin: not a GPIO on this board, already in use, or no pin driver."""

    def __init__(self, *, role: str, pin: int | str, detail: str) -> None:
        super().__init__(
            f"cannot use GPIO pin {pin!r} for the {role}: {detail} "
            "(give a free BCM GPIO number such as 17, or a gpiozero name such as 'GPIO17' or 'BOARD11')"
        )
        self.role = role
        self.pin = pin
        self.detail = detail


class PoleNotOpen(GpioError):
    """The pole was used before `async with` opened its pins, or after it closed."""

    def __init__(self, action: str) -> None:
        super().__init__(f"cannot {action}: the GPIO pole is not open (use `async with GpioPole(...)`)")
        self.action = action
