"""Update the pole controller's firmware from the edge node, A/B with rollback.

Over the controller's console (edge.controller.repl, raw REPL as mpremote speaks it): stage the
release into the slot that does not run (/a or /b), hash every staged file on the device,
switch (/slot says "<slot> trial"), soft-reset, and wait for the first HELLO on the link to
announce the new version. The boot selector on the device (firmware/selector.py) takes a trial
back by itself when it crashes or resets before confirming; when the new version does not
announce itself in time, this module switches back over the console and resets again. Every
refusal (bad release, hash mismatch, full flash, no console) happens before the switch, and
the firmware that ran before is restarted. ADR 0009 and docs/firmware.md ("Slots") say why.

Blocking: the agent runs it in a worker thread and hands in `first_frame_version`, which waits
for the next HELLO on its ControllerLink (`ControllerLink.next_hello`); a caller without a link
running (the `watchpost firmware update` command) uses `hello_version_on(uart)`.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from protocols.messages import OtaState

from .link import ControllerLink
from .repl import RawRepl, ReplError, ReplExecError

SLOTS = ("a", "b")
STATE_FILE = "slot"  # /slot, named relative to the root: firmware/selector.py says why
VERSION_FILE = "version.py"
WRITE_CHUNK = 2048  # bytes of a file per snippet (base64 in the snippet: ~2.7 KB to compile)
HASH_CHUNK = 512  # bytes the device hashes per read: small, for a tight heap
BLOCK_SLACK = 2  # blocks per file beyond its data that a littlefs file may take (metadata)
VERSION_PATTERN = re.compile(r"""^FIRMWARE_VERSION\s*=\s*["']([^"']+)["']\s*$""", re.MULTILINE)

# The steps, in order, as `step` reports them (for logs, and for crash tests that stop the
# process at one of them).
STEPS = ("staging", "staged", "verified", "switched", "restarted", "waiting")


@dataclass(frozen=True)
class FirmwareFile:
    """One file of a firmware slot: `path` inside the slot ("main.py", "drivers/lamp.py")."""

    path: str
    data: bytes
    sha256: str

    @classmethod
    def of(cls, path: str, data: bytes) -> FirmwareFile:
        return cls(path=path, data=data, sha256=hashlib.sha256(data).hexdigest())


class FirmwareUpdateError(Exception):
    """The update did not happen. `reason` is a short token for OtaProgress.reason
    ("console-unavailable", "bad-release", "hash-mismatch", "flash-full", "install-failed",
    "did-not-start", "version-mismatch"); `detail` says it in words; `rolled_back` is true when
    the new firmware was switched to and then abandoned for the previous one."""

    def __init__(self, reason: str, detail: str, *, rolled_back: bool = False) -> None:
        self.reason = reason
        self.detail = detail
        self.rolled_back = rolled_back
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class _Layout:
    running: str  # the slot to keep: the last one that confirmed itself
    target: str  # the slot to fill
    running_version: str | None


def update_firmware(
    console_port: str,
    files: Sequence[FirmwareFile],
    version: str,
    *,
    first_frame_version: Callable[[float], str | None],
    timeout_s: float = 30.0,
    progress: Callable[[OtaState], None] = lambda state: None,
    step: Callable[[str], None] = lambda name: None,
) -> None:
    """Install `files` as firmware `version` into the idle slot and switch to it; return once
    the controller's first HELLO announces `version`. Raises FirmwareUpdateError otherwise,
    with the controller back on the firmware it ran before."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s {timeout_s}: expected seconds > 0")
    _check_release(files, version)
    progress("installing")
    repl = RawRepl(console_port)
    try:
        repl.open()
    except ReplError as exc:
        raise FirmwareUpdateError("console-unavailable", f"{exc}; no change was made") from exc
    try:
        layout = _prepare(repl, first_frame_version, timeout_s)
        try:
            _stage(repl, layout.target, files, step)
            _verify(repl, layout.target, files)
            step("verified")
            _write_state(repl, f"{layout.target} trial")
        except FirmwareUpdateError as refused:
            raise _after_refusal(repl, layout, refused, first_frame_version, timeout_s) from None
        except ReplError as exc:
            dropped = FirmwareUpdateError("console-unavailable", f"while installing: {exc}")
            raise _after_refusal(repl, layout, dropped, first_frame_version, timeout_s) from exc
        step("switched")
        progress("restarting")
        # Should the console fail here, the state file says trial all the same: whoever resets
        # the board next (its watchdog, a power cycle) starts the trial, and waiting for it
        # and rolling back still apply.
        with contextlib.suppress(ReplError):
            repl.restart_firmware()
        step("restarted")
    finally:
        repl.close()
    step("waiting")
    progress("health-check")
    seen = first_frame_version(timeout_s)
    if seen == version:
        return
    if seen is not None and seen == layout.running_version:
        # The selector took the trial back by itself (it crashed or reset before confirming)
        # and the previous firmware announced itself: nothing left to undo.
        raise FirmwareUpdateError(
            "did-not-start",
            f"firmware {version} did not come up; the controller went back to "
            f"{layout.running_version} in slot /{layout.running} by itself",
            rolled_back=True,
        )
    if seen is None:
        reason, what = "did-not-start", f"no HELLO within {timeout_s:g} s after switching to {version}"
    else:
        reason, what = "version-mismatch", f"the controller came up announcing {seen}, expected {version}"
    raise _switch_back(console_port, layout, f"{reason}: {what}", first_frame_version, timeout_s)


# -- the steps --------------------------------------------------------------------------------


def _check_release(files: Sequence[FirmwareFile], version: str) -> None:
    seen: set[str] = set()
    for f in files:
        path = PurePosixPath(f.path)
        if path.is_absolute() or not path.parts or ".." in path.parts or str(path) != f.path:
            raise FirmwareUpdateError("bad-release", f"{f.path!r} is not a plain path inside a slot")
        if f.path in seen:
            raise FirmwareUpdateError("bad-release", f"{f.path} appears twice")
        if not re.fullmatch(r"[0-9a-f]{64}", f.sha256):
            raise FirmwareUpdateError("bad-release", f"{f.path}: {f.sha256!r} is not a SHA-256 in hex")
        seen.add(f.path)
    if "main.py" not in seen:
        raise FirmwareUpdateError("bad-release", "no main.py: the boot selector would have nothing to run")
    declared = next((_declared_version(f.data) for f in files if f.path == VERSION_FILE), None)
    if declared != version:
        raise FirmwareUpdateError(
            "version-mismatch", f"{VERSION_FILE} of the release declares {declared!r}, expected {version!r}"
        )


def _declared_version(text: bytes) -> str | None:
    match = VERSION_PATTERN.search(text.decode(errors="replace"))
    return match.group(1) if match else None


def _prepare(repl: RawRepl, first_frame_version: Callable[[float], str | None], timeout_s: float) -> _Layout:
    """Stop the firmware, read which slot runs, and settle an unconfirmed trial on the slot
    that confirmed last (the one kept), so the slot to fill never holds what must boot."""
    try:
        repl.enter()
        listing = repl.exec(
            "os.chdir('/')\n"
            "def _wp_text(p):\n"
            "    try:\n"
            "        f = open(p)\n"
            "    except OSError:\n"
            "        return ''\n"
            "    t = f.read()\n"
            "    f.close()\n"
            "    return t\n"
            f"print(repr(_wp_text({STATE_FILE!r})))\n"
            f"print(repr(_wp_text('/a/{VERSION_FILE}')))\n"
            f"print(repr(_wp_text('/b/{VERSION_FILE}')))\n"
        )
        state, version_a, version_b = (ast.literal_eval(line) for line in listing.splitlines()[:3])
        words = str(state).split()
        slot = words[0] if words and words[0] in SLOTS else "a"
        # A pending trial ("b trial", "b booted") is not kept: the other slot confirmed last.
        running = _other(slot) if len(words) > 1 else slot
        if words != [running]:
            _write_state(repl, running)
    except FirmwareUpdateError:
        _restart_quietly(repl)
        raise
    except (ReplError, ValueError, SyntaxError) as exc:
        _restart_quietly(repl)
        raise FirmwareUpdateError("console-unavailable", f"{exc}; no change was made") from exc
    texts = {"a": str(version_a), "b": str(version_b)}
    return _Layout(
        running=running, target=_other(running), running_version=_declared_version(texts[running].encode())
    )


def _other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def _stage(repl: RawRepl, target: str, files: Sequence[FirmwareFile], step: Callable[[str], None]) -> None:
    root = f"/{target}"
    free = _clear_slot(repl, root)
    block, available = free
    needed = sum((-(-len(f.data) // block) + BLOCK_SLACK) * block for f in files)
    if needed > available:
        raise FirmwareUpdateError(
            "flash-full", f"the release needs about {needed} bytes of flash in {root}, {available} are free"
        )
    # Subdirectories of the slot, parents first (the slot itself exists by now).
    directories = sorted({str(p) for f in files for p in PurePosixPath(root, f.path).parents[:-2]})
    if directories:
        _exec(repl, "".join(f"os.mkdir({d!r})\n" for d in directories))
    for number, f in enumerate(files):
        _write_file(repl, f"{root}/{f.path}", f.data)
        if number == 0:
            step("staging")  # part of the release is on the flash, not all of it
    step("staged")


def _clear_slot(repl: RawRepl, root: str) -> tuple[int, int]:
    # Empties (or creates) the slot to fill; returns the block size and the bytes free after.
    output = _exec(
        repl,
        "def _wp_rm(d):\n"
        "    for e in os.ilistdir(d):\n"
        "        p = d + '/' + e[0]\n"
        "        if e[1] == 0x4000:\n"
        "            _wp_rm(p)\n"
        "        else:\n"
        "            os.remove(p)\n"
        "    os.rmdir(d)\n"
        "try:\n"
        f"    _wp_rm({root!r})\n"
        "except OSError:\n"
        "    pass\n"
        f"os.mkdir({root!r})\n"
        "s = os.statvfs('/')\n"
        "print(s[0], s[1] * s[4])\n",
    )
    block, available = (int(word) for word in output.split()[:2])
    return max(block, 1), available


def _write_file(repl: RawRepl, path: str, data: bytes) -> None:
    chunks = [data[at : at + WRITE_CHUNK] for at in range(0, len(data), WRITE_CHUNK)] or [b""]
    for number, chunk in enumerate(chunks):
        code = ""
        if number == 0:
            code += f"import binascii\n_wp_f = open({path!r}, 'wb')\n"
        code += f"_wp_f.write(binascii.a2b_base64({base64.b64encode(chunk)!r}))\n"
        if number == len(chunks) - 1:
            code += "_wp_f.close()\n"
        _exec(repl, code)


def hashing_code(paths: Sequence[str]) -> str:
    """MicroPython source that prints `sha256 <path> <hex>` (or `missing`) for each path, read in
    small chunks so a tight heap is enough. `watchpost firmware deploy` runs it through
    mpremote, the update through the raw REPL; `device_hashes` reads what it printed."""
    return (
        "import binascii, hashlib\n"
        f"for p in {list(paths)!r}:\n"
        "    h = hashlib.sha256()\n"
        "    try:\n"
        "        f = open(p, 'rb')\n"
        "    except OSError:\n"
        "        print('sha256', p, 'missing')\n"
        "        continue\n"
        "    while True:\n"
        f"        b = f.read({HASH_CHUNK})\n"
        "        if not b:\n"
        "            break\n"
        "        h.update(b)\n"
        "    f.close()\n"
        "    print('sha256', p, binascii.hexlify(h.digest()).decode())\n"
    )


def device_hashes(output: str) -> dict[str, str]:
    """Path -> SHA-256 (or "missing") from what `hashing_code` printed on the device."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "sha256":
            found[words[1]] = words[2]
    return found


def _verify(repl: RawRepl, target: str, files: Sequence[FirmwareFile]) -> None:
    paths = [f"/{target}/{f.path}" for f in files]
    found = device_hashes(_exec(repl, hashing_code(paths)))
    wrong = [
        f"{f.path} (expected {f.sha256[:16]}…, the device read {found.get(p, 'nothing')[:16]}…)"
        for f, p in zip(files, paths, strict=True)
        if found.get(p) != f.sha256
    ]
    if wrong:
        raise FirmwareUpdateError("hash-mismatch", "the staged copy differs for " + ", ".join(wrong))


def _write_state(repl: RawRepl, line: str) -> None:
    # As the selector writes it: a new file renamed over the old one.
    _exec(
        repl,
        "os.chdir('/')\n"
        f"f = open({STATE_FILE + '.new'!r}, 'w')\n"
        f"f.write({line!r})\n"
        "f.close()\n"
        f"os.rename({STATE_FILE + '.new'!r}, {STATE_FILE!r})\n",
    )


def _exec(repl: RawRepl, code: str) -> str:
    try:
        return repl.exec(code)
    except ReplExecError as exc:
        if "ENOSPC" in exc.stderr or "Errno 28" in exc.stderr:
            raise FirmwareUpdateError("flash-full", f"the flash filled up: {exc.detail}") from exc
        raise FirmwareUpdateError("install-failed", f"the device raised {exc.detail}") from exc


# -- going back -------------------------------------------------------------------------------


def _restart_quietly(repl: RawRepl) -> None:
    with contextlib.suppress(ReplError):  # else its watchdog resets it once nobody feeds it
        repl.restart_firmware()


def _after_refusal(
    repl: RawRepl,
    layout: _Layout,
    refused: FirmwareUpdateError,
    first_frame_version: Callable[[float], str | None],
    timeout_s: float,
) -> FirmwareUpdateError:
    """Nothing was switched: restart the firmware that ran, and say whether it came back."""
    with contextlib.suppress(ReplError, FirmwareUpdateError):
        _write_state(repl, layout.running)  # undoes a switch the console dropped half-way
    _restart_quietly(repl)
    back = first_frame_version(timeout_s)
    return FirmwareUpdateError(refused.reason, f"{refused.detail}; {_came_back(layout, back, timeout_s)}")


def _switch_back(
    console_port: str,
    layout: _Layout,
    failure: str,
    first_frame_version: Callable[[float], str | None],
    timeout_s: float,
) -> FirmwareUpdateError:
    """The trial did not announce itself: select the slot that ran before, over the console,
    and reset into it. `failure` is "<reason>: <words>"."""
    reason, _, what = failure.partition(": ")
    try:
        with RawRepl(console_port) as repl:
            repl.enter()
            _write_state(repl, layout.running)
            _restart_quietly(repl)
    except (ReplError, FirmwareUpdateError) as exc:
        return FirmwareUpdateError(
            reason,
            f"{what}; switching back over the console failed ({exc}): the controller returns to "
            f"slot /{layout.running} by itself at its next reset",
            rolled_back=False,
        )
    back = first_frame_version(timeout_s)
    return FirmwareUpdateError(
        reason, f"{what}; switched back: {_came_back(layout, back, timeout_s)}", rolled_back=True
    )


def _came_back(layout: _Layout, back: str | None, timeout_s: float) -> str:
    if back is not None and back == layout.running_version:
        return f"the controller is back on {back} in slot /{layout.running}"
    if back is None:
        return f"the controller did not announce itself within {timeout_s:g} s"
    return f"the controller announced {back}, slot /{layout.running} holds {layout.running_version}"


# -- for callers without a link of their own --------------------------------------------------


def hello_version_on(uart_port: str) -> Callable[[float], str | None]:
    """A `first_frame_version` that opens the link UART for each wait (the edge agent must not
    hold it meanwhile): the firmware says HELLO only once it hears the edge, so nothing is
    missed between the reset and the call."""

    def wait(timeout: float) -> str | None:
        async def next_version() -> str | None:
            async with ControllerLink(port=uart_port) as link:
                hello = await link.next_hello(timeout)
            return None if hello is None else hello.fw

        return asyncio.run(next_version())

    return wait
