"""The simulated pole controller as a whole device: the real firmware (firmware/*.py and
protocols/link.py) under the real MicroPython unix port, its link UART on a pty, its inputs set
through the control FIFO. The test plays the edge node on the host with pyserial and the very
same protocols/link.py (FrameDecoder + LinkSession), as edge/ will."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import link
from tests.sim.conftest import SimulatedController, interpreter_pids, start_controller, wait_for
from watchpost.deploy import firmware_version
from watchpost.sim.controls import SimulatedInputs

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_VERSION = firmware_version(REPO / "firmware")
BELL_DEBOUNCE_S = 0.1  # comfortably past the firmware's 30 ms debounce at a 5 ms loop

FrameTest = Callable[[link.Frame, dict[str, Any]], bool]


def now_ms() -> int:
    return int(time.monotonic() * 1000) & 0x3FFFFFFF


class Edge:
    """The edge node's end of the link, pumped by hand: read the UART, feed the decoder and
    the session, write what the session says. `delivered` holds every frame the session
    handed up (duplicates are filtered by the session, as on the real edge)."""

    def __init__(self, path: Path) -> None:
        self.port = serial.Serial(str(path), baudrate=115200, timeout=0)
        self.port.reset_input_buffer()
        self.decoder = link.FrameDecoder()
        self.session = link.LinkSession(now_ms())
        self.delivered: list[link.Frame] = []

    def close(self) -> None:
        self.port.close()

    def pump(self, seconds: float = 0.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._step()
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def _step(self) -> None:
        now = now_ms()
        data = self.port.read(4096)
        for item in self.decoder.feed(data) if data else []:
            if isinstance(item, link.Frame):
                frame = self.session.on_frame(item, now)
                if frame is not None:
                    self.delivered.append(frame)
        for chunk in self.session.poll(now):
            self.port.write(chunk)

    def expect(self, wanted: FrameTest, timeout: float = 5.0) -> dict[str, Any]:
        """Pump until a frame delivered from now on matches; return its payload."""
        seen = len(self.delivered)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            for frame in self.delivered[seen:]:
                payload: dict[str, Any] = json.loads(frame.payload)
                if wanted(frame, payload):
                    return payload
            seen = len(self.delivered)
            time.sleep(0.005)
        names = [(link.TYPE_NAMES[f.frame_type], f.payload) for f in self.delivered[-10:]]
        pytest.fail(f"no matching frame within {timeout} s; last delivered: {names}")

    def command(self, payload: dict[str, Any]) -> None:
        self.session.send(link.T_COMMAND, json.dumps(payload).encode(), link.CLASS_EVENT)

    def payloads(self, frame_type: int) -> list[dict[str, Any]]:
        return [json.loads(f.payload) for f in self.delivered if f.frame_type == frame_type]


def is_hello(frame: link.Frame, payload: dict[str, Any]) -> bool:
    return frame.frame_type == link.T_HELLO


def bell_presses(edge: Edge) -> list[dict[str, Any]]:
    return [p for p in edge.payloads(link.T_EVENT) if p.get("k") == "bell" and p.get("st") == "pressed"]


def counters(frame: link.Frame, payload: dict[str, Any]) -> bool:
    return frame.frame_type == link.T_TELEMETRY and payload.get("k") == "cnt"


def press(inputs: SimulatedInputs) -> None:
    inputs.press_bell()
    time.sleep(BELL_DEBOUNCE_S)
    inputs.release_bell()
    time.sleep(BELL_DEBOUNCE_S)


class Pole:
    def __init__(self, sim: SimulatedController) -> None:
        self.sim = sim
        self.inputs = SimulatedInputs(sim.state_dir)
        self.edge = Edge(sim.state_dir / "uart")


@pytest.fixture
def start_pole(micropython: Path, tmp_path: Path) -> Iterator[Callable[..., Pole]]:
    """Start a simulated controller with the real firmware in its flash (copied as
    `watchpost firmware deploy` would lay it out), so main.py runs from power-on."""
    poles: list[Pole] = []

    def start(*extra: str) -> Pole:
        state_dir = tmp_path / "pole"
        flash = state_dir / "flash"
        flash.mkdir(parents=True)
        for source in (REPO / "firmware").glob("*.py"):
            shutil.copyfile(source, flash / source.name)
        shutil.copyfile(REPO / "protocols" / "link.py", flash / "link.py")
        pole = Pole(start_controller(state_dir, *extra))
        poles.append(pole)
        return pole

    try:
        yield start
    finally:
        for pole in poles:
            pole.edge.close()
            pole.sim.stop()


@pytest.mark.micropython
def test_hello_reports_the_firmware_version_and_a_power_on_reset(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()
    hello = pole.edge.expect(is_hello)
    assert hello["fw"] == FIRMWARE_VERSION
    assert hello["rst"] == "power-on"


@pytest.mark.micropython
def test_a_bell_press_is_delivered_exactly_once(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()
    pole.edge.expect(is_hello)
    press(pole.inputs)
    event = pole.edge.expect(lambda f, p: p.get("k") == "bell")
    assert event["st"] == "pressed"
    assert event["n"] == 1
    assert event["id"] == "bell-1"
    pole.edge.pump(1.0)  # any retransmission would show up here
    assert len(bell_presses(pole.edge)) == 1
    assert pole.edge.session.duplicates == 0  # acked at once: never even retransmitted


@pytest.mark.micropython
def test_a_lamp_command_is_carried_out(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()
    pole.edge.expect(is_hello)
    pole.edge.command({"cmd": "lamp", "on": True, "s": 30, "id": "c-7"})
    result = pole.edge.expect(lambda f, p: f.frame_type == link.T_RESULT)
    assert result == {"cmd": "lamp", "ok": True, "lamp": 1, "buzz": 0, "id": "c-7", "t": result["t"]}


@pytest.mark.micropython
def test_the_output_pins_can_be_probed_from_the_host(start_pole: Callable[..., Pole]) -> None:
    # The HIL rig's witness of the lamp: what a probe on the pins reads, not what the link says.
    pole = start_pole()
    pole.edge.expect(is_hello)
    assert pole.inputs.outputs().lamp is False
    pole.edge.command({"cmd": "lamp", "on": True, "s": 30, "buzz": True, "id": "c-8"})
    pole.edge.expect(lambda f, p: f.frame_type == link.T_RESULT)
    lit = pole.inputs.outputs()
    assert lit.lamp is True
    assert lit.buzzer is True


@pytest.mark.micropython
def test_the_control_channel_sets_door_loop_and_sensors(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()
    edge, inputs = pole.edge, pole.inputs
    edge.expect(is_hello)
    inputs.open_door()
    assert edge.expect(lambda f, p: p.get("k") == "door")["st"] == "open"
    inputs.break_loop()
    circuit = edge.expect(lambda f, p: p.get("k") == "circuit")
    assert (circuit["st"], circuit["raw"]) == ("open", 65535)
    inputs.short_loop()
    assert edge.expect(lambda f, p: p.get("k") == "circuit")["st"] == "short"
    inputs.restore_loop()
    assert edge.expect(lambda f, p: p.get("k") == "circuit")["st"] == "normal"
    inputs.set_temperature(75.0)
    temp = edge.expect(lambda f, p: p.get("k") == "temp")
    assert temp["st"] == "high"
    assert temp["c"] == pytest.approx(75.0, abs=0.2)
    inputs.set_supply(10.0)
    assert edge.expect(lambda f, p: p.get("k") == "supply")["st"] == "low"
    inputs.send("frobnicate 3")  # refused by the firmware, which carries on
    edge.command({"cmd": "status"})
    status = edge.expect(lambda f, p: p.get("cmd") == "status")
    assert status["in"] == [0, 0, 1, 0]  # bell up, not stuck, door open, lamp dark
    assert status["exc"] == 0


@pytest.mark.micropython
def test_presses_during_link_loss_all_arrive_once_the_edge_is_back(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()
    edge = pole.edge
    edge.expect(is_hello)
    press(pole.inputs)
    edge.expect(lambda f, p: p.get("k") == "bell")

    # The edge goes silent (neither reads nor answers) for longer than dead_after_ms, while a
    # citizen keeps pressing: the first alarm waits unacknowledged, the rest fold behind it.
    presses_during_loss = 5
    silent_until = time.monotonic() + 4.5
    for _ in range(presses_during_loss):
        press(pole.inputs)
    time.sleep(max(0.0, silent_until - time.monotonic()))

    total = 1 + presses_during_loss

    def all_presses_arrived() -> bool:
        edge.pump()
        return sum(int(p["n"]) for p in bell_presses(edge)) >= total

    assert wait_for(all_presses_arrived, timeout=10)
    edge.pump(1.0)  # nothing more may come
    alarms = bell_presses(edge)
    assert sum(p["n"] for p in alarms) == total
    assert len({p["t"] for p in alarms}) == len(alarms)  # no alarm delivered twice
    assert any(p["n"] > 1 for p in alarms)  # presses folded behind an alarm the edge never acked
    assert edge.session.duplicates >= 1  # its retransmissions were on the line, and dropped
    edge.command({"cmd": "status"})
    result = edge.expect(lambda f, p: p.get("cmd") == "status")
    assert result["bp"] == total


@pytest.mark.micropython
def test_line_noise_is_counted_and_survived(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole("--env", "WATCHPOST_TELEMETRY_MS=500")
    edge = pole.edge
    edge.expect(is_hello)
    pids = interpreter_pids(pole.sim.state_dir)
    before = edge.expect(counters)

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(noise=st.binary(min_size=1, max_size=600))
    def noise_on_the_line(noise: bytes) -> None:
        edge.port.write(noise)
        edge.pump(0.02)

    noise_on_the_line()

    edge.command({"cmd": "ping", "id": 1})
    pong = edge.expect(lambda f, p: p.get("cmd") == "ping")
    assert pong == {"cmd": "ping", "ok": True, "id": 1, "t": pong["t"]}
    after = edge.expect(counters)
    assert sum(after["fe"]) > sum(before["fe"])
    assert after["exc"] == 0
    assert interpreter_pids(pole.sim.state_dir) == pids
    assert "interpreter exited" not in pole.sim.log
    assert len(edge.payloads(link.T_HELLO)) == 1


@pytest.mark.micropython
def test_a_hung_firmware_is_reset_by_the_watchdog(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole("--watchdog", "2")
    edge = pole.edge
    assert edge.expect(is_hello)["rst"] == "power-on"
    pole.inputs.hang()
    hello = edge.expect(is_hello, timeout=10)
    assert hello["rst"] == "watchdog"
    assert hello["fw"] == FIRMWARE_VERSION
    assert "watchdog: no feed" in pole.sim.log
