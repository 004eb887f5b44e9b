"""Deploy pole controller firmware: copy it with the unmodified `mpremote` command, check every
file's SHA-256 on the device, reset, and wait for the firmware's ready line.

The same steps serve a Pico on USB and the simulated controller (`watchpost.sim.console`):
both are a serial port with a MicroPython REPL behind it. The flash gets the slot layout that
OTA updates use (docs/firmware.md, "Slots"): the boot selector `firmware/selector.py` as
`/main.py`, the firmware in slot `/a`, and `/slot` saying "a". `slot_files()` is what goes into
one slot, for `watchpost ota build` too. mpremote does the copying and runs
the hashing snippet; this module reads the port itself (pyserial) only to watch the reboot,
because mpremote's `soft-reset` leaves a board in raw REPL, where main.py does not run.
Neighbours: `watchpost.cli` (`watchpost firmware deploy`), `protocols/link.py` (copied as is).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import serial  # type: ignore[import-untyped]  # pyserial ships no type hints

import protocols.link
from edge.controller import firmware_update

READY_PATTERN = re.compile(rb"watchpost-controller (\S+) ready[^\r\n]*")
REPL_BANNER = b'Type "help()" for more information.'  # main.py has ended
VERSION_NAME = "FIRMWARE_VERSION"
SELECTOR_NAME = "selector.py"  # in the firmware directory; /main.py on the device, in no slot
FACTORY_SLOT = "a"
SLOT_STATE = "/slot"
MPREMOTE_TIMEOUT = 120.0

# Exit codes of `watchpost firmware deploy`, one per thing the technician must fix.
EXIT_SETUP = 2  # no port, no mpremote, no firmware source
EXIT_COPY = 3  # mpremote failed to talk to the board or to copy
EXIT_HASH = 4  # a file on the board differs from the release
EXIT_VERSION = 5  # the board came up with another firmware version
EXIT_TIMEOUT = 6  # the board did not come up


class DeployError(Exception):
    """A deployment failed; `str()` tells the technician what to do, `exit_code` which step."""

    exit_code = EXIT_SETUP


class PortMissingError(DeployError):
    def __init__(self, port: str) -> None:
        self.port = port
        super().__init__(f"serial port {port} does not exist: is the controller plugged in and powered?")


class MpremoteMissingError(DeployError):
    def __init__(self, looked_in: Sequence[str]) -> None:
        self.looked_in = list(looked_in)
        super().__init__(
            f"mpremote not found (looked in {', '.join(self.looked_in)}): "
            "install it with pip install 'watchpost[firmware]'"
        )


class FirmwareSourceError(DeployError):
    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}")


class MpremoteFailedError(DeployError):
    exit_code = EXIT_COPY

    def __init__(self, step: str, returncode: int, output: str) -> None:
        self.step = step
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-5:])
        super().__init__(f"mpremote failed while {step} (exit {returncode}):\n{tail}")


class HashMismatchError(DeployError):
    exit_code = EXIT_HASH

    def __init__(self, mismatches: Mapping[str, tuple[str, str]]) -> None:
        self.mismatches = dict(mismatches)  # device path -> (expected, found)
        lines = [
            f"  {path}: expected {want[:16]}…, found {got[:16]}…" for path, (want, got) in mismatches.items()
        ]
        names = ", ".join(self.mismatches)
        super().__init__(f"the copy on the device differs for {names}; deploy again:\n" + "\n".join(lines))


class FirmwareStoppedError(DeployError):
    exit_code = EXIT_TIMEOUT

    def __init__(self, expected: str, seen: str) -> None:
        self.expected = expected
        self.seen = seen
        tail = "\n".join(seen.strip().splitlines()[-8:])
        super().__init__(
            f"main.py ended before printing 'watchpost-controller {expected} ready' "
            f"(the REPL came up); the console showed:\n{tail}"
        )


class VersionMismatchError(DeployError):
    exit_code = EXIT_VERSION

    def __init__(self, expected: str, found: str, line: str) -> None:
        self.expected = expected
        self.found = found
        self.line = line
        super().__init__(f"the controller came up with firmware {found}, expected {expected}: {line!r}")


class ReadyTimeoutError(DeployError):
    exit_code = EXIT_TIMEOUT

    def __init__(self, expected: str, timeout: float, seen: str) -> None:
        self.expected = expected
        self.timeout = timeout
        self.seen = seen
        tail = "\n".join(seen.strip().splitlines()[-8:]) or "(nothing)"
        super().__init__(
            f"no 'watchpost-controller {expected} ready' line within {timeout:g} s after the reset; "
            f"the console showed:\n{tail}"
        )


@dataclass(frozen=True)
class FirmwareFile:
    source: Path
    device_path: str  # absolute, on the device: "/bell.py"
    size: int
    sha256: str


@dataclass(frozen=True)
class DeployReport:
    port: str
    version: str
    files: tuple[FirmwareFile, ...]
    ready_line: str
    seconds: float


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def repo_firmware_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "firmware"


def link_codec_path() -> Path:
    return Path(protocols.link.__file__)


def firmware_version(source: Path) -> str:
    """FIRMWARE_VERSION from `<source>/version.py`, read without importing it."""
    version_file = source / "version.py"
    try:
        tree = ast.parse(version_file.read_text(encoding="utf-8"), filename=str(version_file))
    except (OSError, SyntaxError) as exc:
        raise FirmwareSourceError(version_file, f"cannot read the firmware version: {exc}") from exc
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id == VERSION_NAME for target in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise FirmwareSourceError(version_file, f'no {VERSION_NAME} = "x.y.z" assignment')


def slot_sources(source: Path, link_codec: Path) -> list[tuple[str, Path]]:
    """(path inside a slot, file) for every `*.py` under `source` but the boot selector, in
    sorted order, then the link codec as `link.py`."""
    if not source.is_dir():
        raise FirmwareSourceError(source, "no such firmware directory (pass --source)")
    pairs = [
        (path.relative_to(source).as_posix(), path)
        for path in sorted(source.rglob("*.py"))
        if "__pycache__" not in path.relative_to(source).parts
    ]
    pairs = [(inside, path) for inside, path in pairs if inside != SELECTOR_NAME]
    if any(inside == "link.py" for inside, _ in pairs):
        raise FirmwareSourceError(source / "link.py", "collides with the link codec copied from protocols/")
    pairs.append(("link.py", link_codec))
    return pairs


def slot_files(source: Path | None = None, link_codec: Path | None = None) -> dict[str, bytes]:
    """The files of one firmware slot: path inside the slot ("main.py", "drivers/lamp.py",
    "link.py") -> content. `version.py` holds the one assignment FIRMWARE_VERSION = "...", so
    a release tool may stamp it."""
    pairs = slot_sources(source or repo_firmware_dir(), link_codec or link_codec_path())
    return {inside: path.read_bytes() for inside, path in pairs}


def selector_path(source: Path) -> Path:
    """The boot selector: the firmware directory's own, else this checkout's."""
    own = source / SELECTOR_NAME
    return own if own.is_file() else repo_firmware_dir() / SELECTOR_NAME


def collect_firmware(source: Path, link_codec: Path, *, slot: str = FACTORY_SLOT) -> list[FirmwareFile]:
    """What a deploy writes: the slot's files under `/<slot>/`, then the boot selector as
    `/main.py` (last, so a copy cut short leaves the old selector)."""
    pairs = [(path, f"/{slot}/{inside}") for inside, path in slot_sources(source, link_codec)]
    pairs.append((selector_path(source), "/main.py"))
    return [
        FirmwareFile(source=path, device_path=device, size=path.stat().st_size, sha256=sha256_of(path))
        for path, device in pairs
    ]


def install_into(flash: Path, source: Path | None = None, *, slot: str = FACTORY_SLOT) -> None:
    """Write the slot layout straight into a flash directory on this machine (the simulated
    controller's), as a deploy would leave it."""
    source = source or repo_firmware_dir()
    for f in collect_firmware(source, link_codec_path(), slot=slot):
        target = flash / f.device_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.source, target)
    state = flash / SLOT_STATE.lstrip("/")
    temporary = state.with_name(state.name + ".new")
    temporary.write_text(slot)
    temporary.replace(state)


def slot_state_snippet(slot: str) -> str:
    # Runs on the device: the selector's state file, written as the selector writes it
    # (relative names from the root: firmware/selector.py says why).
    name = SLOT_STATE.lstrip("/")
    return (
        "import os\n"
        "os.chdir('/')\n"
        f"f = open({name + '.new'!r}, 'w')\n"
        f"f.write({slot!r})\n"
        "f.close()\n"
        f"os.rename({name + '.new'!r}, {name!r})\n"
    )


def find_mpremote() -> str:
    beside = Path(sys.executable).parent / "mpremote"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpremote")
    if found is None:
        raise MpremoteMissingError([str(beside.parent), "PATH"])
    return found


def run_mpremote(mpremote: str, port: str, actions: Sequence[str], *, step: str) -> str:
    """One mpremote invocation (actions may be chained with "+"); returns its stdout."""
    try:
        result = subprocess.run(
            [mpremote, "connect", port, *actions],
            capture_output=True,
            text=True,
            timeout=MPREMOTE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise MpremoteFailedError(step, -1, f"no answer within {MPREMOTE_TIMEOUT:g} s") from exc
    if result.returncode != 0:
        raise MpremoteFailedError(step, result.returncode, result.stdout + result.stderr)
    return result.stdout


def copy_files(mpremote: str, port: str, files: Sequence[FirmwareFile]) -> None:
    """Create the directories, then copy every file, in one mpremote session."""
    directories = sorted(
        {str(parent) for f in files for parent in PurePosixPath(f.device_path).parents if str(parent) != "/"},
        key=len,
    )
    actions: list[str] = []
    if directories:
        make_dirs = (
            "import os\n"
            f"for d in {directories!r}:\n"
            "    try:\n"
            "        os.mkdir(d)\n"
            "    except OSError:\n"
            "        pass\n"
        )
        actions += ["exec", make_dirs, "+"]
    for f in files:
        actions += ["fs", "cp", str(f.source), ":" + f.device_path, "+"]
    run_mpremote(mpremote, port, actions[:-1], step="copying the firmware")


def device_hashes(mpremote: str, port: str, paths: Sequence[str]) -> dict[str, str]:
    """SHA-256 of each path as the device reads it ("missing" when it cannot open it)."""
    output = run_mpremote(
        mpremote, port, ["exec", firmware_update.hashing_code(paths)], step="hashing the files on the device"
    )
    return firmware_update.device_hashes(output)


def verify_hashes(mpremote: str, port: str, expected: Mapping[str, str]) -> None:
    """Raise HashMismatchError naming every device path whose SHA-256 is not the expected one."""
    found = device_hashes(mpremote, port, list(expected))
    mismatches = {
        path: (want, found.get(path, "no answer"))
        for path, want in expected.items()
        if found.get(path) != want
    }
    if mismatches:
        raise HashMismatchError(mismatches)


def reset_and_wait_ready(port: str, version: str, *, timeout: float) -> str:
    """Soft-reset the board from its friendly REPL (so main.py runs, as after power-on) and
    return the ready line; raise if another version or nothing comes up."""
    try:
        console = serial.Serial(port, baudrate=115200, timeout=0.05)
    except serial.SerialException as exc:
        raise PortMissingError(port) from exc
    seen = bytearray()
    with console:
        console.write(b"\r\x03\x03")  # stop whatever runs
        console.write(b"\r\x02")  # leave raw REPL: a soft reset from there skips main.py
        prompt_deadline = time.monotonic() + 2.0
        while time.monotonic() < prompt_deadline and not seen.endswith(b">>> "):
            seen += console.read(64)
        console.reset_input_buffer()
        seen.clear()
        console.write(b"\x04")  # soft reset: boot.py, then main.py
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += console.read(256)
            match = READY_PATTERN.search(seen)
            if match is None:
                if REPL_BANNER in seen:
                    raise FirmwareStoppedError(version, seen.decode(errors="replace"))
                continue
            line = match.group(0).decode(errors="replace").strip()
            found = match.group(1).decode(errors="replace")
            if found != version:
                raise VersionMismatchError(version, found, line)
            return line
    raise ReadyTimeoutError(version, timeout, seen.decode(errors="replace"))


def deploy(
    port: str,
    *,
    source: Path | None = None,
    link_codec: Path | None = None,
    ready_timeout: float = 20.0,
    mpremote: str | None = None,
    progress: Callable[[str], None] = lambda _message: None,
) -> DeployReport:
    """Copy, verify, reset, wait for ready. Raises a DeployError subclass on any failure."""
    started = time.monotonic()
    source = source or repo_firmware_dir()
    files = collect_firmware(source, link_codec or link_codec_path())
    version = firmware_version(source)
    if not os.path.exists(port):
        raise PortMissingError(port)
    mpremote = mpremote or find_mpremote()
    progress(f"copying {len(files)} files of firmware {version} to {port}")
    copy_files(mpremote, port, files)
    progress("verifying SHA-256 on the device")
    verify_hashes(mpremote, port, {f.device_path: f.sha256 for f in files})
    progress(f"selecting slot {FACTORY_SLOT}")
    run_mpremote(mpremote, port, ["exec", slot_state_snippet(FACTORY_SLOT)], step="selecting the slot")
    progress("resetting the controller")
    ready_line = reset_and_wait_ready(port, version, timeout=ready_timeout)
    return DeployReport(
        port=port,
        version=version,
        files=tuple(files),
        ready_line=ready_line,
        seconds=time.monotonic() - started,
    )
