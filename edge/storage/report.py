"""One verdict per storage device from everything read about it: the SMART or eMMC reading, its
mounts, the kernel's error counters and the data directory's free space. Pure: the values come
from `edge.storage.probe`. `StorageReport.telemetry()` is the slice the fleet receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.storage.emmc import EmmcWear
from edge.storage.mounts import Mount
from edge.storage.smart import SmartReading
from edge.storage.verdict import Finding, Health, decide
from protocols.messages import StorageHealth


@dataclass(frozen=True, slots=True)
class SpaceReading:
    """statvfs() of the data directory: bytes an unprivileged writer may still use, and the size."""

    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IoErrorCounts:
    """Error counters the kernel keeps for a device, where it keeps any (absent on MMC, NVMe)."""

    scsi_ioerr_cnt: int | None = None  # /sys/block/sdX/device/ioerr_cnt
    ext4_errors: dict[str, int] = field(default_factory=dict)  # partition -> /sys/fs/ext4/*/errors_count

    @property
    def total(self) -> int | None:
        counts = [*self.ext4_errors.values()] + (
            [self.scsi_ioerr_cnt] if self.scsi_ioerr_cnt is not None else []
        )
        return sum(counts) if counts else None


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageReport:
    """Everything the agent knows about one device's health: the diagnostics page shows all of
    it, telemetry carries `telemetry()`."""

    device: str
    health: Health
    reasons: tuple[str, ...]
    wear_pct: float | None = None
    free_bytes: int | None = None
    read_only: bool = False
    temperature_c: int | None = None
    power_on_hours: int | None = None
    io_errors: IoErrorCounts = field(default_factory=IoErrorCounts)
    smart: SmartReading | None = None
    emmc: EmmcWear | None = None
    mounts: tuple[Mount, ...] = ()
    data_mount: Mount | None = None

    @property
    def smart_exit_meanings(self) -> tuple[str, ...]:
        """smartctl's exit-status bits, decoded ("bit 3: SMART status check returned ...")."""
        return self.smart.exit_meanings if self.smart is not None else ()

    def telemetry(self) -> StorageHealth:
        return StorageHealth(
            device=self.device,
            health=self.health,
            free_bytes=self.free_bytes,
            wear_pct=self.wear_pct,
            read_only=self.read_only,
        )


def assess_device(
    device: str,
    *,
    smart: SmartReading | None = None,
    emmc: EmmcWear | None = None,
    mounts: tuple[Mount, ...] = (),
    data_mount: Mount | None = None,
    space: SpaceReading | None = None,
    io_errors: IoErrorCounts | None = None,
    min_free_ratio: float = 0.05,
) -> StorageReport:
    """Join the readings of one device into its report.

    `mounts` are the device's own mounts; `data_mount` and `space` are given only when the data
    directory lives on this device. A read-only filesystem is a failure only where the kernel
    turned it read-only after errors, or where the data directory lives: a read-only /boot
    may be on purpose."""
    counts = io_errors if io_errors is not None else IoErrorCounts()
    findings: list[Finding] = []
    if smart is None and emmc is None:
        findings.append(Finding("unknown", "no health source for this device (neither SMART nor eMMC wear)"))
    if smart is not None:
        findings.extend(_prefixed("SMART", smart.health, smart.reasons))
    if emmc is not None:
        findings.extend(_prefixed("eMMC", emmc.health, emmc.reasons))

    read_only = False
    for mount in mounts:
        if mount.remounted_after_errors:
            read_only = True
            findings.append(
                Finding(
                    "failing",
                    f"{mount.source} on {mount.mount_point} was made read-only after errors (emergency_ro)",
                )
            )
        elif mount == data_mount and mount.read_only:
            read_only = True
            findings.append(
                Finding("failing", f"{mount.source} on {mount.mount_point}, the data directory, is read-only")
            )

    if counts.scsi_ioerr_cnt:
        findings.append(
            Finding("warning", f"the kernel counted {counts.scsi_ioerr_cnt} I/O errors (ioerr_cnt)")
        )
    for partition, errors in sorted(counts.ext4_errors.items()):
        if errors:
            findings.append(
                Finding("warning", f"ext4 on {partition} recorded {errors} errors since its last fsck")
            )

    if space is not None and space.total_bytes > 0 and space.free_bytes < min_free_ratio * space.total_bytes:
        share = 100 * space.free_bytes / space.total_bytes
        findings.append(
            Finding("warning", f"the data filesystem has {share:.1f}% free ({space.free_bytes} bytes)")
        )

    health, reasons = decide(findings)
    wear = smart.wear_pct if smart is not None else None
    if wear is None and emmc is not None:
        wear = emmc.wear_pct
    return StorageReport(
        device=device,
        health=health,
        reasons=reasons,
        wear_pct=wear,
        free_bytes=space.free_bytes if space is not None else None,
        read_only=read_only,
        temperature_c=smart.temperature_c if smart is not None else None,
        power_on_hours=smart.power_on_hours if smart is not None else None,
        io_errors=counts,
        smart=smart,
        emmc=emmc,
        mounts=mounts,
        data_mount=data_mount,
    )


def _prefixed(source: str, health: Health, reasons: tuple[str, ...]) -> list[Finding]:
    # The source's own verdict carries its severity; its first reason is the one that set it.
    if not reasons:
        return [] if health == "ok" else [Finding(health, f"{source}: {health}")]
    return [
        Finding(health if index == 0 else "ok", f"{source}: {reason}") for index, reason in enumerate(reasons)
    ]
