# Cabinet door / tamper switch: a debounced level turned into "open" and "closed" events.
# Polled by controller.py with the current millisecond tick, like bell.Bell.

from link import ticks_diff

OPEN = "open"
CLOSED = "closed"


class Door:
    # pin: object with value() -> 0/1. open_level: the pin level of an open door (1 for a
    # switch that closes to ground while the door is shut, with a pull-up). At boot the door
    # is assumed closed, so a door already open is reported once the level has held for
    # debounce_ms; a closed door at boot says nothing.

    def __init__(self, pin, debounce_ms=50, open_level=1, now=0):
        self.pin = pin
        self.debounce_ms = debounce_ms
        self.open_level = open_level
        self.is_open = False
        self.changed_at = now  # tick of the edge that started the last debounced change
        self._raw = False
        self._raw_at = now
        self.openings = 0

    def poll(self, now):
        raw = self.pin.value() == self.open_level
        if raw != self._raw:
            self._raw = raw
            self._raw_at = now
            return None
        if raw == self.is_open or ticks_diff(now, self._raw_at) < self.debounce_ms:
            return None
        self.is_open = raw
        self.changed_at = self._raw_at
        if raw:
            self.openings += 1
            return OPEN
        return CLOSED
