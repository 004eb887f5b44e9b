"""SLA clocks: deadlines by severity, audited pauses, the breach forecast at its boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.faults import sla
from fleet.faults.errors import ClockError, ConfigError
from fleet.faults.sla import HOUR_MS, MINUTE_MS, Clock, ClockState, SlaPolicy

T0 = 1_760_000_000_000  # an epoch-ms instant; nothing here reads the real clock
POLICY = SlaPolicy()


@pytest.mark.parametrize(
    ("severity", "hours"),
    [("critical", 3), ("major", 4), ("minor", 8)],
)
def test_deadlines_by_severity(severity: sla.FaultSeverity, hours: int) -> None:
    clocks = POLICY.start(severity, opened_at=T0)
    assert clocks.response_deadline == T0 + 2 * HOUR_MS
    assert clocks.resolution_deadline == T0 + hours * HOUR_MS
    assert clocks.report_deadline == T0 + 24 * HOUR_MS
    assert all(clocks[c].running for c in Clock)


def test_configured_budgets_are_used() -> None:
    policy = SlaPolicy(
        response_ms=HOUR_MS,
        resolution_ms={"critical": 2 * HOUR_MS, "major": 5 * HOUR_MS, "minor": 6 * HOUR_MS},
        report_ms=12 * HOUR_MS,
    )
    clocks = policy.start("major", opened_at=T0)
    assert (clocks.response_deadline, clocks.resolution_deadline, clocks.report_deadline) == (
        T0 + HOUR_MS,
        T0 + 5 * HOUR_MS,
        T0 + 12 * HOUR_MS,
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"response_ms": 0}, "response_ms"),
        ({"response_ms": -5}, "response_ms"),
        ({"response_ms": True}, "response_ms"),
        ({"resolution_ms": {"critical": HOUR_MS * 3, "major": HOUR_MS * 4}}, "resolution_ms"),
        (
            {"resolution_ms": {"critical": HOUR_MS, "major": 4 * HOUR_MS, "minor": 8 * HOUR_MS}},
            "resolution_ms['critical']",
        ),
        ({"report_ms": 7 * HOUR_MS}, "report_ms"),
        ({"at_risk_share": 1.0}, "at_risk_share"),
        ({"at_risk_share": -0.1}, "at_risk_share"),
        ({"at_risk_ms": -1}, "at_risk_ms"),
        (
            {
                "escalations": (
                    sla.EscalationStep("x", Clock.RESPONSE, 0),
                    sla.EscalationStep("x", Clock.REPORT, 0),
                )
            },
            "escalations",
        ),
    ],
)
def test_policy_refuses_bad_values_by_name(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SlaPolicy(**kwargs)  # type: ignore[arg-type]
    assert caught.value.name == name
    assert name in str(caught.value)


def test_policy_copies_its_budgets() -> None:
    budgets: dict[sla.FaultSeverity, int] = {
        "critical": 3 * HOUR_MS,
        "major": 4 * HOUR_MS,
        "minor": 8 * HOUR_MS,
    }
    policy = SlaPolicy(resolution_ms=budgets)
    budgets["minor"] = 9 * HOUR_MS
    assert policy.start("minor", opened_at=T0).resolution_deadline == T0 + 8 * HOUR_MS


def test_info_severity_has_no_clocks() -> None:
    with pytest.raises(ConfigError, match="severity"):
        POLICY.start("info", opened_at=T0)  # type: ignore[arg-type]


# --- pauses ------------------------------------------------------------------------------------


def test_resume_shifts_running_deadlines_by_the_pause() -> None:
    clocks = POLICY.start("critical", opened_at=T0)
    clocks = sla.pause(clocks, at=T0 + 10 * MINUTE_MS, by="op-7", reason="waiting for the power utility")
    assert clocks.paused_since == T0 + 10 * MINUTE_MS
    clocks = sla.resume(clocks, at=T0 + 55 * MINUTE_MS, by="op-9")
    assert clocks.response_deadline == T0 + 2 * HOUR_MS + 45 * MINUTE_MS
    assert clocks.resolution_deadline == T0 + 3 * HOUR_MS + 45 * MINUTE_MS
    assert clocks.report_deadline == T0 + 24 * HOUR_MS + 45 * MINUTE_MS
    assert clocks.pauses == (
        sla.Pause(
            started_at=T0 + 10 * MINUTE_MS,
            started_by="op-7",
            reason="waiting for the power utility",
            ended_at=T0 + 55 * MINUTE_MS,
            ended_by="op-9",
        ),
    )


def test_a_clock_stopped_during_a_pause_gets_only_the_part_before_its_stop() -> None:
    clocks = POLICY.start("major", opened_at=T0)
    clocks = sla.pause(clocks, at=T0 + HOUR_MS, by="op", reason="road closed")
    clocks = sla.stop(clocks, Clock.RESPONSE, at=T0 + 90 * MINUTE_MS)
    clocks = sla.resume(clocks, at=T0 + 3 * HOUR_MS, by="op")
    assert clocks.response_deadline == T0 + 2 * HOUR_MS + 30 * MINUTE_MS
    assert clocks.resolution_deadline == T0 + 4 * HOUR_MS + 2 * HOUR_MS


def test_a_stop_reported_late_but_before_the_pause_takes_no_pause_time() -> None:
    # A node-verified check-in reaches the fleet after an operator paused the clocks.
    clocks = POLICY.start("major", opened_at=T0)
    clocks = sla.pause(clocks, at=T0 + HOUR_MS, by="op", reason="utility")
    clocks = sla.resume(clocks, at=T0 + 2 * HOUR_MS, by="op")
    clocks = sla.stop(clocks, Clock.RESPONSE, at=T0 + 30 * MINUTE_MS)
    assert clocks.response_deadline == T0 + 2 * HOUR_MS
    assert clocks.resolution_deadline == T0 + 5 * HOUR_MS


def test_nested_pause_refused() -> None:
    clocks = sla.pause(POLICY.start("minor", opened_at=T0), at=T0 + 1, by="op", reason="utility")
    with pytest.raises(ClockError) as caught:
        sla.pause(clocks, at=T0 + 2, by="op", reason="again")
    assert caught.value.reason == "already-paused"


def test_pause_before_open_refused() -> None:
    with pytest.raises(ClockError) as caught:
        sla.pause(POLICY.start("minor", opened_at=T0), at=T0 - 1, by="op", reason="utility")
    assert caught.value.reason == "before-open"
    assert caught.value.at == T0 - 1


@pytest.mark.parametrize(
    ("setup", "call", "reason"),
    [
        ("fresh", lambda c: sla.resume(c, at=T0 + 5, by="op"), "not-paused"),
        ("paused", lambda c: sla.resume(c, at=T0 + 5, by="op"), "out-of-order"),
        ("resumed", lambda c: sla.pause(c, at=T0 + 15, by="op", reason="x"), "out-of-order"),
        ("fresh", lambda c: sla.pause(c, at=T0 + 5, by="op", reason="  "), "no-reason"),
        ("all-stopped", lambda c: sla.pause(c, at=T0 + 50, by="op", reason="x"), "not-running"),
        ("all-stopped", lambda c: sla.stop(c, Clock.REPORT, at=T0 + 50), "stopped"),
        ("response-stopped", lambda c: sla.pause(c, at=T0 + 10, by="op", reason="x"), "out-of-order"),
        ("fresh", lambda c: sla.stop(c, Clock.REPORT, at=T0 - 1), "before-open"),
    ],
)
def test_clock_operations_refused(setup: str, call: object, reason: str) -> None:
    clocks = POLICY.start("minor", opened_at=T0)
    if setup in ("paused", "resumed"):
        clocks = sla.pause(clocks, at=T0 + 10, by="op", reason="utility")
    if setup == "resumed":
        clocks = sla.resume(clocks, at=T0 + 20, by="op")
    if setup == "all-stopped":
        for clock in Clock:
            clocks = sla.stop(clocks, clock, at=T0 + 40)
    if setup == "response-stopped":
        clocks = sla.stop(clocks, Clock.RESPONSE, at=T0 + 20)
    assert callable(call)
    with pytest.raises(ClockError) as caught:
        call(clocks)
    assert caught.value.reason == reason


# A pause/resume schedule: gaps between operations, in ms.
gaps = st.lists(st.integers(min_value=0, max_value=6 * HOUR_MS), min_size=0, max_size=12)


@given(gaps=gaps, severity=st.sampled_from(sla.FAULT_SEVERITIES))
def test_paused_time_equals_the_deadline_shift_and_deadlines_never_move_earlier(
    gaps: list[int], severity: sla.FaultSeverity
) -> None:
    clocks = POLICY.start(severity, opened_at=T0)
    base = {clock: clocks[clock].due_at for clock in Clock}
    now = T0
    paused_total = 0
    for i, gap in enumerate(gaps):
        now += gap
        before = {clock: sla.effective_deadline(clocks, clock, now) for clock in Clock}
        if i % 2 == 0:
            clocks = sla.pause(clocks, at=now, by="op", reason=f"pause {i}")
        else:
            paused_total += gap
            clocks = sla.resume(clocks, at=now, by="op")
        for clock in Clock:
            assert clocks[clock].due_at >= base[clock]
            assert sla.effective_deadline(clocks, clock, now) >= before[clock]
    audited = sum((p.ended_at or now) - p.started_at for p in clocks.pauses)
    for clock in Clock:
        assert clocks[clock].due_at - base[clock] == paused_total
        assert sla.effective_deadline(clocks, clock, now) - base[clock] == audited
        assert clocks[clock].paused_ms == paused_total


@given(
    pause_at=st.integers(min_value=0, max_value=10 * HOUR_MS),
    length=st.integers(min_value=0, max_value=10 * HOUR_MS),
    stop_at=st.integers(min_value=0, max_value=20 * HOUR_MS),
)
def test_a_stopped_clock_is_shifted_by_the_pause_it_ran_through(
    pause_at: int, length: int, stop_at: int
) -> None:
    clocks = POLICY.start("minor", opened_at=T0)
    clocks = sla.pause(clocks, at=T0 + pause_at, by="op", reason="utility")
    clocks = sla.resume(clocks, at=T0 + pause_at + length, by="op")
    clocks = sla.stop(clocks, Clock.RESOLUTION, at=T0 + stop_at)
    overlap = max(0, min(stop_at, pause_at + length) - pause_at)
    assert clocks.resolution_deadline == T0 + 8 * HOUR_MS + overlap
    assert clocks.report_deadline == T0 + 24 * HOUR_MS + length


# --- forecast ----------------------------------------------------------------------------------


def _state(clocks: sla.SlaClocks, now: int, clock: Clock = Clock.RESPONSE) -> sla.ClockForecast:
    return {f.clock: f for f in sla.forecast(clocks, now, POLICY)}[clock]


@pytest.mark.parametrize(
    ("offset_ms", "state", "remaining"),
    [
        (0, ClockState.RUNNING, 2 * HOUR_MS),
        # at-risk: less than max(30 min, 25% of 2 h) = 30 min left
        (90 * MINUTE_MS - 1, ClockState.RUNNING, 30 * MINUTE_MS + 1),
        (90 * MINUTE_MS, ClockState.RUNNING, 30 * MINUTE_MS),
        (90 * MINUTE_MS + 1, ClockState.AT_RISK, 30 * MINUTE_MS - 1),
        (2 * HOUR_MS, ClockState.AT_RISK, 0),
        (2 * HOUR_MS + 1, ClockState.BREACHED, -1),
    ],
)
def test_forecast_boundaries(offset_ms: int, state: ClockState, remaining: int) -> None:
    forecast = _state(POLICY.start("minor", opened_at=T0), T0 + offset_ms)
    assert (forecast.state, forecast.remaining_ms, forecast.running) == (state, remaining, True)


def test_at_risk_share_of_a_long_budget() -> None:
    clocks = POLICY.start("minor", opened_at=T0)  # resolution 8 h: at risk under 2 h left
    assert _state(clocks, T0 + 6 * HOUR_MS, Clock.RESOLUTION).state is ClockState.RUNNING
    assert _state(clocks, T0 + 6 * HOUR_MS + 1, Clock.RESOLUTION).state is ClockState.AT_RISK


@pytest.mark.parametrize(
    ("stop_offset", "state"),
    [(2 * HOUR_MS, ClockState.MET), (2 * HOUR_MS + 1, ClockState.BREACHED), (0, ClockState.MET)],
)
def test_stopped_clock_is_met_or_breached(stop_offset: int, state: ClockState) -> None:
    clocks = sla.stop(POLICY.start("minor", opened_at=T0), Clock.RESPONSE, at=T0 + stop_offset)
    forecast = _state(clocks, T0 + 30 * HOUR_MS)
    assert forecast.state is state
    assert forecast.remaining_ms == 2 * HOUR_MS - stop_offset
    assert not forecast.running


def test_paused_clock_keeps_its_remaining_time() -> None:
    clocks = sla.pause(POLICY.start("minor", opened_at=T0), at=T0 + HOUR_MS, by="op", reason="utility")
    forecast = _state(clocks, T0 + 10 * HOUR_MS)
    assert (forecast.state, forecast.remaining_ms, forecast.paused) == (ClockState.RUNNING, HOUR_MS, True)
    assert forecast.deadline == T0 + 11 * HOUR_MS


def test_cancel_voids_clocks_not_yet_due_and_keeps_breaches() -> None:
    clocks = sla.void(POLICY.start("critical", opened_at=T0), at=T0 + 2 * HOUR_MS + 1)
    states = {f.clock: f.state for f in sla.forecast(clocks, T0 + 30 * HOUR_MS, POLICY)}
    assert states == {
        Clock.RESPONSE: ClockState.BREACHED,
        Clock.RESOLUTION: ClockState.VOID,
        Clock.REPORT: ClockState.VOID,
    }


def test_most_urgent_is_the_running_clock_with_least_time() -> None:
    clocks = POLICY.start("critical", opened_at=T0)
    assert sla.most_urgent(sla.forecast(clocks, T0, POLICY)).clock is Clock.RESPONSE  # type: ignore[union-attr]
    clocks = sla.stop(clocks, Clock.RESPONSE, at=T0 + 3 * HOUR_MS)  # late, but no longer running
    urgent = sla.most_urgent(sla.forecast(clocks, T0 + 3 * HOUR_MS, POLICY))
    assert urgent is not None
    assert (urgent.clock, urgent.remaining_ms) == (Clock.RESOLUTION, 0)
    for clock in (Clock.RESOLUTION, Clock.REPORT):
        clocks = sla.stop(clocks, clock, at=T0 + 3 * HOUR_MS)
    assert sla.most_urgent(sla.forecast(clocks, T0 + 3 * HOUR_MS, POLICY)) is None
