"""`watchpost demo`: a city's fleet alive on this machine, until Ctrl-C (or `--for SECONDS`).

It starts, in order: an MQTT broker (the project's own Mosquitto on a free loopback port, or
the one given with --broker); the fleet manager as its own process (`watchpost fleet serve`,
SQLite, its dashboard: watchpost.fleetprocess); the city's site list, imported through the
API as an admin would; pole 1 for real (the pole controller firmware on the simulated device,
or GPIO mock pins without a MicroPython build, and the edge agent); the other poles simulated
(watchpost.demo_poles), speaking the same MQTT contract. Then it prints the dashboard's address
and a sign-in, and plays the city's life: telemetry from every pole, a citizen's bell press, a
camera that stops answering, a technician at the real pole's cabinet; then more of the same at
a calm pace. Each event is narrated as it happens, and so is what the fleet made of it, read
back from its API.

The narrated walk-through of a single pole (watchpost.demo, watchpost.demo_pole) is
`watchpost demo story`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.agent import Agent
from edge.cameras.fake import FakeCamera
from edge.config import parse_config
from watchpost.broker import BrokerError, MosquittoBroker, free_port
from watchpost.demo_pole import post_json
from watchpost.demo_poles import PoleOffline, PoleSpec, SimulatedPoles, camera_purpose, city, sites_csv
from watchpost.fleetprocess import TOKEN_FILE, FleetProcess, FleetStartError
from watchpost.sim.controls import ControlError, SimulatedInputs
from watchpost.sim.pole import micropython_available, simulated_pole

VISITOR = "visitor"  # who signs in to the dashboard with the printed token (an operator)
DUTY = "duty-operator"  # the demo's own operator: reads the fleet, takes the later calls
TECHNICIAN = "tech-0193"

# The first minute (seconds after the poles are up), then a calm pace.
BELL_AT_S = 10.0
CAMERA_AT_S = 15.0
DOOR_AT_S = 30.0
CHECK_IN_AFTER_S = 10.0  # after the door opens
RESOLVE_AFTER_S = 60.0
CAMERA_BACK_AFTER_S = 180.0
ROUND_S = 150.0  # later bells and camera faults, one of each per round
TAKE_CALL_AFTER_S = 60.0  # the duty operator takes a later call the visitor left waiting
WATCH_EVERY_S = 1.0


class DemoError(RuntimeError):
    """The demo could not start or keep running; the message says what to do about it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    poles: int = 24
    broker: str | None = None  # HOST[:PORT]; None: the demo's own Mosquitto
    port: int = 8080  # the dashboard's; a free one when taken
    data_dir: Path | None = None  # None: a fresh temporary directory, removed at exit
    run_for: float | None = None  # seconds; None: until SIGINT/SIGTERM

    def __post_init__(self) -> None:
        if not 2 <= self.poles <= 500:
            raise ValueError(f"{self.poles} poles: use 2 to 500 (pole 1 is real, the rest simulated)")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port}: use 1 to 65535")
        if self.run_for is not None and self.run_for <= 0:
            raise ValueError(f"--for {self.run_for}: use a positive number of seconds")


def run_live_demo(options: DemoOptions, *, out: Callable[[str], None]) -> None:
    """Run the demo until a signal or `options.run_for`; raises DemoError when it cannot."""
    asyncio.run(_main(options, out, time.monotonic()))


# --- narration ----------------------------------------------------------------------------------


class Narrator:
    """One line per event, stamped with the seconds since the command started. The simulated
    poles' thread narrates too, hence the lock."""

    def __init__(self, out: Callable[[str], None], started: float) -> None:
        self._out = out
        self._started = started
        self._lock = threading.Lock()

    def __call__(self, who: str, text: str) -> None:
        self.line(f"{time.monotonic() - self._started:6.1f}s  {who:<10} {text}")

    def row(self, label: str, text: str) -> None:
        """A line of the start-up table."""
        self.line(f"  {label:<15} {text}")

    def line(self, text: str = "") -> None:
        with self._lock:
            self._out(text)


# --- the fleet's API, as a client ---------------------------------------------------------------


class FleetApi:
    """The fleet's REST API with one token (urllib: a few calls a second need nothing more)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(
        self, method: str, path: str, body: bytes | None = None, *, media: str = "application/json"
    ) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": media},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: object | None = None) -> Any:
        return self.call("POST", path, json.dumps(body if body is not None else {}).encode())


# --- pole 1, for real ---------------------------------------------------------------------------


@dataclass
class RealPole:
    """Pole 1: the real edge agent, in this process, on the real firmware on the simulated
    device (or on GPIO mock pins). The demo's hands work its inputs as a citizen and a
    technician would: the controller's input FIFO, the node's diagnostics over HTTP."""

    spec: PoleSpec
    agent: Agent
    task: asyncio.Task[None]
    controller_dir: Path | None  # the simulated controller's state dir; None: GPIO mock pins
    diagnostics_url: str
    pin: str
    wiring: str

    async def press_bell(self) -> None:
        if self.agent.gpio_wiring is not None:
            self.agent.gpio_wiring.press_bell()
            await asyncio.sleep(0.2)
            self.agent.gpio_wiring.release_bell()
            return
        assert self.controller_dir is not None
        inputs = SimulatedInputs(self.controller_dir)
        inputs.press_bell()
        await asyncio.sleep(0.2)  # a hand on the button, longer than the firmware's debounce
        inputs.release_bell()

    async def set_door(self, *, open_: bool) -> None:
        if self.agent.gpio_wiring is not None:
            self.agent.gpio_wiring.set_door(open=open_)
            return
        assert self.controller_dir is not None
        inputs = SimulatedInputs(self.controller_dir)
        if open_:
            inputs.open_door()
        else:
            inputs.close_door()

    def lamp_on_until_ms(self) -> int | None:
        """Set by the agent once the lamp is lit, after an operator's acknowledgement."""
        return self.agent.lamp_on_until_ms

    async def visit(self, action: str, *, fault_id: str, note: str) -> None:
        """What a technician's phone does on the node's service interface: log in with the
        PIN, then check in (or resolve) for a ticket; the node signs it and sends it on."""
        login = await asyncio.to_thread(post_json, f"{self.diagnostics_url}api/login", {"pin": self.pin})
        body = {"action": action, "technician": TECHNICIAN, "fault_id": fault_id, "note": note}
        await asyncio.to_thread(post_json, f"{self.diagnostics_url}api/visits", body, login["token"])


def _agent_config(
    spec: PoleSpec,
    *,
    work: Path,
    broker: tuple[str, int],
    http_port: int,
    cameras: list[FakeCamera],
    pole: str,
) -> str:
    camera_tables = "".join(
        f"""
[[cameras]]
id = "{info.camera_id}"
name = "{info.name}"
model = "{info.model}"
host = "{camera.host}"
port = {camera.port}
probe = "rtsp"
"""
        for info, camera in zip(spec.cameras, cameras, strict=True)
    )
    return f"""
[node]
id = "{spec.node_id}"
site_id = "{spec.site_id}"
state_dir = {_toml_path(work / "state")}
[uplink]
host = "{broker[0]}"
port = {broker[1]}
[http]
listen = "127.0.0.1"
port = {http_port}
pin_file = {_toml_path(work / "pin")}
[telemetry]
interval_s = 10
camera_probe_s = 30
[ota]
root = {_toml_path(work / "ota")}
{camera_tables}
{pole}
"""


def _toml_path(path: Path) -> str:
    return json.dumps(str(path))  # a TOML basic string is JSON's for any path


@contextlib.asynccontextmanager
async def _running_agent(config_text: str, log_file: Path) -> AsyncIterator[tuple[Agent, asyncio.Task[None]]]:
    # The agent's log goes to a file: the terminal is the story's.
    edge_log = logging.getLogger("edge")
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level, propagate = edge_log.level, edge_log.propagate
    edge_log.addHandler(handler)
    edge_log.setLevel(logging.INFO)
    edge_log.propagate = False
    agent = Agent(parse_config(config_text))
    task = asyncio.create_task(agent.run(), name="edge-agent")
    try:
        async with asyncio.timeout(30):
            while not agent.uplink.online:
                if task.done():
                    task.result()
                    raise DemoError("the edge agent of pole 1 stopped as it started")
                await asyncio.sleep(0.05)
        yield agent, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        edge_log.removeHandler(handler)
        edge_log.setLevel(level)
        edge_log.propagate = propagate
        handler.close()


# --- the city -----------------------------------------------------------------------------------


@dataclass
class City:
    """Everything running, and the clock of the city's script (`at`)."""

    say: Narrator
    url: str  # the dashboard
    duty: FleetApi
    fleet: FleetProcess
    real: RealPole
    sims: SimulatedPoles
    specs: list[PoleSpec]
    t0: float = field(default_factory=time.monotonic)
    background: set[asyncio.Task[None]] = field(default_factory=set)  # later steps of the script

    async def at(self, seconds: float) -> None:
        """Wait until `seconds` after the poles came up."""
        await asyncio.sleep(max(0.0, self.t0 + seconds - time.monotonic()))

    @property
    def simulated(self) -> list[PoleSpec]:
        return self.specs[1:]

    def site_of(self, node_id: str) -> str:
        spec = next((s for s in self.specs if s.node_id == node_id), None)
        return f"{spec.site_name}, {spec.district}" if spec else node_id

    async def api(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(call, *args)


async def _main(options: DemoOptions, out: Callable[[str], None], started: float) -> None:
    say = Narrator(out, started)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # One orderly stop for Ctrl-C and SIGTERM alike: the exit stack below ends everything this
    # demo started, last started first.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            city = await _bring_up(stack, options, say, stop)
            if city is None:
                say("demo", "stopped while starting")
                return
            await _live(city, options, stop)
            broker = "" if options.broker else ", then the broker"
            say("demo", f"stopping: the poles say goodbye, then the fleet{broker}")
        say("demo", "stopped; nothing it started is left running")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _bring_up(
    stack: contextlib.AsyncExitStack, options: DemoOptions, say: Narrator, stop: asyncio.Event
) -> City | None:
    # Processes are started from this (the main) thread, never from a worker thread: the
    # broker's and the fleet's parent-death signal (watchpost.processes) fires when the thread
    # that started them ends, not the process.
    if options.data_dir is None:
        data = Path(tempfile.mkdtemp(prefix="watchpost-demo-"))
        stack.callback(shutil.rmtree, data, ignore_errors=True)
        kept = "removed at exit"
    else:
        data = options.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        kept = "kept"
    specs = city(options.poles)
    say.line(f"watchpost demo: {options.poles} poles of a city's fleet, live on this machine")
    say.row("data and logs", f"{data} ({kept})")

    if options.broker:
        broker = _configured_broker(options.broker)
        say.row("MQTT broker", f"{broker[0]}:{broker[1]} (given with --broker)")
    else:
        try:
            mosquitto = stack.enter_context(MosquittoBroker(workdir=_fresh(data / "broker")))
        except BrokerError as error:
            raise DemoError(f"cannot start the embedded MQTT broker: {error}") from None
        broker = (mosquitto.host, mosquitto.port)
        say.row("MQTT broker", f"Mosquitto on {broker[0]}:{broker[1]} (the demo's own)")
    if stop.is_set():
        return None

    port = _dashboard_port(options.port, say)
    fleet_dir = data / "fleet"
    settings = data / "fleet.toml"
    settings.write_text(_fleet_settings(fleet_dir, broker=broker, api_port=port))
    fleet = FleetProcess(settings, data_dir=fleet_dir, port=port, stderr_path=data / "fleet.log")
    try:
        stack.enter_context(fleet)
    except FleetStartError as error:
        raise DemoError(f"the fleet manager did not start: {error}") from None
    assert fleet.process is not None
    say.row("fleet manager", f"watchpost fleet serve, SQLite in {fleet_dir} (pid {fleet.process.pid})")
    if stop.is_set():
        return None

    # Set up as a city would: the site list from the inventory, a token for each person.
    admin = FleetApi(fleet.api_url, fleet.token)
    try:
        await asyncio.to_thread(
            admin.call, "POST", "/sites/import", sites_csv(specs).encode(), media="text/csv"
        )
        visitor = await asyncio.to_thread(admin.post, "/tokens", {"subject": VISITOR, "role": "operator"})
        duty_token = await asyncio.to_thread(admin.post, "/tokens", {"subject": DUTY, "role": "operator"})
    except (OSError, urllib.error.HTTPError) as error:
        raise DemoError(f"the fleet's API refused the demo's set-up: {error}") from None
    duty = FleetApi(fleet.api_url, duty_token["token"])

    real = await _start_real_pole(stack, specs[0], data=data, broker=broker)
    say.row(real.spec.node_id, f"{real.wiring}, and the edge agent")
    if stop.is_set():
        return None

    sims = SimulatedPoles(
        specs[1:],
        host=broker[0],
        port=broker[1],
        on_lamp=lambda node_id, ack: say(
            "pole", f'{node_id}: "call received" lamp ON ({ack.operator} took the call)'
        ),
    )
    stack.callback(sims.close)
    try:
        sims.start()
    except (OSError, TimeoutError) as error:
        raise DemoError(f"the simulated poles could not connect to the broker: {error}") from None
    simulated = f"{specs[1].node_id}..{specs[-1].node_id[-4:]}"
    say.row(simulated, f"{len(sims.poles)} simulated poles, speaking the same MQTT contract")

    url = f"http://127.0.0.1:{port}/"
    the_city = City(say=say, url=url, duty=duty, fleet=fleet, real=real, sims=sims, specs=specs)
    await _until_online(the_city, stop)
    if stop.is_set():
        return None
    try:
        await asyncio.to_thread(_set_camera_purposes, admin, specs)
    except (OSError, urllib.error.HTTPError) as error:
        raise DemoError(f"the fleet's API refused a camera's purpose: {error}") from None
    admin_file = fleet_dir / TOKEN_FILE
    say.line()
    say.line("Open the dashboard and sign in with the token (an operator's):")
    say.line(f"dashboard: {url}")
    say.line(f"sign-in token: {visitor['token']}")
    say.line(f"  the admin token is in {admin_file}")
    say.line(
        f"  {real.spec.node_id}'s diagnostics, as a technician's phone sees them: {real.diagnostics_url} "
        f"(PIN {real.pin})"
    )
    until = f"for {options.run_for:g} s" if options.run_for else "until Ctrl-C"
    say.line(f"The city lives {until}. What happens:")
    say.line()
    the_city.t0 = time.monotonic()
    return the_city


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _configured_broker(text: str) -> tuple[str, int]:
    host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "1883")
    try:
        port = int(port_text)
    except ValueError:
        raise DemoError(f"--broker {text!r}: expected HOST[:PORT], e.g. 10.0.0.5:1883") from None
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        raise DemoError(
            f"no MQTT broker answers at {host}:{port} ({error}); leave out --broker to use the demo's own"
        ) from None
    return host, port


def _dashboard_port(wanted: int, say: Narrator) -> int:
    with socket.socket() as probe:
        # As the fleet's server binds: a port a stopped server left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            port = free_port()
            say.row("dashboard port", f"{wanted} is taken: using {port} instead")
            return port
    return wanted


def _fleet_settings(data_dir: Path, *, broker: tuple[str, int], api_port: int) -> str:
    return f"""# The fleet manager of `watchpost demo` (every key: docs/fleet.md).
[fleet]
host_id = "fleet-demo"
data_dir = {_toml_path(data_dir)}

[mqtt]
host = "{broker[0]}"
port = {broker[1]}

[api]
host = "127.0.0.1"
port = {api_port}

# A city believes a camera is gone after 2 minutes; the demo after 10 s, so its first
# minute shows the fault ticket.
[faults.debounce.camera]
raise_after_s = 10
clear_after_s = 30

# The cabinet door: a closed door clears its fault in 20 s, so the next visit opens a new ticket.
[faults.debounce.door]
raise_after_s = 0
clear_after_s = 20
"""


async def _start_real_pole(
    stack: contextlib.AsyncExitStack, spec: PoleSpec, *, data: Path, broker: tuple[str, int]
) -> RealPole:
    work = _fresh(data / spec.node_id)
    controller_dir: Path | None = None
    if micropython_available():
        controller_dir = work / "controller"
        try:
            uart = stack.enter_context(simulated_pole(controller_dir))
        except (OSError, RuntimeError) as error:
            raise DemoError(f"the simulated pole controller did not start: {error}") from None
        pole = f"[controller]\nport = {_toml_path(uart)}\n"
        wiring = "the real pole controller firmware on the simulated device (MicroPython)"
    else:
        pole = "[gpio]\nbell_pin = 17\ndoor_pin = 27\nlamp_pin = 22\nmock = true\n"
        wiring = "bell, door and lamp on the Pi's GPIO (mock pins: no MicroPython build here)"
    # The pole's cameras: stand-ins on loopback ports that answer the agent's RTSP probe.
    cameras = [await stack.enter_async_context(FakeCamera()) for _ in spec.cameras]
    pin = f"{secrets.randbelow(10**6):06d}"
    (work / "pin").write_text(pin)
    http_port = free_port()
    config = _agent_config(spec, work=work, broker=broker, http_port=http_port, cameras=cameras, pole=pole)
    (work / "edge.toml").write_text(config)
    # In this process rather than as `watchpost edge run`: the same code either way, and in
    # here the demo can work GPIO mock pins (they exist only inside the agent's process) and
    # see the lamp the operator's acknowledgement lights.
    try:
        agent, task = await stack.enter_async_context(_running_agent(config, work / "agent.log"))
    except TimeoutError:
        raise DemoError(f"the edge agent of {spec.node_id} did not reach the broker in 30 s") from None
    return RealPole(
        spec=spec,
        agent=agent,
        task=task,
        controller_dir=controller_dir,
        diagnostics_url=f"http://127.0.0.1:{http_port}/diag/",
        pin=pin,
        wiring=wiring,
    )


def _set_camera_purposes(admin: FleetApi, specs: list[PoleSpec]) -> None:
    """As the city's admin does once the cameras are known: what each one is for."""
    for spec in specs:
        for camera in spec.cameras:
            body = json.dumps({"purpose": camera_purpose(spec, camera)}).encode()
            try:
                admin.call("PUT", f"/nodes/{spec.node_id}/cameras/{camera.camera_id}/purpose", body)
            except urllib.error.HTTPError as error:
                if error.code != 404:  # a pole not born yet keeps "other" until it is
                    raise


async def _until_online(city: City, stop: asyncio.Event, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    online: list[dict[str, Any]] = []
    while not stop.is_set() and time.monotonic() < deadline:
        page = await city.api(city.duty.get, "/nodes?online=true&limit=5000")
        online = page["items"]
        if len(online) >= len(city.specs):
            break
        await asyncio.sleep(0.25)
    districts = {node["district"] for node in online if node.get("district")}
    city.say.row(
        "the fleet sees", f"{len(online)} of {len(city.specs)} poles online, in {len(districts)} districts"
    )


# --- the city's life ----------------------------------------------------------------------------


async def _live(city: City, options: DemoOptions, stop: asyncio.Event) -> None:
    # The script's parts may end (a step that failed is told, and that part stops); the demo
    # runs on until it is stopped, unless the real pole's agent or the fleet manager goes.
    script = [
        asyncio.create_task(_guarded(city, "citizens", _citizens(city)), name="citizens"),
        asyncio.create_task(_guarded(city, "cameras", _cameras(city)), name="cameras"),
        asyncio.create_task(_guarded(city, "technician", _technician(city)), name="technician"),
        asyncio.create_task(_watch_lamp(city), name="lamp-watch"),
    ]
    watch = asyncio.create_task(_watch_fleet(city), name="fleet-watch")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait(
            {stopping, city.real.task, watch}, timeout=options.run_for, return_when=asyncio.FIRST_COMPLETED
        )
        if stop.is_set():
            pass  # asked to stop: a Ctrl-C in a terminal reaches the fleet and the broker too
        elif city.real.task in done:
            raise DemoError(f"the edge agent of {city.real.spec.node_id} stopped: {_why(city.real.task)}")
        elif watch in done:
            watch.result()  # it ends only by failing (the fleet manager exited): say why
        elif not done:
            city.say("demo", f"{options.run_for:g} s are up")
    finally:
        stopping.cancel()
        for task in [watch, *script, *city.background]:
            task.cancel()
        await asyncio.gather(stopping, watch, *script, *city.background, return_exceptions=True)


def _why(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return f"{type(error).__name__}: {error}" if error else "it returned"


async def _guarded(city: City, who: str, script: Awaitable[None]) -> None:
    """A step of the script that fails (a pole not connected, the API busy) is told, not fatal."""
    try:
        await script
    except (PoleOffline, ControlError, OSError, urllib.error.HTTPError, TimeoutError, KeyError) as error:
        city.say("demo", f"the {who} script stopped: {error}")


async def _citizens(city: City) -> None:
    await city.at(BELL_AT_S)
    real = city.real.spec
    city.say("citizen", f"presses the emergency bell at {real.node_id} ({city.site_of(real.node_id)})")
    await city.real.press_bell()
    with_bells = [spec for spec in city.simulated if spec.bells]
    round_ = 1
    while with_bells:
        start = BELL_AT_S + round_ * ROUND_S
        await city.at(start)
        pole = with_bells[(round_ * 7) % len(with_bells)]
        city.say("citizen", f"presses the emergency bell at {pole.node_id} ({city.site_of(pole.node_id)})")
        alarm = city.sims.press_bell(pole.node_id)
        await city.at(start + TAKE_CALL_AFTER_S)
        found = await city.api(city.duty.get, f"/alarms/{alarm.alarm_id}")
        if found["latched"]:
            city.say(
                "operator", f"{DUTY} takes the call at {pole.node_id} (it waited {TAKE_CALL_AFTER_S:g} s)"
            )
            await city.api(city.duty.post, f"/alarms/{alarm.alarm_id}/acknowledge", {"lamp": True})
        round_ += 1


async def _cameras(city: City) -> None:
    first = city.simulated[len(city.simulated) // 2]
    await _camera_trouble(city, first, CAMERA_AT_S)
    round_ = 1
    while True:
        pole = city.simulated[(len(city.simulated) // 2 + round_ * 5) % len(city.simulated)]
        await _camera_trouble(city, pole, CAMERA_AT_S + round_ * ROUND_S)
        round_ += 1


async def _camera_trouble(city: City, pole: PoleSpec, at: float) -> None:
    """A camera stops answering at `at`, and answers again a while later; meanwhile the
    script goes on (this returns once it has stopped answering)."""
    camera = pole.cameras[-1]
    await city.at(at)
    city.sims.set_camera(pole.node_id, camera.camera_id, reachable=False, detail="connection refused")
    city.say(
        "camera",
        f"{camera.camera_id} ({camera.name.lower()}) at {pole.node_id} stops answering the node's probe",
    )

    async def back() -> None:
        await city.at(at + CAMERA_BACK_AFTER_S)
        city.sims.set_camera(pole.node_id, camera.camera_id, reachable=True, detail="RTSP 200 OK")
        city.say(
            "camera", f"{camera.camera_id} at {pole.node_id} answers again (a power cycle by the contractor)"
        )

    task = asyncio.create_task(_guarded(city, "cameras", back()), name=f"camera-back-{camera.camera_id}")
    city.background.add(task)
    task.add_done_callback(city.background.discard)


async def _technician(city: City) -> None:
    real = city.real.spec.node_id
    round_ = 0
    while True:
        start = DOOR_AT_S + round_ * 2 * ROUND_S
        await city.at(start)
        city.say("technician", f"{TECHNICIAN} opens the cabinet of {real} for a routine check")
        await city.real.set_door(open_=True)
        ticket = await _new_ticket(city, real, "door")
        await city.at(start + CHECK_IN_AFTER_S)
        await city.real.visit("check-in", fault_id=ticket["ticket_id"], note="routine check")
        city.say(
            "technician",
            f"checks in on {real}'s diagnostics for ticket {ticket['ticket_id']} (the node signs it)",
        )
        await city.at(start + RESOLVE_AFTER_S)
        await city.real.visit("resolve", fault_id=ticket["ticket_id"], note="lock and door switch checked")
        await city.real.set_door(open_=False)
        city.say("technician", f"resolves the ticket on the node and closes the cabinet of {real}")
        round_ += 1


async def _new_ticket(city: City, node_id: str, kind: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        page = await city.api(city.duty.get, f"/faults?node={node_id}&kind={kind}&state=open")
        if page["items"]:
            found: dict[str, Any] = page["items"][0]
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no new {kind} ticket for {node_id} within {timeout:g} s")
        await asyncio.sleep(0.25)


async def _watch_lamp(city: City) -> None:
    """Pole 1's lamp, as the agent lit it on an operator's acknowledgement."""
    seen = city.real.lamp_on_until_ms()
    while True:
        await asyncio.sleep(0.25)
        now = city.real.lamp_on_until_ms()
        if now is not None and now != seen:
            by = (
                "the real firmware"
                if city.real.controller_dir is not None
                else "the edge agent on a GPIO pin"
            )
            city.say("pole", f'{city.real.spec.node_id}: "call received" lamp ON, lit by {by}')
        seen = now


async def _watch_fleet(city: City) -> None:
    """What the fleet made of it all, read back from its API, as the dashboard shows it."""
    alarms: dict[str, bool] = {}  # alarm id -> latched, as last told
    tickets: dict[str, str] = {}  # ticket id -> state, as last told
    first = True
    while True:
        if city.fleet.process is not None and city.fleet.process.poll() is not None:
            raise DemoError(f"the fleet manager exited ({city.fleet.process.returncode}); see its log")
        try:
            alarm_page = await city.api(city.duty.get, "/alarms?limit=50")
            ticket_page = await city.api(city.duty.get, "/faults?status=all&limit=50")
        except (OSError, urllib.error.HTTPError) as error:
            city.say("demo", f"the fleet's API did not answer: {error}")
            await asyncio.sleep(5)
            continue
        for alarm in reversed(alarm_page["items"]):
            before = alarms.get(alarm["alarm_id"])
            alarms[alarm["alarm_id"]] = alarm["latched"]
            if first or before == alarm["latched"]:
                continue
            if alarm["latched"]:
                city.say(
                    "fleet",
                    f"bell alarm from {alarm['node_id']} latched, "
                    f"{alarm['timeline']['pole_to_fleet_ms']} ms from the press: a red banner on every page "
                    f"until an operator acknowledges it ({city.url}alarms/{alarm['alarm_id']})",
                )
            elif alarm["acknowledged_by"]:
                city.say(
                    "fleet",
                    f"{alarm['acknowledged_by']} acknowledged the call at {alarm['node_id']}: "
                    "the acknowledgement goes to the pole",
                )
        for ticket in reversed(ticket_page["items"]):
            before_state = tickets.get(ticket["ticket_id"])
            tickets[ticket["ticket_id"]] = ticket["state"]
            if first or before_state == ticket["state"]:
                continue
            if before_state is None and ticket["state"] == "open":
                city.say("fleet", _ticket_opened(city, ticket))
            else:
                detail = await city.api(city.duty.get, f"/faults/{ticket['ticket_id']}")
                city.say("fleet", _ticket_moved(detail))
        first = False
        await asyncio.sleep(WATCH_EVERY_S)


def _ticket_opened(city: City, ticket: dict[str, Any]) -> str:
    budget = (ticket["response_deadline_ms"] - ticket["opened_at_ms"]) // 60_000
    return (
        f"ticket {ticket['ticket_id']} opened: {ticket['kind']} on {ticket['component']} at "
        f"{ticket['node_id']}, {ticket['severity']}; a technician is due on site within {budget} min "
        f"({city.url}faults/{ticket['ticket_id']})"
    )


def _ticket_moved(ticket: dict[str, Any]) -> str:
    state = str(ticket["state"]).replace("_", " ")
    text = f"ticket {ticket['ticket_id']} ({ticket['kind']} at {ticket['node_id']}) is {state}"
    if ticket["steps"]:
        step = ticket["steps"][-1]
        if step["by"] == "fleet/auto-clear":
            return f"{text}: the fault cleared by itself before anyone was sent"
        text += f": {step['action']} by {step['by']}"
        if step.get("verification"):
            text += f", {step['verification']}"
    return text
