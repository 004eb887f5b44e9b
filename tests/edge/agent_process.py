"""`watchpost edge run` as a real process, as systemd runs it: a notify socket of the test's
own receives READY=1 and WATCHDOG=1; the test can SIGTERM or SIGKILL it. `SupervisedAgent`
restarts what exits, as `Restart=always` does (the OTA tests run the boot selector under it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

WATCHPOST = Path(sys.executable).parent / "watchpost"


class AgentProcess:
    def __init__(self, config: Path, workdir: Path, *, watchdog_s: float | None = 0.5) -> None:
        self.config = config
        self.workdir = workdir
        self.watchdog_s = watchdog_s
        self.notify_path = workdir / f"notify-{os.getpid()}-{time.monotonic_ns()}.sock"
        self.notifications: list[str] = []
        self.stderr_path = workdir / "agent.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self._notify: socket.socket | None = None

    def start(self) -> None:
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self.notify_path))
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path), JOURNAL_STREAM="8:12345")
        if self.watchdog_s is not None:
            env["WATCHDOG_USEC"] = str(int(self.watchdog_s * 1e6))
        with open(self.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(
                [str(WATCHPOST), "edge", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )

    def wait_for(self, prefix: str, timeout: float = 20.0) -> str:
        """The next notification starting with `prefix` (e.g. "READY=1")."""
        assert self._notify is not None
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.notifications:
                if message.startswith(prefix):
                    self.notifications.remove(message)
                    return message
            self._notify.settimeout(0.1)
            try:
                self.notifications.append(self._notify.recv(4096).decode())
            except TimeoutError:
                if self.process.poll() is not None:  # and nothing more queued on the socket
                    raise AssertionError(
                        f"agent exited ({self.process.returncode}) before {prefix!r}: {self.stderr_tail()}"
                    ) from None
        raise AssertionError(
            f"no {prefix!r} within {timeout} s; got {self.notifications}; {self.stderr_tail()}"
        )

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        if self._notify is not None:
            self._notify.close()
            self._notify = None
            self.notify_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SupervisedAgent:
    """systemd's `Restart=always` in miniature, for the OTA tests: runs the unit's command (the
    boot selector, which execs the agent in the same process) and runs it again whenever it
    exits, except with 2 (`RestartPreventExitStatus=2`). The test may SIGKILL it at any time."""

    def __init__(
        self, command: list[str], env: dict[str, str], workdir: Path, *, restart_s: float = 0.2
    ) -> None:
        self.command = command
        self.env = env
        self.restart_s = restart_s
        self.stderr_path = workdir / "supervised.stderr"
        self.exits: list[int] = []  # each run's exit status (-9: SIGKILL)
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with open(self.stderr_path, "ab") as stderr, self._changed:
                self._process = subprocess.Popen(
                    self.command, stdout=subprocess.DEVNULL, stderr=stderr, env=self.env
                )
                self.starts += 1
            code = self._process.wait()
            with self._changed:
                self.exits.append(code)
                self._changed.notify_all()
            if code == 2:
                return
            self._stop.wait(self.restart_s)

    def kill(self) -> None:
        """SIGKILL the running process (a power cut, as far as this process can tell)."""
        with self._changed:
            process = self._process
        assert process is not None
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)

    def stderr_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        with self._changed:
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self._thread.join(30)
