"""The pole's bell, door and lamp wired straight to the Pi's GPIO, for poles without a pole
controller: GpioPole implements edge.pole.PoleInputs; edge.gpio.fake wires it to mock pins."""

from .errors import GpioError, PinUnavailable, PoleNotOpen
from .pole import GpioPole, GpioStatus

__all__ = ["GpioError", "GpioPole", "GpioStatus", "PinUnavailable", "PoleNotOpen"]
