"""A real disk for the simulated pole's storage scenarios: a small ext4 on a loop device,
mounted where a scenario wants it (the node's data directory, or a second disk beside it)
and listed in the agent's `storage.devices`, which the kernel itself can be made to turn
read-only: an ext4 error under `errors=remount-ro`, as a dying SD card causes.

`edge.storage` judges a device by the mount table and statvfs of the data directory
(docs/storage.md): read-only after errors, or the data directory's filesystem read-only, is
"failing". Needs root and loop devices, as the simulated rig's host has.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.storage.mounts import block_name, parse_mounts
from hil_tests.rig.rig import Rig

MOUNTS = Path("/proc/self/mounts")
NodeSections = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LoopDisk:
    device: str  # "/dev/loop3": what the agent's storage.devices names
    mount_point: Path
    image: Path

    @classmethod
    def at(cls, mount_point: Path) -> LoopDisk:
        """The loop disk mounted at `mount_point` (by `on_loop_disk`)."""
        for mount in parse_mounts(MOUNTS.read_text()):
            if mount.mount_point == str(mount_point) and mount.source.startswith("/dev/loop"):
                return cls(mount.source, mount_point, _image_of(mount_point))
        raise LookupError(f"no loop disk is mounted at {mount_point}")

    @property
    def options(self) -> tuple[str, ...]:
        """The mount's options as the kernel shows them now ("ro", "emergency_ro", ...)."""
        for mount in parse_mounts(MOUNTS.read_text()):
            if mount.mount_point == str(self.mount_point) and mount.source == self.device:
                return mount.options
        raise LookupError(f"{self.device} is no longer mounted at {self.mount_point}")

    def fail(self, why: str = "hil: simulated media error") -> None:
        """An ext4 error, as a failing card's write raises one: under `errors=remount-ro` the
        kernel turns the filesystem read-only (`ro`, or `rw` + `emergency_ro` from 6.18 on)."""
        Path(f"/sys/fs/ext4/{block_name(self.device)}/trigger_fs_error").write_text(why)

    def remove(self) -> None:
        # Lazy: a process that still holds a file there must not keep the disk mounted.
        subprocess.run(["umount", "--lazy", str(self.mount_point)], check=False, capture_output=True)
        subprocess.run(["losetup", "--detach", self.device], check=False, capture_output=True)
        self.image.unlink(missing_ok=True)


def make_loop_disk(mount_point: Path, *, size_mb: int = 64) -> LoopDisk:
    """An ext4 of `size_mb` on a loop device, mounted at `mount_point` (made if missing) with
    `errors=remount-ro`. `remove()` takes it away."""
    mount_point.mkdir(parents=True, exist_ok=True)
    image = _image_of(mount_point)
    with image.open("wb") as file:
        file.truncate(size_mb * 2**20)
    _run("mkfs.ext4", "-q", "-F", str(image))
    disk = LoopDisk(_run("losetup", "--find", "--show", str(image)).strip(), mount_point, image)
    try:
        _run("mount", "-t", "ext4", "-o", "errors=remount-ro", disk.device, str(mount_point))
    except BaseException:
        disk.remove()
        raise
    return disk


def on_loop_disk(
    mount_point: Callable[[Rig, Path], Path], *, size_mb: int = 64, probe_every_s: float = 1.0
) -> Callable[[Rig, Path], NodeSections]:
    """For `@pytest.mark.node_config.with_args(...)`: a loop disk mounted at
    `mount_point(rig, workdir)` before the agent starts, in the agent's `storage.devices` and
    probed every `probe_every_s`; removed when the lab closes (the pole is off by then: the
    rig fixture's Lab is an ExitStack, unwound last). Find it in the test with `LoopDisk.at`."""

    def mount(rig: Rig, workdir: Path) -> NodeSections:
        if os.geteuid() != 0 or not Path("/dev/loop-control").exists():
            pytest.skip("a real ext4 on a loop device needs root and /dev/loop-control")
        disk = make_loop_disk(mount_point(rig, workdir), size_mb=size_mb)
        rig.lab.callback(disk.remove)
        return {"storage": {"devices": [disk.device], "interval_s": probe_every_s}}

    return mount


def _image_of(mount_point: Path) -> Path:
    return mount_point.with_name(mount_point.name + ".img")


def _run(*command: str) -> str:
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout
