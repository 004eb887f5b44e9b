"""The health vocabulary shared by the storage readers: one finding per thing seen, and how a
list of findings becomes one verdict. `smart`, `emmc`, `mounts` and `report` all speak it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Health = Literal["ok", "warning", "failing", "unknown"]

# "unknown" outranks "ok" (we could not confirm health) but not a problem we did see: a drive
# whose SMART data is unreadable but whose filesystem went read-only is failing, not unknown.
_RANK: dict[Health, int] = {"ok": 0, "unknown": 1, "warning": 2, "failing": 3}

# Wear at or above this share of the rated life is worth a technician's visit. Wear alone never
# makes a device "failing": exhausted spare blocks (NVMe spare, eMMC pre-EOL) do.
WEAR_WARNING_PCT = 90.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing seen on a device and what it says about health; "ok" findings are notes."""

    health: Health
    reason: str


def worst(healths: Iterable[Health]) -> Health:
    """The most severe of `healths`; "ok" for none."""
    result: Health = "ok"
    for health in healths:
        if _RANK[health] > _RANK[result]:
            result = health
    return result


def decide(findings: Iterable[Finding]) -> tuple[Health, tuple[str, ...]]:
    """The verdict of `findings` and their reasons, most severe first (stable within a level)."""
    ordered = sorted(findings, key=lambda finding: -_RANK[finding.health])
    return worst(finding.health for finding in ordered), tuple(finding.reason for finding in ordered)
