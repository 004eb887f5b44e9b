"""The mount table and the kernel's error counters: captured mount tables (this machine, an ext4
that errors=remount-ro turned read-only, a plain `mount -o remount,ro`), device and partition
names, and counters in the formats the kernel writes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.storage.mounts import (
    disk_from_sysfs_link,
    is_part_of,
    mount_holding,
    mounts_of,
    parse_counter,
    parse_mounts,
)
from tests.edge.storage.captures import MOUNTS, SYSFS


def table(name: str) -> str:
    return (MOUNTS / f"{name}.txt").read_text()


def test_this_machine_root_is_read_write() -> None:
    mounts = parse_mounts(table("this_machine"))
    assert len(mounts) == 20
    root = mount_holding(mounts, "/work/main")
    assert root is not None
    assert (root.source, root.mount_point, root.fs_type) == ("/dev/vda", "/", "ext4")
    assert not root.read_only


def test_ext4_made_read_only_after_errors_shows_emergency_ro() -> None:
    # Captured after `echo ... > /sys/fs/ext4/loop0/trigger_fs_error` on a filesystem mounted
    # errors=remount-ro: the kernel (6.18) logged "Remounting filesystem read-only" and the
    # table kept "rw", adding "emergency_ro".
    (loop,) = mounts_of(parse_mounts(table("ext4_errors_emergency_ro")), "/dev/loop0")
    assert loop.options[0] == "rw"
    assert loop.remounted_after_errors
    assert loop.read_only


def test_plain_read_only_remount_is_read_only_but_not_after_errors() -> None:
    (loop,) = mounts_of(parse_mounts(table("ext4_remount_ro")), "/dev/loop0")
    assert loop.options == ("ro", "relatime")
    assert loop.read_only
    assert not loop.remounted_after_errors


def test_a_path_belongs_to_the_deepest_mount() -> None:
    mounts = parse_mounts(table("ext4_remount_ro"))
    holder = mount_holding(mounts, "/tmp/cap/mnt/video/0001.mp4")
    assert holder is not None
    assert holder.source == "/dev/loop0"
    # A sibling whose name merely starts the same is not inside the mount.
    other = mount_holding(mounts, "/tmp/cap/mntx")
    assert other is not None
    assert other.mount_point == "/"


def test_escaped_spaces_in_mount_points_are_decoded() -> None:
    (mount,) = parse_mounts("/dev/sda1 /media/pole\\040data ext4 rw,relatime 0 0\n")
    assert mount.mount_point == "/media/pole data"


@pytest.mark.parametrize(
    ("name", "disk", "part_of"),
    [
        ("sda", "sda", True),
        ("sda1", "sda", True),
        ("sdab", "sda", False),
        ("mmcblk0p2", "mmcblk0", True),
        ("mmcblk0", "mmcblk0", True),
        ("mmcblk01", "mmcblk0", False),
        ("mmcblk1p1", "mmcblk0", False),
        ("nvme0n1p1", "nvme0", True),
        ("nvme0n1", "nvme0", True),
        ("nvme1n1", "nvme0", False),
        ("loop0", "loop0", True),
    ],
)
def test_partitions_belong_to_their_disk(name: str, disk: str, part_of: bool) -> None:
    assert is_part_of(name, disk) is part_of


def test_the_disk_behind_a_device_number_comes_from_its_sysfs_link() -> None:
    # Captured: /sys/dev/block/254:0 -> ../../devices/pci0000:00/0000:00:02.0/virtio1/block/vda
    target = os.readlink(SYSFS / "virtio_vda" / "dev" / "block" / "254:0")
    assert disk_from_sysfs_link(target) == "vda"
    # A partition's link ends in <disk>/<partition>: the disk is the name after "block".
    assert disk_from_sysfs_link(target + "/vda1") == "vda"
    assert disk_from_sysfs_link("../../devices/virtual/misc") is None


def test_captured_ext4_error_counter_is_read() -> None:
    text = (SYSFS / "ext4_after_error" / "fs" / "ext4" / "loop0" / "errors_count").read_text()
    assert parse_counter(text, base=10) == 1


@pytest.mark.parametrize(
    ("text", "base", "value"),
    [
        ("0x0\n", 16, 0),  # the kernel's "0x%llx\n" for scsi ioerr_cnt
        ("0x1a\n", 16, 26),
        ("12\n", 10, 12),
        ("", 10, None),
        ("-1\n", 10, None),
        ("1_000\n", 10, None),
        ("0x\n", 16, None),
        ("\u0661\n", 10, None),  # an Arabic-Indic digit one, which int() would accept
    ],
)
def test_counters_in_the_kernel_s_formats(text: str, base: int, value: int | None) -> None:
    assert parse_counter(text, base=base) == value  # type: ignore[arg-type]


@given(st.text(max_size=500))
def test_arbitrary_mount_tables_never_raise(text: str) -> None:
    for mount in parse_mounts(text):
        assert mount.options


@given(st.text(max_size=30), st.sampled_from([10, 16]))
def test_arbitrary_counters_never_raise(text: str, base: int) -> None:
    value = parse_counter(text, base=base)  # type: ignore[arg-type]
    assert value is None or value >= 0
