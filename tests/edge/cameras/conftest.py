"""Shared helpers for the camera tests: pushed records as a camera or NVR would send them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

KNOWN = frozenset({"cam-1", "cam-2"})


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def segment(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record": "segment",
        "camera_id": "cam-1",
        "start": 1_734_000_000_000,
        "end": 1_734_000_060_000,
        "bytes": 31_457_280,
        "codec": "h265",
        "width": 2560,
        "height": 1440,
        "fps": 25,
        "bitrate_kbps": 4096,
    }
    record.update(fields)
    return record


def event(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record": "video-event",
        "camera_id": "cam-1",
        "at": 1_734_000_030_000,
        "kind": "motion",
        "detail": "zone 2",
    }
    record.update(fields)
    return record


def body(value: Any) -> bytes:
    return msgspec.json.encode(value)
