"""Downloads over HTTP with `Range` resume: bytes go to `<name>.part` beside the destination,
fsynced as they come, so an agent restart or a power cut resumes where the flash has them.
Blocking (stdlib urllib): the agent runs it in a thread. edge.ota.node decides what to fetch
and edge.ota.verify checks what arrived.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPException
from pathlib import Path
from typing import Final

from edge.ota.errors import OtaFailure

CHUNK: Final = 64 * 1024
SYNC_EVERY: Final = 1024 * 1024  # bytes between fsyncs: what a power cut may cost to re-fetch
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


class TransientFetchError(Exception):
    """Worth trying again (connection lost, server error); `got` is the bytes on flash now."""

    def __init__(self, detail: str, *, got: int) -> None:
        super().__init__(detail)
        self.got = got


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path
    size: int
    resumed_from: int  # bytes already on flash when this request started (0: from scratch)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def fetch(
    url: str,
    dest: Path,
    *,
    size: int,
    timeout_s: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> Fetched:
    """One attempt at getting exactly `size` bytes of `url` into `dest`.

    Resumes from `dest.part` with `Range: bytes=N-`; a server that ignores Range (200) is read
    from the start. Raises OtaFailure("truncated" / "size-mismatch" / "download-failed") when
    the server's file cannot be the one wanted, TransientFetchError when trying again may help.
    """
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        have = 0  # not from this file: start again
        part.unlink()
    if have == size:
        os.replace(part, dest)
        return Fetched(dest, size, size)
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # http(s) only, by the offer's schema
    except urllib.error.HTTPError as error:
        with error:
            if error.code == 416 and have:
                return _not_satisfiable(error.headers.get("Content-Range", ""), have, size, part)
            if error.code >= 500 or error.code in (408, 429):
                raise TransientFetchError(f"{url}: HTTP {error.code} {error.reason}", got=have) from None
            raise OtaFailure("download-failed", f"{url}: HTTP {error.code} {error.reason}") from None
    except (OSError, HTTPException) as error:
        raise TransientFetchError(f"{url}: {error}", got=have) from None
    with response:
        start = have
        if response.status == 206:
            first = _range_start(response.headers.get("Content-Range", ""))
            if first != have:
                # Not the range asked for: trust nothing of it; next attempt starts afresh.
                part.unlink(missing_ok=True)
                raise TransientFetchError(
                    f"{url}: asked for bytes {have}-, got {response.headers.get('Content-Range')!r}", got=0
                )
        elif response.status == 200:
            start = 0  # the server ignored Range: the whole file comes again
        else:
            raise OtaFailure("download-failed", f"{url}: unexpected HTTP {response.status}")
        total = _declared_total(response.status, response.headers)
        if total is not None and total < size:
            raise OtaFailure("truncated", f"{url} is {total} bytes on the server; the manifest says {size}")
        if total is not None and total > size:
            raise OtaFailure(
                "size-mismatch", f"{url} is {total} bytes on the server; the manifest says {size}"
            )
        got = _copy(response, part, start=start, size=size, progress=progress, url=url)
    if got < size:
        # The server said it sent everything (or closed): ask again from here; a server whose
        # file really is this short answers 416, and that is "truncated".
        raise TransientFetchError(f"{url}: connection ended at byte {got} of {size}", got=got)
    os.replace(part, dest)
    return Fetched(dest, size, start)


def _copy(
    response: object,
    part: Path,
    *,
    start: int,
    size: int,
    progress: Callable[[int], None] | None,
    url: str,
) -> int:
    read = response.read  # type: ignore[attr-defined]
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if start else os.O_TRUNC)
    fd = os.open(part, flags, 0o644)
    got = start
    unsynced = 0
    try:
        while True:
            try:
                chunk: bytes = read(min(CHUNK, size + 1 - got))
            except (OSError, HTTPException) as error:
                os.fsync(fd)
                raise TransientFetchError(f"{url}: {error} at byte {got}", got=got) from None
            if not chunk:
                break
            if got + len(chunk) > size:
                raise OtaFailure("size-mismatch", f"{url} is longer than the {size} bytes the manifest says")
            _write_all(fd, chunk)
            got += len(chunk)
            unsynced += len(chunk)
            if unsynced >= SYNC_EVERY:
                os.fsync(fd)
                unsynced = 0
            if progress is not None:
                progress(got)
            if got == size:
                break
        os.fsync(fd)
    except OSError as error:
        if error.errno == 28:  # ENOSPC
            raise OtaFailure("disk-full", f"no space left for {part.name} at byte {got}") from None
        raise
    finally:
        os.close(fd)
    return got


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _declared_total(status: int, headers: Message) -> int | None:
    """The whole file's length as the server states it, when it does."""
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", "").strip())
        return int(match.group(3)) if match and match.group(3) != "*" else None
    length = headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def _range_start(header: str) -> int | None:
    match = _CONTENT_RANGE.match(header.strip())
    return int(match.group(1)) if match and match.group(1) is not None else None


def _not_satisfiable(header: str, have: int, size: int, part: Path) -> Fetched:
    match = _CONTENT_RANGE.match(header.strip())
    total = int(match.group(3)) if match and match.group(3) != "*" else None
    if total is not None and total == have:
        raise OtaFailure("truncated", f"the server's file ends at {total} bytes; the manifest says {size}")
    # Our part does not fit the server's file (changed under us?): start over next time.
    part.unlink(missing_ok=True)
    raise TransientFetchError(f"range {have}- not satisfiable (server says {header!r})", got=0)


def fetch_document(url: str, *, max_bytes: int, timeout_s: float = 30.0) -> bytes:
    """A small file (the manifest) fetched whole, refused past `max_bytes`."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # http(s) by the offer's schema
            data: bytes = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        with error:
            if error.code >= 500 or error.code in (408, 429):
                raise TransientFetchError(f"{url}: HTTP {error.code} {error.reason}", got=0) from None
            raise OtaFailure("download-failed", f"{url}: HTTP {error.code} {error.reason}") from None
    except (OSError, HTTPException) as error:
        raise TransientFetchError(f"{url}: {error}", got=0) from None
    if len(data) > max_bytes:
        raise OtaFailure("size-mismatch", f"{url} is larger than the {max_bytes} bytes a manifest may be")
    return data
