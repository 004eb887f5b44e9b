"""The OTA job's state machine and the pure decisions: which offers are taken, and what the
boot selector does with a trial."""

from __future__ import annotations

from typing import get_args

import pytest

from edge.ota.state import (
    STATES,
    Accept,
    Duplicate,
    IllegalTransition,
    Job,
    Outcome,
    Refuse,
    Trial,
    decide_offer,
    job_for,
    plan_boot,
    transition,
)
from protocols import messages as m

NOW = 1_764_000_000_000


def offer(campaign: str = "camp-1", release: str = "1.1.0", expires_at: int = NOW + 60_000) -> m.OtaOffer:
    return m.OtaOffer(
        ts=NOW,
        campaign_id=campaign,
        release=release,
        manifest_url="http://fleet.example/ota/v1/releases/edge-agent-1.1.0/manifest.json",
        manifest_sha256="0" * 64,
        expires_at=expires_at,
    )


def test_the_happy_path_of_an_edge_agent_update() -> None:
    job = job_for(offer(), NOW)
    assert job.state == "notified"
    for state in (
        "downloading",
        "downloaded",
        "verified",
        "installing",
        "restarting",
        "health-check",
        "committed",
    ):
        job = transition(job, state)  # type: ignore[arg-type]
    assert job.state == "committed"


@pytest.mark.parametrize(
    ("start", "new"),
    [
        ("notified", "installing"),  # never install what was not verified
        ("downloading", "verified"),
        ("downloaded", "installing"),
        ("verified", "restarting"),
        ("health-check", "failed"),  # after the switch, the end is committed or rolled back
        ("committed", "downloading"),
        ("failed", "notified"),
        ("rolled-back", "committed"),
    ],
)
def test_illegal_moves_are_refused(start: m.OtaState, new: m.OtaState) -> None:
    job = Job(
        campaign_id="c",
        release="1.1.0",
        manifest_url="http://x/",
        manifest_sha256="0" * 64,
        expires_at=NOW,
        accepted_at=NOW,
        state=start,
    )
    with pytest.raises(IllegalTransition, match=f"cannot go to '{new}'"):
        transition(job, new)


def test_every_protocol_state_is_in_the_machine() -> None:
    assert frozenset(get_args(m.OtaState)) == STATES


def test_offers() -> None:
    job = job_for(offer(), NOW)
    assert decide_offer(offer(), now_ms=NOW, job=None, enabled=True, trial_release=None) == Accept()
    assert decide_offer(offer(), now_ms=NOW, job=job, enabled=True, trial_release=None) == Duplicate()
    busy = decide_offer(offer("camp-2", "1.2.0"), now_ms=NOW, job=job, enabled=True, trial_release=None)
    assert isinstance(busy, Refuse)
    assert busy.reason == "busy"
    assert "camp-1" in busy.detail
    expired = decide_offer(offer(expires_at=NOW - 1), now_ms=NOW, job=None, enabled=True, trial_release=None)
    assert isinstance(expired, Refuse)
    assert expired.reason == "expired"
    on_trial = decide_offer(offer(), now_ms=NOW, job=None, enabled=True, trial_release="1.0.5")
    assert isinstance(on_trial, Refuse)
    assert on_trial.reason == "busy"
    off = decide_offer(offer(), now_ms=NOW, job=None, enabled=False, trial_release=None)
    assert isinstance(off, Refuse)
    assert off.reason == "disabled"


TRIAL = Trial(campaign_id="camp-1", release="1.1.0", previous="1.0.0")


def test_boot_counts_trial_boots_then_rolls_back() -> None:
    trial = TRIAL
    for boot in (1, 2, 3):
        plan = plan_boot(current="1.1.0", committed="1.0.0", trial=trial, outcome=None, max_trial_boots=3)
        assert plan.write_trial is not None
        assert plan.write_trial.boots == boot
        assert plan.switch_current_to is None
        trial = plan.write_trial
    plan = plan_boot(current="1.1.0", committed="1.0.0", trial=trial, outcome=None, max_trial_boots=3)
    assert plan.switch_current_to == "1.0.0"
    assert plan.delete_trial
    assert plan.write_outcome is not None
    assert (plan.write_outcome.state, plan.write_outcome.reason) == ("rolled-back", "did-not-start")


def test_boot_cleans_up_after_every_interrupted_step() -> None:
    # Trial written, power cut before `current` was switched: the old release runs, trial goes.
    plan = plan_boot(current="1.0.0", committed="1.0.0", trial=TRIAL, outcome=None, max_trial_boots=3)
    assert plan.delete_trial
    assert plan.switch_current_to is None
    # Committed, power cut before the trial file went.
    plan = plan_boot(current="1.1.0", committed="1.1.0", trial=TRIAL, outcome=None, max_trial_boots=3)
    assert plan.delete_trial
    assert plan.switch_current_to is None
    # The health gate wrote its outcome, power cut before `current` went back.
    outcome = Outcome(
        campaign_id="camp-1", release="1.1.0", state="rolled-back", reason="health-check", detail="x"
    )
    plan = plan_boot(current="1.1.0", committed="1.0.0", trial=TRIAL, outcome=outcome, max_trial_boots=3)
    assert plan.switch_current_to == "1.0.0"
    assert plan.delete_trial
    # `current` names a release nobody put on trial: only `committed` is known good.
    plan = plan_boot(current="1.1.0", committed="1.0.0", trial=None, outcome=None, max_trial_boots=3)
    assert plan.switch_current_to == "1.0.0"
    # Nothing provisioned: run whatever there is.
    assert (
        plan_boot(current=None, committed=None, trial=None, outcome=None, max_trial_boots=3).switch_current_to
        is None
    )
