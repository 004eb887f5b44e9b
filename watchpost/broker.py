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


def acl_rules(*, fleet_user: str = "fleet") -> str:
    """Mosquitto `acl_file` text confining every client to its part of the topic namespace
    (protocols.topics): an edge node, logged in with its node id as user name, writes only its
    own up/ (its will, the death, included) and reads only its own down/ and the fleet's host
    state; `fleet_user` reads every node's up/, writes every node's down/ and its host state.
    deploy/mosquitto/acl is this text for fleet user "fleet"."""
    return "\n".join(
        [
            "# watchpost: who may publish and subscribe where (Mosquitto acl_file).",
            "# Made by watchpost.broker.acl_rules(); pair it with a password_file (or client",
            "# certificates and use_identity_as_username) so a node cannot pick its user name.",
            "",
            "# Edge nodes: the user name is the node id.",
            "pattern write watchpost/v1/node/%u/up/#",
            "pattern read watchpost/v1/node/%u/down/#",
            "pattern read watchpost/v1/host/+/state",
            "",
            "# The fleet manager (every worker of it).",
            f"user {fleet_user}",
            "topic read watchpost/v1/node/+/up/#",
            "topic write watchpost/v1/node/+/down/#",
            "topic readwrite watchpost/v1/host/+/state",
            "",
        ]
    )


@dataclass(kw_only=True)
class MosquittoBroker(ServerProcess):
    """`with MosquittoBroker() as broker:` runs one broker on `broker.port` until the block ends.

    `stop()` and `start()` again keep the port, so clients can be shown reconnecting after a
    broker restart."""

    port: int = field(default_factory=free_port)
    password_file: Path | None = None  # made with mosquitto_passwd; None: anonymous clients
    # Confine each client to its own topics (acl_rules); needs user names, so a password file
    # or client certificates.
    acl: bool = False
    fleet_user: str = "fleet"  # with `acl`: the fleet manager's user name
    # Keep sessions and queued messages across a clean stop()/start(), as a production broker does.
    persistent: bool = False
    tls: BrokerTls | None = None
    workdir: Path | None = None
    binary: str = "mosquitto"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        named = self.password_file is not None or (self.tls is not None and self.tls.require_certificate)
        if self.acl and not named:
            raise ValueError(
                "acl=True needs clients with user names: give a password_file, or a tls listener "
                "with require_certificate"
            )

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def log_file(self) -> Path:
        return self._dir / "mosquitto.log"

    @property
    def acl_file(self) -> Path:
        return self._dir / "acl"

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
        if self.acl:
            lines.append(f"acl_file {self.acl_file}")
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
        if self.acl:
            self.acl_file.write_text(acl_rules(fleet_user=self.fleet_user))
            self.acl_file.chmod(0o600)  # private, as the password file must be
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
