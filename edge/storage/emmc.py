"""Pure reading of eMMC wear from the two sysfs attributes of the kernel's MMC core:
`/sys/block/mmcblkN/device/life_time` and `pre_eol_info` (eMMC 5.0 and later).

smartctl cannot talk to eMMC or SD cards, so for `mmcblk` devices these are the health source;
`edge.storage.probe` reads the files (None when absent) and hands the text here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge.storage.verdict import WEAR_WARNING_PCT, Finding, Health, decide

# JEDEC eMMC 5.0 DEVICE_LIFE_TIME_EST_TYP_A/B: 0x01 = 0-10% of rated life used ... 0x0A = 90-100%,
# 0x0B = beyond the estimated life; 0x00 = not defined; the rest reserved.
LIFE_TIME_EXCEEDED = 0x0B
# PRE_EOL_INFO: the state of the reserved (spare) blocks.
PRE_EOL_NORMAL = 0x01
PRE_EOL_WARNING = 0x02
PRE_EOL_URGENT = 0x03

# The kernel prints "0x%02x 0x%02x\n" and "0x%02x\n"; accept the prefix-less form too.
_HEX_BYTE = re.compile(r"(?:0[xX])?([0-9a-fA-F]{1,2})")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmmcWear:
    """The eMMC's own wear estimate and reserved-block state, and the verdict from them."""

    health: Health
    reasons: tuple[str, ...]
    life_time_a: int | None = None  # SLC area estimate, 0x01..0x0B
    life_time_b: int | None = None  # MLC area estimate, 0x01..0x0B
    pre_eol_info: int | None = None
    wear_pct: float | None = None  # top of the worst band: 0x01 -> 10, 0x0A and 0x0B -> 100


def life_time_band(value: int) -> tuple[int, int] | None:
    """The range of rated life used, in percent, that an estimate means; None if undefined."""
    if 0x01 <= value <= 0x0A:
        return (value - 1) * 10, value * 10
    if value == LIFE_TIME_EXCEEDED:
        return 100, 100
    return None


def parse_life_time(text: str) -> tuple[int, int] | None:
    """The type A and type B estimates of a `life_time` file, or None if it is not two hex bytes."""
    fields = text.split()
    if len(fields) != 2:
        return None
    values = [_hex_byte(field) for field in fields]
    if values[0] is None or values[1] is None:
        return None
    return values[0], values[1]


def parse_pre_eol_info(text: str) -> int | None:
    """The value of a `pre_eol_info` file, or None if it is not one hex byte."""
    fields = text.split()
    return _hex_byte(fields[0]) if len(fields) == 1 else None


def emmc_wear(life_time: str | None, pre_eol_info: str | None) -> EmmcWear:
    """Judge an eMMC from the text of its two sysfs files (None: the file does not exist).
    Never raises: unreadable contents give "unknown" with the file and what it held."""
    if life_time is None and pre_eol_info is None:
        return EmmcWear(
            health="unknown",
            reasons=("no life_time or pre_eol_info in sysfs: SD cards and eMMC before 5.0 report no wear",),
        )
    findings: list[Finding] = []
    life_a = life_b = pre_eol = None
    wear_pct: float | None = None

    if life_time is None:
        findings.append(Finding("unknown", "no life_time in sysfs"))
    else:
        estimates = parse_life_time(life_time)
        if estimates is None:
            findings.append(
                Finding(
                    "unknown", f"life_time holds {_shown(life_time)}: expected two hex bytes like '0x01 0x02'"
                )
            )
        else:
            life_a, life_b = estimates
            wear_pct, life_findings = _life_time_findings(life_a, life_b)
            findings.extend(life_findings)

    if pre_eol_info is None:
        findings.append(Finding("unknown", "no pre_eol_info in sysfs"))
    else:
        pre_eol = parse_pre_eol_info(pre_eol_info)
        if pre_eol is None:
            findings.append(
                Finding(
                    "unknown", f"pre_eol_info holds {_shown(pre_eol_info)}: expected one hex byte like '0x01'"
                )
            )
        else:
            findings.append(_pre_eol_finding(pre_eol))

    health, reasons = decide(findings)
    return EmmcWear(
        health=health,
        reasons=reasons,
        life_time_a=life_a,
        life_time_b=life_b,
        pre_eol_info=pre_eol,
        wear_pct=wear_pct,
    )


def _life_time_findings(life_a: int, life_b: int) -> tuple[float | None, list[Finding]]:
    findings: list[Finding] = []
    tops: list[int] = []
    for kind, value in (("A", life_a), ("B", life_b)):
        band = life_time_band(value)
        if band is None:
            # Type A is 0x00 on parts without an SLC area: only both undefined leaves us blind.
            meaning = "not defined" if value == 0 else "a reserved value"
            findings.append(Finding("ok", f"life time estimate type {kind} is 0x{value:02x}, {meaning}"))
            continue
        tops.append(band[1])
        if value == LIFE_TIME_EXCEEDED:
            findings.append(
                Finding("warning", f"life time estimate type {kind} is 0x0b: past its estimated life")
            )
        elif band[1] >= WEAR_WARNING_PCT:
            findings.append(
                Finding(
                    "warning",
                    f"life time estimate type {kind} is 0x{value:02x}: {band[0]}-{band[1]}% of life used",
                )
            )
    if not tops:
        findings.append(
            Finding("unknown", f"life_time holds no defined estimate (0x{life_a:02x} 0x{life_b:02x})")
        )
        return None, findings
    return float(max(tops)), findings


def _pre_eol_finding(value: int) -> Finding:
    if value == PRE_EOL_NORMAL:
        return Finding("ok", "pre-EOL normal: under 80% of reserved blocks consumed")
    if value == PRE_EOL_WARNING:
        return Finding("warning", "pre-EOL warning: 80% of reserved blocks consumed")
    if value == PRE_EOL_URGENT:
        return Finding("failing", "pre-EOL urgent: 90% of reserved blocks consumed")
    meaning = "not defined" if value == 0 else "a reserved value"
    return Finding("unknown", f"pre_eol_info is 0x{value:02x}, {meaning}")


def _hex_byte(text: str) -> int | None:
    match = _HEX_BYTE.fullmatch(text)
    return int(match.group(1), 16) if match else None


def _shown(text: str, limit: int = 40) -> str:
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
