"""The node's own health for telemetry and diagnostics: CPU temperature, Raspberry Pi
throttling, memory, free disk, uptime and clock sync. `parse` holds the pure parsers, `clock`
the kernel's clock state, `read` the shell that reads them all (`read_system`)."""

from .clock import KernelClock, read_kernel_clock
from .parse import MemoryUse, Throttling, Unreadable
from .read import SystemReadings, read_system, run_command

__all__ = [
    "KernelClock",
    "MemoryUse",
    "SystemReadings",
    "Throttling",
    "Unreadable",
    "read_kernel_clock",
    "read_system",
    "run_command",
]
