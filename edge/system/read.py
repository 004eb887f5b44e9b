"""The I/O shell of edge.system: reads the node's files and commands, hands the text to the pure
parsers (edge.system.parse) and gathers one SystemReadings for telemetry (protocols.messages.
Readings) and the diagnostics page. Nothing here raises on an unreadable source: the value is
None and the reason is listed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec

from protocols.messages import Readings

from .clock import KernelClock, read_kernel_clock
from .parse import (
    MemoryUse,
    Throttling,
    Unreadable,
    parse_meminfo,
    parse_thermal_millidegrees,
    parse_throttled_sysfs,
    parse_timedatectl_synced,
    parse_uptime,
    parse_vcgencmd_throttled,
)

T = TypeVar("T")

# Relative to `root`, so a test points them at a fixture tree.
THERMAL_ZONE = Path("sys/class/thermal/thermal_zone0/temp")
THROTTLED_SYSFS = Path("sys/devices/platform/soc/soc:firmware/get_throttled")
MEMINFO = Path("proc/meminfo")
UPTIME = Path("proc/uptime")

VCGENCMD_THROTTLED = ("vcgencmd", "get_throttled")
TIMEDATECTL_SYNCED = ("timedatectl", "show", "-p", "NTPSynchronized", "--value")

# Runs a command and returns its standard output; raises OSError (not installed) or
# subprocess.SubprocessError (failed, timed out).
Run = Callable[[Sequence[str]], str]


def run_command(argv: Sequence[str], *, timeout: float = 2.0) -> str:
    # A bounded wait: a wedged firmware mailbox must not stall the telemetry loop.
    completed = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=True)
    return completed.stdout


@dataclass(frozen=True, slots=True)
class SystemReadings:
    """One sample of the node's own health; None where the source was unreadable, and why in
    `reasons` (one line each, naming the source)."""

    uptime_s: float | None = None
    cpu_temp_c: float | None = None
    throttling: Throttling | None = None
    memory: MemoryUse | None = None
    disk_free_bytes: int | None = None
    clock_synced: bool | None = None
    reasons: tuple[str, ...] = field(default=())

    @property
    def throttled(self) -> bool | None:
        return None if self.throttling is None else self.throttling.active

    @property
    def mem_used_pct(self) -> float | None:
        return None if self.memory is None else self.memory.used_pct

    def fill(self, readings: Readings | None = None) -> Readings:
        """`readings` (or empty Readings) with the system's fields set from this sample; an
        unreadable value is set absent rather than left as it was."""
        return msgspec.structs.replace(
            readings if readings is not None else Readings(),
            uptime_s=None if self.uptime_s is None else int(self.uptime_s),
            cpu_temp_c=None if self.cpu_temp_c is None else round(self.cpu_temp_c, 1),
            throttled=self.throttled,
            mem_used_pct=None if self.mem_used_pct is None else round(self.mem_used_pct, 1),
            disk_free_bytes=self.disk_free_bytes,
            clock_synced=self.clock_synced,
        )


def read_system(
    *,
    root: Path = Path("/"),
    data_dir: Path,
    run: Run = run_command,
    kernel_clock: Callable[[], KernelClock] | None = read_kernel_clock,
) -> SystemReadings:
    """Sample everything once. `root` prefixes the /proc and /sys paths; `data_dir` is where
    the agent keeps its outbox (its free space is what runs out). `kernel_clock` None skips the
    kernel's clock state and asks timedatectl straight away."""
    reasons: list[str] = []
    return SystemReadings(
        uptime_s=_from_file(root / UPTIME, "uptime_s", parse_uptime, reasons),
        cpu_temp_c=_from_file(root / THERMAL_ZONE, "cpu_temp_c", parse_thermal_millidegrees, reasons),
        throttling=_read_throttling(root, run, reasons),
        memory=_from_file(root / MEMINFO, "mem_used_pct", parse_meminfo, reasons),
        disk_free_bytes=_read_disk_free(data_dir, reasons),
        clock_synced=_read_clock_synced(run, kernel_clock, reasons),
        reasons=tuple(reasons),
    )


def _from_file(path: Path, name: str, parse: Callable[[str], T | Unreadable], reasons: list[str]) -> T | None:
    try:
        # Kernel files are ASCII; anything else is garbage for the parser to refuse, not a crash.
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        reasons.append(f"{name}: {path}: {exc.strerror or exc}")
        return None
    value = parse(text)
    if isinstance(value, Unreadable):
        reasons.append(f"{name}: {path}: {value.reason}")
        return None
    return value


def _read_throttling(root: Path, run: Run, reasons: list[str]) -> Throttling | None:
    # The sysfs file first: no process to start, and vcgencmd is absent from minimal images.
    path = root / THROTTLED_SYSFS
    tried: list[str] = []
    try:
        parsed = parse_throttled_sysfs(path.read_text(encoding="ascii", errors="replace"))
    except OSError as exc:
        tried.append(f"{path}: {exc.strerror or exc}")
    else:
        if isinstance(parsed, Throttling):
            return parsed
        tried.append(f"{path}: {parsed.reason}")
    throttling = _from_command(run, VCGENCMD_THROTTLED, parse_vcgencmd_throttled, tried)
    if throttling is None:
        reasons.append("throttled: " + "; ".join(tried))
    return throttling


def _read_disk_free(data_dir: Path, reasons: list[str]) -> int | None:
    try:
        stats = os.statvfs(data_dir)
    except OSError as exc:
        reasons.append(f"disk_free_bytes: {data_dir}: {exc.strerror or exc}")
        return None
    # f_bavail, not f_bfree: the blocks reserved for root are not the agent's to fill.
    return stats.f_bavail * stats.f_frsize


def _read_clock_synced(
    run: Run, kernel_clock: Callable[[], KernelClock] | None, reasons: list[str]
) -> bool | None:
    tried: list[str] = []
    if kernel_clock is not None:
        try:
            return kernel_clock().synced
        except OSError as exc:
            tried.append(f"adjtimex: {exc.strerror or exc}")
    synced = _from_command(run, TIMEDATECTL_SYNCED, parse_timedatectl_synced, tried)
    if synced is None:
        reasons.append("clock_synced: " + "; ".join(tried))
    return synced


def _from_command(
    run: Run, argv: Sequence[str], parse: Callable[[str], T | Unreadable], tried: list[str]
) -> T | None:
    """What `argv` prints, parsed; None with the reason added to `tried` when it says nothing usable."""
    command = " ".join(argv)
    try:
        parsed = parse(run(argv))
    except (OSError, subprocess.SubprocessError) as exc:
        tried.append(f"{command}: {_failure(exc)}")
        return None
    if isinstance(parsed, Unreadable):
        tried.append(f"{command}: {parsed.reason}")
        return None
    return parsed


def _failure(exc: OSError | subprocess.SubprocessError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not installed"
    if isinstance(exc, subprocess.CalledProcessError):
        # systemd tools explain themselves on stderr ("System has not been booted with systemd").
        stderr = exc.stderr if isinstance(exc.stderr, str) else ""
        first = stderr.strip().splitlines()[0] if stderr.strip() else ""
        return f"exit status {exc.returncode}" + (f": {first[:120]}" if first else "")
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"no answer within {exc.timeout:g} s"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
