"""Debouncing and supervision of the pole's wired contacts, as pure state machines fed with
levels and monotonic seconds; edge.gpio.pole feeds them from gpiozero and runs their deadlines
on asyncio timers, so every rule here is tested without pins, threads or sleeping."""

from __future__ import annotations

import enum
from dataclasses import dataclass


def _check_seconds(name: str, value: float, *, above: float = 0.0, inclusive: bool = True) -> None:
    ok = value >= above if inclusive else value > above
    if not ok:
        relation = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {relation} {above} seconds, got {value!r}")


class BellState(enum.Enum):
    IDLE = "idle"  # released, and known to have stayed released
    HELD = "held"  # pressed: the press was reported on its first edge
    RELEASING = "releasing"  # released, but too recently to tell a release from a bounce


class BellOutcome(enum.Enum):
    PRESSED = "pressed"  # one press, reported once
    STUCK = "stuck"  # held past the stuck limit: raise the bell-stuck fault
    UNSTUCK = "unstuck"  # a stuck bell was released: clear the fault (not a new press)


@dataclass(frozen=True, slots=True)
class BellChange:
    outcome: BellOutcome
    held_s: float  # how long the bell had been held when this was decided


class BellContact:
    """The bell button: a press is reported on its first edge (a citizen waits for nothing),
    and the contact must then stay released for `debounce_s` before another edge counts as a
    new press. A bell held past `stuck_after_s` is reported stuck once; its release clears that
    without counting as a press.

    Feed it `edge(pressed, now)` for every level change the pin reports and `poll(now)` at
    `deadline()`. A late poll changes nothing: `edge()` settles whatever fell due first, so
    decisions depend on the edges' times, not on when the timer ran."""

    def __init__(self, *, debounce_s: float, stuck_after_s: float) -> None:
        _check_seconds("debounce_s", debounce_s)
        _check_seconds("stuck_after_s", stuck_after_s, above=debounce_s, inclusive=False)
        self.debounce_s = debounce_s
        self.stuck_after_s = stuck_after_s
        self.state = BellState.IDLE
        self.stuck = False
        self.presses = 0
        self._held_since = 0.0
        self._released_at = 0.0

    @property
    def pressed(self) -> bool:
        """Held as far as the debounced contact goes (a bounce during release still counts)."""
        return self.state is not BellState.IDLE

    def start(self, pressed: bool, now: float) -> list[BellChange]:
        """The level when the agent starts watching. A bell already held is reported as a
        press: the agent cannot tell a citizen holding it from a stuck contact yet, and
        dropping a real call is worse than one alarm an operator dismisses."""
        return self.edge(pressed, now) if pressed else []

    def edge(self, pressed: bool, now: float) -> list[BellChange]:
        changes = self.poll(now)
        if pressed:
            if self.state is BellState.IDLE:
                self.state = BellState.HELD
                self._held_since = now
                self.presses += 1
                changes.append(BellChange(BellOutcome.PRESSED, 0.0))
            elif self.state is BellState.RELEASING:
                self.state = BellState.HELD  # a bounce: the same press, held since its start
        elif self.state is BellState.HELD:
            self.state = BellState.RELEASING
            self._released_at = now
        # A repeated level (an edge the pin coalesced) changes nothing.
        changes.extend(self.poll(now))
        return changes

    def poll(self, now: float) -> list[BellChange]:
        # Compared as `now >= start + limit`, the sum deadline() returns, so a poll at the
        # deadline is never a rounding error short of it.
        changes: list[BellChange] = []
        if self.state is BellState.RELEASING and now >= self._released_at + self.debounce_s:
            self.state = BellState.IDLE
            if self.stuck:
                self.stuck = False
                changes.append(BellChange(BellOutcome.UNSTUCK, self._released_at - self._held_since))
        elif self.state is BellState.HELD and not self.stuck and now >= self._held_since + self.stuck_after_s:
            self.stuck = True
            changes.append(BellChange(BellOutcome.STUCK, now - self._held_since))
        return changes

    def deadline(self) -> float | None:
        """When poll() next has something to decide (monotonic seconds), or None."""
        if self.state is BellState.RELEASING:
            return self._released_at + self.debounce_s
        if self.state is BellState.HELD and not self.stuck:
            return self._held_since + self.stuck_after_s
        return None

    def held_s(self, now: float) -> float | None:
        return now - self._held_since if self.pressed else None


class DoorContact:
    """The cabinet door switch: a change is reported once the new level has held for
    `debounce_s`. Unlike the bell nothing is urgent here, and reporting only settled levels
    keeps a rattling door from sending a burst of open/closed pairs."""

    def __init__(self, *, debounce_s: float) -> None:
        _check_seconds("debounce_s", debounce_s)
        self.debounce_s = debounce_s
        self.reported: bool | None = None  # open, as last reported; None before start()
        self._level = False
        self._changed_at = 0.0

    def start(self, is_open: bool, now: float) -> bool:
        """The level when the agent starts watching: reported as it is, without waiting."""
        self.reported = self._level = is_open
        self._changed_at = now
        return is_open

    def edge(self, is_open: bool, now: float) -> list[bool]:
        if self.reported is None:
            raise RuntimeError("DoorContact.edge() before start(): the first level is not known")
        changes = self.poll(now)
        if is_open != self._level:
            self._level = is_open
            self._changed_at = now
        changes.extend(self.poll(now))
        return changes

    def poll(self, now: float) -> list[bool]:
        if self._level != self.reported and now >= self._changed_at + self.debounce_s:
            self.reported = self._level
            return [self._level]
        return []

    def deadline(self) -> float | None:
        if self.reported is not None and self._level != self.reported:
            return self._changed_at + self.debounce_s
        return None
