"""A PostgreSQL cluster of the project's own, on a loopback port: for tests and benchmarks of
the fleet manager. It is the real server (Debian package `postgresql`) in a fresh data
directory made by `initdb`; nothing is shared with a server already running on the machine.

`stop(keep_data=True)` then `start()` again is a database outage and its end: the same
databases come back on the same port.

PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user that the
Debian package creates (through util-linux `runuser`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from watchpost.broker import free_port
from watchpost.processes import ServerProcess, dying_with_parent, stop


class PostgresError(RuntimeError):
    """The cluster could not be made or started; the message carries the tail of its log."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresError("PostgreSQL server binaries not found: install the Debian package 'postgresql'")


@dataclass(kw_only=True)
class PostgresCluster(ServerProcess):
    """`with PostgresCluster() as pg:` runs a server on `pg.port`; `pg.url(db)` for SQLAlchemy."""

    port: int = field(default_factory=free_port)
    user: str = "watchpost"
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _dir: Path = field(default=Path(), init=False)

    def _as_server_user(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", "postgres", "--", *command]

    def start(self, *, timeout: float = 30.0) -> None:
        """Make the cluster (initdb) and run its server; after `stop(keep_data=True)`, run the
        server again on the data it had."""
        if self.running:
            raise PostgresError("the server is already running")
        binaries = _bin_dir()
        if self._tmp is None:
            self._init(binaries)
        data, sockets = self._dir / "data", self._dir / "run"
        command = [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            # A test cluster: durability is the production server's job, speed is ours.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=100",
        ]
        command = dying_with_parent(command)
        log = open(self._dir / "postgres.log", "ab")  # noqa: SIM115 - held for the server's life
        self._process = subprocess.Popen(self._as_server_user(command), stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        ready = str(binaries / "pg_isready")
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresError(f"postgres exited at start: {self._log_tail()}")
            probe = subprocess.run(
                [ready, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres"],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise PostgresError(f"postgres was not ready within {timeout} s: {self._log_tail()}")

    def _init(self, binaries: Path) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="watchpost-postgres-")
        self._dir = Path(self._tmp.name)
        sockets = self._dir / "run"
        sockets.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self._dir, sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        init = subprocess.run(
            self._as_server_user(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self._dir / "data"),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            raise PostgresError(f"initdb failed: {init.stderr.strip()[-500:]}")

    def url(self, database: str = "postgres", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        import psycopg  # noqa: PLC0415 - only the fleet's tests need it

        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _log_tail(self) -> str:
        try:
            return " / ".join((self._dir / "postgres.log").read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server and remove its data; with `keep_data`, stop it as an outage would
        (connections dropped at once) and keep data and port for `start()`."""
        process, self._process = self._process, None
        if keep_data:
            if process is not None:
                self._fast_shutdown(process)
            return
        stop(process)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _fast_shutdown(self, process: subprocess.Popen[bytes]) -> None:
        # pg_ctl signals the postmaster itself (SIGINT, "fast"): open sessions are ended rather
        # than waited for, and as root the signal need not pass through runuser.
        pg_ctl = str(_bin_dir() / "pg_ctl")
        done = subprocess.run(
            self._as_server_user([pg_ctl, "stop", "-D", str(self._dir / "data"), "-m", "fast", "-w"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            stop(process)
            raise PostgresError(f"pg_ctl stop failed: {done.stderr.strip()[-500:]} {self._log_tail()}")
        process.wait(timeout=30)

    def close(self) -> None:
        self.stop()
