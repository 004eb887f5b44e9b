"""The campaign's pure core with an injected clock: waves planned from a plan, the campaign's
and each node's lifecycle, and next_actions (holds, waves, approval, abort exactly at its
threshold, timeouts, completion), checked by example and by hypothesis properties."""

from __future__ import annotations

import dataclasses
from datetime import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.ota.campaign import (
    TIMED_OUT,
    Campaign,
    CampaignAction,
    CampaignNode,
    CampaignState,
    Conditions,
    Hold,
    Ignored,
    MaintenanceWindow,
    NodeState,
    Report,
    WavePlan,
    approve,
    assign_waves,
    next_actions,
    offered,
    plan_waves,
    resume,
    take_report,
    timed_out,
    transition,
)
from fleet.ota.errors import IllegalCampaignTransition, PlanError

T0 = 1_764_000_000_000  # 2025-11-24 16:00 UTC = 2025-11-25 01:00 in Seoul
MIN = 60_000
CANARY_THEN_ALL = (WavePlan(nodes=1), WavePlan(percent=10), WavePlan(percent=100))


def campaign_of(
    n: int, plans: tuple[WavePlan, ...] = CANARY_THEN_ALL, **options: object
) -> tuple[Campaign, list[CampaignNode]]:
    waves = plan_waves(plans, n)
    ids = [f"pole-{i:04d}" for i in range(n)]
    assigned = assign_waves(ids, waves)
    campaign = Campaign(campaign_id="c1", waves=waves, **options)  # type: ignore[arg-type]
    return campaign, [CampaignNode(node_id=i, wave=assigned[i]) for i in ids]


NO_HOLDS = Conditions()


def step(  # type: ignore[no-untyped-def]
    campaign: Campaign, nodes: list[CampaignNode], now: int, conditions: Conditions = NO_HOLDS
):
    """One runner tick applied, as fleet.ota.runner does it."""
    decision = next_actions(campaign, nodes, now, conditions)
    by_id = {n.node_id: n for n in nodes}
    for node_id in decision.time_out:
        by_id[node_id] = timed_out(by_id[node_id], now, campaign.node_timeout_ms)
    for node_id in decision.offer:
        by_id[node_id] = offered(by_id[node_id], now)
    after = dataclasses.replace(campaign, opened_waves=decision.opened_waves)
    if decision.action is not None:
        after = transition(after, decision.action, reason=decision.reason)
    return after, [by_id[n.node_id] for n in nodes], decision


def report(
    nodes: list[CampaignNode], node_id: str, state: NodeState, ts: int, **extra: object
) -> list[CampaignNode]:
    out = []
    for n in nodes:
        if n.node_id != node_id:
            out.append(n)
            continue
        after = take_report(n, Report(state=state, ts=ts, **extra), ts)  # type: ignore[arg-type]
        assert not isinstance(after, Ignored), (node_id, n.state, state, after)
        out.append(after)
    return out


# --- waves --------------------------------------------------------------------------------------


def test_a_canary_then_a_tenth_then_everyone() -> None:
    waves = plan_waves(CANARY_THEN_ALL, 150)
    assert [w.size for w in waves] == [1, 14, 135]
    assert [w.size for w in plan_waves(CANARY_THEN_ALL, 5)] == [1, 4]  # 10 % of 5 is in the canary


@pytest.mark.parametrize(
    ("plans", "field"),
    [
        ((), "waves"),
        ((WavePlan(nodes=1),), "waves"),  # reaches 1 of 10
        ((WavePlan(nodes=1, percent=50), WavePlan(percent=100)), "waves.0"),
        ((WavePlan(),), "waves.0"),
        ((WavePlan(percent=0),), "waves.0.percent"),
        ((WavePlan(percent=100, success_threshold=1.5),), "waves.0.success_threshold"),
        ((WavePlan(nodes=0), WavePlan(percent=100)), "waves.0.nodes"),
    ],
)
def test_a_plan_that_cannot_work_is_refused_naming_the_field(plans: tuple[WavePlan, ...], field: str) -> None:
    with pytest.raises(PlanError) as refused:
        plan_waves(plans, 10)
    assert refused.value.field == field


plans = st.lists(
    st.one_of(
        st.builds(WavePlan, nodes=st.integers(1, 50)),
        st.builds(WavePlan, percent=st.floats(0.5, 100, allow_nan=False)),
    ),
    min_size=0,
    max_size=5,
).map(lambda ws: (*ws, WavePlan(percent=100)))


@settings(max_examples=200, deadline=None)
@given(plans=plans, total=st.integers(1, 2000))
def test_waves_cover_every_target_once_and_never_exceed_their_size(
    plans: tuple[WavePlan, ...], total: int
) -> None:
    waves = plan_waves(plans, total)
    assert sum(w.size for w in waves) == total
    assert all(w.size >= 1 for w in waves)
    assigned = assign_waves([f"n{i}" for i in range(total)], waves)
    for wave in waves:
        assert sum(1 for w in assigned.values() if w == wave.index) == wave.size


# --- lifecycles ---------------------------------------------------------------------------------


def test_the_campaign_refuses_illegal_moves_naming_the_allowed_ones() -> None:
    campaign, _ = campaign_of(10)
    with pytest.raises(IllegalCampaignTransition) as refused:
        transition(campaign, CampaignAction.RESUME)
    assert refused.value.allowed == ("pause", "cancel", "await-approval", "complete")
    done = transition(campaign, CampaignAction.CANCEL)
    with pytest.raises(IllegalCampaignTransition, match="none: the campaign is over"):
        transition(done, CampaignAction.RESUME)


def test_a_node_goes_forward_only_and_keeps_its_outcome() -> None:
    node = offered(CampaignNode(node_id="n", wave=0), T0)
    node = take_report(node, Report(state=NodeState.INSTALLING, ts=T0 + 5), T0 + 10)  # may skip states
    assert isinstance(node, CampaignNode)
    assert node.state is NodeState.INSTALLING
    assert take_report(node, Report(state=NodeState.DOWNLOADING, ts=T0 + 6), T0 + 20) is Ignored.BEHIND
    assert take_report(node, Report(state=NodeState.COMMITTED, ts=T0 + 4), T0 + 20) is Ignored.STALE
    failed = take_report(
        node, Report(state=NodeState.FAILED, ts=T0 + 7, reason="hash-mismatch", detail="x"), T0 + 30
    )
    assert isinstance(failed, CampaignNode)
    assert (failed.state, failed.reason, failed.finished_at_ms) == (
        NodeState.FAILED,
        "hash-mismatch",
        T0 + 30,
    )
    assert take_report(failed, Report(state=NodeState.COMMITTED, ts=T0 + 8), T0 + 40) is Ignored.FINAL


def test_committed_may_still_roll_back_and_a_timed_out_node_may_come_back() -> None:
    committed = take_report(
        offered(CampaignNode(node_id="n", wave=0), T0), Report(state=NodeState.COMMITTED, ts=T0 + 1), T0 + 1
    )
    assert isinstance(committed, CampaignNode)
    back = take_report(
        committed, Report(state=NodeState.ROLLED_BACK, ts=T0 + 2, reason="health-check"), T0 + 2
    )
    assert isinstance(back, CampaignNode)
    assert back.state is NodeState.ROLLED_BACK
    assert take_report(committed, Report(state=NodeState.FAILED, ts=T0 + 2), T0 + 2) is Ignored.FINAL
    silent = CampaignNode(node_id="m", wave=0, state=NodeState.FAILED, reason=TIMED_OUT, reported_ts=T0)
    late = take_report(silent, Report(state=NodeState.DOWNLOADING, ts=T0 + 3, progress=0.5), T0 + 3)
    assert isinstance(late, CampaignNode)
    assert (late.state, late.reason, late.finished_at_ms) == (
        NodeState.DOWNLOADING,
        None,
        None,
    )


# --- next_actions -------------------------------------------------------------------------------


def test_a_campaign_from_canary_to_completed() -> None:
    campaign, nodes = campaign_of(20)  # waves of 1, 1, 18
    campaign, nodes, decision = step(campaign, nodes, T0)
    assert (campaign.opened_waves, decision.offer) == (1, ("pole-0000",))
    campaign, nodes, decision = step(campaign, nodes, T0 + MIN)
    assert decision.offer == ()  # the canary is not through yet
    nodes = report(nodes, "pole-0000", NodeState.COMMITTED, T0 + 2 * MIN)
    campaign, nodes, decision = step(campaign, nodes, T0 + 3 * MIN)
    assert (campaign.opened_waves, decision.offer) == (2, ("pole-0001",))
    nodes = report(nodes, "pole-0001", NodeState.COMMITTED, T0 + 4 * MIN)
    campaign, nodes, decision = step(campaign, nodes, T0 + 5 * MIN)
    assert len(decision.offer) == 18
    for n in decision.offer:
        nodes = report(nodes, n, NodeState.COMMITTED, T0 + 6 * MIN)
    campaign, nodes, decision = step(campaign, nodes, T0 + 7 * MIN)
    assert (campaign.state, decision.action, campaign.reason) == (
        CampaignState.COMPLETED,
        CampaignAction.COMPLETE,
        "20 committed, 0 failed",
    )


def test_approval_before_each_wave_after_the_first() -> None:
    campaign, nodes = campaign_of(20, require_approval=True)
    campaign, nodes, _ = step(campaign, nodes, T0)
    nodes = report(nodes, "pole-0000", NodeState.COMMITTED, T0 + 1)
    campaign, nodes, decision = step(campaign, nodes, T0 + 2)
    assert (campaign.state, decision.offer) == (CampaignState.AWAITING_APPROVAL, ())
    campaign, nodes, decision = step(campaign, nodes, T0 + 3)
    assert decision.offer == ()  # still waiting
    campaign = approve(campaign)
    campaign, nodes, decision = step(campaign, nodes, T0 + 4)
    assert (campaign.state, decision.offer) == (CampaignState.RUNNING, ("pole-0001",))


def test_holds_alarm_fault_offline_window_and_in_flight_limit() -> None:
    seoul_night = MaintenanceWindow(start=time(0, 30), end=time(5, 0), time_zone="Asia/Seoul")
    campaign, nodes = campaign_of(8, (WavePlan(percent=100),), max_in_flight=2, window=seoul_night)
    conditions = Conditions(
        bell_alarm=frozenset({"pole-0000"}),
        open_fault=frozenset({"pole-0001"}),
        offline=frozenset({"pole-0002"}),
    )
    decision = next_actions(campaign, nodes, T0, conditions)  # 01:00 in Seoul: inside
    assert decision.offer == ("pole-0003", "pole-0004")
    assert decision.held == {
        "pole-0000": Hold.BELL_ALARM,
        "pole-0001": Hold.OPEN_FAULT,
        "pole-0002": Hold.OFFLINE,
        **{f"pole-000{i}": Hold.IN_FLIGHT_LIMIT for i in range(5, 8)},
    }
    outside = next_actions(campaign, nodes, T0 + 5 * 3_600_000)  # 06:00 in Seoul
    assert outside.offer == ()
    assert set(outside.held.values()) == {Hold.MAINTENANCE_WINDOW}
    over_midnight = MaintenanceWindow(start=time(23, 0), end=time(2, 0), time_zone="Asia/Seoul")
    assert over_midnight.contains(T0)
    assert not over_midnight.contains(T0 + 2 * 3_600_000)


def test_a_silent_node_times_out_and_counts_as_failed() -> None:
    campaign, nodes = campaign_of(1, (WavePlan(percent=100),), node_timeout_ms=30 * MIN)
    campaign, nodes, _ = step(campaign, nodes, T0)
    nodes = report(nodes, "pole-0000", NodeState.DOWNLOADING, T0 + 10 * MIN)
    assert next_actions(campaign, nodes, T0 + 40 * MIN - 1).time_out == ()
    campaign, nodes, decision = step(campaign, nodes, T0 + 40 * MIN)
    assert decision.time_out == ("pole-0000",)
    assert (nodes[0].state, nodes[0].reason) == (NodeState.FAILED, TIMED_OUT)
    assert (campaign.state, decision.action) == (CampaignState.PAUSED, CampaignAction.PAUSE)


def test_an_abort_cancels_when_asked_and_a_resume_accepts_the_failures_so_far() -> None:
    campaign, nodes = campaign_of(10, (WavePlan(percent=100, success_threshold=0.5, abort_failure_rate=0.2),))
    campaign, nodes, _ = step(campaign, nodes, T0)
    nodes = report(nodes, "pole-0000", NodeState.FAILED, T0 + 1, reason="disk-full")
    nodes = report(nodes, "pole-0001", NodeState.ROLLED_BACK, T0 + 1, reason="health-check")
    paused, after, decision = step(campaign, nodes, T0 + 2)
    assert paused.state is CampaignState.PAUSED
    assert "2 of 10" in decision.reason
    cancelled, _, _ = step(dataclasses.replace(campaign, abort_action="cancel"), nodes, T0 + 2)
    assert cancelled.state is CampaignState.CANCELLED
    resumed = resume(paused, after)
    assert resumed.accepted_failures == (2,)
    again, after, decision = step(resumed, after, T0 + 3)
    assert again.state is CampaignState.RUNNING  # the two failures were accepted
    after = report(after, "pole-0002", NodeState.FAILED, T0 + 4)
    assert step(again, after, T0 + 5)[0].state is CampaignState.RUNNING  # 1 new < 2
    after = report(after, "pole-0003", NodeState.FAILED, T0 + 6)
    assert step(again, after, T0 + 7)[0].state is CampaignState.PAUSED  # 2 new of 10: 0.2


def test_a_wave_whose_outcomes_are_all_in_but_too_few_committed_aborts() -> None:
    campaign, nodes = campaign_of(4, (WavePlan(percent=100, success_threshold=1.0, abort_failure_rate=0.5),))
    campaign, nodes, _ = step(campaign, nodes, T0)
    for i in range(3):
        nodes = report(nodes, f"pole-000{i}", NodeState.COMMITTED, T0 + 1)
    nodes = report(nodes, "pole-0003", NodeState.FAILED, T0 + 1)
    after, _, decision = step(campaign, nodes, T0 + 2)
    assert after.state is CampaignState.PAUSED
    assert "3 of 4 committed" in decision.reason


def test_paused_and_over_campaigns_offer_nothing() -> None:
    campaign, nodes = campaign_of(5, (WavePlan(percent=100),))
    paused = transition(campaign, CampaignAction.PAUSE)
    assert next_actions(paused, nodes, T0).offer == ()
    assert next_actions(transition(paused, CampaignAction.CANCEL), nodes, T0).offer == ()


# --- properties ---------------------------------------------------------------------------------

states = st.sampled_from(list(NodeState))


@st.composite
def fleets(draw: st.DrawFn) -> tuple[Campaign, list[CampaignNode], Conditions, int]:
    total = draw(st.integers(1, 60))
    plan = draw(plans)
    waves = plan_waves(plan, total)
    ids = [f"pole-{i:04d}" for i in range(total)]
    assigned = assign_waves(ids, waves)
    nodes = [
        CampaignNode(
            node_id=i,
            wave=assigned[i],
            state=draw(states),
            last_heard_ms=T0 - draw(st.integers(0, 3_600_000)),
        )
        for i in ids
    ]
    campaign = Campaign(
        campaign_id="c",
        waves=waves,
        state=draw(
            st.sampled_from([CampaignState.RUNNING, CampaignState.AWAITING_APPROVAL, CampaignState.PAUSED])
        ),
        opened_waves=draw(st.integers(0, len(waves))),
        require_approval=draw(st.booleans()),
        max_in_flight=draw(st.none() | st.integers(1, 20)),
        node_timeout_ms=30 * MIN,
    )
    conditions = Conditions(
        bell_alarm=frozenset(draw(st.sets(st.sampled_from(ids)))),
        open_fault=frozenset(draw(st.sets(st.sampled_from(ids)))),
        offline=frozenset(draw(st.sets(st.sampled_from(ids)))),
    )
    return campaign, nodes, conditions, draw(st.integers(0, 3_600_000))


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_no_held_node_is_ever_offered_and_offers_stay_in_bounds(
    fleet: tuple[Campaign, list[CampaignNode], Conditions, int],
) -> None:
    campaign, nodes, conditions, later = fleet
    decision = next_actions(campaign, nodes, T0 + later, conditions)
    offered_ids = set(decision.offer)
    assert not offered_ids & conditions.bell_alarm  # never a pole whose bell is calling
    assert not offered_ids & conditions.open_fault
    assert not offered_ids & conditions.offline
    by_id = {n.node_id: n for n in nodes}
    assert all(
        by_id[i].state is NodeState.QUEUED and by_id[i].wave < decision.opened_waves for i in offered_ids
    )
    if campaign.state is CampaignState.PAUSED or decision.action in (
        CampaignAction.PAUSE,
        CampaignAction.CANCEL,
    ):
        assert not offered_ids
    for wave in decision.waves:  # a wave never holds more than its size
        assert sum(wave.by_state.values()) == wave.size
    if campaign.max_in_flight is not None:
        still = sum(
            1
            for n in nodes
            if n.state.value not in ("queued", "committed", "failed", "rolled-back")
            and n.node_id not in decision.time_out
        )
        assert len(offered_ids) <= max(0, campaign.max_in_flight - still)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 200), failures=st.integers(0, 200), percent=st.integers(1, 100))
def test_the_abort_triggers_exactly_at_its_threshold(size: int, failures: int, percent: int) -> None:
    failures = min(failures, size)
    rate = percent / 100
    campaign, nodes = campaign_of(
        size, (WavePlan(percent=100, success_threshold=1.0, abort_failure_rate=rate),)
    )
    campaign = dataclasses.replace(campaign, opened_waves=1)
    # The failures, and everyone else still at work (so only the failure rate can decide).
    nodes = [
        dataclasses.replace(
            n, state=NodeState.FAILED if i < failures else NodeState.INSTALLING, last_heard_ms=T0
        )
        for i, n in enumerate(nodes)
    ]
    decision = next_actions(campaign, nodes, T0)
    assert (decision.action is CampaignAction.PAUSE) == (
        failures > 0 and Fraction(failures, size) >= Fraction(percent, 100)
    )
