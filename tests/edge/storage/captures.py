"""Paths of the captured fixtures (see fixtures/README.md for where each came from)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SMARTCTL = FIXTURES / "smartctl"
MOUNTS = FIXTURES / "mounts"
SYSFS = FIXTURES / "sysfs"


def smartctl_capture(name: str) -> tuple[bytes, int]:
    """A captured `smartctl -j` output and the exit status stored beside it."""
    return (SMARTCTL / f"{name}.json").read_bytes(), int((SMARTCTL / f"{name}.exit").read_text())
