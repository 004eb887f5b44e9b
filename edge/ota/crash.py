"""Fault injection for the power-cut tests: `WATCHPOST_OTA_CRASH_AT=<step>@<marker file>` makes
the process SIGKILL itself the first time it reaches `<step>` (the marker makes it once only,
across the restarts that follow). Unset on a pole, where every checkpoint is a no-op.

Steps: downloading (half the artifact on flash), verified, extracting (half the files written),
switched (`current` renamed), restarting (reported, before the exit), health-check (the gate
began), committing (`committed` renamed, nothing reported yet).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Final

ENV: Final = "WATCHPOST_OTA_CRASH_AT"


def checkpoint(step: str, environ: Mapping[str, str] = os.environ) -> None:
    spec = environ.get(ENV)
    if not spec:
        return
    name, _, marker = spec.partition("@")
    if name != step:
        return
    if marker:
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        os.fsync(fd)
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
