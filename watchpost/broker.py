"""A Mosquitto broker of the project's own, on a loopback port: for tests, benchmarks and the
demo when no broker is configured. It is the real `mosquitto` binary (Debian package
`mosquitto`) with a config written here; nothing is shared with a broker already running on
the machine.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from watchpost.processes import ServerProcess, dying_with_parent, stop


class BrokerError(RuntimeError):
    """The broker could not be started; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerTls:
    """Server side of a TLS listener; `require_certificate` makes clients present one."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


@dataclass(kw_only=True)
class MosquittoBroker(ServerProcess):
    """`with MosquittoBroker() as broker:` runs one broker on `broker.port` until the block ends.

    `stop()` and `start()` again keep the port, so clients can be shown reconnecting after a
    broker restart."""

    port: int = field(default_factory=free_port)
    password_file: Path | None = None  # made with mosquitto_passwd; None: anonymous clients
    # Keep sessions and queued messages across a clean stop()/start(), as a production broker does.
    persistent: bool = False
    tls: BrokerTls | None = None
    workdir: Path | None = None
    binary: str = "mosquitto"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def log_file(self) -> Path:
        return self._dir / "mosquitto.log"

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="watchpost-broker-")
            self.workdir = Path(self._tmp.name)
        return self.workdir

    def config(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            # Run as root, mosquitto would switch to user "mosquitto", who cannot read this
            # broker's files; stay whoever started it.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistent else 'false'}",
            f"persistence_location {self._dir}/",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            # A node replaying its backlog and a fleet consumer catching up: no silent drops.
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "set_tcp_nodelay true",
        ]
        if self.password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
            if self.tls.require_certificate and self.password_file is None:
                lines.append("use_identity_as_username true")
        return "\n".join(lines) + "\n"

    def start(self, *, timeout: float = 10.0) -> None:
        if self._process is not None:
            raise BrokerError("the broker is already running")
        binary = shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin:/sbin")
        if binary is None:
            raise BrokerError(
                f"{self.binary!r} not found: install the Debian package 'mosquitto' (scripts/bootstrap does)"
            )
        conf = self._dir / "mosquitto.conf"
        conf.write_text(self.config())
        command = dying_with_parent([binary, "-c", str(conf)])
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = ""
                if self._process.stderr is not None:
                    stderr = self._process.stderr.read().decode(errors="replace")
                    self._process.stderr.close()
                self._process = None
                raise BrokerError(f"mosquitto exited at start: {stderr.strip()} {self._log_tail()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(
            f"mosquitto did not listen on port {self.port} within {timeout} s {self._log_tail()}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        stop(process, timeout=5)

    def kill(self) -> None:
        """Stop at once, as a crash or power cut would: clients see the connection drop."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            if process.stderr is not None:
                process.stderr.close()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered, as on a
        stalled link. `kill()` still works on a paused broker."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _log_tail(self) -> str:
        try:
            return "| log: " + " / ".join(self.log_file.read_text().splitlines()[-5:])
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
