"""The wall clock the camera shells inject into the pure parts: epoch milliseconds, the unit of
every timestamp in the segments and events the cameras push."""

from __future__ import annotations

import time


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000
