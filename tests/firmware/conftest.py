"""Run the pole controller firmware under the real MicroPython unix port.

`RigProcess` drives tests/firmware/scenarios/rig.py (a Controller on fake pins, ADCs and a fake
clock) one JSON line at a time. `Edge` plays the edge node on the CPython side with the very
same protocols/link.py: its own LinkSession and FrameDecoder, so acks, heartbeats and command
sequencing are the real ones. Either direction of the "UART" can be cut to simulate link loss.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocols import link

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
PROTOCOLS = ROOT / "protocols"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
MICROPYTHON = Path(sys.executable).parent / "micropython"

SUPPLY_DIVIDER = 122 / 22


def temp_raw(celsius: float) -> int:
    # Inverse of firmware/sensors.temp_c: the ADC(4) reading of the RP2040 sensor at celsius.
    return round((0.706 - (celsius - 27) * 0.001721) / 3.3 * 65535)


def supply_raw(volts: float) -> int:
    return round(volts / SUPPLY_DIVIDER / 3.3 * 65535)


def scenario_stdout(
    name: str,
    *args: str,
    heapsize: str | None = None,
    timeout: float = 60,
    firmware: Path = FIRMWARE,
    protocols: Path = PROTOCOLS,
) -> str:
    """Run a self-contained scenario script under MicroPython; return what it printed."""
    cmd = [str(MICROPYTHON)]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    cmd += [str(SCENARIOS / name), str(firmware), str(protocols), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def run_scenario(
    name: str,
    *args: str,
    heapsize: str | None = None,
    timeout: float = 60,
    firmware: Path = FIRMWARE,
    protocols: Path = PROTOCOLS,
) -> list[Any]:
    """Run a self-contained scenario script; return its stdout JSON lines, parsed."""
    out = scenario_stdout(
        name, *args, heapsize=heapsize, timeout=timeout, firmware=firmware, protocols=protocols
    )
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


class RigProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [str(MICROPYTHON), str(SCENARIOS / "rig.py"), str(FIRMWARE), str(PROTOCOLS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def cmd(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            assert self.proc.stderr is not None
            raise AssertionError(f"rig exited {self.proc.returncode}: {self.proc.stderr.read()}")
        reply: dict[str, Any] = json.loads(line)
        assert "error" not in reply, reply
        return reply

    def init(self, **cfg: Any) -> int:
        return int(self.cmd("init", **cfg)["t"])

    def pin(self, name: str, v: int) -> None:
        self.cmd("pin", name=name, v=v)

    def adc(self, name: str, raw: int) -> None:
        self.cmd("adc", name=name, raw=raw)

    def run(self, ms: int, step: int = 10, rx: bytes = b"") -> tuple[int, bytes]:
        reply = self.cmd("run", ms=ms, step=step, rx=rx.hex())
        return int(reply["t"]), bytes.fromhex(reply["out"])

    def state(self) -> dict[str, Any]:
        return self.cmd("state")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, BrokenPipeError, ValueError):
                self.cmd("quit")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class Edge:
    """The edge node's end of the UART, with a real LinkSession; steps the rig in chunks."""

    def __init__(self, rig: RigProcess, now: int, chunk_ms: int = 20, tick_ms: int = 10) -> None:
        self.rig = rig
        self.now = now
        self.chunk_ms = chunk_ms
        self.tick_ms = tick_ms
        self.session = link.LinkSession(now)
        self.decoder = link.FrameDecoder()
        self.to_controller = b""
        self.controller_to_edge = True  # False: what the controller sends is lost
        self.edge_to_controller = True  # False: what the edge sends is lost
        self.frames: list[link.Frame] = []  # every frame decoded from the controller
        self.delivered: list[tuple[int, dict[str, Any]]] = []  # once each, as the session passes

    def step(self, ms: int | None = None, rx: bytes = b"") -> None:
        pending = (self.to_controller if self.edge_to_controller else b"") + rx
        self.to_controller = b""
        self.now, out = self.rig.run(ms or self.chunk_ms, self.tick_ms, pending)
        if self.controller_to_edge:
            self.receive(out)
        self.to_controller += b"".join(self.session.poll(self.now))

    def receive(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            assert isinstance(item, link.Frame), item
            self.frames.append(item)
            frame = self.session.on_frame(item, self.now)
            if frame is not None:
                self.delivered.append((frame.frame_type, json.loads(frame.payload)))

    def run(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            self.step()

    def run_until(self, predicate: Any, limit_ms: int = 10_000) -> None:
        end = self.now + limit_ms
        while not predicate():
            assert self.now < end, "condition not reached in time"
            self.step()

    def command(self, body: dict[str, Any]) -> None:
        self.session.send(link.T_COMMAND, json.dumps(body, separators=(",", ":")).encode(), link.CLASS_EVENT)

    def payloads(self, frame_type: int, kind: str | None = None) -> list[dict[str, Any]]:
        return [p for t, p in self.delivered if t == frame_type and (kind is None or p.get("k") == kind)]

    def results(self) -> list[dict[str, Any]]:
        return self.payloads(link.T_RESULT)

    def connect(self) -> None:
        """Run until the controller's HELLO is delivered and acked."""
        self.run_until(lambda: any(t == link.T_HELLO for t, _ in self.delivered))
        self.run(100)


@pytest.fixture
def rig() -> Iterator[RigProcess]:
    process = RigProcess()
    try:
        yield process
    finally:
        process.close()
