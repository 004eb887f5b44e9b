"""The pole controller's firmware update from the edge (edge.controller.firmware_update)
against the real firmware, boot selector and MicroPython unix port on the simulated controller:
A/B slots, verification on the device, rollback by the Pi and by the device itself, and a
power cut (SIGKILL of the updating process) at each step."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.controller import payloads
from edge.controller.firmware_update import FirmwareFile, FirmwareUpdateError, update_firmware
from edge.controller.link import ControllerLink
from tests.edge.conftest import Pole
from tests.sim.conftest import WATCHPOST
from watchpost.deploy import slot_files

pytestmark = pytest.mark.micropython

OLD = "0.1.0"  # what firmware/version.py says: the factory install of every test pole
NEW = "0.2.0"
WATCHDOG_S = "2"


def release(version: str, replaced: dict[str, bytes] | None = None) -> list[FirmwareFile]:
    """The real firmware as one slot, stamped with `version`, some files replaced."""
    files = slot_files()
    files["version.py"] = f'FIRMWARE_VERSION = "{version}"\n'.encode()
    files.update(replaced or {})
    return [FirmwareFile.of(path, data) for path, data in files.items()]


class Hellos:
    """A `first_frame_version` that opens the link for each wait and records every HELLO
    (version, reset cause), None for a wait that timed out."""

    def __init__(self, pole: Pole) -> None:
        self.uart = pole.uart
        self.seen: list[tuple[str, str] | None] = []

    def __call__(self, timeout: float) -> str | None:
        async def wait() -> tuple[str, str] | None:
            async with ControllerLink(port=self.uart) as link:
                hello = await link.next_hello(timeout)
            return None if hello is None else (hello.fw, hello.rst)

        seen = asyncio.run(wait())
        self.seen.append(seen)
        return None if seen is None else seen[0]


def status_version(pole: Pole) -> str | None:
    """The version the running firmware reports in `status` (once per controller boot: a new
    link starts its command numbering again)."""

    async def ask() -> str | None:
        async with ControllerLink(port=pole.uart) as link:
            return (await link.send_command(payloads.status(id=1), timeout=10)).fw

    return asyncio.run(ask())


def slot_state(pole: Pole) -> str:
    return (pole.sim.flash / "slot").read_text()


def slot_version(pole: Pole, slot: str) -> str:
    return (pole.sim.flash / slot / "version.py").read_text()


# --- updates that work -----------------------------------------------------------------------


def test_an_update_goes_to_the_idle_slot_and_the_new_version_says_hello(
    start_pole: Callable[..., Pole],
) -> None:
    pole = start_pole()
    hellos = Hellos(pole)
    states: list[str] = []
    update_firmware(
        str(pole.sim.console), release(NEW), NEW, first_frame_version=hellos, progress=states.append
    )

    assert hellos.seen == [(NEW, "soft")]
    assert states == ["installing", "restarting", "health-check"]
    assert slot_state(pole) == "b"  # confirmed by the firmware itself: no trial word left
    assert NEW in slot_version(pole, "b")
    assert OLD in slot_version(pole, "a")  # the previous release is kept
    assert status_version(pole) == NEW

    # The next one goes back into /a, and /b is kept in its turn.
    update_firmware(str(pole.sim.console), release("0.3.0"), "0.3.0", first_frame_version=hellos)
    assert hellos.seen[-1] == ("0.3.0", "soft")
    assert (slot_state(pole), NEW in slot_version(pole, "b")) == ("a", True)


# --- new firmware that does not come up ------------------------------------------------------


def test_firmware_that_raises_at_import_is_taken_back_by_the_boot_selector(
    start_pole: Callable[..., Pole],
) -> None:
    pole = start_pole()
    hellos = Hellos(pole)
    broken = b"raise RuntimeError('broken build')\n" + slot_files()["controller.py"]
    with pytest.raises(FirmwareUpdateError) as caught:
        update_firmware(
            str(pole.sim.console), release(NEW, {"controller.py": broken}), NEW, first_frame_version=hellos
        )
    assert (caught.value.reason, caught.value.rolled_back) == ("did-not-start", True)
    assert "by itself" in caught.value.detail
    assert hellos.seen == [(OLD, "soft")]  # the first HELLO after the switch is the old one
    assert slot_state(pole) == "a"
    assert status_version(pole) == OLD


def test_firmware_that_hangs_is_reset_by_the_watchdog_and_reverted_by_the_device(
    start_pole: Callable[..., Pole],
) -> None:
    pole = start_pole("--watchdog", WATCHDOG_S)
    hellos = Hellos(pole)
    hanging = b"import time\nwhile True:\n    time.sleep_ms(50)\n"
    with pytest.raises(FirmwareUpdateError) as caught:
        update_firmware(
            str(pole.sim.console), release(NEW, {"main.py": hanging}), NEW, first_frame_version=hellos
        )
    assert (caught.value.reason, caught.value.rolled_back) == ("did-not-start", True)
    # The watchdog reset the board and the selector went back to /a: no help from the Pi.
    assert hellos.seen == [(OLD, "watchdog")]
    assert slot_state(pole) == "a"
    assert "watchdog: no feed" in pole.sim.log


def test_firmware_that_never_hears_the_edge_is_switched_back_by_the_pi(
    start_pole: Callable[..., Pole],
) -> None:
    pole = start_pole()  # no watchdog: only the Pi can end this trial
    hellos = Hellos(pole)
    mute = b"import time\ndef start():\n    while True:\n        time.sleep_ms(50)\n"
    with pytest.raises(FirmwareUpdateError) as caught:
        update_firmware(
            str(pole.sim.console),
            release(NEW, {"main.py": mute}),
            NEW,
            first_frame_version=hellos,
            timeout_s=3,
        )
    assert (caught.value.reason, caught.value.rolled_back) == ("did-not-start", True)
    assert "switched back" in caught.value.detail
    assert hellos.seen == [None, (OLD, "soft")]
    assert slot_state(pole) == "a"


# --- refused before the switch ---------------------------------------------------------------


def test_a_staged_file_that_does_not_match_its_hash_is_refused_and_the_old_firmware_runs_on(
    start_pole: Callable[..., Pole],
) -> None:
    pole = start_pole()
    hellos = Hellos(pole)
    files = release(NEW)
    files = [
        FirmwareFile(f.path, f.data + b"# tampered\n", f.sha256) if f.path == "bell.py" else f for f in files
    ]
    before = (pole.sim.flash / "a" / "bell.py").read_bytes()
    with pytest.raises(FirmwareUpdateError) as caught:
        update_firmware(str(pole.sim.console), files, NEW, first_frame_version=hellos)
    assert (caught.value.reason, caught.value.rolled_back) == ("hash-mismatch", False)
    assert "bell.py" in caught.value.detail
    assert f"back on {OLD}" in caught.value.detail
    assert hellos.seen == [(OLD, "soft")]
    assert slot_state(pole) == "a"
    assert (pole.sim.flash / "a" / "bell.py").read_bytes() == before


def test_bad_input_is_refused_before_the_controller_is_touched(tmp_path: Path) -> None:
    def never(timeout: float) -> str | None:
        raise AssertionError("no reset, so nothing to wait for")

    with pytest.raises(FirmwareUpdateError) as caught:
        update_firmware(str(tmp_path / "ttyACM9"), release(NEW), NEW, first_frame_version=never)
    assert caught.value.reason == "console-unavailable"
    with pytest.raises(FirmwareUpdateError) as caught:
        update_firmware(str(tmp_path / "ttyACM9"), release(NEW), "0.2.1", first_frame_version=never)
    assert caught.value.reason == "version-mismatch"
    with pytest.raises(FirmwareUpdateError) as caught:
        update_firmware(
            str(tmp_path / "ttyACM9"),
            [*release(NEW), FirmwareFile.of("../main.py", b"")],
            NEW,
            first_frame_version=never,
        )
    assert caught.value.reason == "bad-release"


# --- a power cut at each step ----------------------------------------------------------------


def write_release(into: Path, version: str) -> Path:
    for f in release(version):
        target = into / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.data)
    return into


def update_command(pole: Pole, source: Path, *extra: str) -> list[str]:
    return [
        str(WATCHPOST),
        "firmware",
        "update",
        "--console",
        str(pole.sim.console),
        "--uart",
        pole.uart,
        "--from",
        str(source),
        "--version",
        NEW,
        *extra,
    ]


# After the kill, which firmware the controller comes back with by itself: killed before the
# switch, the old one (the watchdog resets the board out of the raw REPL); after it, the new
# one on trial, which confirms itself when it hears the edge.
@pytest.mark.parametrize(
    ("step", "comes_back_with"),
    [("staging", OLD), ("verified", OLD), ("switched", NEW), ("waiting", NEW)],
)
def test_a_kill_at_each_step_leaves_a_good_firmware_running(
    start_pole: Callable[..., Pole], tmp_path: Path, step: str, comes_back_with: str
) -> None:
    pole = start_pole("--watchdog", WATCHDOG_S)
    source = write_release(tmp_path / "release", NEW)
    updating = subprocess.Popen(
        update_command(pole, source, "--stop-after", step), stdout=subprocess.PIPE, text=True
    )
    assert updating.stdout is not None
    lines = []
    for line in updating.stdout:
        lines.append(line)
        if line.startswith("stopped after"):
            break
    assert lines[-1] == f"stopped after {step}\n", lines
    os.kill(updating.pid, signal.SIGKILL)
    updating.wait()
    updating.stdout.close()

    hellos = Hellos(pole)
    assert hellos(15) == comes_back_with
    assert slot_state(pole) in {"a", "b"}  # settled: no trial left pending
    assert comes_back_with in slot_version(pole, slot_state(pole))

    # And the next attempt goes through.
    finished = subprocess.run(
        update_command(pole, source), capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert NEW in slot_version(pole, slot_state(pole))
