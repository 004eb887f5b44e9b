"""An OTA campaign's decisions, pure: how targets split into waves, the campaign's lifecycle and
each node's, and `next_actions`, which says what to do now (offer, time out, open a wave, wait
for approval, abort, complete) from the campaign, its nodes, what holds them back, and the
time. fleet/ota/store.py loads and saves what these take and return; fleet/ota/runner.py
applies the decisions. Time is passed in, never read here.

The campaign (drawn in docs/ota.md):

    running -> awaiting-approval -> running     (approve: the next wave may start)
    running, awaiting-approval -> paused -> running
    running, awaiting-approval, paused -> cancelled
    running -> completed                        (every wave passed, every node final)

A node: queued -> notified (offered) -> downloading -> downloaded -> verified -> installing ->
restarting -> health-check -> committed | failed | rolled-back, as it reports them (protocols
OtaState); it may skip states, never go back. Final states stay final, with two exceptions:
committed -> rolled-back (the pole's own rollback is the later fact), and a node the fleet
timed out (failed, reason `timed-out`: a guess from its silence) takes whatever it reports
next.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from enum import StrEnum
from typing import Final, Literal
from zoneinfo import ZoneInfo

from fleet.ota.errors import IllegalCampaignTransition, PlanError

TIMED_OUT: Final = "timed-out"  # the reason of a node the fleet gave up waiting for

# --- the campaign's lifecycle -----------------------------------------------------------------


class CampaignState(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting-approval"  # a wave passed; the next one waits for a person
    PAUSED = "paused"  # by a person, or by the abort rule (`abort_action = "pause"`)
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CampaignAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    APPROVE = "approve"  # the next wave may start
    AWAIT_APPROVAL = "await-approval"  # the fleet: a wave passed, the next needs approval
    COMPLETE = "complete"  # the fleet: nothing left to do


CAMPAIGN_TRANSITIONS: Final[dict[CampaignState, dict[CampaignAction, CampaignState]]] = {
    CampaignState.RUNNING: {
        CampaignAction.PAUSE: CampaignState.PAUSED,
        CampaignAction.CANCEL: CampaignState.CANCELLED,
        CampaignAction.AWAIT_APPROVAL: CampaignState.AWAITING_APPROVAL,
        CampaignAction.COMPLETE: CampaignState.COMPLETED,
    },
    CampaignState.AWAITING_APPROVAL: {
        CampaignAction.APPROVE: CampaignState.RUNNING,
        CampaignAction.PAUSE: CampaignState.PAUSED,
        CampaignAction.CANCEL: CampaignState.CANCELLED,
    },
    CampaignState.PAUSED: {
        CampaignAction.RESUME: CampaignState.RUNNING,
        CampaignAction.CANCEL: CampaignState.CANCELLED,
    },
    CampaignState.COMPLETED: {},
    CampaignState.CANCELLED: {},
}
OVER: Final = frozenset({CampaignState.COMPLETED, CampaignState.CANCELLED})
# The actions a person may take through the API; the others are the fleet's own.
PERSON_ACTIONS: Final = frozenset(
    {CampaignAction.PAUSE, CampaignAction.RESUME, CampaignAction.CANCEL, CampaignAction.APPROVE}
)

AbortAction = Literal["pause", "cancel"]


# --- a node's state in a campaign ---------------------------------------------------------------


class NodeState(StrEnum):
    """protocols.messages.OtaState, in the order a node goes through them."""

    QUEUED = "queued"
    NOTIFIED = "notified"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    VERIFIED = "verified"
    INSTALLING = "installing"
    RESTARTING = "restarting"
    HEALTH_CHECK = "health-check"
    COMMITTED = "committed"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"


_RANK: Final = {state: rank for rank, state in enumerate(NodeState)}
FINAL: Final = frozenset({NodeState.COMMITTED, NodeState.FAILED, NodeState.ROLLED_BACK})
FAILURES: Final = frozenset({NodeState.FAILED, NodeState.ROLLED_BACK})
# Offered and not yet final: the node is working on it, and owes the fleet news.
IN_FLIGHT: Final = frozenset(s for s in NodeState if s is not NodeState.QUEUED and s not in FINAL)


@dataclass(frozen=True, slots=True)
class CampaignNode:
    node_id: str
    wave: int
    state: NodeState = NodeState.QUEUED
    reason: str | None = None
    detail: str = ""
    progress: float | None = None
    last_heard_ms: int | None = None  # fleet clock: offered, or the node's last report arrived
    reported_ts: int | None = None  # node clock: the `ts` of its last report taken
    finished_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """What a node said about its update (protocols.messages.OtaProgress), as the core takes it."""

    state: NodeState
    ts: int  # node clock
    progress: float | None = None
    reason: str | None = None
    detail: str = ""


class Ignored(StrEnum):
    """Why a node's report left its state as it was (the report still counts as hearing from it
    when it is not older than the last one taken)."""

    STALE = "stale"  # older than the report already taken (a replay from the node's outbox)
    BEHIND = "behind"  # a state before the one the node is in (out of order)
    FINAL = "final"  # the node's outcome is in and this report cannot change it


def take_report(node: CampaignNode, report: Report, received_ms: int) -> CampaignNode | Ignored:
    """The node after its report, or why the report leaves its state unchanged."""
    if node.reported_ts is not None and report.ts < node.reported_ts:
        return Ignored.STALE
    current, wanted = node.state, report.state
    if current in FINAL:
        soft = current is NodeState.FAILED and node.reason == TIMED_OUT
        rollback = current is NodeState.COMMITTED and wanted is NodeState.ROLLED_BACK
        if not (soft or rollback):
            return Ignored.FINAL
    elif _RANK[wanted] < _RANK[current]:
        return Ignored.BEHIND
    final = wanted in FINAL
    return dataclasses.replace(
        node,
        state=wanted,
        reason=report.reason,
        detail=report.detail,
        progress=report.progress,
        last_heard_ms=received_ms,
        reported_ts=report.ts,
        finished_at_ms=received_ms if final else None,
    )


def heard(node: CampaignNode, report: Report, received_ms: int) -> CampaignNode:
    """A report that moved nothing still says the node is alive: its silence starts again."""
    if node.state not in IN_FLIGHT or (node.reported_ts is not None and report.ts < node.reported_ts):
        return node
    return dataclasses.replace(node, last_heard_ms=received_ms)


def offered(node: CampaignNode, at_ms: int) -> CampaignNode:
    if node.state is not NodeState.QUEUED:
        raise ValueError(f"node {node.node_id} is {node.state}: only a queued node is offered")
    return dataclasses.replace(node, state=NodeState.NOTIFIED, last_heard_ms=at_ms)


def timed_out(node: CampaignNode, at_ms: int, timeout_ms: int) -> CampaignNode:
    if node.state not in IN_FLIGHT:
        raise ValueError(f"node {node.node_id} is {node.state}: only a node at work times out")
    silent = (at_ms - node.last_heard_ms) // 1000 if node.last_heard_ms is not None else None
    return dataclasses.replace(
        node,
        state=NodeState.FAILED,
        reason=TIMED_OUT,
        detail=f"no news for {silent} s while {node.state} (timeout {timeout_ms // 1000} s)",
        finished_at_ms=at_ms,
    )


# --- waves --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WavePlan:
    """One wave as asked: a number of nodes, or the share of the campaign's targets reached by
    the end of this wave (cumulative: `1 node, 10 %, 100 %` is a canary, then up to a tenth,
    then everyone). It passes when `success_threshold` of it is committed; `abort_failure_rate`
    of it failed, rolled back or timed out aborts the campaign."""

    nodes: int | None = None
    percent: float | None = None
    success_threshold: float = 0.9
    abort_failure_rate: float = 0.1


@dataclass(frozen=True, slots=True)
class Wave:
    index: int
    size: int
    success_threshold: float
    abort_failure_rate: float


def plan_waves(plans: Sequence[WavePlan], total: int) -> tuple[Wave, ...]:
    """The waves for `total` targets (sorted: the first ones make the canary). Waves left
    empty by rounding are dropped; the plan must reach every target."""
    if not plans:
        raise PlanError("waves", 'at least one wave, e.g. [{"nodes": 1}, {"percent": 100}]')
    waves: list[Wave] = []
    end = 0
    for i, plan in enumerate(plans):
        where = f"waves.{i}"
        if (plan.nodes is None) == (plan.percent is None):
            raise PlanError(where, "give either `nodes` (a count) or `percent` (of all targets)")
        if plan.nodes is not None:
            if plan.nodes < 1:
                raise PlanError(f"{where}.nodes", f"{plan.nodes} is not a count of nodes (at least 1)")
            wanted = end + plan.nodes
        else:
            assert plan.percent is not None
            if not 0 < plan.percent <= 100:
                raise PlanError(f"{where}.percent", f"{plan.percent} is not a share in (0, 100]")
            wanted = math.ceil(plan.percent * total / 100)
        for name in ("success_threshold", "abort_failure_rate"):
            value = getattr(plan, name)
            if not 0 < value <= 1:
                raise PlanError(f"{where}.{name}", f"{value} is not a share in (0, 1]")
        new_end = min(total, max(end, wanted))
        if new_end > end:
            waves.append(Wave(len(waves), new_end - end, plan.success_threshold, plan.abort_failure_rate))
            end = new_end
    if end < total:
        raise PlanError(
            "waves",
            f'the waves reach {end} of the {total} targeted nodes; end with {{"percent": 100}}',
        )
    return tuple(waves)


def assign_waves(node_ids: Iterable[str], waves: Sequence[Wave]) -> dict[str, int]:
    """Each target's wave: in node id order, so the canary is the same on every re-plan."""
    ordered = sorted(node_ids)
    if len(ordered) != sum(w.size for w in waves):
        raise ValueError("the waves were planned for another number of nodes")
    assigned: dict[str, int] = {}
    position = 0
    for wave in waves:
        for node_id in ordered[position : position + wave.size]:
            assigned[node_id] = wave.index
        position += wave.size
    return assigned


# --- maintenance window -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Offers go out only between `start` and `end`, local time in `time_zone` (an IANA name);
    an `end` before `start` runs over midnight."""

    start: time
    end: time
    time_zone: str

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise PlanError("maintenance_window", "start and end are the same time: an empty window")
        try:
            ZoneInfo(self.time_zone)
        except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise PlanError(
                "maintenance_window.time_zone", f"{self.time_zone!r} is not a time zone ({exc})"
            ) from None

    def contains(self, now_ms: int) -> bool:
        local = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(ZoneInfo(self.time_zone)).time()
        local = local.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


# --- the campaign and its next step -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    waves: tuple[Wave, ...]
    state: CampaignState = CampaignState.RUNNING
    reason: str = ""  # why it is in its state (an abort's numbers, a person's note)
    opened_waves: int = 0  # waves 0 .. opened_waves-1 have started
    approved_through: int = 0  # the highest wave index allowed to start
    require_approval: bool = False  # a person approves each wave after the first
    abort_action: AbortAction = "pause"
    node_timeout_ms: int = 30 * 60_000
    max_in_flight: int | None = None  # at most this many nodes at work at once
    window: MaintenanceWindow | None = None
    # Per wave, the failures a person accepted by resuming after an abort: only failures
    # beyond these count toward the next abort.
    accepted_failures: tuple[int, ...] = ()


def transition(campaign: Campaign, action: CampaignAction, *, reason: str = "") -> Campaign:
    allowed = CAMPAIGN_TRANSITIONS[campaign.state]
    target = allowed.get(action)
    if target is None:
        raise IllegalCampaignTransition(
            campaign.campaign_id, campaign.state.value, action.value, [a.value for a in allowed]
        )
    return dataclasses.replace(campaign, state=target, reason=reason)


def approve(campaign: Campaign) -> Campaign:
    """A person lets the next wave start."""
    done = transition(campaign, CampaignAction.APPROVE)
    return dataclasses.replace(done, approved_through=max(campaign.approved_through, campaign.opened_waves))


def resume(campaign: Campaign, nodes: Iterable[CampaignNode], *, reason: str = "") -> Campaign:
    """A person resumes: the failures so far are accepted (they no longer count to an abort)."""
    done = transition(campaign, CampaignAction.RESUME, reason=reason)
    tallies = tally(campaign, nodes)
    return dataclasses.replace(done, accepted_failures=tuple(t.failures for t in tallies))


class Hold(StrEnum):
    """Why a queued node in an open wave was not offered the release now."""

    BELL_ALARM = "bell-alarm"  # an unacknowledged or uncleared bell alarm: a citizen calls
    OPEN_FAULT = "open-fault"  # a technician may be working there
    OFFLINE = "offline"  # the offer would not reach it
    MAINTENANCE_WINDOW = "maintenance-window"  # outside the campaign's window
    IN_FLIGHT_LIMIT = "in-flight-limit"  # `max_in_flight` nodes are at work already


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the fleet knows of the targeted nodes right now, for the holds."""

    bell_alarm: frozenset[str] = frozenset()
    open_fault: frozenset[str] = frozenset()
    offline: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class WaveTally:
    index: int
    size: int
    opened: bool
    by_state: Mapping[str, int]
    committed: int
    failures: int  # failed (timed out included) + rolled back
    in_flight: int
    passed: bool  # committed share reached the wave's success threshold
    settled: bool  # every node of the wave has its outcome (committed, failed, rolled back)


def tally(campaign: Campaign, nodes: Iterable[CampaignNode]) -> tuple[WaveTally, ...]:
    counts: dict[tuple[int, str], int] = {}
    for node in nodes:
        key = (node.wave, node.state.value)
        counts[key] = counts.get(key, 0) + 1
    return tally_counts(campaign, counts)


def tally_counts(campaign: Campaign, counted: Mapping[tuple[int, str], int]) -> tuple[WaveTally, ...]:
    """The waves' tallies from node counts by (wave, state) (a listing counts in SQL)."""
    counts: list[dict[str, int]] = [{} for _ in campaign.waves]
    for (index, state), n in counted.items():
        if 0 <= index < len(counts):
            counts[index][state] = counts[index].get(state, 0) + n
    tallies = []
    for wave, by in zip(campaign.waves, counts, strict=True):
        committed = by.get(NodeState.COMMITTED.value, 0)
        failures = sum(by.get(s.value, 0) for s in FAILURES)
        settled = sum(by.get(s.value, 0) for s in FINAL) == wave.size
        # A person who resumed after this wave's outcome accepted it: it passes as it is.
        accepted = settled and failures <= _accepted(campaign, wave.index)
        tallies.append(
            WaveTally(
                index=wave.index,
                size=wave.size,
                opened=wave.index < campaign.opened_waves,
                by_state=by,
                committed=committed,
                failures=failures,
                in_flight=sum(by.get(s.value, 0) for s in IN_FLIGHT),
                passed=share_reached(committed, wave.size, wave.success_threshold) or accepted,
                settled=settled,
            )
        )
    return tuple(tallies)


def share_reached(count: int, size: int, share: float) -> bool:
    """count/size >= share, exactly at the boundary: division is correctly rounded, so 3 of 30
    reaches 0.1 (where 0.1 * 30 would be 3.0000000000000004)."""
    if size <= 0:
        return True
    return count / size >= share


@dataclass(frozen=True, slots=True)
class Decision:
    """What the runner is to do now. Applying it twice does no harm: an offer marks the node
    notified, a timeout marks it failed, so the next call no longer asks for them."""

    action: CampaignAction | None = None  # a step of the campaign's own lifecycle
    reason: str = ""
    opened_waves: int = 0  # the campaign's `opened_waves` after this decision
    offer: tuple[str, ...] = ()  # node ids, in order
    time_out: tuple[str, ...] = ()
    held: Mapping[str, Hold] = field(default_factory=dict)
    waves: tuple[WaveTally, ...] = ()  # after the timeouts


def next_actions(
    campaign: Campaign,
    nodes: Sequence[CampaignNode],
    now_ms: int,
    conditions: Conditions = Conditions(),
) -> Decision:
    """Decide the campaign's next step (see the module's note for the lifecycles).

    1. Nodes at work and silent for `node_timeout_ms` time out (failed, `timed-out`), in any
       state but over.
    2. Running or awaiting approval: an open wave whose failures (beyond those accepted at a
       resume) reach its `abort_failure_rate` aborts the campaign (pause or cancel).
    3. Running: the next wave opens once the last open one passed, unless it needs approval.
       Every wave open and passed, and no node left to finish: completed.
    4. Running or awaiting approval: queued nodes of open waves are offered, in wave then node
       order, unless held (bell alarm, open fault, offline, outside the window, the in-flight
       limit).
    """
    if campaign.state in OVER:
        return Decision(opened_waves=campaign.opened_waves, waves=tally(campaign, nodes))
    silent = {
        n.node_id
        for n in nodes
        if n.state in IN_FLIGHT
        and (n.last_heard_ms is None or now_ms - n.last_heard_ms >= campaign.node_timeout_ms)
    }
    current = [timed_out(n, now_ms, campaign.node_timeout_ms) if n.node_id in silent else n for n in nodes]
    time_out = tuple(sorted(silent))
    tallies = tally(campaign, current)
    if campaign.state is CampaignState.PAUSED:
        return Decision(opened_waves=campaign.opened_waves, time_out=time_out, waves=tallies)

    abort = _abort_reason(campaign, tallies)
    if abort is not None:
        stop = CampaignAction.PAUSE if campaign.abort_action == "pause" else CampaignAction.CANCEL
        return Decision(
            action=stop, reason=abort, opened_waves=campaign.opened_waves, time_out=time_out, waves=tallies
        )

    action: CampaignAction | None = None
    reason = ""
    opened = campaign.opened_waves
    if campaign.state is CampaignState.RUNNING:
        while opened < len(campaign.waves) and (opened == 0 or tallies[opened - 1].passed):
            if campaign.require_approval and opened >= 1 and campaign.approved_through < opened:
                action = CampaignAction.AWAIT_APPROVAL
                reason = f"wave {opened - 1} passed; wave {opened} waits for approval"
                break
            opened += 1
        tallies = tuple(dataclasses.replace(t, opened=t.index < opened) for t in tallies)
        if (
            action is None
            and opened == len(campaign.waves)
            and all(t.passed for t in tallies)
            and all(n.state in FINAL for n in current)
        ):
            committed = sum(t.committed for t in tallies)
            failures = sum(t.failures for t in tallies)
            action, reason = CampaignAction.COMPLETE, f"{committed} committed, {failures} failed"

    offer: list[str] = []
    held: dict[str, Hold] = {}
    if action is not CampaignAction.COMPLETE:
        in_flight = sum(1 for n in current if n.state in IN_FLIGHT)
        room = None if campaign.max_in_flight is None else max(0, campaign.max_in_flight - in_flight)
        outside = campaign.window is not None and not campaign.window.contains(now_ms)
        waiting = sorted(
            (n for n in current if n.state is NodeState.QUEUED and n.wave < opened),
            key=lambda n: (n.wave, n.node_id),
        )
        for node in waiting:
            hold = _hold(node.node_id, conditions, outside)
            if hold is None and room is not None and len(offer) >= room:
                hold = Hold.IN_FLIGHT_LIMIT
            if hold is None:
                offer.append(node.node_id)
            else:
                held[node.node_id] = hold
    return Decision(
        action=action,
        reason=reason,
        opened_waves=opened,
        offer=tuple(offer),
        time_out=time_out,
        held=held,
        waves=tallies,
    )


def _hold(node_id: str, conditions: Conditions, outside_window: bool) -> Hold | None:
    if node_id in conditions.bell_alarm:
        return Hold.BELL_ALARM
    if node_id in conditions.open_fault:
        return Hold.OPEN_FAULT
    if node_id in conditions.offline:
        return Hold.OFFLINE
    if outside_window:
        return Hold.MAINTENANCE_WINDOW
    return None


def _abort_reason(campaign: Campaign, tallies: Sequence[WaveTally]) -> str | None:
    for t in tallies:
        if not t.opened or t.size == 0:
            continue
        new = max(0, t.failures - _accepted(campaign, t.index))
        rate = campaign.waves[t.index].abort_failure_rate
        if new and share_reached(new, t.size, rate):
            return (
                f"abort: wave {t.index} has {new} of {t.size} failed, rolled back or timed out"
                f" (abort_failure_rate {rate})"
            )
        if t.settled and not t.passed:
            # Every outcome is in and too few committed: waiting would change nothing.
            threshold = campaign.waves[t.index].success_threshold
            return (
                f"abort: wave {t.index} ended with {t.committed} of {t.size} committed"
                f" (success_threshold {threshold})"
            )
    return None


def _accepted(campaign: Campaign, wave: int) -> int:
    return campaign.accepted_failures[wave] if wave < len(campaign.accepted_failures) else 0
