"""A compressed hour on a 64 KiB heap budget: the free heap must not shrink (scenarios/heap_hour.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIRMWARE, PROTOCOLS, run_scenario

pytestmark = pytest.mark.micropython

# Compiling link.py and controller.py from source needs more heap than running them (about
# 84K on the 64-bit unix port), so, as a board would, the run loads them precompiled to .mpy
# by mpy-cross from the very same source files, and the interpreter gets 64 KiB in all.
HEAPSIZE = "64K"
TOLERANCE = 256  # bytes: below one payload; a leak of one object per minute would show
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


def precompile(into: Path) -> Path:
    """firmware/*.py and protocols/link.py as .mpy files in one directory (main.py stays out)."""
    sources = [p for p in FIRMWARE.glob("*.py") if p.name != "main.py"] + [PROTOCOLS / "link.py"]
    for source in sources:
        shutil.copy(source, into / source.name)
        subprocess.run(
            [str(MPY_CROSS), "-march=x64", source.name], cwd=into, check=True, capture_output=True, timeout=60
        )
        (into / source.name).unlink()  # only the .mpy may be imported
    return into


def test_an_hour_of_pole_life_fits_64k_and_the_heap_does_not_grow(tmp_path: Path) -> None:
    compiled = precompile(tmp_path)
    lines = run_scenario(
        "heap_hour.py",
        "3600",
        "10",
        "0",
        heapsize=HEAPSIZE,
        timeout=60,
        firmware=compiled,
        protocols=compiled,
    )
    samples = {line["t"]: line["mem"] for line in lines if "mem" in line}
    (summary,) = [line["summary"] for line in lines if "summary" in line]

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
