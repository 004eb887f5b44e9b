"""`watchpost demo story`, part two: a pole for real, in real time, on this machine.

Everything the pole runs is the real thing: the pole controller firmware on the simulated device
(the MicroPython unix port behind a pty; GPIO on mock pins where MicroPython has no build), the
edge agent as it runs on the Pi, an embedded Mosquitto of the demo's own on a free loopback port
(or the broker given with --broker). The demo plays the citizen (presses the bell), the camera
NVR (pushes recording segments), the control-centre operator (acknowledges the alarm) and the
technician (checks in with the node's diagnostics). The fleet manager is real too (its ingest
and REST API, on SQLite: watchpost.demo_fleet): the operator and the technician work it through
the API. `MqttTap` prints what crosses MQTT: it only listens.
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
from protocols.topics import ROUTES, Direction, Kind, parse_topic
from watchpost.broker import MosquittoBroker, free_port
from watchpost.demo_fleet import DemoFleet
from watchpost.sim.controls import SimulatedInputs
from watchpost.sim.pole import micropython_available, simulated_pole

NODE = "pole-0412"
PIN = "482916"


@dataclass
class PoleReport:
    alarm_ms: float | None = None  # bell press -> the alarm in the fleet's API
    lamp_lit: bool = False
    ticket: dict[str, Any] = field(default_factory=dict)  # the door fault's ticket, at the end
    kinds: list[str] = field(default_factory=list)
    bookmarked: int = 0
    visit_verified: bool = False
    wiring: str = ""


class MqttTap:
    """Listens to the node's MQTT topics and prints what crosses them, for the story."""

    def __init__(self, host: str, port: int, out: Callable[[str], None], started: float) -> None:
        self.out = out
        self.started = started
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.arrived: dict[str, float] = {}  # kind -> monotonic time its first message arrived
        self.changed = threading.Condition()
        self._client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"watchpost/v1/node/{NODE}/#", qos=1)
        self._client.on_subscribe = lambda c, u, mid, rc, p: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the MQTT tap could not subscribe")

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        topic = parse_topic(message.topic)
        if isinstance(topic, Exception):
            return
        decoded = m.decode(topic.kind, bytes(message.payload))
        if isinstance(decoded, Exception):
            self.out(f"{self.stamp()}  fleet      rejected a {topic.kind} payload: {decoded}")
            return
        body = json.loads(message.payload)
        up = ROUTES[topic.kind].direction is Direction.UP
        if topic.kind is not Kind.TELEMETRY:
            arrow = "node -> fleet" if up else "fleet -> node"
            self.out(f"{self.stamp()}  mqtt       {arrow}  {topic.kind.value:<9} {_summary(body)}")
        if not up:
            return
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
    )
    parts = [f"{k}={body[k]}" for k in keep if body.get(k) is not None and body[k] != ""]
    if body.get("historical") is True:
        parts.append("historical")
    if body.get("type") == "video":
        records = body["records"]
        marks = sum(bool(r.get("bookmarks")) for r in records)
        parts.append(f"{len(records)} records, {marks} bookmarked")
    return " ".join(parts)[:150]


def post_json(url: str, body: object, token: str | None = None) -> dict[str, Any]:
    """POST JSON to the node's or the fleet's HTTP; an error status raises (HTTPError)."""
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
        tap = MqttTap(host, port, out, started)
        stack.callback(tap.close)
        fleet = stack.enter_context(DemoFleet(host, port, work))
        out(f"fleet manager: ingest and REST API on {fleet.api.url if fleet.api else '?'} (SQLite)")
        asyncio.run(_scenario(config, tap, fleet, report=report, http_port=http_port, work=work))
    return report


async def _scenario(
    config: str, tap: MqttTap, fleet: DemoFleet, *, report: PoleReport, http_port: int, work: Path
) -> None:
    def say(who: str, text: str) -> None:
        tap.out(f"{tap.stamp()}  {who:<10} {text}")

    def api(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(call, *args, **kwargs)

    base = f"http://127.0.0.1:{http_port}"
    async with _agent(config) as agent:
        node = await api(fleet.until, f"/nodes/{NODE}", lambda n: n if n["online"] else None)
        say("fleet", f"{NODE} is online at {node['site_id']} (agent {node['agent_version']})")
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
        await api(post_json, f"{base}/api/v1/video-metadata", segment)

        # The citizen's call: from the button to the operator's screen, then the lamp.
        say("citizen", "presses the emergency call bell")
        pressed = time.monotonic()
        await _press(agent, work)
        latched = await api(fleet.until, "/alarms?latched=true", lambda page: page["items"])
        report.alarm_ms = (time.monotonic() - pressed) * 1000
        alarm = latched[0]
        say("operator", f"sees the bell alarm {report.alarm_ms:.0f} ms after the press")
        await api(fleet.post, f"/alarms/{alarm['alarm_id']}/shown")
        await api(tap.wait_for, "video", lambda b: any(r.get("bookmarks") for r in b["records"]))
        report.bookmarked += 1
        say("edge", "footage around the press is bookmarked with the alarm's id")
        acked = await api(fleet.post, f"/alarms/{alarm['alarm_id']}/acknowledge", {"lamp": True})
        say(
            "operator",
            f"acknowledges it (press to acknowledgement {acked['timeline']['press_to_ack_ms']} ms)",
        )
        report.lamp_lit = await _lamp_lit(agent)
        say(
            "pole",
            '"call received" lamp ON: the citizen sees help is coming' if report.lamp_lit else "lamp off?",
        )

        # A fault: the cabinet door is forced. A ticket opens with its 2-hour response clock.
        say("vandal", "forces the cabinet door open")
        await _door(agent, work, open_=True)
        ticket = await api(
            fleet.until, f"/faults?node={NODE}", lambda page: page["items"][0] if page["items"] else None
        )
        budget_min = (ticket["response_deadline_ms"] - ticket["opened_at_ms"]) // 60_000
        fault = f"{ticket['kind']} on {ticket['component']}, {ticket['severity']}"
        say("fleet", f"ticket {ticket['ticket_id']} opened ({fault}): on site within {budget_min} min")
        await api(fleet.post, f"/faults/{ticket['ticket_id']}/acknowledge")
        await api(fleet.post, f"/faults/{ticket['ticket_id']}/dispatch", {"technician": "tech-0193"})
        say("operator", "acknowledges the ticket and dispatches tech-0193")

        # The technician at the pole: the node signs the check-in, the fleet verifies it.
        token = (await api(post_json, f"{base}/diag/api/login", {"pin": PIN}))["token"]
        say("technician", "arrives, logs in to the node's diagnostics, checks in for the ticket")
        await api(
            post_json,
            f"{base}/diag/api/visits",
            {"action": "check-in", "technician": "tech-0193", "fault_id": ticket["ticket_id"]},
            token,
        )
        on_site = await api(
            fleet.until,
            f"/faults/{ticket['ticket_id']}",
            lambda t: t if t["state"] == "on_site" else None,
        )
        arrival = on_site["steps"][-1]
        report.visit_verified = arrival["verification"] == "node-verified"
        say("fleet", f"check-in {arrival['verification']} by the node's signature: ticket on site")
        await _door(agent, work, open_=False)
        say("technician", "replaces the lock, closes the door, resolves and reports on the phone")
        url = f"/faults/{ticket['ticket_id']}"
        await api(fleet.post, f"{url}/resolve", {"note": "lock forced; replaced"}, who="tech-0193")
        report.ticket = await api(
            fleet.post, f"{url}/report", {"note": "lock replaced, door switch tested"}, who="tech-0193"
        )
        response = next(c for c in report.ticket["clocks"] if c["clock"] == "response")
        say(
            "fleet",
            f"ticket {report.ticket['state']}: response clock {response['state']}"
            f" ({response['remaining_ms'] // 60_000} min to spare)",
        )
    report.kinds = sorted({kind for kind, _ in tap.messages})


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


async def _door(agent: Agent, work: Path, *, open_: bool) -> None:
    if agent.gpio_wiring is not None:
        agent.gpio_wiring.set_door(open=open_)
        return
    inputs = SimulatedInputs(work / "pole")
    if open_:
        inputs.open_door()
    else:
        inputs.close_door()


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
