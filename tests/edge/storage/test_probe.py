"""The shell: smartctl missing, hanging, or replaced by a script that replays a capture; sysfs
and mount tables from fixture trees; the data directory's free space from a real statvfs."""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

import pytest

from edge.storage.probe import StorageConfig, probe_storage, read_smart, start_short_self_test
from edge.storage.smart import parse_smartctl
from tests.edge.storage.captures import MOUNTS, SMARTCTL, SYSFS, smartctl_capture

CAPTURES = sorted(path.stem for path in SMARTCTL.glob("*.json") if not path.stem.startswith("selftest_"))


def fake_smartctl(directory: Path, capture: str, *, record: Path | None = None) -> Path:
    """A `smartctl` that prints a captured output and exits with the captured status."""
    output, status = smartctl_capture(capture)
    script = directory / "smartctl"
    recording = f'printf "%s\\n" "$@" > {shlex.quote(str(record))}\n' if record else ""
    script.write_text(
        f"#!/bin/sh\n{recording}cat {shlex.quote(str(SMARTCTL / f'{capture}.json'))}\nexit {status}\n"
    )
    script.chmod(0o755)
    assert output  # the capture exists and is not empty
    return script


def config(**overrides: object) -> StorageConfig:
    settings: dict[str, object] = {
        "devices": ("/dev/sda",),
        "data_dir": Path("/nonexistent/watchpost-data"),
        "mounts_file": MOUNTS / "this_machine.txt",
        "sysfs": SYSFS / "emmc_mmcblk2",
    }
    settings.update(overrides)
    return StorageConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("capture", CAPTURES)
def test_replayed_capture_gives_the_same_verdict_as_parsing_it(tmp_path: Path, capture: str) -> None:
    record = tmp_path / "argv"
    script = fake_smartctl(tmp_path, capture, record=record)
    reading = asyncio.run(read_smart("/dev/sdz", smartctl=str(script), timeout_s=30))
    assert reading == parse_smartctl(*smartctl_capture(capture), device="/dev/sdz")
    assert record.read_text().split() == ["-j", "-a", "/dev/sdz"]


def test_missing_smartctl_is_unknown_and_says_to_install_it() -> None:
    (report,) = asyncio.run(probe_storage(config(smartctl="watchpost-no-such-smartctl")))
    assert report.health == "unknown"
    assert report.reasons == ("SMART: watchpost-no-such-smartctl not found (install smartmontools)",)


def test_hanging_smartctl_is_killed_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "smartctl"
    script.write_text("#!/bin/sh\nexec sleep 600\n")  # exec: no grandchild holding the pipes
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (report,) = asyncio.run(probe_storage(config(timeout_s=0.2)))
    assert report.health == "unknown"
    assert report.reasons == ("SMART: smartctl did not finish within 0.2 s and was killed",)


def test_one_bad_device_does_not_stop_the_others(tmp_path: Path) -> None:
    script = fake_smartctl(tmp_path, "usb_jmicron_hitachi_failing")
    reports = asyncio.run(
        probe_storage(config(devices=("/dev/sdc", "/dev/mmcblk2", "/dev/mmcblk9"), smartctl=str(script)))
    )
    assert [report.device for report in reports] == ["/dev/sdc", "/dev/mmcblk2", "/dev/mmcblk9"]
    assert [report.health for report in reports] == ["failing", "ok", "unknown"]
    # mmcblk9 has no sysfs directory in the fixture tree: no wear files, said so.
    assert "no life_time or pre_eol_info" in reports[2].reasons[0]


def test_emmc_is_read_from_sysfs_without_smartctl(tmp_path: Path) -> None:
    called = tmp_path / "called"
    script = tmp_path / "smartctl"
    script.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(called))}\nexit 1\n")
    script.chmod(0o755)
    (report,) = asyncio.run(probe_storage(config(devices=("/dev/mmcblk2",), smartctl=str(script))))
    assert report.health == "ok"
    assert report.wear_pct == 10.0  # life_time 0x01 0x01: at most 10% used
    assert report.smart is None
    assert not called.exists()


def test_remount_after_errors_and_ext4_error_count_from_captured_files(tmp_path: Path) -> None:
    script = fake_smartctl(tmp_path, "loop_unable_to_detect")
    (report,) = asyncio.run(
        probe_storage(
            config(
                devices=("/dev/loop0",),
                smartctl=str(script),
                mounts_file=MOUNTS / "ext4_errors_emergency_ro.txt",
                sysfs=SYSFS / "ext4_after_error",
                data_dir=tmp_path / "not-on-loop0",
            )
        )
    )
    assert report.health == "failing"
    assert report.read_only is True
    assert report.io_errors.ext4_errors == {"loop0": 1}
    assert report.reasons[0] == "/dev/loop0 on /tmp/cap/mnt was made read-only after errors (emergency_ro)"
    assert report.telemetry().read_only is True


def test_free_space_of_the_data_directory_goes_to_its_device(tmp_path: Path) -> None:
    # In the captured table "/" is /dev/vda, so tmp_path (under /) counts as on /dev/vda.
    script = fake_smartctl(tmp_path, "virtio_unable_to_detect")
    reports = asyncio.run(
        probe_storage(config(devices=("/dev/vda", "/dev/sda"), smartctl=str(script), data_dir=tmp_path))
    )
    vda, sda = reports
    stats = os.statvfs(tmp_path)
    assert vda.free_bytes is not None
    assert 0 < vda.free_bytes <= stats.f_blocks * stats.f_frsize
    assert vda.data_mount is not None
    assert vda.data_mount.mount_point == "/"
    assert sda.free_bytes is None


def test_data_directory_is_placed_by_its_device_number_when_names_do_not_tell(tmp_path: Path) -> None:
    # No mount table to match names against: the kernel's /sys/dev/block/MAJ:MIN link for the
    # data directory's device number says which disk holds it (the captured virtio link).
    captured = os.readlink(SYSFS / "virtio_vda" / "dev" / "block" / "254:0")
    st_dev = os.stat(tmp_path).st_dev
    links = tmp_path / "sys" / "dev" / "block"
    links.mkdir(parents=True)
    (links / f"{os.major(st_dev)}:{os.minor(st_dev)}").symlink_to(captured)
    script = fake_smartctl(tmp_path, "virtio_unable_to_detect")
    vda, sda = asyncio.run(
        probe_storage(
            config(
                devices=("/dev/vda", "/dev/sda"),
                smartctl=str(script),
                data_dir=tmp_path,
                sysfs=tmp_path / "sys",
                mounts_file=tmp_path / "no-mounts",
            )
        )
    )
    assert vda.free_bytes is not None
    assert vda.free_bytes > 0
    assert sda.free_bytes is None


def test_missing_mount_table_and_sysfs_still_give_reports(tmp_path: Path) -> None:
    script = fake_smartctl(tmp_path, "sata_wd_red_ok")
    (report,) = asyncio.run(
        probe_storage(
            config(smartctl=str(script), mounts_file=tmp_path / "no-mounts", sysfs=tmp_path / "no-sysfs")
        )
    )
    assert report.health == "ok"
    assert report.mounts == ()


def test_short_self_test_reports_what_smartctl_said(tmp_path: Path) -> None:
    record = tmp_path / "argv"
    script = fake_smartctl(tmp_path, "selftest_virtio_unable_to_detect", record=record)
    start = asyncio.run(start_short_self_test("/dev/vda", smartctl=str(script)))
    assert record.read_text().split() == ["-j", "-t", "short", "/dev/vda"]
    assert start.started is False
    assert "Unable to detect device type" in start.summary
    assert start.exit_status == 1


def test_short_self_test_without_smartctl_says_so() -> None:
    start = asyncio.run(start_short_self_test("/dev/sda", smartctl="watchpost-no-such-smartctl"))
    assert start.started is False
    assert start.summary == "watchpost-no-such-smartctl not found (install smartmontools)"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"devices": ()}, "devices is empty"),
        ({"devices": ("sda",)}, "device 'sda' is not allowed"),
        ({"timeout_s": 0}, "timeout_s 0 is not allowed"),
        ({"min_free_ratio": 1.5}, "min_free_ratio 1.5 is not allowed"),
    ],
)
def test_config_refuses_bad_values_naming_them(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        config(**overrides)
