"""The health gate's deadline, on an injected clock: passes as soon as every check does, and
when the deadline passes says what did not."""

from __future__ import annotations

import asyncio

from edge.ota.health import Check, judge, run_gate


def test_judge_names_what_failed() -> None:
    assert judge([Check("uplink", True)]).passed
    verdict = judge([Check("uplink", False, "not connected"), Check("self-test mqtt", False)])
    assert not verdict.passed
    assert verdict.detail == "uplink: not connected; self-test mqtt: failed"
    assert not judge([]).passed


def test_the_gate_passes_once_the_checks_do() -> None:
    now = [0.0]
    rounds = [0]

    async def checks(left: float) -> list[Check]:
        rounds[0] += 1
        now[0] += 1.0
        return [Check("uplink", rounds[0] >= 3, "not connected")]

    verdict = asyncio.run(run_gate(checks, deadline_s=10, clock=lambda: now[0], interval_s=0))
    assert verdict.passed
    assert rounds[0] == 3


def test_the_gate_fails_at_the_deadline_with_the_last_reason() -> None:
    now = [0.0]

    async def checks(left: float) -> list[Check]:
        now[0] += 4.0
        return [Check("uplink", True), Check("controller-link", False, "controller not heard")]

    verdict = asyncio.run(run_gate(checks, deadline_s=10, clock=lambda: now[0], interval_s=0))
    assert not verdict.passed
    assert verdict.detail == "controller-link: controller not heard"


def test_a_check_still_running_at_the_deadline_fails() -> None:
    async def checks(left: float) -> list[Check]:
        await asyncio.sleep(3600)
        return []

    verdict = asyncio.run(run_gate(checks, deadline_s=0.05))
    assert not verdict.passed
    assert "deadline" in verdict.detail
