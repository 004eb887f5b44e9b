"""A release tar opened safely: every member is looked at before a byte is written, and only
plain files the manifest lists, at plain relative paths, come out. Extraction goes to
`releases/<r>.partial` and is renamed into place when whole (edge.ota.releases owns the layout).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from edge.ota.errors import OtaFailure
from edge.ota.files import fsync_dir
from protocols import ota

_PLAIN_FILE: Final = (tarfile.REGTYPE, tarfile.AREGTYPE)
BLOCK: Final = 4096  # what a small file costs on the flash at least


def unsafe_name(name: str) -> str | None:
    """Why a member name could write outside the release directory, or None if it is plain."""
    if not name or name in (".", "./"):
        return "an empty name"
    if name.startswith("/"):
        return "an absolute path"
    if "\\" in name or "\x00" in name:
        return "a backslash or NUL in the name"
    if ".." in name.split("/"):
        return "a '..' component"
    if posixpath.normpath(name) != name.rstrip("/"):
        return "a path that is not in normal form"
    return None


def check_members(members: list[tarfile.TarInfo], files: list[ota.ManifestFile]) -> None:
    """Refuse the archive on its members alone ("unsafe-archive"), then against the manifest
    ("archive-mismatch"). Directory entries are tolerated only as parents of listed files."""
    listed = {f.path: f for f in files}
    parents = _ancestors(listed)
    seen: set[str] = set()
    for member in members:
        name = member.name
        problem = unsafe_name(name)
        if problem is not None:
            raise OtaFailure("unsafe-archive", f"member {name!r} has {problem}")
        if member.type not in _PLAIN_FILE and not member.isdir():
            raise OtaFailure("unsafe-archive", f"member {name!r} is a {_type_name(member)}, not a plain file")
        if member.mode & 0o7000:
            raise OtaFailure(
                "unsafe-archive", f"member {name!r} has mode {member.mode:o} (setuid/setgid/sticky)"
            )
        if name in seen:
            raise OtaFailure("unsafe-archive", f"member {name!r} appears twice")
        seen.add(name)
        if member.isdir():
            if name.rstrip("/") not in parents:
                raise OtaFailure("unsafe-archive", f"directory member {name!r} holds no listed file")
            continue
        entry = listed.get(name)
        if entry is None:
            raise OtaFailure("archive-mismatch", f"member {name!r} is not among the manifest's files")
        if member.size != entry.size:
            raise OtaFailure(
                "archive-mismatch", f"member {name!r} is {member.size} bytes, the manifest says {entry.size}"
            )
        executable = bool(member.mode & 0o111)
        if executable != (entry.mode == "executable"):
            raise OtaFailure(
                "archive-mismatch",
                f"member {name!r} has mode {member.mode:o}, the manifest says {entry.mode}",
            )
    missing = sorted(set(listed) - seen)
    if missing:
        raise OtaFailure(
            "archive-mismatch", f"the archive lacks {len(missing)} listed files, e.g. {missing[0]!r}"
        )


def _ancestors(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for path in paths:
        parent = posixpath.dirname(path)
        while parent:
            out.add(parent)
            parent = posixpath.dirname(parent)
    return out


def _type_name(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return f"member of type {member.type!r}"


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def needed_bytes(files: list[ota.ManifestFile], extra: int = 0) -> int:
    return sum(-(-f.size // BLOCK) * BLOCK + BLOCK for f in files) + extra


def check_space(where: Path, needed: int, *, free: Callable[[Path], int] = free_bytes, what: str) -> None:
    available = free(where)
    if available < needed:
        raise OtaFailure("disk-full", f"{what} needs {needed} bytes on {where}, {available} are free")


def extract_release(
    tar_path: Path,
    manifest: ota.Manifest,
    dest: Path,
    *,
    free: Callable[[Path], int] = free_bytes,
    checkpoint: Callable[[str], None] = lambda step: None,
) -> None:
    """Extract the release into `dest` (a `releases/<r>` path), all or nothing."""
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    # The artifact is copied beside the release too (the base of the next delta).
    check_space(
        dest.parent,
        needed_bytes(manifest.files, extra=tar_path.stat().st_size),
        free=free,
        what=f"release {manifest.release}",
    )
    listed = {f.path: f for f in manifest.files}
    try:
        with tarfile.open(tar_path, mode="r:") as archive:
            members = archive.getmembers()
            check_members(members, manifest.files)
            partial.mkdir(parents=True)
            files = [member for member in members if not member.isdir()]
            for count, member in enumerate(files, 1):
                _extract_one(archive, member, partial, listed[member.name])
                if count == len(files) // 2:
                    checkpoint("extracting")
        for directory, _subdirs, _names in os.walk(partial, topdown=False):
            fsync_dir(Path(directory))
        if dest.exists():
            shutil.rmtree(dest)  # an earlier attempt's: extracted again, from the checked tar
        os.replace(partial, dest)
        fsync_dir(dest.parent)
    except tarfile.TarError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise OtaFailure("unsafe-archive", f"not a readable tar: {error}") from None
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        if error.errno == 28:  # ENOSPC
            raise OtaFailure("disk-full", f"no space left extracting release {manifest.release}") from None
        raise OtaFailure("install-failed", f"extracting release {manifest.release}: {error}") from None
    except OtaFailure:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _extract_one(
    archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path, entry: ota.ManifestFile
) -> None:
    source = archive.extractfile(member)
    assert source is not None  # a plain file, checked above
    target = root / member.name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    mode = 0o755 if entry.mode == "executable" else 0o644
    # O_EXCL | O_NOFOLLOW: nothing already there (a link, say) is written through.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        while block := source.read(256 * 1024):
            digest.update(block)
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(target, mode)
    if digest.hexdigest() != entry.sha256:
        raise OtaFailure(
            "archive-mismatch",
            f"{member.name} has SHA-256 {digest.hexdigest()}, the manifest says {entry.sha256}",
        )


def read_files(tar_path: Path, manifest: ota.Manifest) -> dict[str, bytes]:
    """The release's files in memory (controller firmware: small, and bound for the
    controller's flash, not this one's), with the same member checks."""
    listed = {f.path: f for f in manifest.files}
    try:
        with tarfile.open(tar_path, mode="r:") as archive:
            members = archive.getmembers()
            check_members(members, manifest.files)
            out: dict[str, bytes] = {}
            for member in members:
                if member.isdir():
                    continue
                source = archive.extractfile(member)
                assert source is not None
                data = source.read()
                if hashlib.sha256(data).hexdigest() != listed[member.name].sha256:
                    raise OtaFailure(
                        "archive-mismatch", f"{member.name} does not match its SHA-256 in the manifest"
                    )
                out[member.name] = data
            return out
    except tarfile.TarError as error:
        raise OtaFailure("unsafe-archive", f"not a readable tar: {error}") from None
