"""Storage health of the edge node: SMART through `smartctl -j`, eMMC wear from sysfs, read-only
remounts, free space and kernel I/O error counts, one `StorageReport` per device.

`smart`, `emmc`, `mounts`, `selftest` and `report` are pure readers fed with text and numbers;
`probe` is the shell that runs smartctl and reads the files. Telemetry takes
`StorageReport.telemetry()` (a `protocols.messages.StorageHealth`); diagnostics shows the
whole report and starts self-tests with `start_short_self_test`.
"""

from edge.storage.emmc import EmmcWear, emmc_wear
from edge.storage.mounts import Mount, parse_mounts
from edge.storage.probe import StorageConfig, probe_storage, read_smart, start_short_self_test
from edge.storage.report import IoErrorCounts, SpaceReading, StorageReport, assess_device
from edge.storage.selftest import SelfTestStart, parse_self_test_start
from edge.storage.smart import ExitBit, SmartReading, decode_exit_status, parse_smartctl
from edge.storage.verdict import Health

__all__ = [
    "EmmcWear",
    "ExitBit",
    "Health",
    "IoErrorCounts",
    "Mount",
    "SelfTestStart",
    "SmartReading",
    "SpaceReading",
    "StorageConfig",
    "StorageReport",
    "assess_device",
    "decode_exit_status",
    "emmc_wear",
    "parse_mounts",
    "parse_self_test_start",
    "parse_smartctl",
    "probe_storage",
    "read_smart",
    "start_short_self_test",
]
