"""The releases on the node's disk (docs/adr/0009):

    <root>/releases/<r>/        a release's files       <root>/current   -> releases/<r>  what runs
    <root>/releases/<r>.tar     its artifact            <root>/committed -> releases/<r>  last good one

A link is switched by making a new symlink under a temporary name and renaming it over the old
one (atomic), then fsyncing the directory. The boot selector and the agent both use this.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Literal

from edge.ota.files import fsync_dir, write_atomic

Link = Literal["current", "committed"]


class ReleaseStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.releases = root / "releases"

    def dir_of(self, release: str) -> Path:
        return self.releases / release

    def artifact_of(self, release: str) -> Path:
        return self.releases / f"{release}.tar"

    def target(self, link: Link) -> str | None:
        """The release a link names, or None when there is no such link."""
        try:
            target = os.readlink(self.root / link)
        except OSError:
            return None
        return Path(target).name

    def current(self) -> str | None:
        return self.target("current")

    def committed(self) -> str | None:
        return self.target("committed")

    def installed(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        return sorted(
            p.name for p in self.releases.iterdir() if p.is_dir() and not p.name.endswith(".partial")
        )

    def switch(self, link: Link, release: str) -> None:
        if not self.dir_of(release).is_dir():
            raise FileNotFoundError(f"release {release} is not installed in {self.releases}")
        tmp = self.root / f".{link}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(f"releases/{release}", tmp)
        os.replace(tmp, self.root / link)
        fsync_dir(self.root)

    def keep_artifact(self, release: str, source: Path) -> None:
        """Keep the release's tar beside it: the base a later delta is made against."""
        write_atomic(self.artifact_of(release), source.read_bytes())

    def prune(self, keep: set[str]) -> list[str]:
        """Remove every release (and its tar, and leftover partial extractions) not in `keep`
        and not named by a link. Returns the releases removed."""
        keep = keep | {r for r in (self.current(), self.committed()) if r}
        removed: list[str] = []
        if not self.releases.is_dir():
            return removed
        for path in self.releases.iterdir():
            name = path.name.removesuffix(".tar").removesuffix(".partial")
            if name in keep and not path.name.endswith(".partial"):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                if not path.name.endswith(".partial"):
                    removed.append(name)
            else:
                path.unlink()
        fsync_dir(self.releases)
        return sorted(removed)
