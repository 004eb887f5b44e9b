# Emergency call bell: the button a citizen presses (Bell) and the supervision of its wiring
# loop through an end-of-line resistor (BellCircuit). Both are polled by controller.py with
# the current millisecond tick and return at most one event per poll; they never touch the
# link, so the controller decides how an event travels (and folds repeated presses).
#
# Events are module-level strings, so returning one allocates nothing.

from link import ticks_diff

PRESSED = "pressed"
STUCK = "stuck"
STUCK_CLEARED = "stuck-cleared"

NORMAL = "normal"
OPEN = "open"
SHORT = "short"


class Bell:
    # pin: object with value() -> 0/1. active_low: the button pulls a pulled-up input to
    # ground (the Pico wiring). A level counts only once it has held for debounce_ms, so
    # contact bounce cannot make two presses. At boot the button is assumed released: a
    # button already held is reported as a press (never lose a call) and, if it stays down,
    # as stuck after stuck_after_ms.

    def __init__(self, pin, debounce_ms=30, stuck_after_ms=20000, active_low=True, now=0):
        self.pin = pin
        self.debounce_ms = debounce_ms
        self.stuck_after_ms = stuck_after_ms
        self._active = 0 if active_low else 1
        self.down = False  # debounced state
        self.stuck = False
        self.pressed_at = now  # tick of the last press: the edge after which the level held
        self._raw = False
        self._raw_at = now
        self.presses = 0  # debounced presses since boot

    def poll(self, now):
        raw = self.pin.value() == self._active
        if raw != self._raw:
            self._raw = raw
            self._raw_at = now
        elif raw != self.down and ticks_diff(now, self._raw_at) >= self.debounce_ms:
            self.down = raw
            if raw:
                self.pressed_at = self._raw_at
                self.presses += 1
                return PRESSED
            if self.stuck:
                self.stuck = False
                return STUCK_CLEARED
            return None
        if self.down and not self.stuck and ticks_diff(now, self.pressed_at) >= self.stuck_after_ms:
            self.stuck = True
            return STUCK
        return None


class BellCircuit:
    # adc: object with read_u16(). The loop reads about mid-scale through its end-of-line
    # resistor; a cut wire pulls it up (OPEN), a shorted pair pulls it down (SHORT).
    # short_below / open_above are the band edges in raw u16 counts; to return to NORMAL a
    # reading must come back inside the band by `hysteresis` counts. A new class counts only
    # after `confirm` consecutive samples agree, taken every sample_ms, so a noisy reading
    # near an edge cannot flap. Configure the bands per pole wiring; a pressed button must
    # read inside the normal band.

    def __init__(
        self,
        adc,
        short_below=8000,
        open_above=56000,
        hysteresis=1500,
        confirm=3,
        sample_ms=100,
        now=0,
    ):
        self.adc = adc
        self.short_below = short_below
        self.open_above = open_above
        self.hysteresis = hysteresis
        self.confirm = confirm
        self.sample_ms = sample_ms
        self.state = NORMAL
        self.raw = 0
        self._candidate = NORMAL
        self._count = 0
        self._sampled_at = now - sample_ms

    def classify(self, raw):
        # Pure: the class of one reading, given the current state (for hysteresis).
        margin = self.hysteresis if self.state != NORMAL else 0
        if raw < self.short_below + (margin if self.state == SHORT else 0):
            return SHORT
        if raw > self.open_above - (margin if self.state == OPEN else 0):
            return OPEN
        return NORMAL

    def read(self):
        # One reading and its class now, without debouncing (for a self-test).
        self.raw = self.adc.read_u16()
        return self.classify(self.raw)

    def poll(self, now):
        # Returns OPEN, SHORT or NORMAL when the confirmed state changes, else None.
        if ticks_diff(now, self._sampled_at) < self.sample_ms:
            return None
        self._sampled_at = now
        seen = self.read()
        if seen == self.state:
            self._count = 0
            return None
        if seen != self._candidate:
            self._candidate = seen
            self._count = 0
        self._count += 1
        if self._count < self.confirm:
            return None
        self._count = 0
        self.state = seen
        return seen
