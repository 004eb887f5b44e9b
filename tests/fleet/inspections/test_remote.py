"""A node's self-test result as a remote inspection: pass, partial, fail, or not an inspection
when no test ran (the table in fleet/inspections/remote.py)."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.inspections.remote import judge_self_test
from protocols import messages as m


def result(status: str, output: dict[str, Any], detail: str = "") -> m.CommandResult:
    return m.CommandResult(
        ts=1_700_000_000_000, seq=3, command_id="st-1", status=status, output=output, detail=detail
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "output", "expected", "findings"),
    [
        ("ok", {"ok": True, "loop": "normal", "raw": 2048, "c": 31.5, "v": 12.2, "stuck": 0}, "pass", ()),
        ("ok", {"ok": True}, "pass", ()),  # a GPIO pole: no loop reading
        ("ok", {"ok": True, "loop": "open"}, "partial", ("bell circuit loop is open",)),
        ("ok", {"ok": True, "loop": "normal", "stuck": 1}, "partial", ("bell button stuck",)),
        ("ok", {"ok": True, "err": "adc"}, "partial", ("controller error: adc",)),
        ("ok", {"ok": False, "loop": "short"}, "fail", ("the controller reported its self-test failed",)),
        ("ok", {}, "fail", ("the controller reported its self-test failed",)),
    ],
)
def test_a_finished_self_test(
    status: str, output: dict[str, Any], expected: str, findings: tuple[str, ...]
) -> None:
    verdict = judge_self_test(result(status, output))
    assert verdict is not None
    assert (verdict.result, verdict.findings) == (expected, findings)
    assert verdict.details["output"] == output


def test_a_self_test_that_failed_on_the_node_is_a_failed_inspection() -> None:
    verdict = judge_self_test(result("failed", {}, detail="controller did not answer"))
    assert verdict is not None
    assert verdict.result == "fail"
    assert verdict.findings == ("the self-test did not finish: controller did not answer",)
    assert verdict.details["detail"] == "controller did not answer"


@pytest.mark.parametrize("status", ["rejected", "expired", "unknown-command"])
def test_no_test_ran_no_inspection(status: str) -> None:
    assert judge_self_test(result(status, {})) is None
