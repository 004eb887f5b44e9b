"""The I/O shell of the storage health source: runs smartctl, reads sysfs and the mount table,
takes statvfs() of the data directory, and hands the values to the pure readers (`smart`,
`emmc`, `mounts`, `report`). The only module of edge/storage that touches the system.

Device problems never raise: a missing smartctl, a hung drive or an unreadable sysfs file
becomes a reason in the report and the other devices are still probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.storage.emmc import emmc_wear
from edge.storage.mounts import (
    Mount,
    block_name,
    disk_from_sysfs_link,
    is_part_of,
    mount_holding,
    mounts_of,
    parse_counter,
    parse_mounts,
)
from edge.storage.report import IoErrorCounts, SpaceReading, StorageReport, assess_device
from edge.storage.selftest import SelfTestStart, parse_self_test_start
from edge.storage.smart import SmartReading, parse_smartctl, smartctl_not_run

log = logging.getLogger(__name__)

# After a kill, how long to wait for smartctl to go: a process stuck in the kernel on a dying
# USB drive may not die at all, and the agent must not wait on it.
KILL_GRACE_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConfig:
    """Where the node's storage is and how to look at it. Paths are injectable for tests."""

    devices: tuple[str, ...]  # "/dev/sda", "/dev/nvme0" (the controller), "/dev/mmcblk0"
    data_dir: Path  # where the agent writes: its filesystem's space and read-only state count
    sysfs: Path = Path("/sys")
    mounts_file: Path = Path("/proc/self/mounts")
    smartctl: str = "smartctl"
    timeout_s: float = 60.0  # per smartctl run; -a on a slow USB bridge takes seconds
    min_free_ratio: float = 0.05

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError("devices is empty: list at least one, e.g. '/dev/mmcblk0'")
        for device in self.devices:
            if not device.startswith("/dev/") or device == "/dev/":
                raise ValueError(f"device {device!r} is not allowed: use a /dev path such as '/dev/sda'")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s {self.timeout_s} is not allowed: use a positive number of seconds")
        if not 0 <= self.min_free_ratio < 1:
            raise ValueError(f"min_free_ratio {self.min_free_ratio} is not allowed: use 0 or more, below 1")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command printed and how it ended; `failure` says why it did not run to the end."""

    output: bytes
    exit_status: int | None
    failure: str | None = None
    not_found: bool = False  # the program is not installed (or not on PATH)


async def run_command(argv: Sequence[str], *, timeout_s: float) -> CommandResult:
    """Run `argv` without a shell, stdout captured, killed after `timeout_s`. Never raises OSError."""
    program = argv[0]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return CommandResult(b"", None, f"{program} not found", not_found=True)
    except PermissionError:
        return CommandResult(b"", None, f"{program} cannot be run: permission denied")
    except OSError as exc:
        return CommandResult(b"", None, f"{program} cannot be run: {exc}")
    try:
        async with asyncio.timeout(timeout_s):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_GRACE_S):
                await process.wait()
        return CommandResult(b"", None, f"{program} did not finish within {timeout_s:g} s and was killed")
    if not stdout.strip() and stderr.strip():
        # smartctl -j reports its errors inside the JSON; stderr alone means something else spoke.
        detail = stderr.decode("utf-8", errors="replace").strip().splitlines()[0][:200]
        return CommandResult(stdout, process.returncode, f"{program} printed no output, only: {detail}")
    return CommandResult(stdout, process.returncode)


async def read_smart(device: str, *, smartctl: str = "smartctl", timeout_s: float = 60.0) -> SmartReading:
    """`smartctl -j -a DEVICE`, read into a SmartReading (health "unknown" when it cannot run)."""
    result = await run_command([smartctl, "-j", "-a", device], timeout_s=timeout_s)
    if result.exit_status is None or (result.failure is not None and not result.output):
        return smartctl_not_run(device, _why_not_run(result))
    return parse_smartctl(result.output, result.exit_status, device=device)


async def start_short_self_test(
    device: str, *, smartctl: str = "smartctl", timeout_s: float = 60.0
) -> SelfTestStart:
    """Start a SMART short self-test (`smartctl -j -t short DEVICE`) and report what smartctl
    said. The test runs inside the drive; read its result later with `probe_storage`."""
    result = await run_command([smartctl, "-j", "-t", "short", device], timeout_s=timeout_s)
    if result.exit_status is None:
        return SelfTestStart(device=device, started=False, summary=_why_not_run(result))
    return parse_self_test_start(result.output, result.exit_status, device=device)


def _why_not_run(result: CommandResult) -> str:
    reason = result.failure or "smartctl did not run"
    return f"{reason} (install smartmontools)" if result.not_found else reason


async def probe_storage(config: StorageConfig) -> list[StorageReport]:
    """One report per configured device, probed concurrently, in the configured order."""
    mounts = _read_mounts(config.mounts_file)
    data = await _locate_data(config, mounts)
    return list(
        await asyncio.gather(*(_probe_device(device, config, mounts, data) for device in config.devices))
    )


@dataclass(frozen=True, slots=True)
class _DataDir:
    """Where the data directory lives: its block device (a disk or partition name), the mount
    it is on, and the space left there."""

    block: str | None
    mount: Mount | None
    space: SpaceReading | None


async def _locate_data(config: StorageConfig, mounts: tuple[Mount, ...]) -> _DataDir:
    mount = mount_holding(mounts, str(config.data_dir))
    try:
        # stat and statvfs can block on a filesystem whose device stopped answering: off the
        # event loop, and given up on after the timeout (the thread finishes on its own).
        async with asyncio.timeout(config.timeout_s):
            block, space = await asyncio.to_thread(_stat_data_dir, config.data_dir, config.sysfs)
    except (OSError, TimeoutError) as exc:
        log.warning("cannot stat the data directory %s: %s", config.data_dir, exc)
        block, space = None, None
    if block is None and mount is not None and mount.source.startswith("/dev/"):
        # No sysfs link for its device number: fall back on the name in the mount table (which
        # is "/dev/root" on some Raspberry Pi OS releases, matching no device).
        block = block_name(mount.source)
    return _DataDir(block, mount, space)


def _stat_data_dir(data_dir: Path, sysfs: Path) -> tuple[str | None, SpaceReading]:
    stats = os.statvfs(data_dir)
    space = SpaceReading(
        free_bytes=stats.f_bavail * stats.f_frsize, total_bytes=stats.f_blocks * stats.f_frsize
    )
    # The kernel's own answer to "which disk holds this file": /sys/dev/block/MAJ:MIN.
    st_dev = os.stat(data_dir).st_dev
    try:
        target = os.readlink(sysfs / "dev" / "block" / f"{os.major(st_dev)}:{os.minor(st_dev)}")
    except OSError:
        return None, space
    return disk_from_sysfs_link(target), space


async def _probe_device(
    device: str, config: StorageConfig, mounts: tuple[Mount, ...], data: _DataDir
) -> StorageReport:
    name = block_name(device)
    own_mounts = mounts_of(mounts, device)
    holds_data = data.block is not None and is_part_of(data.block, name)
    if holds_data and data.mount is not None and data.mount not in own_mounts:
        own_mounts = (*own_mounts, data.mount)  # e.g. "/dev/root", found through sysfs
    smart = None
    emmc = None
    if name.startswith("mmcblk"):
        # smartctl cannot address MMC ("Unable to detect device type"); the card reports its
        # own wear through the kernel's MMC core instead.
        device_dir = config.sysfs / "block" / name / "device"
        emmc = emmc_wear(_read_text(device_dir / "life_time"), _read_text(device_dir / "pre_eol_info"))
    else:
        smart = await read_smart(device, smartctl=config.smartctl, timeout_s=config.timeout_s)
    return assess_device(
        device,
        smart=smart,
        emmc=emmc,
        mounts=own_mounts,
        data_mount=data.mount if holds_data else None,
        space=data.space if holds_data else None,
        io_errors=_io_errors(config.sysfs, name, own_mounts),
        min_free_ratio=config.min_free_ratio,
    )


def _io_errors(sysfs: Path, name: str, own_mounts: tuple[Mount, ...]) -> IoErrorCounts:
    scsi_text = _read_text(sysfs / "block" / name / "device" / "ioerr_cnt")
    ext4_errors: dict[str, int] = {}
    for mount in own_mounts:
        if mount.fs_type != "ext4":
            continue
        partition = block_name(mount.source)
        text = _read_text(sysfs / "fs" / "ext4" / partition / "errors_count")
        count = parse_counter(text, base=10) if text is not None else None
        if count is not None:
            ext4_errors[partition] = count
    return IoErrorCounts(
        scsi_ioerr_cnt=parse_counter(scsi_text, base=16) if scsi_text is not None else None,
        ext4_errors=ext4_errors,
    )


def _read_mounts(path: Path) -> tuple[Mount, ...]:
    text = _read_text(path)
    if text is None:
        log.warning("cannot read the mount table %s: read-only remounts will go unseen", path)
        return ()
    return parse_mounts(text)


def _read_text(path: Path) -> str | None:
    """A small sysfs/procfs file, or None when it is absent or unreadable."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
