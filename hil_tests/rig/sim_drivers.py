"""The simulated rig's parts, as labgrid resources and drivers (rigs/sim.yaml imports this
module): the pole controller is the real firmware on the MicroPython unix port behind a pty
(`watchpost sim controller`), its button, door and lamp are the simulator's control channel,
the camera is a TCP listener the rig can unplug, the edge agent is `watchpost edge run` as a
process under a supervisor that restarts it as systemd would, and the cabinet's power is
SIGKILL to both and a fresh start.

Each driver answers the same protocol as its real-rig counterpart (real_drivers.py and
labgrid's own), so a scenario cannot tell which rig it runs on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import DigitalOutputProtocol, PowerProtocol
from labgrid.resource.common import Resource
from labgrid.step import step

from hil_tests.rig.lab import LabAddresses
from hil_tests.rig.protocols import ControllerFaultProtocol, DigitalInputProtocol, EdgeNodeProtocol
from hil_tests.rig.toml import toml_text
from watchpost.broker import free_port
from watchpost.sim.controls import SimulatedInputs
from watchpost.sim.pole import install_firmware

BIN = Path(sys.executable).parent
WATCHPOST = BIN / "watchpost"
START_WAIT_S = 30.0


@target_factory.reg_resource
@attr.s(eq=False)
class SimulatedPole(Resource):
    """A pole on this machine: the controller's simulated device and the node's directory.
    `telemetry_ms`: the firmware's telemetry period (a real pole sends every 60 s; the rig
    wants to see several within a test). `watchdog_s`: the controller's hardware watchdog."""

    node_id = attr.ib(default="pole-hil-01", validator=attr.validators.instance_of(str))
    site_id = attr.ib(default="site-hil-01", validator=attr.validators.instance_of(str))
    telemetry_ms = attr.ib(default=2000, validator=attr.validators.instance_of(int))
    watchdog_s = attr.ib(default=2.0, validator=attr.validators.instance_of(float))

    def __attrs_post_init__(self) -> None:
        self.avail = True
        super().__attrs_post_init__()
        self.workdir: Path | None = None  # set by the rig fixture for each test

    def dir(self, name: str) -> Path:
        if self.workdir is None:
            raise RuntimeError("the simulated pole has no working directory: use the `rig` fixture")
        return self.workdir / name


class _Process:
    """One child process with its stderr in a file; killed with its whole process group."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.command, self.log, self.env = command, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, stdout: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as stderr:
            self.process = subprocess.Popen(
                self.command, stdout=stdout, stderr=stderr, env=self.env, start_new_session=True
            )
        return self.process

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int, wait_s: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@target_factory.reg_driver
@attr.s(eq=False)
class SimulatedControllerDriver(Driver, ControllerFaultProtocol):
    """The pole controller: `watchpost sim controller` with the firmware laid out in its flash
    as `watchpost firmware deploy` does. Its flash survives a power cut; its pins do not."""

    bindings: ClassVar[dict[str, Any]] = {"pole": "SimulatedPole"}

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._process: _Process | None = None

    @property
    def state_dir(self) -> Path:
        path: Path = self.pole.dir("controller")
        return path

    @property
    def uart(self) -> Path:
        return self.state_dir / "uart"

    @property
    def inputs(self) -> SimulatedInputs:
        return SimulatedInputs(self.state_dir)

    @Driver.check_active
    @step()
    def power_on(self) -> None:
        if self._process is not None and self._process.running:
            return
        if not (self.state_dir / "flash" / "main.py").exists():
            install_firmware(self.state_dir / "flash")
        command = [
            str(WATCHPOST),
            "sim",
            "controller",
            "--state-dir",
            str(self.state_dir),
            "--watchdog",
            str(self.pole.watchdog_s),
            "--env",
            f"WATCHPOST_TELEMETRY_MS={self.pole.telemetry_ms}",
        ]
        self._process = _Process(command, self.pole.dir("controller.log"))
        process = self._process.start(stdout=subprocess.PIPE)
        assert process.stdout is not None
        if not process.stdout.readline().startswith(b"console "):
            raise RuntimeError(f"the simulated controller did not start:\n{self._process.tail()}")

    @Driver.check_active
    @step()
    def power_off(self) -> None:
        if self._process is not None:
            self._process.signal(signal.SIGKILL)

    @Driver.check_active
    @step()
    def hang(self) -> None:
        self.inputs.hang()

    def on_deactivate(self) -> None:
        if self._process is not None:
            self._process.signal(signal.SIGTERM)


@target_factory.reg_driver
@attr.s(eq=False)
class SimulatedInputDriver(Driver, DigitalOutputProtocol):
    """A relay closing a contact on one of the controller's inputs: `line` is "bell" (the
    button: closed means pressed) or "door" (the cabinet switch: closed means open)."""

    bindings: ClassVar[dict[str, Any]] = {"controller": "SimulatedControllerDriver"}
    line = attr.ib(validator=attr.validators.in_(["bell", "door"]))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._state = False

    @Driver.check_active
    @step(args=["status"])
    def set(self, status: bool) -> None:
        self.controller.inputs.send(f"{self.line} {1 if status else 0}")
        self._state = bool(status)

    @Driver.check_active
    def get(self) -> bool:
        return self._state


@target_factory.reg_driver
@attr.s(eq=False)
class SimulatedLampDriver(Driver, DigitalInputProtocol):
    """The probe on the lamp's output pin: what the controller drives, not what it reports."""

    bindings: ClassVar[dict[str, Any]] = {"controller": "SimulatedControllerDriver"}

    @Driver.check_active
    @step(result=True)
    def get(self) -> bool:
        lamp: bool = self.controller.inputs.outputs().lamp
        return lamp


@target_factory.reg_driver
@attr.s(eq=False)
class SimulatedCameraDriver(Driver, DigitalOutputProtocol):
    """The camera's PoE port: on, a listener answers the agent's TCP probe on `port`; off, the
    port refuses, as an unplugged camera's address does."""

    bindings: ClassVar[dict[str, Any]] = {"pole": "SimulatedPole"}

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @Driver.check_active
    @step(args=["status"])
    def set(self, status: bool) -> None:
        if status and self._listener is None:
            listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
            self._listener = listener
            self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
            self._thread.start()
        elif not status and self._listener is not None:
            self._unplug(self._listener)
            self._listener = None

    @Driver.check_active
    def get(self) -> bool:
        return self._listener is not None

    @staticmethod
    def _serve(listener: socket.socket) -> None:
        # Accept and hang up: a TCP probe only needs the handshake.
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                connection.close()

    @staticmethod
    def _unplug(listener: socket.socket) -> None:
        # A bare close() leaves the port bound while _serve's thread sits in accept() (Linux):
        # the next set(True), in this test or the next, would find it in use. shutdown() wakes
        # the accept, and the thread ends.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()

    def on_deactivate(self) -> None:
        if self._listener is not None:
            self._unplug(self._listener)
            self._listener = None


@target_factory.reg_driver
@attr.s(eq=False)
class SimulatedEdgeNodeDriver(Driver, EdgeNodeProtocol):
    """`watchpost edge run` as the node's systemd unit runs it: restarted whenever it exits
    (`Restart=always`), its state directory kept across restarts and power cuts."""

    bindings: ClassVar[dict[str, Any]] = {
        "pole": "SimulatedPole",
        "controller": "SimulatedControllerDriver",
        "camera": "SimulatedCameraDriver",
    }

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.node_id = self.pole.node_id
        self.site_id = self.pole.site_id
        self.pin = "482916"
        self.http_port = 0
        self.config_extra: dict[str, Any] = {}  # sections a scenario adds (e.g. [ota])
        self.env_extra: dict[str, str] = {}  # environment a scenario adds (e.g. a fault hook)
        # The unit's ExecStart, "{config}" standing for the config file's path; None: `watchpost
        # edge run --config {config}`. The OTA scenarios run the boot selector instead.
        self.exec_start: list[str] | None = None
        self._agent: _Process | None = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._config: Path | None = None
        self.starts = 0

    @property
    def state_dir(self) -> Path:
        path: Path = self.pole.dir("node") / "state"
        return path

    @property
    def diag_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_tail(self) -> str:
        return self._agent.tail() if self._agent is not None else ""

    @Driver.check_active
    @step()
    def start(self, lab: LabAddresses, workdir: Path) -> None:
        home = self.pole.dir("node")
        home.mkdir(parents=True, exist_ok=True)
        (home / "pin").write_text(self.pin)
        self.http_port = self.http_port or free_port()
        config: dict[str, Any] = {
            "node": {"id": self.node_id, "site_id": self.site_id, "state_dir": str(self.state_dir)},
            "uplink": {
                "host": lab.broker_host,
                "port": lab.broker_port,
                "keepalive_s": 5,
                "reconnect_max_s": 1,
            },
            "http": {"listen": "127.0.0.1", "port": self.http_port, "pin_file": str(home / "pin")},
            "telemetry": {"interval_s": 2, "camera_probe_s": 1},
            "controller": {"port": str(self.controller.uart)},
            "ota": {"enabled": False},
            "cameras": [
                {"id": "cam-1", "name": "North approach", "host": "127.0.0.1", "port": self.camera.port}
                | {"probe": "tcp"}
            ],
        }
        for section, values in self.config_extra.items():
            if isinstance(values, dict):
                config.setdefault(section, {}).update(values)
            else:
                config[section] = values
        self._config = home / "edge.toml"
        self._config.write_text(toml_text(config))
        self._launch()

    def _launch(self) -> None:
        assert self._config is not None
        env = dict(os.environ, **self.env_extra)
        command = self.exec_start or [str(WATCHPOST), "edge", "run", "--config", "{config}"]
        self._agent = _Process(
            [part.replace("{config}", str(self._config)) for part in command], self.pole.dir("node.log"), env
        )
        self._stopping.clear()
        self._supervisor = threading.Thread(target=self._supervise, name="systemd", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        assert self._agent is not None
        while not self._stopping.is_set():
            process = self._agent.start()
            self.starts += 1
            code = process.wait()
            if code == 2 or self._stopping.is_set():  # RestartPreventExitStatus=2: a bad config
                return
            self._stopping.wait(0.5)  # RestartSec

    @Driver.check_active
    @step()
    def stop(self) -> None:
        self._stopping.set()
        if self._agent is not None:
            self._agent.signal(signal.SIGTERM)
        if self._supervisor is not None:
            self._supervisor.join(30)

    @Driver.check_active
    @step()
    def kill(self) -> None:
        if self._agent is not None and self._agent.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._agent.process.pid, signal.SIGKILL)

    @Driver.check_active
    @step()
    def power_off(self) -> None:
        """The supply goes: the agent dies where it stands and nothing restarts it."""
        self._stopping.set()
        if self._agent is not None:
            self._agent.signal(signal.SIGKILL)
        if self._supervisor is not None:
            self._supervisor.join(30)

    @Driver.check_active
    @step()
    def power_on(self) -> None:
        if self._config is not None and not (self._supervisor and self._supervisor.is_alive()):
            self._launch()

    def on_deactivate(self) -> None:
        self.stop()
        # The driver outlives the test: the next test's power-on must not start this test's
        # agent again (its config, its ExecStart) beside the one the next test configures.
        self._config = None


@target_factory.reg_driver
@attr.s(eq=False)
class SimulatedPowerDriver(Driver, PowerProtocol):
    """The cabinet's supply, feeding the Pi and the Pico: off kills both where they stand
    (the agent by SIGKILL mid-write), on boots both again (the controller with a power-on
    reset, the agent from its state on flash)."""

    bindings: ClassVar[dict[str, Any]] = {
        "controller": "SimulatedControllerDriver",
        "node": "SimulatedEdgeNodeDriver",
    }
    delay = attr.ib(default=1.0, validator=attr.validators.instance_of(float))

    @Driver.check_active
    @step()
    def on(self) -> None:
        self.controller.power_on()
        self.node.power_on()

    @Driver.check_active
    @step()
    def off(self) -> None:
        self.node.power_off()
        self.controller.power_off()

    @Driver.check_active
    @step()
    def cycle(self) -> None:
        self.off()
        time.sleep(self.delay)
        self.on()
