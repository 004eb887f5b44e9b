"""`watchpost demo`, part two: a pole for real, in real time, on this machine.

Everything the pole runs is the real thing: the pole controller firmware on the simulated device
(the MicroPython unix port behind a pty; GPIO on mock pins where MicroPython has no build), the
edge agent as it runs on the Pi, an embedded Mosquitto of the demo's own on a free loopback port
(or the broker given with --broker). The demo plays the citizen (presses the bell), the camera
NVR (pushes recording segments), the control-centre operator (acknowledges the alarm) and the
technician (checks in with the node's diagnostics). It prints what crosses MQTT.

The fleet manager joins here when it is built; until then the operator is this module, and it is
the one place outside edge/uplink that speaks MQTT (through paho, as the fleet's ingest will).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import Agent
from edge.config import parse_config
from protocols import messages as m
from protocols.topics import Kind, node_topic, parse_topic
from protocols.visits import public_key_from_text, verify_visit
from watchpost.broker import MosquittoBroker, free_port
from watchpost.sim.controls import SimulatedInputs
from watchpost.sim.pole import micropython_available, simulated_pole

NODE = "pole-0412"
PIN = "482916"


@dataclass
class PoleReport:
    alarm_ms: float | None = None  # bell press -> alarm at the fleet
    lamp_lit: bool = False
    kinds: list[str] = field(default_factory=list)
    bookmarked: int = 0
    visit_verified: bool = False
    wiring: str = ""


class FleetConsole:
    """The operator's side of MQTT: prints what the node sends, sends acknowledgements."""

    def __init__(self, host: str, port: int, out: Callable[[str], None], started: float) -> None:
        self.out = out
        self.started = started
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.arrived: dict[str, float] = {}  # kind -> monotonic time its first message arrived
        self.changed = threading.Condition()
        self._client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"watchpost/v1/node/{NODE}/up/#", qos=1)
        self._client.on_subscribe = lambda c, u, mid, rc, p: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the fleet console could not subscribe")

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        topic = parse_topic(message.topic)
        if isinstance(topic, Exception):
            return
        decoded = m.decode(topic.kind, bytes(message.payload))
        if isinstance(decoded, Exception):
            self.out(f"{self.stamp()}  fleet      rejected a {topic.kind} payload: {decoded}")
            return
        body = json.loads(message.payload)
        if topic.kind is not Kind.TELEMETRY:
            self.out(f"{self.stamp()}  fleet      <- {topic.kind.value:<9} {_summary(body)}")
        with self.changed:
            self.arrived.setdefault(topic.kind.value, time.monotonic())
            self.messages.append((topic.kind.value, body))
            self.changed.notify_all()

    def stamp(self) -> str:
        return f"{time.monotonic() - self.started:6.2f}s"

    def wait_for(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda b: True) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        with self.changed:
            while True:
                for seen_kind, body in self.messages:
                    if seen_kind == kind and match(body):
                        return body
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {kind} from the node within 20 s")
                self.changed.wait(left)

    def acknowledge(self, alarm_id: str) -> None:
        ack = m.AlarmAck(ts=time.time_ns() // 1_000_000, alarm_id=alarm_id, operator="operator.kim")
        self.out(f"{self.stamp()}  operator   acknowledges {alarm_id}")
        self._client.publish(node_topic(NODE, Kind.ALARM_ACK), m.encode(ack), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _summary(body: dict[str, Any]) -> str:
    keep = (
        "bd_seq",
        "alarm_id",
        "category",
        "state",
        "severity",
        "detail",
        "action",
        "technician",
        "historical",
    )
    parts = [f"{k}={body[k]}" for k in keep if body.get(k) is not None and body[k] != ""]
    if body.get("historical") is True:
        parts.append("historical")
    if body.get("type") == "video":
        records = body["records"]
        marks = sum(bool(r.get("bookmarks")) for r in records)
        parts.append(f"{len(records)} records, {marks} bookmarked")
    return " ".join(parts)[:150]


def _post(url: str, body: object, token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


@contextlib.asynccontextmanager
async def _agent(config_text: str) -> AsyncIterator[Agent]:
    agent = Agent(parse_config(config_text))
    task = asyncio.create_task(agent.run(), name="agent")
    try:
        async with asyncio.timeout(20):
            while not agent.uplink.online:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run_pole_demo(*, broker: str | None, out: Callable[[str], None]) -> PoleReport:
    report = PoleReport()
    logging.getLogger("edge").setLevel(logging.ERROR)  # the story is told here, not in log lines
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="watchpost-demo-")))
        if broker:
            host, _, port_text = broker.partition(":")
            port = int(port_text or 1883)
            out(f"broker: {host}:{port} (given with --broker)")
        else:
            embedded = stack.enter_context(MosquittoBroker())
            host, port = embedded.host, embedded.port
            out(f"broker: embedded Mosquitto on {host}:{port}")
        if micropython_available():
            uart = stack.enter_context(simulated_pole(work / "pole"))
            pole = f'[controller]\nport = "{uart}"\n'
            report.wiring = "pole controller: the real firmware on the simulated device (MicroPython)"
        else:
            pole = "[gpio]\nbell_pin = 17\ndoor_pin = 27\nlamp_pin = 22\nmock = true\n"
            report.wiring = "bell, door and lamp on the Pi's GPIO (mock pins: no MicroPython build here)"
        out(report.wiring)
        (work / "pin").write_text(PIN)
        http_port = free_port()
        config = f"""
[node]
id = "{NODE}"
site_id = "site-0412"
state_dir = "{work / "state"}"
[uplink]
host = "{host}"
port = {port}
[http]
listen = "127.0.0.1"
port = {http_port}
pin_file = "{work / "pin"}"
[telemetry]
interval_s = 5
[[cameras]]
id = "cam-north"
name = "North approach"
host = "127.0.0.1"
port = 9
probe = "tcp"
{pole}
"""
        started = time.monotonic()
        fleet = FleetConsole(host, port, out, started)
        stack.callback(fleet.close)
        asyncio.run(_scenario(config, fleet, report=report, http_port=http_port, work=work))
    return report


async def _scenario(
    config: str, fleet: FleetConsole, *, report: PoleReport, http_port: int, work: Path
) -> None:
    def say(who: str, text: str) -> None:
        fleet.out(f"{fleet.stamp()}  {who:<10} {text}")

    base = f"http://127.0.0.1:{http_port}"
    async with _agent(config) as agent:
        await asyncio.to_thread(fleet.wait_for, "birth")
        now = time.time_ns() // 1_000_000
        segment = {
            "record": "segment",
            "camera_id": "cam-north",
            "start": now - 20_000,
            "end": now - 10_000,
            "bytes": 9_400_000,
            "codec": "h265",
            "width": 2560,
            "height": 1440,
            "fps": 20.0,
            "bitrate_kbps": 7500.0,
        }
        say("nvr", "pushes a 10 s recording segment of cam-north")
        await asyncio.to_thread(_post, f"{base}/api/v1/video-metadata", segment)

        say("citizen", "presses the emergency call bell")
        pressed = time.monotonic()
        await _press(agent, work)
        alarm = await asyncio.to_thread(fleet.wait_for, "alarm")
        report.alarm_ms = (fleet.arrived["alarm"] - pressed) * 1000
        say("fleet", f"the alarm reached the centre {report.alarm_ms:.0f} ms after the press")
        await asyncio.to_thread(
            fleet.wait_for, "video", lambda b: any(r.get("bookmarks") for r in b["records"])
        )
        report.bookmarked += 1
        say("edge", "footage around the press is bookmarked with the alarm's id")

        await asyncio.to_thread(fleet.acknowledge, alarm["alarm_id"])
        report.lamp_lit = await _lamp_lit(agent)
        say(
            "pole",
            '"call received" lamp ON: the citizen sees help is coming' if report.lamp_lit else "lamp off?",
        )

        token = (await asyncio.to_thread(_post, f"{base}/diag/api/login", {"pin": PIN}))["token"]
        say("technician", "arrives, logs in to the node's diagnostics, checks in for the fault")
        await asyncio.to_thread(
            _post,
            f"{base}/diag/api/visits",
            {"action": "check-in", "technician": "tech-0193", "fault_id": "fault-0731"},
            token,
        )
        visit = await asyncio.to_thread(fleet.wait_for, "visit")
        birth = await asyncio.to_thread(fleet.wait_for, "birth")
        report.visit_verified = _verify(visit, birth["node_key"])
        say(
            "fleet",
            f"site visit signed by the node: {'verified' if report.visit_verified else 'NOT verified'}",
        )
    report.kinds = sorted({kind for kind, _ in fleet.messages})


async def _press(agent: Agent, work: Path) -> None:
    if agent.gpio_wiring is not None:
        agent.gpio_wiring.press_bell()
        await asyncio.sleep(0.15)
        agent.gpio_wiring.release_bell()
        return
    inputs = SimulatedInputs(work / "pole")
    inputs.press_bell()
    await asyncio.sleep(0.15)
    inputs.release_bell()


async def _lamp_lit(agent: Agent) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while True:
                if agent.gpio_wiring is not None and agent.gpio_wiring.lamp_lit():
                    return True
                command = getattr(agent.pole, "command", None)
                if command is not None:
                    status = await command("status")
                    if status.inputs is not None and status.inputs[3] == 1:
                        return True
                await asyncio.sleep(0.1)
    return False


def _verify(visit: dict[str, Any], node_key: str) -> bool:
    decoded = m.decode(Kind.VISIT, json.dumps(visit).encode())
    key = public_key_from_text(node_key)
    return isinstance(decoded, m.SiteVisit) and key is not None and verify_visit(NODE, decoded, key)
