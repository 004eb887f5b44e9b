"""From what nodes say to fault conditions, as pure decisions fed with values and `now`:

- `observe_event` turns a protocol `Event` (edge.rules sends them) into an `Observation` of a
  fault key: raised or cleared, with its severity; `node_offline` / `node_online` /
  `heartbeat` do the same for a node that went quiet;
- a `Condition` per key debounces the observations (`track`, `settle`): a condition must hold
  `raise_after_s` before a fault opens and be clear for `clear_after_s` before it auto-clears,
  so a flapping input opens one fault, not one per flap;
- `decide` keeps one open fault per key: open / already-open / ignore, auto-clear / nothing.

The shell (the fleet's MQTT consumer) keeps the conditions and the set of open keys; tickets
for the faults are `fleet.faults.tickets`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple, get_args

from fleet.faults.errors import ConfigError
from fleet.faults.sla import FAULT_SEVERITIES, FaultSeverity
from protocols import messages as m


class FaultKey(NamedTuple):
    """One fault condition of one node: at most one fault is open per key."""

    node_id: str
    component: str  # the event's component (a camera id, a bell id, "cabinet"), or "pole"
    kind: str  # the event category ("camera", "supply", ...) or "offline"


OFFLINE: Final = "offline"
POLE: Final = "pole"  # the component of an event that names none
NODE: Final = "node"  # the component of the offline condition
KINDS: Final[frozenset[str]] = frozenset({*get_args(m.EventCategory), OFFLINE})


def offline_key(node_id: str) -> FaultKey:
    return FaultKey(node_id, NODE, OFFLINE)


@dataclass(frozen=True, slots=True)
class Debounce:
    """How long a condition must hold before the fleet believes it, in seconds."""

    raise_after_s: int = 0
    clear_after_s: int = 300

    def __post_init__(self) -> None:
        for name in ("raise_after_s", "clear_after_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 7 * 86_400:
                raise ConfigError(name, value, "whole seconds from 0 to 604800 (a week)")

    @property
    def raise_after_ms(self) -> int:
        return self.raise_after_s * 1000

    @property
    def clear_after_ms(self) -> int:
        return self.clear_after_s * 1000


def _default_per_kind() -> dict[str, Debounce]:
    return {
        # Readings hover around a threshold: wait before believing either way.
        "temperature": Debounce(raise_after_s=300, clear_after_s=900),
        "supply": Debounce(raise_after_s=60, clear_after_s=600),
        "link": Debounce(raise_after_s=60, clear_after_s=600),
        "camera": Debounce(raise_after_s=120, clear_after_s=600),
        # A node that reconnects within minutes (a mobile link's hiccup) is not a site visit.
        OFFLINE: Debounce(raise_after_s=300, clear_after_s=300),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRulesConfig:
    """Thresholds of the fault rules. `per_kind` overrides `default` for an event category or
    "offline"; a node is offline after `heartbeat_timeout_s` without a message; a fault raised
    again within `repeat_window_s` of its previous ticket's resolution is a repeat."""

    default: Debounce = Debounce(raise_after_s=0, clear_after_s=300)
    per_kind: Mapping[str, Debounce] = field(default_factory=_default_per_kind)
    heartbeat_timeout_s: int = 180
    offline_severity: FaultSeverity = "major"
    repeat_window_s: int = 72 * 3600

    def __post_init__(self) -> None:
        for kind in self.per_kind:
            if kind not in KINDS:
                raise ConfigError(
                    "per_kind", kind, f"an event category or {OFFLINE!r}: {', '.join(sorted(KINDS))}"
                )
        for name in ("heartbeat_timeout_s", "repeat_window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(name, value, "whole seconds above 0")
        if self.offline_severity not in FAULT_SEVERITIES:
            raise ConfigError("offline_severity", self.offline_severity, f"one of {FAULT_SEVERITIES}")
        object.__setattr__(self, "per_kind", dict(self.per_kind))

    def debounce(self, kind: str) -> Debounce:
        return self.per_kind.get(kind, self.default)


# --- observations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """A fault condition raised or cleared at `at` (epoch ms). `severity` is set when raised."""

    key: FaultKey
    raised: bool
    at: int
    severity: FaultSeverity | None = None
    detail: str = ""


def observe_event(node_id: str, event: m.Event) -> Observation | None:
    """The fault condition an event speaks of, or None when it speaks of none: `info` events are
    news for the log (a power-on restart, a recording gap), and a raised event of severity
    `info` has no contract clock to run."""
    key = FaultKey(node_id, event.component or POLE, event.category)
    if event.state == "cleared":
        return Observation(key, raised=False, at=event.ts, detail=event.detail)
    if event.state == "info" or event.severity == "info":
        return None
    return Observation(key, raised=True, at=event.ts, severity=event.severity, detail=event.detail)


def node_offline(node_id: str, *, at: int, config: FaultRulesConfig) -> Observation:
    """The node's death arrived at `at` (the fleet's receive time: a will's own `ts` is from the
    session's CONNECT). A death of an older session (`bd_seq`) is the session layer's to drop."""
    return Observation(
        offline_key(node_id), raised=True, at=at, severity=config.offline_severity, detail="node offline"
    )


def node_online(node_id: str, *, at: int) -> Observation:
    """The node was heard from at `at` (a birth, or any message)."""
    return Observation(offline_key(node_id), raised=False, at=at, detail="node online")


def heartbeat(node_id: str, *, last_seen: int, now: int, config: FaultRulesConfig) -> Observation:
    """Offline since `last_seen` + the timeout once that has passed at `now`; otherwise online as
    of `last_seen` (stale for a condition that changed later, so harmless to feed again)."""
    overdue_at = last_seen + config.heartbeat_timeout_s * 1000
    if now > overdue_at:
        return Observation(
            offline_key(node_id),
            raised=True,
            at=overdue_at,
            severity=config.offline_severity,
            detail="no heartbeat",
        )
    return node_online(node_id, at=last_seen)


# --- debounce -----------------------------------------------------------------------------------


class Phase(StrEnum):
    CLEAR = "clear"  # no fault
    RAISING = "raising"  # raised at the pole, not yet for raise_after
    OPEN = "open"  # the fleet holds a fault open
    CLEARING = "clearing"  # cleared at the pole, not yet for clear_after; a raise absorbs it


@dataclass(frozen=True, slots=True)
class Condition:
    """The fleet's debounced view of one key. `since` is when the pole's side last changed."""

    key: FaultKey
    phase: Phase = Phase.CLEAR
    since: int = 0
    severity: FaultSeverity | None = None


def _worse(a: FaultSeverity | None, b: FaultSeverity | None) -> FaultSeverity | None:
    if a is None or b is None:
        return a or b
    return max(a, b, key=FAULT_SEVERITIES.index)


def track(
    condition: Condition | None, observation: Observation, config: FaultRulesConfig
) -> tuple[Condition, list[Observation]]:
    """Feed one raw observation. Returns the new condition and the settled observations (what
    the fleet now believes: a raise opens, a clear auto-clears) to pass to `decide`.

    Time is the observation's own (`at`), so replayed records settle as they happened; one older
    than the condition's last change is stale and changes nothing."""
    current = condition if condition is not None else Condition(observation.key)
    if observation.key != current.key:
        raise ValueError(f"observation of {observation.key} fed to the condition of {current.key}")
    if condition is not None and observation.at < current.since:
        return current, []
    current, settled = settle(current, observation.at, config)
    out = [settled] if settled is not None else []
    if observation.raised:
        match current.phase:
            case Phase.CLEAR:
                current = Condition(current.key, Phase.RAISING, observation.at, observation.severity)
            case Phase.RAISING:
                current = dataclasses.replace(
                    current, severity=_worse(current.severity, observation.severity)
                )
            case Phase.OPEN | Phase.CLEARING:
                worse = _worse(current.severity, observation.severity)
                if worse != current.severity:
                    # Still one fault; the shell hears of the worse severity (decide: already-open).
                    out.append(dataclasses.replace(observation, severity=worse))
                since = observation.at if current.phase is Phase.CLEARING else current.since
                current = Condition(current.key, Phase.OPEN, since, worse)
    else:
        match current.phase:
            case Phase.RAISING:
                current = Condition(current.key, Phase.CLEAR, observation.at, None)  # flapped: never opened
            case Phase.OPEN:
                current = dataclasses.replace(current, phase=Phase.CLEARING, since=observation.at)
            case Phase.CLEAR | Phase.CLEARING:
                pass
    current, settled = settle(current, observation.at, config)
    if settled is not None:
        out.append(settled)
    return current, out


def settle(condition: Condition, now: int, config: FaultRulesConfig) -> tuple[Condition, Observation | None]:
    """Let time pass to `now`: a raise held for `raise_after_s` opens, a clear held for
    `clear_after_s` auto-clears. The settled observation is stamped with the moment it settled,
    which is when the fault opened (and its SLA clocks start) or cleared."""
    debounce = config.debounce(condition.key.kind)
    match condition.phase:
        case Phase.RAISING if now - condition.since >= debounce.raise_after_ms:
            at = condition.since + debounce.raise_after_ms
            return (
                dataclasses.replace(condition, phase=Phase.OPEN),
                Observation(condition.key, raised=True, at=at, severity=condition.severity),
            )
        case Phase.CLEARING if now - condition.since >= debounce.clear_after_ms:
            at = condition.since + debounce.clear_after_ms
            return (
                Condition(condition.key, Phase.CLEAR, condition.since, None),
                Observation(condition.key, raised=False, at=at),
            )
    return condition, None


def next_check_at(condition: Condition, config: FaultRulesConfig) -> int | None:
    """When `settle` could next change this condition (epoch ms), for the shell's timer."""
    debounce = config.debounce(condition.key.kind)
    if condition.phase is Phase.RAISING:
        return condition.since + debounce.raise_after_ms
    if condition.phase is Phase.CLEARING:
        return condition.since + debounce.clear_after_ms
    return None


# --- one open fault per key ---------------------------------------------------------------------


class Verdict(StrEnum):
    OPEN = "open"  # open a fault (and its ticket)
    ALREADY_OPEN = "already-open"  # a fault of this key is open: no second one
    IGNORE = "ignore"  # not a fault condition
    AUTO_CLEAR = "auto-clear"  # the open fault cleared by itself
    NOTHING = "nothing"  # cleared, but nothing of this key was open


def decide(observation: Observation | None, open_keys: Set[FaultKey]) -> Verdict:
    """What a (settled) observation means given the keys with an open fault."""
    if observation is None:
        return Verdict.IGNORE
    if observation.raised:
        if observation.severity is None:
            return Verdict.IGNORE
        return Verdict.ALREADY_OPEN if observation.key in open_keys else Verdict.OPEN
    return Verdict.AUTO_CLEAR if observation.key in open_keys else Verdict.NOTHING


def is_repeat(*, previous_resolved_at: int | None, opened_at: int, config: FaultRulesConfig) -> bool:
    """A fault opening within `repeat_window_s` after the same key's last ticket was resolved
    repeats it: a new ticket with `repeat_of` set, fresh clocks (see docs/faults.md)."""
    if previous_resolved_at is None:
        return False
    return 0 <= opened_at - previous_resolved_at <= config.repeat_window_s * 1000
