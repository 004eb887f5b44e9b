"""The node's OTA job as an explicit state machine, and the pure decisions around it: whether
to take an offer, and what the boot selector does with a trial. No I/O here: edge.ota.node
and edge.ota.boot feed these with values read from disk and the clock.

    notified → downloading → downloaded → verified → installing → restarting → health-check
                   │  (resume: downloading again)                      │              │
                   └────────────── failed ◀───────────────────────────┴─ rolled-back ◀┘
                                                     committed ◀──────────────────────┘
A controller-firmware job goes the same way (edge.controller.firmware_update reports restarting
and health-check as it resets the controller and waits for its HELLO), or ends from
`installing` when the update is refused before the switch; a job that finds its release already
running commits straight from `downloading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import msgspec

from protocols import messages as m

STATES: Final = frozenset(get_args(m.OtaState))
TERMINAL: Final = frozenset({"committed", "failed", "rolled-back"})

_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "queued": frozenset({"notified", "failed"}),
    "notified": frozenset({"downloading", "failed"}),
    "downloading": frozenset({"downloading", "downloaded", "failed", "committed"}),
    "downloaded": frozenset({"verified", "failed"}),
    "verified": frozenset({"installing", "failed"}),
    "installing": frozenset({"restarting", "failed", "committed", "rolled-back"}),
    "restarting": frozenset({"health-check", "failed", "rolled-back"}),
    "health-check": frozenset({"committed", "rolled-back"}),
    "committed": frozenset(),
    "failed": frozenset(),
    "rolled-back": frozenset(),
}
assert set(_ALLOWED) == STATES, "every OtaState has its row"


class IllegalTransition(ValueError):
    def __init__(self, current: str, new: str) -> None:
        allowed = ", ".join(sorted(_ALLOWED.get(current, ()))) or "nothing (it is final)"
        super().__init__(f"an OTA job in state {current!r} cannot go to {new!r}; allowed: {allowed}")
        self.current = current
        self.new = new


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted offer and how far it got; persisted in `<state_dir>/ota/job.json`."""

    campaign_id: str
    release: str
    manifest_url: str
    manifest_sha256: str
    expires_at: int
    accepted_at: int
    state: m.OtaState = "notified"
    component: Literal["edge-agent", "controller-firmware"] | None = None
    previous: str | None = None  # the committed release when this one was installed


def allowed(state: str) -> frozenset[str]:
    """The states a job in `state` may go to."""
    return _ALLOWED[state]


def transition(job: Job, new: m.OtaState) -> Job:
    """`job` in state `new`; IllegalTransition when the machine does not allow that move."""
    if new not in _ALLOWED[job.state]:
        raise IllegalTransition(job.state, new)
    return msgspec.structs.replace(job, state=new)


def job_for(offer: m.OtaOffer, now_ms: int) -> Job:
    return Job(
        campaign_id=offer.campaign_id,
        release=offer.release,
        manifest_url=offer.manifest_url,
        manifest_sha256=offer.manifest_sha256,
        expires_at=offer.expires_at,
        accepted_at=now_ms,
    )


# --- offers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The offer of the job already running (QoS 1 redelivery, or the fleet re-offering)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str
    detail: str


def decide_offer(
    offer: m.OtaOffer,
    *,
    now_ms: int,
    job: Job | None,
    enabled: bool,
    trial_release: str | None,
) -> Accept | Duplicate | Refuse:
    if job is not None and job.campaign_id == offer.campaign_id and job.release == offer.release:
        return Duplicate()
    if not enabled:
        return Refuse("disabled", "updates are switched off on this node (ota.enabled = false)")
    if offer.expires_at < now_ms:
        return Refuse("expired", f"the offer expired at {offer.expires_at}, it is now {now_ms}")
    if job is not None:
        return Refuse("busy", f"campaign {job.campaign_id} ({job.release}) is {job.state}")
    if trial_release is not None:
        return Refuse("busy", f"release {trial_release} is on trial, not yet committed")
    return Accept()


# --- trial boots and their outcome ------------------------------------------------------------


class Trial(msgspec.Struct, frozen=True, kw_only=True):
    """A release switched to but not yet committed; the boot selector counts its boots."""

    campaign_id: str
    release: str
    previous: str | None  # the committed release at install time, for the report
    boots: int = 0


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A trial that ended without a commit, for the release that runs next to report."""

    campaign_id: str
    release: str
    state: m.OtaState
    reason: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BootPlan:
    """What the boot selector does before it execs the agent of `current`."""

    switch_current_to: str | None = None  # roll `current` back to this release
    write_trial: Trial | None = None  # the trial with this boot counted
    write_outcome: Outcome | None = None
    delete_trial: bool = False
    why: str = ""


def plan_boot(
    *,
    current: str | None,
    committed: str | None,
    trial: Trial | None,
    outcome: Outcome | None,
    max_trial_boots: int,
) -> BootPlan:
    """Decide from the links and the trial file alone (no network, no agent code)."""
    if committed is None:
        return BootPlan(why="no committed release: running what `current` names")
    if trial is None:
        if current != committed:
            # Nothing installed that release on trial: only the committed one is known good.
            return BootPlan(
                switch_current_to=committed, why=f"{current} is not on trial: back to {committed}"
            )
        return BootPlan(why=f"running committed release {committed}")
    if current != trial.release:
        return BootPlan(delete_trial=True, why=f"trial of {trial.release} never started or is over")
    if committed == trial.release:
        return BootPlan(delete_trial=True, why=f"{trial.release} is committed")
    if outcome is not None and outcome.release == trial.release:
        return BootPlan(
            switch_current_to=committed, delete_trial=True, why=f"finishing the rollback to {committed}"
        )
    boots = trial.boots + 1
    if boots > max_trial_boots:
        detail = (
            f"release {trial.release} started {trial.boots} times without passing its health "
            f"check (ota.max_trial_boots = {max_trial_boots}); back to {committed}"
        )
        return BootPlan(
            switch_current_to=committed,
            write_outcome=Outcome(
                campaign_id=trial.campaign_id,
                release=trial.release,
                state="rolled-back",
                reason="did-not-start",
                detail=detail,
            ),
            delete_trial=True,
            why=detail,
        )
    return BootPlan(
        write_trial=msgspec.structs.replace(trial, boots=boots),
        why=f"trial boot {boots} of {max_trial_boots} for {trial.release}",
    )
