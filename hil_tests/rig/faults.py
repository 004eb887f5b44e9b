"""Faults a scenario injects beyond the lab's own switches (`rig.lab.net` cuts the network,
`rig.power` the cabinet's supply, `rig.lab.restart_broker()` the centre's broker): noise on the
controller's serial line, a full flash on the node, its wall clock jumping. Each tool is put in
with `@pytest.mark.node_config.with_args(Tool.node_config)` before the agent starts, found again in the
test with `installed(rig, Tool)`, and taken out when the lab closes (after the pole is off).

Also here: `Nvr`, the camera recorder pushing video metadata, the load most of these faults
land on.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import random
import selectors
import subprocess
import threading
import time
import tty
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hil_tests.rig.rig import Rig

NodeSections = dict[str, dict[str, Any]]
NodeConfig = Callable[[Rig, Path], NodeSections]


class RigUnsupported(RuntimeError):
    """The rig has no way to make this fault (e.g. serial noise on a real pole's UART)."""


class _Tool(Protocol):
    def close(self) -> None: ...


ToolT = TypeVar("ToolT", bound=_Tool)

_installed: dict[int, list[_Tool]] = {}  # id(rig.lab) -> the tools put in for that lab


def _install(rig: Rig, tool: _Tool) -> None:
    """Keep `tool` for `installed()` and take it out when the lab closes: the rig fixture has
    stopped the agent and cut the power by then (its Lab is an ExitStack, run last-in first)."""
    key = id(rig.lab)
    _installed.setdefault(key, []).append(tool)

    def take_out() -> None:
        tools = _installed.get(key, [])
        if tool in tools:
            tools.remove(tool)
        if not tools:
            _installed.pop(key, None)
        tool.close()

    rig.lab.callback(take_out)


def installed(rig: Rig, kind: type[ToolT]) -> ToolT:
    """The `kind` tool this test's node_config put in."""
    for tool in _installed.get(id(rig.lab), []):
        if isinstance(tool, kind):
            return tool
    name = kind.__name__
    raise LookupError(f"no {name} on this rig: mark the test node_config.with_args({name}.node_config)")


# --- serial noise ---------------------------------------------------------------------------


@dataclass
class LineCounters:
    relayed: int = 0  # bytes passed on, either way
    injected: int = 0  # random bytes added to the line
    flipped: int = 0  # bytes passed on with a bit pattern changed
    dropped: int = 0  # bytes that never arrived


class SerialNoise:
    """The UART between the pole controller and the node, with interference on it: the link
    cable runs a metre beside the lamp's ballast and the cabinet heater's contactor, and each
    switching spike puts stray bytes on the line, garbles bytes in flight, or swallows them.

    A relay between the simulated controller's UART pty and a pty of its own, whose path the
    agent takes as `[controller] port`. Clean until told otherwise; `noisy()` turns on a steady
    rain of garbage, bit flips and drops in both directions, `spike()` adds one burst now.
    Both ends are held open, as the simulator's own line does, so neither side sees a hang-up
    when the other reopens; after a power cycle the controller's new pty is found again.
    """

    def __init__(self, controller_uart: Path, edge_port: Path, *, seed: int = 20261125) -> None:
        self.controller_uart = controller_uart
        self.edge_port = edge_port
        self.counters = LineCounters()
        self.garbage_per_s = 0.0  # random bytes added per second, each way
        self.flip = 0.0  # chance that a byte in flight is garbled
        self.drop = 0.0  # chance that a byte in flight is lost
        self.toward: frozenset[str] = frozenset({"edge", "controller"})  # which ends hear it
        self._garble = {"edge": 0, "controller": 0}  # bytes still to garble after a spike
        self._spike = 0  # random bytes to put on the line at the relay's next turn
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # the rng and counters: the relay thread and spike()
        self._edge_master, self._edge_slave = os.openpty()
        tty.setraw(self._edge_slave)
        os.set_blocking(self._edge_master, False)
        self._controller: int | None = None
        self._controller_link = (0, 0)  # the symlink (inode, mtime) we opened the pty through
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serial-noise", daemon=True)

    @classmethod
    def node_config(cls, rig: Rig, workdir: Path) -> NodeSections:
        """For `@pytest.mark.node_config`: the agent's controller port becomes the noisy line."""
        controller = getattr(rig.node, "controller", None)
        uart = getattr(controller, "uart", None)
        if not isinstance(uart, Path):
            raise RigUnsupported("serial noise needs the simulated controller's UART pty")
        noise = cls(uart, workdir / "uart-noisy")
        noise.start()
        _install(rig, noise)
        return {"controller": {"port": str(noise.edge_port)}}

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.edge_port.unlink()
        self.edge_port.symlink_to(os.ttyname(self._edge_slave))
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.edge_port.unlink()
        for fd in (self._controller, self._edge_master, self._edge_slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._controller = None

    # -- the switch

    def noisy(
        self,
        *,
        garbage_per_s: float = 40.0,
        flip: float = 0.002,
        drop: float = 0.002,
        toward: tuple[str, ...] = ("edge", "controller"),
    ) -> None:
        """Interference from now on: ~`garbage_per_s` stray bytes a second, and each byte in
        flight garbled with chance `flip` or lost with chance `drop`, on the way to `toward`."""
        self.garbage_per_s, self.flip, self.drop = garbage_per_s, flip, drop
        self.toward = frozenset(toward)

    def quiet(self) -> None:
        self.garbage_per_s = self.flip = self.drop = 0.0

    def spike(self, size: int = 48, *, garble: int = 16) -> None:
        """One switching spike, now: `size` random bytes onto the line each way, and the next
        `garble` bytes to cross it each way garbled (whatever frame is on the wire then)."""
        with self._lock:
            self._garble = dict.fromkeys(self._garble, garble)
            self._spike = size  # put on the line by the relay thread, which owns the fds

    # -- the relay (its own thread)

    def _open_controller(self) -> int | None:
        # Only a link the simulator has made since the last one (it renames a new symlink into
        # place): a link left dangling by a power cut may name someone else's pty by now.
        try:
            link = os.lstat(self.controller_uart)
            if (link.st_ino, link.st_mtime_ns) == self._controller_link:
                return None
            fd = os.open(self.controller_uart, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None
        self._controller_link = (link.st_ino, link.st_mtime_ns)
        return fd

    def _lost_controller(self) -> None:
        # The simulator went (a power cut): its UART comes back as a new pty behind the path.
        if self._controller is not None:
            with contextlib.suppress(OSError):
                os.close(self._controller)
        self._controller = None

    def _run(self) -> None:
        next_garbage = time.monotonic()
        with selectors.DefaultSelector() as selector:
            selector.register(self._edge_master, selectors.EVENT_READ, "controller")
            while not self._stop.is_set():
                if self._controller is None:
                    self._controller = self._open_controller()
                    if self._controller is None:
                        self._stop.wait(0.2)
                        continue
                    selector.register(self._controller, selectors.EVENT_READ, "edge")
                for key, _ in selector.select(timeout=0.05):
                    if not self._relay(int(key.fd), str(key.data)):
                        selector.unregister(key.fd)
                        self._lost_controller()
                        break
                now = time.monotonic()
                with self._lock:
                    size, self._spike = self._spike, 0
                if self.garbage_per_s > 0 and now >= next_garbage:
                    size += max(1, round(self.garbage_per_s * 0.1))
                    next_garbage = now + 0.1
                if size:
                    self._inject(size)

    def _relay(self, source: int, toward: str) -> bool:
        """Pass what waits on `source` on, disturbed; False when the controller's side is gone."""
        target = self._controller if toward == "controller" else self._edge_master
        try:
            data = os.read(source, 4096)
        except BlockingIOError:
            return True
        except OSError as error:
            if toward == "edge" and error.errno == errno.EIO:
                return False
            raise
        if not data:
            return toward != "edge"
        if target is not None:
            _write(target, self._disturb(data, toward) if toward in self.toward else self._pass(data))
        return True

    def _pass(self, data: bytes) -> bytes:
        self.counters.relayed += len(data)
        return data

    def _disturb(self, data: bytes, toward: str) -> bytes:
        if not (self.flip or self.drop or self._garble[toward]):
            return self._pass(data)
        out = bytearray()
        with self._lock:
            for byte in data:
                if self._garble[toward] > 0:  # in a spike's wake
                    self._garble[toward] -= 1
                    out.append(byte ^ self._rng.randrange(1, 256))
                    self.counters.flipped += 1
                    continue
                roll = self._rng.random()
                if roll < self.drop:
                    self.counters.dropped += 1
                elif roll < self.drop + self.flip:
                    out.append(byte ^ self._rng.randrange(1, 256))
                    self.counters.flipped += 1
                else:
                    out.append(byte)
            self.counters.relayed += len(out)
        return bytes(out)

    def _inject(self, size: int) -> None:
        with self._lock:
            garbage = {"edge": self._rng.randbytes(size), "controller": self._rng.randbytes(size)}
            self.counters.injected += 2 * size
        if "edge" in self.toward:
            _write(self._edge_master, garbage["edge"])
        if self._controller is not None and "controller" in self.toward:
            _write(self._controller, garbage["controller"])


def _write(fd: int, data: bytes) -> None:
    # A UART never blocks its sender: what the far side has no room for is lost.
    with contextlib.suppress(BlockingIOError, OSError):
        os.write(fd, data)


# --- a full flash ----------------------------------------------------------------------------


class SmallFlash:
    """The node's state directory on a flash of its own size: a real tmpfs of `size_mb`,
    mounted over `path`, which `fill()` packs (as a stuck OTA download or logs that nobody
    rotates fill a pole's SD card: the space goes, the files the agent holds stay) and
    `free()` empties again. Real ENOSPC and real `statvfs` numbers, as tests/edge/
    test_full_disk.py uses; mounting needs root (this machine and CI run as root).
    """

    FILLER = ".stuck-download"

    def __init__(self, path: Path, *, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False

    @classmethod
    def node_config(cls, *, size_mb: int = 24, min_free_mb: int = 8, ballast_kb: int = 2048) -> NodeConfig:
        """For `@pytest.mark.node_config`: the node's state directory on a `size_mb` flash, the
        outbox's reserve (`min_free_mb`, `ballast_kb`; docs/edge.md "Full flash") as given."""

        def mount_flash(rig: Rig, workdir: Path) -> NodeSections:
            state_dir = getattr(rig.node, "state_dir", None)
            if not isinstance(state_dir, Path):
                raise RigUnsupported("a small flash needs a node driver that names its state directory")
            if os.geteuid() != 0:
                raise RigUnsupported("mounting a tmpfs as the node's flash needs root")
            flash = cls(state_dir, size_mb=size_mb)
            flash.mount()
            _install(rig, flash)
            return {"outbox": {"min_free_mb": min_free_mb, "ballast_kb": ballast_kb}}

        return mount_flash

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", str(self.path)],
            check=True,
        )
        self.mounted = True

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False

    @property
    def free_bytes(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def fill(self, *, leave_bytes: int) -> int:
        """Take the flash's free space down to about `leave_bytes`; returns what is left."""
        want = self.free_bytes - leave_bytes
        if want > 0:
            filler = self.path / self.FILLER
            # ENOSPC: the agent wrote meanwhile; what was taken stays taken.
            with open(filler, "ab") as f, contextlib.suppress(OSError):
                os.posix_fallocate(f.fileno(), f.tell(), want)
        return self.free_bytes

    def free(self) -> None:
        """The technician deletes the stuck download."""
        (self.path / self.FILLER).unlink(missing_ok=True)


# --- a jumping wall clock --------------------------------------------------------------------


def _libfaketime() -> Path:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        raise RigUnsupported("a clock jump needs libfaketime: install the Debian package 'libfaketime'")
    return Path(found[0])


class WallClock:
    """The node's wall clock, which jumps while the agent runs: a Pi has no RTC, so it boots
    on the time it last saved and NTP steps it forward once the uplink is up, or steps it back
    when a bad server had it running ahead. The monotonic clock does not move, as on Linux.

    libfaketime preloaded into the agent (`LD_PRELOAD`), reading its offset from
    `FAKETIME_TIMESTAMP_FILE` on every call (`FAKETIME_NO_CACHE=1`), so `jump()` moves the
    agent's CLOCK_REALTIME (`time.time()`, SQLite's, OpenSSL's) at once, and nothing else on
    the machine. `FAKETIME_DONT_FAKE_MONOTONIC=1` keeps CLOCK_MONOTONIC true. (libfaketime
    0.9.10 then breaks `time.sleep()` on Python 3.11, EINVAL, upstream issue
    wolfcw/libfaketime#426; the agent sleeps only through asyncio, which is unaffected.)
    """

    def __init__(self, offset_file: Path) -> None:
        self.offset_file = offset_file
        self.offset_s = 0
        self._write()

    @classmethod
    def node_config(cls, rig: Rig, workdir: Path) -> NodeSections:
        """For `@pytest.mark.node_config`: the agent starts with libfaketime at offset 0."""
        env = getattr(rig.node, "env_extra", None)
        if not isinstance(env, dict):
            raise RigUnsupported("a clock jump needs a node driver that sets the agent's environment")
        clock = cls(workdir / "faketime-offset")
        env.update(
            {
                "LD_PRELOAD": str(_libfaketime()),
                "FAKETIME_TIMESTAMP_FILE": str(clock.offset_file),
                "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            }
        )
        _install(rig, clock)
        return {}

    def jump(self, seconds: int) -> int:
        """Step the node's clock by `seconds` (negative: back); returns its offset from true time."""
        self.offset_s += seconds
        self._write()
        return self.offset_s

    def close(self) -> None:
        self.offset_s = 0
        self._write()

    def _write(self) -> None:
        # Renamed into place: libfaketime reads the file on every clock call and must never
        # see it half written.
        self.offset_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.offset_file.with_suffix(".tmp")
        temporary.write_text(f"{self.offset_s:+d}\n")
        os.replace(temporary, self.offset_file)


# --- the load: video metadata from the NVR ---------------------------------------------------


@dataclass(frozen=True)
class Push:
    """One push's answer: `status` 0 when the node did not answer at all."""

    status: int
    body: dict[str, Any]
    retry_after: str | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Nvr:
    """The camera recorder: pushes recording segments of `camera_id` to the node's metadata
    endpoint, each numbered by its `start` (ms) so it can be traced to MQTT, and remembers which
    the node answered 2xx (docs/cameras.md: a 2xx means stored on flash)."""

    url: str  # the node's HTTP, e.g. rig.node.diag_url
    camera_id: str = "cam-1"
    first_start: int = 1_767_225_600_000  # 2026-01-01: far from any bell press's bookmarks
    accepted: set[int] = field(default_factory=set)
    answers: list[int] = field(default_factory=list)  # every push's status, 0: no answer
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def segments(self, count: int) -> list[dict[str, Any]]:
        with self._lock:
            first, self._next = self._next, self._next + count
        return [
            {
                "record": "segment",
                "camera_id": self.camera_id,
                "start": self.first_start + n * 2_000,
                "end": self.first_start + (n + 1) * 2_000,
                "bytes": 1_000_000,
                "codec": "h264",
                "width": 1920,
                "height": 1080,
                "fps": 25.0,
                "bitrate_kbps": 4000.0,
            }
            for n in range(first, first + count)
        ]

    def push(self, records: list[dict[str, Any]], *, timeout: float = 10.0) -> Push:
        request = urllib.request.Request(
            f"{self.url}/api/v1/video-metadata",
            data=json.dumps({"records": records}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = Push(response.status, json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as error:
            with error:
                answer = Push(error.code, json.loads(error.read() or b"{}"), error.headers.get("Retry-After"))
        except OSError:
            answer = Push(0, {})  # the node is down (power cut, restarting): not stored
        with self._lock:
            self.answers.append(answer.status)
            if answer.accepted:
                self.accepted.update(r["start"] for r in records)
        return answer


def video_starts(rig: Rig) -> list[tuple[int, bool]]:
    """(segment start, historical) of every video record the node published, in arrival order."""
    return [(r["start"], s.json()["historical"]) for s in rig.sent("video") for r in s.json()["records"]]


def node_status(rig: Rig) -> dict[str, Any]:
    """The node's own account of itself (its clock, link counters, outbox), as a technician's
    phone reads it on the service interface with the diagnostics PIN (docs/diagnostics.md)."""

    def call(method: str, path: str, body: dict[str, Any] | None = None, token: str = "") -> Any:
        request = urllib.request.Request(
            f"{rig.node.diag_url}/diag/api/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    token = call("POST", "login", {"pin": rig.node.pin})["token"]
    try:
        status: dict[str, Any] = call("GET", "status", token=token)
    finally:
        call("POST", "logout", token=token)
    return status
