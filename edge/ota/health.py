"""The health gate a release on trial must pass before it is committed: the uplink connected,
the controller link up (when there is a controller), and the self-tests passed, all within
`ota.health_deadline_s`. The checks come from the agent (edge.ota.node wires them); the clock
is injected, so the deadline logic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # "uplink", "controller-link", "self-test mqtt", ...
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    detail: str  # what did not pass, in words (empty when passed)


def judge(checks: list[Check]) -> Verdict:
    failed = [c for c in checks if not c.ok]
    if not checks:
        return Verdict(False, "no check ran")
    if not failed:
        return Verdict(True, "")
    return Verdict(False, "; ".join(f"{c.name}: {c.detail or 'failed'}" for c in failed))


async def run_gate(
    checks: Callable[[float], Awaitable[list[Check]]],
    *,
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    interval_s: float = 0.5,
) -> Verdict:
    """Run `checks(seconds_left)` until they all pass or the deadline is past; the verdict of
    the last round says what did not pass."""
    end = clock() + deadline_s
    verdict = Verdict(False, "the deadline passed before any check ran")
    while True:
        left = end - clock()
        if left <= 0:
            return verdict
        try:
            async with asyncio.timeout(left):
                verdict = judge(await checks(left))
        except TimeoutError:
            return Verdict(
                False, f"{verdict.detail or 'checks'} (still running at the {deadline_s:g} s deadline)"
            )
        if verdict.passed:
            return verdict
        await asyncio.sleep(min(interval_s, max(0.0, end - clock())))
