"""The maintenance contract's clocks: response (technician on site), resolution (fixed, by
severity) and report, as absolute deadlines in epoch ms, with audited pauses and a breach
forecast. Pure: every function takes the time it needs (`at`, `now`); `fleet.faults.tickets`
drives the clocks from a ticket's lifecycle, `fleet.faults.escalation` reads them.

A pause stops every clock still running. A clock's deadline is its base deadline (opened_at +
the policy's budget) plus the paused time that overlapped the clock's running period, recomputed
from the recorded pauses after every change, so a restart, a late-arriving stop or a replay gives
the same deadline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, get_args

from fleet.faults.errors import ClockError, ConfigError

FaultSeverity = Literal["minor", "major", "critical"]
"""The severities a fault ticket is opened with; `info` events never open a ticket."""

FAULT_SEVERITIES: Final[tuple[FaultSeverity, ...]] = get_args(FaultSeverity)

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS


class Clock(StrEnum):
    RESPONSE = "response"  # a technician on site
    RESOLUTION = "resolution"  # the fault fixed
    REPORT = "report"  # the work reported


class ClockState(StrEnum):
    MET = "met"  # stopped on or before its deadline
    RUNNING = "running"
    AT_RISK = "at-risk"  # running, little time left
    BREACHED = "breached"  # running past its deadline, or stopped after it
    VOID = "void"  # the ticket was cancelled before this clock was due


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Tell someone when `clock` has less than `-after_ms` left (negative: a warning before the
    deadline) or is more than `after_ms` past it (0: at the breach). `name` keys the step, so
    each is sent once per ticket."""

    name: str
    clock: Clock
    after_ms: int


DEFAULT_ESCALATIONS: Final = (
    EscalationStep("response-warning", Clock.RESPONSE, -30 * MINUTE_MS),
    EscalationStep("response-breach", Clock.RESPONSE, 0),
    EscalationStep("resolution-warning", Clock.RESOLUTION, -30 * MINUTE_MS),
    EscalationStep("resolution-breach", Clock.RESOLUTION, 0),
    EscalationStep("report-breach", Clock.REPORT, 0),
)


def _default_resolution() -> dict[FaultSeverity, int]:
    return {"critical": 3 * HOUR_MS, "major": 4 * HOUR_MS, "minor": 8 * HOUR_MS}


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaPolicy:
    """The contract's budgets, in ms from the moment a fault opened, and when a clock counts as
    at risk: less than `at_risk_share` of its budget left, or less than `at_risk_ms`."""

    response_ms: int = 2 * HOUR_MS
    resolution_ms: Mapping[FaultSeverity, int] = field(default_factory=_default_resolution)
    report_ms: int = 24 * HOUR_MS
    at_risk_share: float = 0.25
    at_risk_ms: int = 30 * MINUTE_MS
    escalations: tuple[EscalationStep, ...] = DEFAULT_ESCALATIONS

    def __post_init__(self) -> None:
        if not _whole_ms(self.response_ms, at_least=1):
            raise ConfigError("response_ms", self.response_ms, "whole ms above 0")
        if set(self.resolution_ms) != set(FAULT_SEVERITIES):
            accepted = f"exactly one budget for each of {FAULT_SEVERITIES}"
            raise ConfigError("resolution_ms", dict(self.resolution_ms), accepted)
        for severity, budget in self.resolution_ms.items():
            if not _whole_ms(budget, at_least=self.response_ms):
                # A fault is fixed on site: its resolution cannot fall due before the arrival.
                accepted = f"whole ms, at least response_ms ({self.response_ms})"
                raise ConfigError(f"resolution_ms[{severity!r}]", budget, accepted)
        longest = max(self.resolution_ms.values())
        if not _whole_ms(self.report_ms, at_least=longest):
            raise ConfigError(
                "report_ms", self.report_ms, f"whole ms, at least the longest resolution ({longest})"
            )
        if isinstance(self.at_risk_share, bool) or not (
            isinstance(self.at_risk_share, int | float) and 0.0 <= self.at_risk_share < 1.0
        ):
            raise ConfigError(
                "at_risk_share", self.at_risk_share, "a share of the budget, from 0 up to (not) 1"
            )
        if not _whole_ms(self.at_risk_ms, at_least=0):
            raise ConfigError("at_risk_ms", self.at_risk_ms, "whole ms, 0 or more (0: only the share counts)")
        names = [step.name for step in self.escalations]
        for step in self.escalations:
            if not step.name or names.count(step.name) > 1:
                raise ConfigError("escalations", step.name, "a unique, non-empty name per step")
        # A copy, so a caller's later change to its dict cannot move deadlines.
        object.__setattr__(self, "resolution_ms", dict(self.resolution_ms))

    def start(self, severity: FaultSeverity, *, opened_at: int) -> SlaClocks:
        """The clocks of a fault of `severity` that opened at `opened_at` (epoch ms)."""
        if severity not in self.resolution_ms:
            raise ConfigError("severity", severity, f"one of {FAULT_SEVERITIES}")
        if not _whole_ms(opened_at, at_least=0):
            raise ConfigError("opened_at", opened_at, "epoch ms, 0 or more")
        return SlaClocks(
            opened_at=opened_at,
            response=Deadline(base_at=opened_at + self.response_ms),
            resolution=Deadline(base_at=opened_at + self.resolution_ms[severity]),
            report=Deadline(base_at=opened_at + self.report_ms),
        )


def _whole_ms(value: object, *, at_least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= at_least


@dataclass(frozen=True, slots=True)
class Deadline:
    """One clock. `due_at` = `base_at` + `paused_ms`; `stopped_at` set once it stopped."""

    base_at: int
    paused_ms: int = 0
    stopped_at: int | None = None
    void: bool = False  # stopped by a cancellation before it was due: counts neither way

    @property
    def due_at(self) -> int:
        return self.base_at + self.paused_ms

    @property
    def running(self) -> bool:
        return self.stopped_at is None


@dataclass(frozen=True, slots=True)
class Pause:
    """An audited pause of the clocks: why, who, from when to when (`ended_at` None: ongoing)."""

    started_at: int
    started_by: str
    reason: str
    ended_at: int | None = None
    ended_by: str | None = None


@dataclass(frozen=True, slots=True)
class SlaClocks:
    opened_at: int
    response: Deadline
    resolution: Deadline
    report: Deadline
    pauses: tuple[Pause, ...] = ()

    def __getitem__(self, clock: Clock) -> Deadline:
        deadline: Deadline = getattr(self, clock.value)
        return deadline

    @property
    def response_deadline(self) -> int:
        return self.response.due_at

    @property
    def resolution_deadline(self) -> int:
        return self.resolution.due_at

    @property
    def report_deadline(self) -> int:
        return self.report.due_at

    @property
    def paused_since(self) -> int | None:
        if self.pauses and self.pauses[-1].ended_at is None:
            return self.pauses[-1].started_at
        return None

    @property
    def any_running(self) -> bool:
        return any(self[clock].running for clock in Clock)


# --- changes --------------------------------------------------------------------------------------


def pause(clocks: SlaClocks, *, at: int, by: str, reason: str) -> SlaClocks:
    """Pause every running clock from `at` ("waiting for the power utility")."""
    if clocks.paused_since is not None:
        raise ClockError(
            "already-paused", f"the clocks are already paused since {clocks.paused_since}", at=at
        )
    if at < clocks.opened_at:
        raise ClockError(
            "before-open", f"a pause at {at} would start before the fault opened ({clocks.opened_at})", at=at
        )
    if clocks.pauses and at < (last_end := clocks.pauses[-1].ended_at or 0):
        raise ClockError(
            "out-of-order", f"a pause at {at} would start before the last one ended ({last_end})", at=at
        )
    stops = [stopped for clock in Clock if (stopped := clocks[clock].stopped_at) is not None]
    if stops and at < max(stops):
        # Backdating a pause past a stop would move a deadline that has already been judged.
        raise ClockError(
            "out-of-order", f"a pause at {at} would start before a clock stopped ({max(stops)})", at=at
        )
    if not clocks.any_running:
        raise ClockError("not-running", "every clock has stopped: nothing to pause", at=at)
    if not reason.strip():
        raise ClockError("no-reason", "a pause needs a reason (what the work is waiting for)", at=at)
    return _recompute(dataclasses.replace(clocks, pauses=(*clocks.pauses, Pause(at, by, reason))))


def resume(clocks: SlaClocks, *, at: int, by: str) -> SlaClocks:
    """End the ongoing pause at `at`: running clocks move later by the paused time."""
    since = clocks.paused_since
    if since is None:
        raise ClockError("not-paused", "the clocks are not paused", at=at)
    if at < since:
        raise ClockError(
            "out-of-order", f"a resume at {at} would come before the pause started ({since})", at=at
        )
    ended = dataclasses.replace(clocks.pauses[-1], ended_at=at, ended_by=by)
    return _recompute(dataclasses.replace(clocks, pauses=(*clocks.pauses[:-1], ended)))


def stop(clocks: SlaClocks, clock: Clock, *, at: int) -> SlaClocks:
    """Stop one clock at `at` (the technician arrived, the fault was fixed, the report went in)."""
    if at < clocks.opened_at:
        raise ClockError(
            "before-open", f"{clock} cannot stop at {at}, before the fault opened ({clocks.opened_at})", at=at
        )
    if not clocks[clock].running:
        raise ClockError("stopped", f"the {clock} clock already stopped at {clocks[clock].stopped_at}", at=at)
    stopped = dataclasses.replace(clocks[clock], stopped_at=at)
    return _recompute(_with(clocks, clock, stopped))


def void(clocks: SlaClocks, *, at: int) -> SlaClocks:
    """The ticket was cancelled at `at`: running clocks stop; those not yet past their deadline
    are void (neither met nor breached), a breach that already happened stays on the record."""
    if at < clocks.opened_at:
        raise ClockError(
            "before-open", f"cannot cancel at {at}, before the fault opened ({clocks.opened_at})", at=at
        )
    changed = clocks
    for clock in Clock:
        if changed[clock].running:
            changed = stop(changed, clock, at=at)
            stopped = changed[clock]
            changed = _with(changed, clock, dataclasses.replace(stopped, void=at <= stopped.due_at))
    return changed


def _overlap(pause: Pause, end: int | None) -> int:
    """How much of `pause` lies before `end` (None: the clock still runs, so only ended pauses)."""
    if end is None:
        return 0 if pause.ended_at is None else pause.ended_at - pause.started_at
    until = end if pause.ended_at is None else min(pause.ended_at, end)
    return max(0, until - pause.started_at)


def _with(clocks: SlaClocks, clock: Clock, deadline: Deadline) -> SlaClocks:
    match clock:
        case Clock.RESPONSE:
            return dataclasses.replace(clocks, response=deadline)
        case Clock.RESOLUTION:
            return dataclasses.replace(clocks, resolution=deadline)
        case Clock.REPORT:
            return dataclasses.replace(clocks, report=deadline)


def _recompute(clocks: SlaClocks) -> SlaClocks:
    for clock in Clock:
        deadline = clocks[clock]
        paused_ms = sum(_overlap(p, deadline.stopped_at) for p in clocks.pauses)
        clocks = _with(clocks, clock, dataclasses.replace(deadline, paused_ms=paused_ms))
    return clocks


# --- forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockForecast:
    """Where one clock stands at `now`. `remaining_ms` is to the deadline from now (running) or
    from the stop (stopped); negative means late. `deadline` counts an ongoing pause up to now."""

    clock: Clock
    state: ClockState
    deadline: int
    remaining_ms: int
    running: bool
    paused: bool


def effective_deadline(clocks: SlaClocks, clock: Clock, now: int) -> int:
    """The clock's deadline at `now`, counting an ongoing pause as if it ended now."""
    deadline = clocks[clock]
    since = clocks.paused_since
    if deadline.running and since is not None:
        return deadline.due_at + max(0, now - since)
    return deadline.due_at


def at_risk_threshold(clocks: SlaClocks, clock: Clock, policy: SlaPolicy) -> int:
    """The time left (ms) under which a running clock is at risk: the policy's share of the
    clock's budget, or its floor, whichever is larger."""
    budget = clocks[clock].base_at - clocks.opened_at
    return int(max(policy.at_risk_ms, policy.at_risk_share * budget))


def forecast(clocks: SlaClocks, now: int, policy: SlaPolicy) -> tuple[ClockForecast, ...]:
    """Each clock at `now`, in Clock order. A deadline is met by a stop at or before it; a
    running clock is breached once `now` is past it, at risk when less than the policy's
    threshold is left (a paused clock keeps the remaining time it had when the pause began)."""
    result = []
    for clock in Clock:
        deadline = clocks[clock]
        due = effective_deadline(clocks, clock, now)
        if deadline.stopped_at is not None:
            remaining = due - deadline.stopped_at
            state = (
                ClockState.VOID
                if deadline.void
                else ClockState.MET
                if remaining >= 0
                else ClockState.BREACHED
            )
            result.append(ClockForecast(clock, state, due, remaining, running=False, paused=False))
            continue
        remaining = due - now
        threshold = at_risk_threshold(clocks, clock, policy)
        if remaining < 0:
            state = ClockState.BREACHED
        elif remaining < threshold:
            state = ClockState.AT_RISK
        else:
            state = ClockState.RUNNING
        result.append(
            ClockForecast(clock, state, due, remaining, running=True, paused=clocks.paused_since is not None)
        )
    return tuple(result)


def most_urgent(forecasts: tuple[ClockForecast, ...]) -> ClockForecast | None:
    """The running clock with the least time left (a dashboard sorts tickets by its
    `remaining_ms`), or None once every clock stopped."""
    running = [f for f in forecasts if f.running]
    return min(running, key=lambda f: f.remaining_ms, default=None)
