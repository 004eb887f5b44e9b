"""Pure reading of the mount table (`/proc/self/mounts`) and the kernel's error counters:
which filesystems of a device are read-only, and how many I/O errors the kernel has counted.

`edge.storage.probe` reads the files; `edge.storage.report` turns these readings into findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

# The kernel escapes these in /proc/*/mounts fields as a backslash and three octal digits.
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_DIGITS = {10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of the mount table."""

    source: str
    mount_point: str
    fs_type: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options or self.remounted_after_errors

    @property
    def remounted_after_errors(self) -> bool:
        # Recent kernels (seen on 6.18) keep "rw" for an ext4 that errors=remount-ro turned
        # read-only and add "emergency_ro"; older ones show "ro". statvfs() does not report it.
        return "emergency_ro" in self.options


def parse_mounts(text: str) -> tuple[Mount, ...]:
    """The entries of a mount table; lines with fewer than four fields are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        source, mount_point, fs_type, options = (_unescape(field) for field in fields[:4])
        mounts.append(Mount(source, mount_point, fs_type, tuple(options.split(","))))
    return tuple(mounts)


def block_name(device: str) -> str:
    """The kernel's name of a device: "/dev/mmcblk0" -> "mmcblk0"."""
    return PurePosixPath(device).name


def is_part_of(name: str, disk: str) -> bool:
    """Whether block device `name` is `disk` or one of its partitions ("sda1", "mmcblk0p2"); an
    NVMe controller ("nvme0", what smartctl is given) owns its namespaces ("nvme0n1p1")."""
    if re.fullmatch(r"nvme\d+", disk):
        return re.fullmatch(re.escape(disk) + r"n\d+(p\d+)?", name) is not None
    suffix = r"p\d+" if disk[-1:].isdigit() else r"\d+"
    return re.fullmatch(re.escape(disk) + f"({suffix})?", name) is not None


def mounts_of(mounts: Iterable[Mount], device: str) -> tuple[Mount, ...]:
    """The mounts whose source is `device` or one of its partitions, by /dev name."""
    disk = block_name(device)
    return tuple(
        mount
        for mount in mounts
        if mount.source.startswith("/dev/") and is_part_of(block_name(mount.source), disk)
    )


def mount_holding(mounts: Iterable[Mount], path: str) -> Mount | None:
    """The mount a path lives on: the longest mount point above it, the last one mounted if
    several share it (a later mount hides an earlier one)."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/")
        holds = path == mount.mount_point or path.startswith(point + "/")
        if holds and (best is None or len(mount.mount_point) >= len(best.mount_point)):
            best = mount
    return best


def disk_from_sysfs_link(target: str) -> str | None:
    """The disk named by a `/sys/dev/block/MAJ:MIN` link target: ".../block/vda" -> "vda",
    ".../block/mmcblk0/mmcblk0p2" -> "mmcblk0". None if the target names no block device."""
    parts = PurePosixPath(target).parts
    if "block" not in parts:
        return None
    after = parts[len(parts) - 1 - parts[::-1].index("block") + 1 :]
    return after[0] if after else None


def parse_counter(text: str, *, base: Literal[10, 16]) -> int | None:
    """A counter from a sysfs file: SCSI `ioerr_cnt` is "0x%llx" (base 16), ext4 `errors_count`
    is decimal (base 10). None for anything else."""
    digits = text.strip()
    if base == 16:
        digits = digits.removeprefix("0x")
    # int() would also take "+1", "1_000" and non-ASCII digits, none of which the kernel writes.
    if not digits or not set(digits) <= _DIGITS[base]:
        return None
    return int(digits, base)


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)
