"""What a node's "self-test" command result says as a remote inspection. Pure: the result in,
a verdict out; fleet.inspections.service stores it.

The node (edge.agent, `_cmd_self_test`) answers with `output` = the pole controller's
self-test: `ok`, the bell circuit's `loop` ("normal", "open", "short"), `stuck` (1: the bell
button is stuck), `raw`, `c`, `v` and `err` when it had one.

| command status | output | result |
|---|---|---|
| ok | ok true, loop normal (or absent), not stuck, no err | pass |
| ok | ok true but loop not normal, stuck, or err | partial |
| ok | ok false (or missing) | fail |
| failed | (the test could not finish on the node) | fail |
| rejected, expired, unknown-command | (no test ran) | not an inspection |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fleet.inspections.schedule import InspectionResult
from protocols import messages as m

NOT_RUN: Final = frozenset({"rejected", "expired", "unknown-command"})


@dataclass(frozen=True, slots=True)
class SelfTestVerdict:
    result: InspectionResult
    findings: tuple[str, ...]  # why it is not a pass, in a technician's words
    details: dict[str, Any]


def judge_self_test(result: m.CommandResult) -> SelfTestVerdict | None:
    """The remote inspection `result` stands for, or None when no test ran."""
    if result.status in NOT_RUN:
        return None
    details: dict[str, Any] = {"status": result.status, "output": dict(result.output)}
    if result.detail:
        details["detail"] = result.detail
    if result.status != "ok":
        return SelfTestVerdict(
            "fail", (f"the self-test did not finish: {result.detail or result.status}",), details
        )
    output = result.output
    if output.get("ok") is not True:
        return SelfTestVerdict("fail", ("the controller reported its self-test failed",), details)
    findings = []
    loop = output.get("loop")
    if loop is not None and loop != "normal":
        findings.append(f"bell circuit loop is {loop}")
    if output.get("stuck") in (1, True):
        findings.append("bell button stuck")
    if output.get("err"):
        findings.append(f"controller error: {output['err']}")
    return SelfTestVerdict("partial" if findings else "pass", tuple(findings), details)
