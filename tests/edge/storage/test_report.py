"""One verdict per device from all its readings: SMART or eMMC, read-only mounts, kernel error
counters and free space, and the telemetry slice that goes to the fleet."""

from __future__ import annotations

import msgspec

from edge.storage.emmc import emmc_wear
from edge.storage.mounts import mount_holding, mounts_of, parse_mounts
from edge.storage.report import IoErrorCounts, SpaceReading, assess_device
from edge.storage.smart import SmartReading, parse_smartctl
from protocols.messages import StorageHealth
from tests.edge.storage.captures import MOUNTS, smartctl_capture

GIB = 1024**3


def smart(name: str, device: str) -> SmartReading:
    output, status = smartctl_capture(name)
    return parse_smartctl(output, status, device=device)


def test_filesystem_made_read_only_after_errors_fails_the_device() -> None:
    # The loop device's SMART capture says unknown (smartctl cannot read it), yet the kernel's
    # remount after errors is a failure we did see.
    mounts = parse_mounts((MOUNTS / "ext4_errors_emergency_ro.txt").read_text())
    reading = parse_smartctl(*smartctl_capture("virtio_unable_to_detect"), device="/dev/loop0")
    report = assess_device(
        "/dev/loop0",
        smart=reading,
        mounts=mounts_of(mounts, "/dev/loop0"),
        io_errors=IoErrorCounts(ext4_errors={"loop0": 1}),
    )
    assert report.health == "failing"
    assert report.read_only is True
    assert report.reasons[0] == "/dev/loop0 on /tmp/cap/mnt was made read-only after errors (emergency_ro)"
    assert "ext4 on loop0 recorded 1 errors since its last fsck" in report.reasons
    assert report.io_errors.total == 1


def test_read_only_data_directory_fails_the_device_but_another_ro_mount_does_not() -> None:
    mounts = parse_mounts((MOUNTS / "ext4_remount_ro.txt").read_text())
    own = mounts_of(mounts, "/dev/loop0")
    healthy = smart("sata_wd_red_ok", "/dev/loop0")
    data_mount = mount_holding(mounts, "/tmp/cap/mnt/outbox")

    as_data = assess_device("/dev/loop0", smart=healthy, mounts=own, data_mount=data_mount)
    assert as_data.health == "failing"
    assert as_data.read_only is True
    assert "the data directory, is read-only" in as_data.reasons[0]

    elsewhere = assess_device("/dev/loop0", smart=healthy, mounts=own)
    assert elsewhere.health == "ok"
    assert elsewhere.read_only is False


def test_failing_smart_gives_failing_with_its_reasons_first() -> None:
    report = assess_device("/dev/sdc", smart=smart("usb_jmicron_hitachi_failing", "/dev/sdc"))
    assert report.health == "failing"
    assert report.reasons[0] == "SMART: SMART overall-health self-assessment: FAILED"
    assert report.temperature_c == 25
    assert report.power_on_hours == 65592
    assert report.smart_exit_meanings[0] == "bit 3: SMART status check returned DISK FAILING"


def test_nvme_report_carries_percentage_used_as_wear_in_telemetry() -> None:
    report = assess_device(
        "/dev/nvme0",
        smart=smart("nvme_samsung_970_evo_media_errors", "/dev/nvme0"),
        space=SpaceReading(free_bytes=200 * GIB, total_bytes=465 * GIB),
    )
    assert report.telemetry() == StorageHealth(
        device="/dev/nvme0", health="warning", free_bytes=200 * GIB, wear_pct=3.0, read_only=False
    )


def test_emmc_report_uses_the_card_s_wear() -> None:
    report = assess_device("/dev/mmcblk0", emmc=emmc_wear("0x01 0x03\n", "0x02\n"))
    assert report.health == "warning"
    assert report.wear_pct == 30.0
    assert report.reasons[0] == "eMMC: pre-EOL warning: 80% of reserved blocks consumed"


def test_low_free_space_is_a_warning() -> None:
    report = assess_device(
        "/dev/sdb",
        smart=smart("sata_wd_red_ok", "/dev/sdb"),
        space=SpaceReading(free_bytes=1 * GIB, total_bytes=100 * GIB),
        min_free_ratio=0.05,
    )
    assert report.health == "warning"
    assert report.reasons == (f"the data filesystem has 1.0% free ({GIB} bytes)",)


def test_scsi_io_errors_are_a_warning() -> None:
    report = assess_device(
        "/dev/sdb",
        smart=smart("sata_wd_red_ok", "/dev/sdb"),
        io_errors=IoErrorCounts(scsi_ioerr_cnt=26),
    )
    assert report.health == "warning"
    assert report.reasons == ("the kernel counted 26 I/O errors (ioerr_cnt)",)


def test_no_health_source_is_unknown() -> None:
    report = assess_device("/dev/sda")
    assert report.health == "unknown"
    assert report.reasons == ("no health source for this device (neither SMART nor eMMC wear)",)


def test_telemetry_of_every_capture_satisfies_the_wire_contract() -> None:
    # msgspec checks Annotated constraints (wear 0..100, free >= 0) on decode, not on construction.
    for name in (
        "sata_wd_red_ok",
        "usb_jmicron_hitachi_failing",
        "nvme_intel_660p_ok",
        "virtio_unable_to_detect",
    ):
        report = assess_device("/dev/sda", smart=smart(name, "/dev/sda"))
        wire = msgspec.json.encode(report.telemetry())
        assert msgspec.json.decode(wire, type=StorageHealth) == report.telemetry()
