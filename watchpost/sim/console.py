"""The simulated pole controller's serial console: the real MicroPython unix port run behind a
pty that unmodified `mpremote connect <state_dir>/console` drives as if it were a Pico on USB.

Two ptys. The *console* pty is created once and lives as long as the simulator: its slave is
what mpremote and pyserial open (through the stable symlink `<state_dir>/console`), and this
process holds both ends open so the port never disappears. The *interpreter* pty is new for
each run of the unix port, whose stdio sits on it as on a terminal. The relay copies bytes
between the two masters. When the interpreter exits (mpremote's soft reset, `sys.exit()`,
`machine.soft_reset()`) it is started again, and the console shows what a board shows on a
soft reboot; if the board was in raw REPL it comes back in raw REPL, as mpremote expects.

The link UART is a second pair of ptys, relayed the same way (`UartLine`): the firmware opens
`/dev/uart` (`<state_dir>/dev/uart`), the edge opens `<state_dir>/uart` with pyserial. Inputs
(bell, door, bell loop, temperature, supply) are set through the FIFO `/dev/control`
(`watchpost.sim.controls` writes it; firmware/hal.py's SimControl reads it).

`ConsoleRelay` is the pure part (bytes in, bytes out: which mode the REPL is in, what to hold
back while the interpreter boots, how to re-enter raw REPL); `PoleControllerSimulator` is the
I/O shell. Neighbours: `watchpost.cli` (`watchpost sim controller`) starts it;
`watchpost.deploy` and `tests/sim/` talk to it only through the console, like to a real board.

Why asyncio and not threads: the shell waits on four things at once (console bytes, the
interpreter's bytes, its exit, watchdog feeds) plus timers (the watchdog). One event loop with
fd readers and `call_later` keeps every piece of state (REPL mode, held input, the current
process) in one thread, so restarts cannot race a relay thread that still writes to the old
interpreter, and there are no locks to get wrong.

Not a sandbox: the flash directory is mounted as `/` with `VfsPosix`, which keeps ordinary
paths inside it, but `..` past the root still reaches the host. It confines firmware and
mpremote, not hostile code.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import fcntl
import logging
import os
import re
import signal
import sys
import termios
import tty
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# What the firmware sees. The flash directory is `/`; `<state_dir>/dev` is `/dev`, where the
# host side puts what the firmware opens: the watchdog FIFO, the link UART, the input control.
RESET_CAUSE_FILE = ".reset_cause"
ENV_RESET_CAUSE = "WATCHPOST_RESET_CAUSE"
ENV_WATCHDOG = "WATCHPOST_WDT"
WATCHDOG_DEVICE = "/dev/wdt"
ENV_UART = "WATCHPOST_UART"
UART_DEVICE = "/dev/uart"
ENV_CONTROL = "WATCHPOST_CONTROL"
CONTROL_DEVICE = "/dev/control"

# What a board prints. mpremote waits for exactly these.
SOFT_REBOOT_LINE = b"MPY: soft reboot\r\n"
RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'
FRIENDLY_PROMPT = b">>> "
CTRL_A = b"\x01"

# Lines the start-up code prints for the relay alone; they never reach the console. The
# record separator (0x1E) does not occur in firmware output or the REPL's own text.
MARK_BOOTED = b"\x1ewatchpost-sim:booted\x1e"
MARK_REPL = b"\x1ewatchpost-sim:repl\x1e"
MARK_EXIT = b"\x1ewatchpost-sim:exit\x1e"
_STARTUP_MARKS = (MARK_REPL, MARK_EXIT)

# Console output nobody reads is dropped beyond this, as a USB CDC port with no host drops it.
CONSOLE_BACKLOG_LIMIT = 16 * 1024
# Link UART bytes the far side has not taken yet, per direction, beyond what the pty itself
# buffers. A UART never blocks its sender: with nobody reading, the oldest bytes are lost, as
# they would be on the wire. Several seconds of a quiet link fit (heartbeats, one alarm).
UART_BACKLOG_LIMIT = 4 * 1024

DEFAULT_HEAPSIZE = "128K"
FAILED_BOOT_PAUSE = 1.0  # seconds before restarting an interpreter that died while booting
HEAPSIZE_PATTERN = re.compile(r"^[1-9][0-9]*w?[KM]?$")


class ResetCause(enum.StrEnum):
    POWER_ON = "power-on"
    SOFT = "soft"
    WATCHDOG = "watchdog"


class ReplMode(enum.Enum):
    FRIENDLY = "friendly"
    RAW = "raw"


class Phase(enum.Enum):
    STOPPED = "stopped"  # no interpreter: console input is held
    BOOTING = "booting"  # started, start-up code not yet running: output dropped, input held
    RUNNING = "running"  # boot.py, main.py or the REPL: bytes flow both ways
    ENTERING_RAW = "entering-raw"  # REPL banner swallowed until its prompt, then Ctrl-A


@dataclass(frozen=True)
class Relayed:
    """What one chunk of interpreter output turns into."""

    to_console: bytes = b""
    to_interpreter: bytes = b""
    exit_requested: bool = False  # boot.py or main.py raised SystemExit: restart (soft)


def _held_suffix(data: bytes, marks: tuple[bytes, ...]) -> int:
    """Length of the longest tail of `data` that may be the start of one of `marks`."""
    longest = max(len(mark) for mark in marks) - 1
    for size in range(min(longest, len(data)), 0, -1):
        tail = data[-size:]
        if any(mark.startswith(tail) for mark in marks):
            return size
    return 0


class ConsoleRelay:
    """The console's rules, without I/O: feed it bytes from either side and the interpreter's
    starts and stops; it says what to write where."""

    def __init__(self) -> None:
        self.phase = Phase.STOPPED
        self.mode = ReplMode.FRIENDLY  # as last seen in the interpreter's output
        self.boot_mode = ReplMode.FRIENDLY  # what the current interpreter was started into
        self._held_input = bytearray()
        self._held_output = b""
        self._startup_active = False  # start-up code still running: scan for its marks
        self._banner_tail = b""
        self._last_console_byte = b"\n"
        # What the interpreter printed before the start-up code ran (an error, if it died).
        self.failed_boot_output = b""

    # -- lifecycle -------------------------------------------------------------------------

    def interpreter_started(self) -> ReplMode:
        """A new interpreter is starting; returns the REPL mode it must boot into."""
        self.phase = Phase.BOOTING
        self.boot_mode = self.mode
        self.failed_boot_output = b""
        self._held_output = b""
        self._startup_active = False
        return self.boot_mode

    def interpreter_stopped(self, cause: ResetCause) -> bytes:
        """The interpreter has gone; returns what the console shows before the next boot."""
        self.phase = Phase.STOPPED
        self._held_output = b""
        if cause is not ResetCause.SOFT:
            # A hard reset (watchdog, power) comes back in the friendly REPL and prints
            # nothing of its own: the USB port re-enumerates on a real board.
            self.mode = ReplMode.FRIENDLY
            return b""
        lead = b"" if self._last_console_byte == b"\n" else b"\r\n"
        self._last_console_byte = b"\n"
        return lead + SOFT_REBOOT_LINE

    # -- console -> interpreter ------------------------------------------------------------

    def console_input(self, data: bytes) -> bytes:
        """Bytes typed on the console; returns what to send to the interpreter now. Input is
        held while no interpreter is ready: a Ctrl-C sent during its start-up would be lost."""
        booting_into_raw = self.boot_mode is ReplMode.RAW and self._startup_active
        if self.phase is Phase.RUNNING and not booting_into_raw:
            return data
        self._held_input += data
        return b""

    def _release_input(self) -> bytes:
        released = bytes(self._held_input)
        self._held_input.clear()
        return released

    # -- interpreter -> console ------------------------------------------------------------

    def interpreter_output(self, data: bytes) -> Relayed:
        if self.phase is Phase.BOOTING:
            self.failed_boot_output = (self.failed_boot_output + data)[-2048:]
        data = self._held_output + data
        self._held_output = b""
        to_console = bytearray()
        to_interpreter = bytearray()
        while data:
            if self.phase is Phase.BOOTING:
                at = data.find(MARK_BOOTED)
                if at < 0:
                    self._held_output = data[-(len(MARK_BOOTED) - 1) :]
                    break
                data = data[at + len(MARK_BOOTED) :]
                self.phase = Phase.RUNNING
                self._startup_active = True
                if self.boot_mode is ReplMode.FRIENDLY:
                    # Typed-ahead bytes (mpremote's Ctrl-C) may now interrupt main.py. Booting
                    # into raw REPL they wait for it: at the friendly prompt, mpremote's
                    # raw-paste request (Ctrl-E...) would mean something else.
                    to_interpreter += self._release_input()
            elif self.phase is Phase.ENTERING_RAW:
                at = data.find(FRIENDLY_PROMPT)
                if at < 0:
                    self._held_output = data[-(len(FRIENDLY_PROMPT) - 1) :]
                    break
                data = data[at + len(FRIENDLY_PROMPT) :]
                self.phase = Phase.RUNNING
                to_interpreter += CTRL_A + self._release_input()
            elif self.phase is Phase.RUNNING and self._startup_active:
                found = [(data.find(mark), mark) for mark in _STARTUP_MARKS if mark in data]
                if not found:
                    held = _held_suffix(data, _STARTUP_MARKS)
                    to_console += self._to_console(data[: len(data) - held])
                    self._held_output = data[len(data) - held :]
                    break
                at, mark = min(found)
                to_console += self._to_console(data[:at])
                data = data[at + len(mark) :]
                self._startup_active = False
                if mark == MARK_EXIT:
                    return Relayed(bytes(to_console), bytes(to_interpreter), exit_requested=True)
                if self.boot_mode is ReplMode.RAW:
                    # A board soft-reset from raw REPL comes back in raw REPL without a
                    # banner: swallow the unix port's friendly banner and type Ctrl-A.
                    self.phase = Phase.ENTERING_RAW
            elif self.phase is Phase.RUNNING:
                to_console += self._to_console(data)
                break
            else:  # STOPPED: late bytes of an interpreter already gone
                break
        return Relayed(bytes(to_console), bytes(to_interpreter))

    def _to_console(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._track_mode(data)
        # A board's stdout turns "\n" into "\r\n"; the unix port writes a bare "\n" for
        # print() but "\r\n" in the REPL's own text, so convert only bare ones.
        cooked = re.sub(rb"(?<!\r)\n", b"\r\n", data)
        if self._last_console_byte == b"\r" and data.startswith(b"\n"):
            cooked = cooked[1:]
        self._last_console_byte = data[-1:]
        return cooked

    def _track_mode(self, data: bytes) -> None:
        window = self._banner_tail + data
        raw_at = window.rfind(RAW_REPL_BANNER)
        friendly_at = window.rfind(FRIENDLY_BANNER)
        if raw_at > friendly_at:
            self.mode = ReplMode.RAW
        elif friendly_at > raw_at:
            self.mode = ReplMode.FRIENDLY
        self._banner_tail = window[-max(len(RAW_REPL_BANNER), len(FRIENDLY_BANNER)) :]


def startup_code(*, flash_dir: Path, dev_dir: Path, mode: ReplMode) -> str:
    """MicroPython source run by `micropython -i -c`: mount the flash as `/`, then run boot.py
    and (in the friendly REPL only, as on a board) main.py in the REPL's globals."""
    run_main = "_wp_run('main.py')\n" if mode is ReplMode.FRIENDLY else ""
    return (
        "import vfs as _wp_vfs, os as _wp_os, sys as _wp_sys\n"
        "_wp_vfs.umount('/')\n"
        f"_wp_vfs.mount(_wp_vfs.VfsPosix({str(flash_dir)!r}), '/')\n"
        f"_wp_vfs.mount(_wp_vfs.VfsPosix({str(dev_dir)!r}), '/dev')\n"
        "_wp_os.chdir('/')\n"
        "_wp_sys.path[:] = ['', '.frozen', '/lib']\n"
        f"_wp_sys.stdout.write({MARK_BOOTED.decode()!r})\n"
        "def _wp_run(name):\n"
        "    try:\n"
        "        f = open(name)\n"
        "    except OSError:\n"
        "        return\n"
        "    with f:\n"
        "        src = f.read()\n"
        "    try:\n"
        "        exec(compile(src, name, 'exec'), globals())\n"
        "    except SystemExit:\n"
        # `-i` would carry on into the REPL after SystemExit: ask the relay for a restart.
        f"        _wp_sys.stdout.write({MARK_EXIT.decode()!r})\n"
        "        import time\n"
        "        while True:\n"
        "            time.sleep(1)\n"
        "    except BaseException as e:\n"
        "        _wp_sys.print_exception(e)\n"
        "_wp_run('boot.py')\n"
        f"{run_main}"
        f"_wp_sys.stdout.write({MARK_REPL.decode()!r})\n"
        "del _wp_run, _wp_vfs, _wp_os, _wp_sys\n"
    )


@dataclass(frozen=True, kw_only=True)
class SimulatorSettings:
    state_dir: Path
    micropython: Path
    # The unix port on x86_64 has 8-byte words, so objects take about twice the heap they
    # take on the RP2040: 128K here is a tight 64K on the Pico (whose real heap is ~190K).
    # At 64K here, importing the 19 KB link codec from main.py already fails (fragmentation).
    heapsize: str = DEFAULT_HEAPSIZE
    # Extra environment for the firmware, e.g. WATCHPOST_TELEMETRY_MS=1000. WATCHPOST_UART and
    # WATCHPOST_CONTROL are set to the simulator's devices unless given here.
    firmware_env: Mapping[str, str] = field(default_factory=dict)
    # Seconds without a feed, after the first feed, before the host-side watchdog resets
    # the controller. None: no watchdog.
    watchdog_timeout: float | None = None

    def __post_init__(self) -> None:
        if not HEAPSIZE_PATTERN.match(self.heapsize):
            raise ValueError(f"heap size {self.heapsize!r}: expected digits with K or M, e.g. 64K")
        if self.watchdog_timeout is not None and self.watchdog_timeout <= 0:
            raise ValueError(f"watchdog timeout {self.watchdog_timeout}: expected seconds > 0")

    @property
    def console_path(self) -> Path:
        return self.state_dir / "console"

    @property
    def flash_dir(self) -> Path:
        return self.state_dir / "flash"

    @property
    def dev_dir(self) -> Path:
        return self.state_dir / "dev"

    @property
    def uart_path(self) -> Path:
        """The link UART as the edge sees it (open it with pyserial)."""
        return self.state_dir / "uart"

    @property
    def control_path(self) -> Path:
        """The FIFO of input commands (see `watchpost.sim.controls`)."""
        return self.dev_dir / "control"


class _Outbox:
    """Bytes waiting for a non-blocking fd; written when it is writable."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, *, limit: int | None) -> None:
        self._loop = loop
        self._fd = fd
        self._limit = limit
        self._pending = bytearray()
        self.dropped = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        idle = not self._pending
        self._pending += data
        if self._limit is not None and len(self._pending) > self._limit:
            excess = len(self._pending) - self._limit
            del self._pending[:excess]
            self.dropped += excess
        if idle:
            self._flush()

    def _flush(self) -> None:
        try:
            written = os.write(self._fd, self._pending)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            # The reader is gone (an interpreter that just exited): nothing to deliver to.
            self._pending.clear()
            written = 0
        del self._pending[:written]
        if self._pending:
            self._loop.add_writer(self._fd, self._flush)
        else:
            self._loop.remove_writer(self._fd)

    def close(self) -> None:
        self._loop.remove_writer(self._fd)
        self._pending.clear()


def _replace_symlink(link: Path, target: str) -> None:
    temporary = link.with_name(link.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    temporary.replace(link)


def _open_raw_pty(*, nonblocking_reads: bool) -> tuple[int, int]:
    """A pty pair with its slave raw; with `nonblocking_reads`, VMIN=0 and VTIME=0, so a read
    of the slave with nothing waiting returns 0 bytes at once (the unix port has no fcntl to
    make a file non-blocking; these settings belong to the tty, so they hold for whoever opens
    it as long as we keep it open)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    if nonblocking_reads:
        attrs = termios.tcgetattr(slave)
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave


class UartLine:
    """The link UART between the simulated controller and the edge: two pty pairs whose
    masters this process relays. The firmware opens one slave (`<state_dir>/dev/uart`), the
    edge the other (`<state_dir>/uart`).

    Why two ptys and a relay rather than one pty with the edge on its master: a pty master
    has no path pyserial could open, and the edge must see a tty like `/dev/ttyAMA0`. The
    relay also makes the line behave like a UART rather than a pipe: both slaves are held
    open here, so neither side sees EIO or EOF when the other restarts (an interpreter
    reset, an edge reconnect), a sender never blocks on a reader that stopped reading (bytes
    beyond UART_BACKLOG_LIMIT are dropped), and what the edge sent while the controller was
    in reset is discarded, as a real UART's receive FIFO is lost on reset."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, device_link: Path, host_link: Path) -> None:
        self._loop = loop
        self.device_link = device_link
        self.host_link = host_link
        self._device_master, self._device_slave = _open_raw_pty(nonblocking_reads=True)
        self._host_master, self._host_slave = _open_raw_pty(nonblocking_reads=False)
        _replace_symlink(device_link, os.ttyname(self._device_slave))
        _replace_symlink(host_link, os.ttyname(self._host_slave))
        self._to_host = _Outbox(loop, self._host_master, limit=UART_BACKLOG_LIMIT)
        self._to_device = _Outbox(loop, self._device_master, limit=UART_BACKLOG_LIMIT)
        loop.add_reader(self._device_master, self._relay, self._device_master, self._to_host)
        loop.add_reader(self._host_master, self._relay, self._host_master, self._to_device)
        log.info("uart %s <-> %s", device_link, host_link)

    @property
    def dropped(self) -> int:
        """Bytes lost because the far side did not read them in time."""
        return self._to_host.dropped + self._to_device.dropped

    def _relay(self, source: int, outbox: _Outbox) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO cannot happen while we hold the slave, but be calm
            if exc.errno == errno.EIO:
                return
            raise
        outbox.write(data)

    def controller_reset(self) -> None:
        """Drop what waits for the controller: its receive FIFO does not survive a reset."""
        termios.tcflush(self._device_slave, termios.TCIFLUSH)

    def close(self) -> None:
        for path in (self.device_link, self.host_link):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for outbox in (self._to_host, self._to_device):
            outbox.close()
        for fd in (self._device_master, self._host_master):
            self._loop.remove_reader(fd)
        for fd in (self._device_master, self._device_slave, self._host_master, self._host_slave):
            os.close(fd)


def _make_controlling_tty() -> None:
    # Runs in the child between fork and exec (after setsid): the pty becomes its terminal,
    # so Ctrl-C typed while code runs reaches the unix port as SIGINT, as on a terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _configure_interpreter_tty(fd: int) -> None:
    attrs = termios.tcgetattr(fd)
    # No echo or line editing (the unix port's REPL does its own), Ctrl-C as a signal while
    # code runs, and no output processing: the relay converts newlines itself.
    attrs[0] &= ~(termios.ICRNL | termios.IXON | termios.BRKINT | termios.INPCK | termios.ISTRIP)
    attrs[1] &= ~termios.OPOST
    attrs[3] = termios.ISIG
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class PoleControllerSimulator:
    """Runs the unix port behind `<state_dir>/console` until `request_stop()`."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.relay = ConsoleRelay()
        self.restarts: list[ResetCause] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._console_master = -1
        self._console_slave = -1
        self._console_out: _Outbox | None = None
        self._interpreter_fd = -1
        self._interpreter_out: _Outbox | None = None
        self._interpreter_gone: asyncio.Future[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._next_cause = ResetCause.SOFT
        self._watchdog_fd = -1
        self._watchdog_keepalive_fd = -1
        self._watchdog_timer: asyncio.TimerHandle | None = None
        self._uart: UartLine | None = None
        self._control_fd = -1

    # -- public ----------------------------------------------------------------------------

    async def run(self, *, on_ready: Callable[[Path], None] | None = None) -> None:
        """Open the console, then run and restart the interpreter until stopped."""
        self._loop = asyncio.get_running_loop()
        self._prepare_state_dir()
        self._open_console()
        self._open_watchdog()
        self._uart = UartLine(
            self._loop,
            device_link=self.settings.dev_dir / "uart",
            host_link=self.settings.uart_path,
        )
        self._open_control()
        try:
            if on_ready is not None:
                on_ready(self.settings.console_path)
            cause = ResetCause.POWER_ON
            while not self._stopping:
                cause = await self._run_interpreter(cause)
        finally:
            self._close_control()
            if self._uart is not None:
                self._uart.close()
            self._close_watchdog()
            self._close_console()
            self._stopped.set()

    def request_stop(self) -> None:
        """Stop the interpreter for good and close the console (safe from signal handlers)."""
        self._stopping = True
        self._kill_interpreter()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- the console -----------------------------------------------------------------------

    def _prepare_state_dir(self) -> None:
        settings = self.settings
        settings.flash_dir.mkdir(parents=True, exist_ok=True)
        settings.dev_dir.mkdir(parents=True, exist_ok=True)

    def _open_console(self) -> None:
        assert self._loop is not None
        master, slave = os.openpty()
        # Raw: bytes pass unchanged and, above all, are not echoed back to the relay.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._console_master, self._console_slave = master, slave
        link = self.settings.console_path
        temporary = link.with_name(link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(os.ttyname(slave))
        temporary.replace(link)
        self._console_out = _Outbox(self._loop, master, limit=CONSOLE_BACKLOG_LIMIT)
        self._loop.add_reader(master, self._on_console_readable)
        log.info("console %s -> %s", link, os.ttyname(slave))

    def _close_console(self) -> None:
        assert self._loop is not None
        with contextlib.suppress(FileNotFoundError):
            self.settings.console_path.unlink()
        if self._console_out is not None:
            self._console_out.close()
        self._loop.remove_reader(self._console_master)
        os.close(self._console_master)
        os.close(self._console_slave)

    def _on_console_readable(self) -> None:
        try:
            data = os.read(self._console_master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO cannot happen while we hold the slave, but be calm
            if exc.errno == errno.EIO:
                return
            raise
        forward = self.relay.console_input(data)
        if forward and self._interpreter_out is not None:
            self._interpreter_out.write(forward)

    # -- the interpreter -------------------------------------------------------------------

    def _write_reset_cause(self, cause: ResetCause) -> None:
        path = self.settings.flash_dir / RESET_CAUSE_FILE
        temporary = path.with_name(path.name + ".new")
        temporary.write_text(cause.value)
        temporary.replace(path)

    def _interpreter_env(self, cause: ResetCause) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.firmware_env)
        env[ENV_RESET_CAUSE] = cause.value
        env.setdefault(ENV_UART, UART_DEVICE)
        env.setdefault(ENV_CONTROL, CONTROL_DEVICE)
        if self.settings.watchdog_timeout is not None:
            env[ENV_WATCHDOG] = WATCHDOG_DEVICE
        return env

    async def _run_interpreter(self, cause: ResetCause) -> ResetCause:
        """One life of the interpreter, from start to exit; returns the cause of the reset."""
        assert self._loop is not None
        assert self._console_out is not None
        settings = self.settings
        self._write_reset_cause(cause)
        if self._uart is not None:
            self._uart.controller_reset()
        mode = self.relay.interpreter_started()
        code = startup_code(
            flash_dir=settings.flash_dir.resolve(), dev_dir=settings.dev_dir.resolve(), mode=mode
        )
        master, slave = os.openpty()
        _configure_interpreter_tty(slave)
        self._next_cause = ResetCause.SOFT
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(settings.micropython),
                "-X",
                f"heapsize={settings.heapsize}",
                "-i",
                "-c",
                code,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=self._interpreter_env(cause),
                start_new_session=True,
                preexec_fn=_make_controlling_tty,
            )
        finally:
            os.close(slave)
        log.info("interpreter pid %d started (reset cause %s, %s REPL)", self._process.pid, cause, mode.value)
        os.set_blocking(master, False)
        self._interpreter_fd = master
        self._interpreter_out = _Outbox(self._loop, master, limit=None)
        self._interpreter_gone = self._loop.create_future()
        self._loop.add_reader(master, self._on_interpreter_readable)
        if self._stopping:  # a stop request raced the start
            self._kill_interpreter()
        try:
            await self._interpreter_gone
            await self._process.wait()
        finally:
            self._loop.remove_reader(master)
            self._interpreter_out.close()
            self._interpreter_out = None
            os.close(master)
            self._interpreter_fd = -1
            self._disarm_watchdog()
        next_cause = self._next_cause
        returncode = self._process.returncode
        log.info("interpreter exited with %s; next reset cause %s", returncode, next_cause)
        self._process = None
        if self._stopping:
            return next_cause
        if self.relay.phase is Phase.BOOTING:
            # It died before its start-up code ran (bad heap size, broken binary): say why,
            # and pause, rather than restart it as fast as the machine allows.
            log.error(
                "interpreter died before booting (exit %s): %s",
                returncode,
                self.relay.failed_boot_output.decode(errors="replace").strip() or "(no output)",
            )
            await asyncio.sleep(FAILED_BOOT_PAUSE)
        self.restarts.append(next_cause)
        self._console_out.write(self.relay.interpreter_stopped(next_cause))
        return next_cause

    def _on_interpreter_readable(self) -> None:
        try:
            data = os.read(self._interpreter_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:  # every holder of the slave is gone: the interpreter has exited
            self._loop_remove_interpreter_reader()
            if self._interpreter_gone is not None and not self._interpreter_gone.done():
                self._interpreter_gone.set_result(None)
            return
        relayed = self.relay.interpreter_output(data)
        if self._console_out is not None:
            self._console_out.write(relayed.to_console)
        if relayed.to_interpreter and self._interpreter_out is not None:
            self._interpreter_out.write(relayed.to_interpreter)
        if relayed.exit_requested:
            self._kill_interpreter()

    def _loop_remove_interpreter_reader(self) -> None:
        if self._loop is not None and self._interpreter_fd >= 0:
            self._loop.remove_reader(self._interpreter_fd)

    def _kill_interpreter(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        # Its own session and process group: kill whatever it may have started too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    # -- the input control FIFO -------------------------------------------------------------
    # Held open read-write here and never read: as a writer it keeps the firmware's open()
    # from blocking and its reads from seeing end-of-file; as a reader it lets
    # `watchpost.sim.controls` open the FIFO without blocking whether or not an interpreter
    # runs. Commands written while none runs wait for the next one.

    def _open_control(self) -> None:
        fifo = self.settings.control_path
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        os.mkfifo(fifo)
        self._control_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)

    def _close_control(self) -> None:
        if self._control_fd >= 0:
            os.close(self._control_fd)
            self._control_fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.settings.control_path.unlink()

    # -- the host-side watchdog ------------------------------------------------------------
    # The firmware feeds it by writing a byte to the FIFO named in $WATCHPOST_WDT. It arms at
    # the first feed after a reset (as the firmware enables a hardware WDT), and bites when
    # no feed came for `watchdog_timeout` seconds: the interpreter is killed and restarted
    # with reset cause `watchdog`. It lives out here because a watchdog inside the firmware
    # cannot fire while the firmware is stuck.

    def _open_watchdog(self) -> None:
        assert self._loop is not None
        if self.settings.watchdog_timeout is None:
            return
        fifo = self.settings.dev_dir / "wdt"
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        os.mkfifo(fifo)
        self._watchdog_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the FIFO from reporting end-of-file between firmware feeds.
        self._watchdog_keepalive_fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        self._loop.add_reader(self._watchdog_fd, self._on_watchdog_feed)

    def _close_watchdog(self) -> None:
        assert self._loop is not None
        self._disarm_watchdog()
        if self._watchdog_fd >= 0:
            self._loop.remove_reader(self._watchdog_fd)
            os.close(self._watchdog_fd)
            os.close(self._watchdog_keepalive_fd)
            self._watchdog_fd = self._watchdog_keepalive_fd = -1

    def _on_watchdog_feed(self) -> None:
        assert self._loop is not None
        assert self.settings.watchdog_timeout is not None
        try:
            fed = os.read(self._watchdog_fd, 4096)
        except BlockingIOError:
            return
        if not fed or self._process is None:
            return
        self._disarm_watchdog()
        self._watchdog_timer = self._loop.call_later(self.settings.watchdog_timeout, self._watchdog_bite)

    def _disarm_watchdog(self) -> None:
        if self._watchdog_timer is not None:
            self._watchdog_timer.cancel()
            self._watchdog_timer = None

    def _watchdog_bite(self) -> None:
        self._watchdog_timer = None
        log.warning("watchdog: no feed for %s s, resetting the controller", self.settings.watchdog_timeout)
        self._next_cause = ResetCause.WATCHDOG
        self._kill_interpreter()


def default_micropython() -> Path:
    """The unix port installed beside this Python (the `sim` extra)."""
    return Path(sys.executable).parent / "micropython"


async def run_until_signalled(settings: SimulatorSettings, *, on_ready: Callable[[Path], None]) -> None:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    simulator = PoleControllerSimulator(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, simulator.request_stop)
    try:
        await simulator.run(on_ready=on_ready)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
