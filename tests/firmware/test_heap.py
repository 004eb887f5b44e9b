"""A compressed hour on a 64 KiB heap budget: the free heap must not shrink (scenarios/heap_hour.py)."""

from __future__ import annotations

import pytest

from .conftest import run_scenario

pytestmark = pytest.mark.micropython

BUDGET = 64 * 1024
# Compiling link.py and controller.py from source needs more than running them: the 64-bit
# unix port needs about -X heapsize=84K for the imports alone (and fragmentation makes that
# flaky). So the interpreter gets 128K and the scenario caps itself at BUDGET with a ballast
# once its modules are compiled; a board loads precompiled .mpy files instead.
HEAPSIZE = "128K"
TOLERANCE = 256  # bytes: below one payload; a leak of one object per minute would show


def test_an_hour_of_pole_life_fits_64k_and_the_heap_does_not_grow() -> None:
    lines = run_scenario("heap_hour.py", "3600", "10", str(BUDGET), heapsize=HEAPSIZE, timeout=60)
    (setup,) = [line for line in lines if "heap_total" in line]
    samples = {line["t"]: line["mem"] for line in lines if "mem" in line}
    (summary,) = [line["summary"] for line in lines if "summary" in line]

    assert setup["budget"] == BUDGET
    assert setup["ballast_pieces"] > 0  # the cap really applied
    assert sorted(samples) == [-1, 0, 600, 1200, 1800, 2400, 3000, 3600]
    start, warm, end = samples[0], samples[600], samples[3600]
    assert start > 8 * 1024  # room to spare for the churn of a tick
    # The first minutes size a few things for good (decoder error counts, queue list).
    assert start - warm <= 1024
    # After that, nothing accumulates: every ten-minute figure within the tolerance.
    steady = [samples[t] for t in (600, 1200, 1800, 2400, 3000, 3600)]
    assert max(steady) - min(steady) <= TOLERANCE
    assert end >= warm - TOLERANCE

    # And the hour itself went right: every press reached the edge, nothing raised.
    assert summary["ticks"] == 360_000
    assert summary["presses"] == summary["presses_made"] == summary["presses_heard"] == 14
    assert summary["alarms"] == 13  # three presses in the minute without a link: two alarms
    assert summary["hello"] == 1
    assert summary["exceptions"] == 0
    assert summary["dropped_events"] == 0
    assert summary["link_downs"] == 1
    assert summary["events"] == 20
    assert (summary["commands"], summary["unknown_commands"], summary["bad_commands"]) == (30, 5, 5)
