"""The simulated pole controller's console, driven by unmodified mpremote like a real board;
and the relay's rules, fed bytes directly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import serial  # type: ignore[import-untyped]

from tests.sim.conftest import SimulatedController, interpreter_pids, start_controller, wait_for
from watchpost.sim.console import (
    CTRL_A,
    MARK_BOOTED,
    MARK_EXIT,
    MARK_REPL,
    ConsoleRelay,
    Phase,
    ReplMode,
    ResetCause,
    SimulatorSettings,
)

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
FRIENDLY = b'MicroPython x on y; linux\r\nType "help()" for more information.\r\n>>> '


def read_console(console: Path, *wanted: bytes, timeout: float = 5.0) -> bytes:
    """What the console shows until every one of `wanted` has appeared, in order."""
    seen = b""
    with serial.Serial(str(console), timeout=0.05) as port:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += port.read(256)
            at = 0
            for item in wanted:
                at = seen.find(item, at)
                if at < 0:
                    break
                at += len(item)
            else:
                return seen
    pytest.fail(f"console never showed {wanted!r}; it showed {seen!r}")


# -- the relay, without processes ----------------------------------------------------------


def test_input_is_held_until_the_interpreter_has_booted() -> None:
    relay = ConsoleRelay()
    relay.interpreter_started()
    assert relay.console_input(b"\r\x03") == b""
    relayed = relay.interpreter_output(b"junk" + MARK_BOOTED[:5])
    assert relayed.to_console == b""
    relayed = relay.interpreter_output(MARK_BOOTED[5:] + b"boot.py says hi\n")
    assert relayed.to_interpreter == b"\r\x03"
    assert relayed.to_console == b"boot.py says hi\r\n"
    assert relay.console_input(b"x") == b"x"


def test_soft_reset_from_raw_repl_comes_back_in_raw_repl() -> None:
    relay = ConsoleRelay()
    relay.interpreter_started()
    relay.interpreter_output(MARK_BOOTED + MARK_REPL + FRIENDLY)
    relay.interpreter_output(b"\r\n" + RAW_BANNER)
    assert relay.mode is ReplMode.RAW
    relay.interpreter_output(b"OK\r\n")
    assert relay.interpreter_stopped(ResetCause.SOFT) == b"MPY: soft reboot\r\n"
    assert relay.interpreter_started() is ReplMode.RAW
    assert relay.console_input(b"\x05A\x01") == b""  # held until the raw prompt is back
    relay.interpreter_output(MARK_BOOTED)
    assert relay.console_input(b"\r") == b""  # boot.py runs: still held
    relayed = relay.interpreter_output(b"boot\n" + MARK_REPL + FRIENDLY[:20])
    assert relayed.to_console == b"boot\r\n"
    assert relayed.to_interpreter == b""
    relayed = relay.interpreter_output(FRIENDLY[20:])
    assert relayed.to_console == b""  # the unix port's friendly banner never shows
    assert relayed.to_interpreter == CTRL_A + b"\x05A\x01\r"
    assert relay.phase is Phase.RUNNING


def test_bare_newlines_become_crlf_but_crlf_stays() -> None:
    relay = ConsoleRelay()
    relay.interpreter_started()
    relay.interpreter_output(MARK_BOOTED)
    assert relay.interpreter_output(b"a\nb\r\nc\r").to_console == b"a\r\nb\r\nc\r"
    assert relay.interpreter_output(b"\nd\n").to_console == b"\nd\r\n"


def test_system_exit_in_main_asks_for_a_restart() -> None:
    relay = ConsoleRelay()
    relay.interpreter_started()
    relayed = relay.interpreter_output(MARK_BOOTED + b"bye\n" + MARK_EXIT + b"ignored")
    assert relayed.exit_requested
    assert relayed.to_console == b"bye\r\n"


def test_settings_refuse_a_bad_heap_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64K"):
        SimulatorSettings(state_dir=tmp_path, micropython=tmp_path, heapsize="lots")


# -- the simulator, with mpremote -----------------------------------------------------------


@pytest.mark.micropython
def test_mpremote_exec_copy_cat_and_soft_reset(controller: SimulatedController, tmp_path: Path) -> None:
    result = controller.mpremote("exec", "print(1+1)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"

    local = tmp_path / "note.txt"
    local.write_bytes(b"bell circuit ok\nlamp ok\n")
    result = controller.mpremote("fs", "cp", str(local), ":note.txt", "+", "fs", "cat", ":note.txt")
    assert result.returncode == 0, result.stderr
    assert "bell circuit ok" in result.stdout
    assert (controller.flash / "note.txt").read_bytes() == local.read_bytes()

    result = controller.mpremote("soft-reset")
    assert result.returncode == 0, result.stderr
    result = controller.mpremote("exec", "print(open('/.reset_cause').read())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "soft"  # the port outlived two interpreters


@pytest.mark.micropython
def test_the_flash_directory_is_the_root(controller: SimulatedController) -> None:
    result = controller.mpremote(
        "exec", "import os; open('/x.txt','w').write('hi'); print(os.getcwd(), sorted(os.listdir('/')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/ ['.reset_cause', 'dev', 'x.txt']"
    assert (controller.flash / "x.txt").read_text() == "hi"
    outside = sorted(p.relative_to(controller.state_dir).as_posix() for p in controller.state_dir.rglob("*"))
    assert outside == [
        "console",
        "dev",
        "dev/control",  # the input control FIFO
        "dev/uart",  # the link UART, firmware side
        "flash",
        "flash/.reset_cause",
        "flash/x.txt",
        "uart",  # the link UART, edge side
    ]


@pytest.mark.micropython
def test_main_runs_at_power_on_and_mpremote_interrupts_it(micropython: Path, tmp_path: Path) -> None:
    state = tmp_path / "pole"
    (state / "flash").mkdir(parents=True)
    (state / "flash" / "boot.py").write_text("print('boot.py ran')\n")
    (state / "flash" / "main.py").write_text(
        "import time\n"
        "print('main started, reset=' + open('/.reset_cause').read())\n"
        "while True:\n"
        "    time.sleep(0.01)\n"
    )
    sim = start_controller(state)
    try:
        read_console(sim.console, b"boot.py ran\r\n", b"main started, reset=power-on\r\n")
        result = sim.mpremote("exec", "print('interrupted')")  # Ctrl-C stops main.py first
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "interrupted"
    finally:
        sim.stop()


@pytest.mark.micropython
def test_sys_exit_in_main_is_a_soft_reboot(micropython: Path, tmp_path: Path) -> None:
    state = tmp_path / "pole"
    (state / "flash").mkdir(parents=True)
    (state / "flash" / "main.py").write_text(
        "import sys\n"
        "cause = open('/.reset_cause').read()\n"
        "print('up after ' + cause)\n"
        "if cause == 'power-on':\n"
        "    sys.exit()\n"
    )
    sim = start_controller(state)
    try:
        read_console(sim.console, b"up after power-on\r\n", b"MPY: soft reboot\r\n", b"up after soft\r\n")
    finally:
        sim.stop()


@pytest.mark.micropython
def test_the_watchdog_resets_a_controller_that_stops_feeding(micropython: Path, tmp_path: Path) -> None:
    state = tmp_path / "pole"
    (state / "flash").mkdir(parents=True)
    (state / "flash" / "main.py").write_text(
        "import os, time\n"
        "cause = open('/.reset_cause').read()\n"
        "print('up after ' + cause)\n"
        "if cause == 'power-on':\n"
        "    for _ in range(5):\n"
        "        with open(os.getenv('WATCHPOST_WDT'), 'wb') as wdt:\n"
        "            wdt.write(b'.')\n"
        "        time.sleep(0.05)\n"
        "    print('stuck')\n"
        "    while True:\n"
        "        time.sleep(1)\n"
    )
    sim = start_controller(state, "--watchdog", "0.3")
    try:
        seen = read_console(sim.console, b"up after power-on\r\n", b"stuck\r\n", b"up after watchdog\r\n")
        assert b"soft reboot" not in seen  # a watchdog reset is a hard reset
    finally:
        sim.stop()


@pytest.mark.micropython
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_kills_the_interpreter_and_removes_the_console(
    micropython: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    sim = start_controller(tmp_path / "pole")
    assert wait_for(lambda: len(interpreter_pids(sim.state_dir)) == 1)
    assert sim.stop(signum) == 0
    assert interpreter_pids(sim.state_dir) == []
    assert not sim.console.exists()
