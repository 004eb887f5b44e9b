"""What the project's own servers (Mosquitto, PostgreSQL, VictoriaMetrics) share: they die with
the process that started them, and stop politely, then firmly."""

from __future__ import annotations

import shutil
import subprocess
from types import TracebackType
from typing import Self


def dying_with_parent(command: list[str]) -> list[str]:
    """`command`, run so that it gets SIGTERM when its parent dies (util-linux setpriv, Linux's
    PR_SET_PDEATHSIG): a test or benchmark killed outright leaves no server behind."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "SIGTERM", "--", *command] if setpriv else command


def stop(process: subprocess.Popen[bytes] | None, *, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not gone within `timeout`; closes its stderr pipe."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()


class ServerProcess:
    """`with Server() as server:` runs `start()` then, however the block ends, `close()`."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
