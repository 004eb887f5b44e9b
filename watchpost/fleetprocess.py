"""`watchpost fleet serve` as a process of its own, the way a city runs it, for the tests and
benchmarks that talk to it only over MQTT and HTTP: started on a settings file, ready once it
has written its first admin token and `/api/v1/health` answers, stopped with SIGTERM (then
SIGKILL). Its stderr goes to a file, whose tail is in the error when it does not start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from watchpost.processes import ServerProcess, dying_with_parent, stop

WATCHPOST = Path(sys.executable).parent / "watchpost"
TOKEN_FILE = "admin.token"  # written by `watchpost fleet serve` into [fleet] data_dir (0600)


def call_json(
    url: str, method: str = "GET", body: Any = None, *, token: str | None = None, timeout: float = 15.0
) -> tuple[int, Any]:
    """One call to the fleet's JSON API: (status, decoded body), error statuses included, for
    the callers that check a refusal as closely as an answer. A body that is not JSON (a proxy's
    page, an empty 204) comes back as its text."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decoded(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decoded(error.read())


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


class FleetStartError(RuntimeError):
    """The fleet process exited or did not answer in time; the message ends with its stderr."""


class FleetProcess(ServerProcess):
    def __init__(
        self,
        settings: Path,
        *,
        data_dir: Path,
        port: int,
        stderr_path: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.port = port
        self.stderr_path = stderr_path or settings.with_suffix(".stderr")
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> None:
        with self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                dying_with_parent([str(WATCHPOST), "fleet", "serve", "--config", str(self.settings)]),
                stderr=stderr,
            )
        token_file = self.data_dir / TOKEN_FILE
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                self._failed(f"exited with status {self.process.returncode}")
            if time.monotonic() > deadline:
                self._failed(f"not answering after {self.startup_timeout:.0f} s")
            token = token_file.read_text().strip() if token_file.exists() else ""
            if token and self._healthy():
                self.token = token
                return
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=5) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.HTTPError):
            return False

    def _failed(self, why: str) -> None:
        self.close()
        tail = self.stderr_path.read_text(errors="replace")[-2000:] if self.stderr_path.exists() else ""
        raise FleetStartError(f"watchpost fleet serve {why}; its stderr ends:\n{tail}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop(self.process, timeout=30.0)
