# "Call received" lamp on the pole, with an optional buzzer: lit by an edge command once an
# operator has taken the call. A duration turns it off again from tick(); 0 keeps it lit.

from link import ticks_diff


class Lamp:
    def __init__(self, pin, buzzer=None):
        self.pin = pin
        self.buzzer = buzzer
        self.lit = False
        self.buzzing = False
        self._off_at = 0
        self._timed = False
        self.set(False)

    def set(self, on, now=0, seconds=0, buzz=False):
        self.lit = bool(on)
        self.buzzing = bool(on and buzz and self.buzzer is not None)
        self.pin.value(1 if self.lit else 0)
        if self.buzzer is not None:
            self.buzzer.value(1 if self.buzzing else 0)
        self._timed = self.lit and seconds > 0
        if self._timed:
            self._off_at = now + seconds * 1000

    def on(self, now=0, seconds=0, buzz=False):
        self.set(True, now, seconds, buzz)

    def off(self):
        self.set(False)

    def tick(self, now):
        # Returns True when a timed lamp has just gone out.
        if self._timed and ticks_diff(now, self._off_at) >= 0:
            self.set(False)
            return True
        return False
