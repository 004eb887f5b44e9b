"""`watchpost demo` as a visitor meets it: the installed command started as a process, the
dashboard it prints opened in Chromium and signed in with the token it prints. Within a
minute of the command's start the overview shows every pole online, the bell alarm's banner
and a pole with a camera fault. Then Ctrl-C (SIGINT): the demo exits 0 and leaves no process
of its own behind (broker, fleet manager, simulated pole controller and its MicroPython)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from playwright.sync_api import Browser, expect

from tests.web.conftest import DESKTOP, refuse_offsite, shoot
from watchpost.broker import free_port

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.micropython, pytest.mark.slow]

WATCHPOST = Path(sys.executable).parent / "watchpost"
POLES = 12
WITHIN_S = 60.0  # the promise: all of it shows within a minute of the command


@dataclass
class DemoOutput:
    """The demo's stdout, line by line, as it prints it (read by a thread of its own)."""

    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, pattern: str, deadline: float) -> re.Match[str]:
        """The first line matching `pattern`, waiting for it until `deadline` (monotonic)."""
        wanted = re.compile(pattern)
        with self.changed:
            while True:
                for line in self.lines:
                    if found := wanted.search(line):
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the demo did not print {pattern!r} in time:\n" + self.text())
                self.changed.wait(left)

    def text(self) -> str:
        with self.changed:
            return "\n".join(self.lines)


def _descendants(pid: int) -> dict[int, tuple[str, str]]:
    """Every process below `pid`: pid -> (name, start time), to tell a reused pid apart."""
    found: dict[int, tuple[str, str]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            identity = _identity(child)
            if identity is not None:
                found[child] = identity
                found.update(_descendants(child))
    return found


def _identity(pid: int) -> tuple[str, str] | None:
    """(name, start time) of a live process, None when it is gone (or only a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_time = fields[0], fields[19]
    return None if state == "Z" else (name, start_time)


@pytest.fixture
def demo_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], DemoOutput, float]]:
    started = time.monotonic()
    with (tmp_path / "demo.stderr").open("w") as stderr:
        process = subprocess.Popen(
            [str(WATCHPOST), "demo", "--poles", str(POLES), "--for", "120", "--port", str(free_port())],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,  # its own process group: the test signals the demo alone
        )
    assert process.stdout is not None
    output = DemoOutput()
    reader = threading.Thread(target=output.read, args=(process.stdout,), name="demo-stdout", daemon=True)
    reader.start()
    try:
        yield process, output, started
    finally:
        if process.poll() is None:  # the test failed before its own SIGINT
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reader.join(10)
        process.stdout.close()
        errors = (tmp_path / "demo.stderr").read_text()
        assert "Traceback" not in errors, errors


def test_the_demo_shows_a_live_city_within_a_minute_and_stops_cleanly(
    micropython: Path,
    chromium: Browser,
    demo_process: tuple[subprocess.Popen[str], DemoOutput, float],
) -> None:
    demo, output, started = demo_process
    deadline = started + WITHIN_S

    def left_ms() -> float:
        # What is left of the minute; at least 1 ms, since Playwright reads 0 as "no limit".
        return max(1.0, (deadline - time.monotonic()) * 1000)

    url = output.wait_for(r"^dashboard: (http://127\.0\.0\.1:\d+/)$", deadline).group(1)
    token = output.wait_for(r"^sign-in token: (\S+)$", deadline).group(1)
    data_dir = Path(output.wait_for(r"data and logs\s+(\S+) \(removed at exit\)", deadline).group(1))
    assert "the real pole controller firmware on the simulated device" in output.text()

    offsite: list[str] = []
    context = chromium.new_context(base_url=url, viewport=DESKTOP, locale="en-GB")
    refuse_offsite(context, url, offsite)
    page = context.new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin"), timeout=left_ms())
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page).to_have_url(url, timeout=left_ms())
    expect(page.locator(".who")).to_have_text("visitor · operator", timeout=left_ms())

    # Every pole online, a citizen's bell waiting for an operator, a camera's fault: all live.
    expect(page.locator("[data-count=nodes]")).to_have_text(str(POLES), timeout=left_ms())
    expect(page.locator("[data-count=online]")).to_have_text(str(POLES), timeout=left_ms())
    expect(page.locator("[data-count=latched]")).to_have_text("1", timeout=left_ms())
    expect(page.locator(".alarm-banner")).to_contain_text("pole-0001", timeout=left_ms())
    camera_pole = output.wait_for(r"cam-\d{4}-\d \(.+\) at (pole-\d{4}) stops answering", deadline).group(1)
    expect(page.locator(".cell.fault", has_text=camera_pole)).to_have_count(1, timeout=left_ms())
    shoot(page, "demo-overview")

    # The fault is the camera's ticket, with its clock running.
    page.goto("/faults")
    row = page.locator(".fault-row", has_text=camera_pole)
    expect(row).to_contain_text("camera")
    shoot(page, "demo-faults")

    # The visitor takes the call, as the demo invites: the real pole's lamp lights.
    page.locator(".alarm-banner a").click()
    expect(page).to_have_url(re.compile(r"/alarms/pole-0001\.bell-1\.\d+$"))
    shoot(page, "demo-alarm")
    page.locator("button.acknowledge").click()
    expect(page.locator(".alarm-banner")).to_have_count(0)
    output.wait_for(r"visitor acknowledged the call at pole-0001", time.monotonic() + 20)
    output.wait_for(r'pole-0001: "call received" lamp ON, lit by the real firmware', time.monotonic() + 20)
    context.close()
    assert offsite == [], f"the pages asked for something off this machine: {offsite}"

    # Ctrl-C: everything the demo started ends with it.
    running = _descendants(demo.pid)
    names = sorted(name for name, _ in running.values())
    assert "mosquitto" in names
    assert "micropython" in names
    assert names.count("watchpost") >= 2  # the fleet manager and the simulated pole controller
    demo.send_signal(signal.SIGINT)
    assert demo.wait(60) == 0
    left_behind = {pid: name for pid, (name, start) in running.items() if _identity(pid) == (name, start)}
    assert left_behind == {}
    assert not data_dir.exists()  # the fresh data directory went with it
    output.wait_for(r"stopped; nothing it started is left running", time.monotonic() + 10)
