"""Fault rules: events to fault keys, offline nodes, debounce, one open fault per key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.faults import rules
from fleet.faults.errors import ConfigError
from fleet.faults.rules import (
    Condition,
    Debounce,
    FaultKey,
    FaultRulesConfig,
    Observation,
    Phase,
    Verdict,
    decide,
)
from fleet.faults.sla import FaultSeverity
from protocols import messages as m

T0 = 1_760_000_000_000
S = 1000
NODE = "pole-0042"


def event(
    state: m.EventState,
    *,
    category: m.EventCategory = "camera",
    severity: m.Severity = "major",
    component: str | None = "cam-1",
    ts: int = T0,
) -> m.Event:
    return m.Event(
        ts=ts,
        seq=1,
        event_id=f"{category}.{ts}",
        category=category,
        state=state,
        severity=severity,
        component=component,
    )


# --- events to observations ----------------------------------------------------------------------


def test_raised_event_is_a_raised_observation_of_its_key() -> None:
    observation = rules.observe_event(NODE, event("raised", severity="critical"))
    assert observation == Observation(
        FaultKey(NODE, "cam-1", "camera"), raised=True, at=T0, severity="critical"
    )


def test_cleared_event_clears_the_same_key() -> None:
    observation = rules.observe_event(NODE, event("cleared", severity="info"))
    assert observation == Observation(FaultKey(NODE, "cam-1", "camera"), raised=False, at=T0)


def test_event_without_component_is_the_poles() -> None:
    observation = rules.observe_event(NODE, event("raised", category="supply", component=None))
    assert observation is not None
    assert observation.key == FaultKey(NODE, "pole", "supply")


@pytest.mark.parametrize(
    ("state", "severity"),
    [("info", "major"), ("info", "info"), ("raised", "info")],
)
def test_info_is_not_a_fault(state: m.EventState, severity: m.Severity) -> None:
    observation = rules.observe_event(NODE, event(state, severity=severity))
    assert observation is None
    assert decide(observation, set()) is Verdict.IGNORE


def test_offline_from_death_and_online_from_birth() -> None:
    config = FaultRulesConfig()
    death = rules.node_offline(NODE, at=T0, config=config)
    assert death == Observation(FaultKey(NODE, "node", "offline"), True, T0, "major", "node offline")
    assert rules.node_online(NODE, at=T0 + S).raised is False


@pytest.mark.parametrize(
    ("silent_s", "raised", "at"),
    [(180, False, T0), (181, True, T0 + 180 * S)],
)
def test_heartbeat_timeout(silent_s: int, raised: bool, at: int) -> None:
    observation = rules.heartbeat(NODE, last_seen=T0, now=T0 + silent_s * S, config=FaultRulesConfig())
    assert (observation.key, observation.raised, observation.at) == (rules.offline_key(NODE), raised, at)


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: Debounce(raise_after_s=-1), "raise_after_s"),
        (lambda: Debounce(clear_after_s=8 * 86_400), "clear_after_s"),
        (lambda: FaultRulesConfig(per_kind={"doorbell": Debounce()}), "per_kind"),
        (lambda: FaultRulesConfig(heartbeat_timeout_s=0), "heartbeat_timeout_s"),
        (lambda: FaultRulesConfig(repeat_window_s=-3), "repeat_window_s"),
        (lambda: FaultRulesConfig(offline_severity="info"), "offline_severity"),  # type: ignore[arg-type]
    ],
)
def test_config_refuses_bad_values_by_name(make: object, name: str) -> None:
    assert callable(make)
    with pytest.raises(ConfigError) as caught:
        make()
    assert caught.value.name == name
    assert name in str(caught.value)


def test_per_kind_overrides_default() -> None:
    config = FaultRulesConfig(default=Debounce(1, 2), per_kind={"door": Debounce(3, 4)})
    assert config.debounce("door") == Debounce(3, 4)
    assert config.debounce("camera") == Debounce(1, 2)


# --- debounce -----------------------------------------------------------------------------------

KEY = FaultKey(NODE, "cam-1", "camera")
FLAPPY = FaultRulesConfig(per_kind={"camera": Debounce(raise_after_s=60, clear_after_s=300)})


def obs(raised: bool, at: int, severity: FaultSeverity = "major") -> Observation:
    return Observation(KEY, raised, at, severity if raised else None)


def feed(
    observations: list[Observation], config: FaultRulesConfig = FLAPPY, *, until: int | None = None
) -> tuple[Condition, list[Observation]]:
    condition: Condition | None = None
    settled: list[Observation] = []
    for observation in observations:
        condition, out = rules.track(condition, observation, config)
        settled.extend(out)
    assert condition is not None
    if until is not None:
        condition, last = rules.settle(condition, until, config)
        settled.extend([last] if last else [])
    return condition, settled


def test_a_raise_must_hold_before_a_fault_opens() -> None:
    condition, settled = feed([obs(True, T0)], until=T0 + 60 * S - 1)
    assert (condition.phase, settled) == (Phase.RAISING, [])
    assert rules.next_check_at(condition, FLAPPY) == T0 + 60 * S
    condition, last = rules.settle(condition, T0 + 60 * S, FLAPPY)
    assert condition.phase is Phase.OPEN
    assert last == Observation(KEY, True, T0 + 60 * S, "major")  # opened when the raise held
    assert rules.next_check_at(condition, FLAPPY) is None


def test_a_blip_shorter_than_raise_after_opens_nothing() -> None:
    condition, settled = feed([obs(True, T0), obs(False, T0 + 30 * S)], until=T0 + 3600 * S)
    assert (condition.phase, settled) == (Phase.CLEAR, [])


def test_flapping_after_opening_keeps_one_fault_and_a_long_clear_auto_clears() -> None:
    flaps = [obs(i % 2 == 0, T0 + i * 70 * S) for i in range(20)]  # raised, cleared, ... every 70 s
    condition, settled = feed(flaps)
    assert settled == [Observation(KEY, True, T0 + 60 * S, "major")]
    assert condition.phase is Phase.CLEARING  # the last flap was a clear
    last_clear = T0 + 19 * 70 * S
    condition, cleared = rules.settle(condition, last_clear + 300 * S, FLAPPY)
    assert condition.phase is Phase.CLEAR
    assert cleared == Observation(KEY, False, last_clear + 300 * S)


def test_replayed_records_settle_in_their_own_time() -> None:
    # An hour-old raise and its clear arrive together from the node's outbox.
    _, settled = feed([obs(True, T0), obs(False, T0 + 10 * 60 * S)], until=T0 + 3600 * S)
    assert settled == [Observation(KEY, True, T0 + 60 * S, "major"), Observation(KEY, False, T0 + 900 * S)]


def test_stale_observation_changes_nothing() -> None:
    condition, _ = feed([obs(True, T0), obs(False, T0 + 120 * S)])
    again, out = rules.track(condition, obs(True, T0 + 100 * S), FLAPPY)
    assert (again, out) == (condition, [])


def test_worse_severity_while_open_is_reported_once() -> None:
    config = FaultRulesConfig(per_kind={"camera": Debounce(0, 0)})
    condition, settled = feed(
        [obs(True, T0, "major"), obs(True, T0 + S, "critical"), obs(True, T0 + 2 * S, "minor")], config
    )
    assert [o.severity for o in settled] == ["major", "critical"]
    assert condition.severity == "critical"
    assert decide(settled[1], {KEY}) is Verdict.ALREADY_OPEN


def test_zero_debounce_opens_and_clears_at_once() -> None:
    config = FaultRulesConfig(per_kind={"camera": Debounce(0, 0)})
    _, settled = feed([obs(True, T0), obs(False, T0 + S)], config)
    assert settled == [Observation(KEY, True, T0, "major"), Observation(KEY, False, T0 + S)]


def test_a_condition_refuses_another_keys_observation() -> None:
    condition, _ = feed([obs(True, T0)])
    with pytest.raises(ValueError, match="fed to the condition"):
        rules.track(condition, Observation(FaultKey(NODE, "cam-2", "camera"), True, T0 + S, "major"), FLAPPY)


@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=400 * S)),
        min_size=1,
        max_size=50,
    )
)
def test_settled_observations_alternate_so_one_fault_at_a_time(steps: list[tuple[bool, int]]) -> None:
    now = T0
    observations = []
    for raised, gap in steps:
        now += gap
        observations.append(obs(raised, now))
    condition, settled = feed(observations, until=now + 10_000 * S)
    # Opens and clears alternate, starting with an open; settling is monotonic in time.
    assert [o.raised for o in settled] == [i % 2 == 0 for i in range(len(settled))]
    assert [o.at for o in settled] == sorted(o.at for o in settled)
    # Feeding the settled changes through `decide` with a real open-key set never doubles a fault.
    open_keys: set[FaultKey] = set()
    for change in settled:
        verdict = decide(change, open_keys)
        assert verdict in (Verdict.OPEN, Verdict.AUTO_CLEAR)
        if verdict is Verdict.OPEN:
            open_keys.add(change.key)
        else:
            open_keys.discard(change.key)
    assert condition.phase in (Phase.CLEAR, Phase.OPEN)
    assert (KEY in open_keys) == (condition.phase is Phase.OPEN)


# --- one open fault per key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "is_open", "verdict"),
    [
        (True, False, Verdict.OPEN),
        (True, True, Verdict.ALREADY_OPEN),
        (False, True, Verdict.AUTO_CLEAR),
        (False, False, Verdict.NOTHING),
    ],
)
def test_one_open_fault_per_key(raised: bool, is_open: bool, verdict: Verdict) -> None:
    other = FaultKey(NODE, "cam-2", "camera")
    open_keys = {KEY, other} if is_open else {other}
    assert decide(obs(raised, T0), open_keys) is verdict


def test_raised_without_severity_is_ignored() -> None:
    assert decide(Observation(KEY, True, T0), set()) is Verdict.IGNORE


@pytest.mark.parametrize(
    ("resolved_at", "opened_at", "repeat"),
    [
        (None, T0, False),
        (T0, T0, True),
        (T0, T0 + 72 * 3600 * S, True),
        (T0, T0 + 72 * 3600 * S + 1, False),
        (T0, T0 - 1, False),
    ],
)
def test_repeat_window(resolved_at: int | None, opened_at: int, repeat: bool) -> None:
    assert (
        rules.is_repeat(previous_resolved_at=resolved_at, opened_at=opened_at, config=FaultRulesConfig())
        is repeat
    )
