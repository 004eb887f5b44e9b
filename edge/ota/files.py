"""Small state files written so a power cut leaves either the old or the new content: a
temporary name, fsync, rename, fsync of the directory. Used for the job, trial and outcome
files (edge.ota.state) and by the release links (edge.ota.releases)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TypeVar

import msgspec

T = TypeVar("T")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_struct(path: Path, value: msgspec.Struct) -> None:
    write_atomic(path, msgspec.json.encode(value))


def read_struct(path: Path, kind: type[T]) -> T | None:
    """The file's content, or None when it is missing or unreadable (a torn write cannot
    happen with write_atomic; a file from an incompatible release is treated as absent)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


class StatePaths:
    """The OTA files in `<node.state_dir>/ota/` (docs/adr/0009)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "ota"
        self.job = self.dir / "job.json"  # the accepted offer and its state
        self.manifest = self.dir / "manifest.json"  # the job's signed manifest document
        self.downloads = self.dir / "download"  # artifact/delta and their .part files
        self.trial = self.dir / "trial.json"  # a release switched to, not yet committed
        self.outcome = self.dir / "outcome.json"  # a trial that ended without a commit
