"""A VictoriaMetrics server of the project's own, on a loopback port: the real time-series
database (Debian package `victoria-metrics`) that the fleet's tests write to through
`influxdb-client`, since it accepts InfluxDB's `/api/v2/write`. Production may use InfluxDB
2.x/3.x instead; the write path is the same.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from watchpost.broker import free_port
from watchpost.processes import ServerProcess, dying_with_parent, stop


class VictoriaMetricsError(RuntimeError):
    """The server could not be started; the message says why."""


@dataclass(kw_only=True)
class VictoriaMetrics(ServerProcess):
    """`with VictoriaMetrics() as vm:` serves `vm.url` until the block ends."""

    port: int = field(default_factory=free_port)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> None:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            raise VictoriaMetricsError(
                "victoria-metrics not found: install the Debian package 'victoria-metrics'"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="watchpost-vm-")
        data = Path(self._tmp.name)
        command = [
            binary,
            f"-storageDataPath={data / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=1y",
            "-search.latencyOffset=0s",  # tests read back what they just wrote
            "-loggerLevel=ERROR",
        ]
        self._process = subprocess.Popen(
            dying_with_parent(command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise VictoriaMetricsError(f"victoria-metrics exited at start: {stderr.strip()[-500:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise VictoriaMetricsError(f"victoria-metrics did not answer /health within {timeout} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        stop(process)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def close(self) -> None:
        self.stop()
