"""The real rig's own drivers (rigs/pi-pico.yaml imports this module), for what labgrid has
no driver of its own: the edge agent as the Pi's systemd unit, reached over SSH; the lamp read
through an optocoupler on a GPIO of the lab host; a hang of the Pico's firmware.

The relays on the bell button, the door switch, the camera's PoE and the cabinet's supply are
labgrid's own GpioDigitalOutputDriver and DigitalOutputPowerDriver (wiring in docs/hil.md).
These drivers have not yet run against a rig: the first lab to build one will tune them.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any, ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.step import step

from hil_tests.rig.lab import LabAddresses
from hil_tests.rig.protocols import ControllerFaultProtocol, DigitalInputProtocol, EdgeNodeProtocol
from hil_tests.rig.toml import toml_text

_str = attr.validators.instance_of(str)
_int = attr.validators.instance_of(int)


@target_factory.reg_driver
@attr.s(eq=False)
class SystemdEdgeNodeDriver(Driver, EdgeNodeProtocol):
    """The agent on the Pi: its config rendered here for the lab's addresses, copied over SSH,
    and the unit restarted (deploy/watchpost-edge.service: Restart=always, so a SIGKILL is
    followed by a restart, as after a crash in the street)."""

    bindings: ClassVar[dict[str, Any]] = {"shell": "SSHDriver"}
    node_id = attr.ib(validator=_str)
    site_id = attr.ib(validator=_str)
    address = attr.ib(validator=_str)  # the Pi's service-interface address, for diagnostics
    pin = attr.ib(default="482916", validator=_str)
    http_port = attr.ib(default=8080, validator=_int)
    uart = attr.ib(default="/dev/ttyAMA0", validator=_str)  # the link to the Pico
    console = attr.ib(default="/dev/ttyACM0", validator=_str)  # the Pico's USB console
    camera_host = attr.ib(default="192.168.77.20", validator=_str)
    camera_port = attr.ib(default=554, validator=_int)
    unit = attr.ib(default="watchpost-edge.service", validator=_str)
    config_path = attr.ib(default="/etc/watchpost/edge.toml", validator=_str)
    pin_path = attr.ib(default="/etc/watchpost/diag.pin", validator=_str)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.config_extra: dict[str, Any] = {}
        self.env_extra: dict[str, str] = {}  # not carried to the unit: a real node has its own
        self.exec_start: list[str] | None = None

    @property
    def diag_url(self) -> str:
        return f"http://{self.address}:{self.http_port}"

    @property
    def log_tail(self) -> str:
        out, _, _ = self.shell.run(f"journalctl -u {shlex.quote(self.unit)} -n 30 --no-pager")
        return "\n".join(out)

    def _sh(self, command: str) -> None:
        out, err, code = self.shell.run(command)
        if code != 0:
            raise RuntimeError(f"on the Pi, {command!r} exited {code}: {' '.join(err or out)}")

    @Driver.check_active
    @step()
    def start(self, lab: LabAddresses, workdir: Path) -> None:
        config: dict[str, Any] = {
            "node": {"id": self.node_id, "site_id": self.site_id},
            "uplink": {
                "host": lab.broker_host,
                "port": lab.broker_port,
                "keepalive_s": 5,
                "reconnect_max_s": 1,
            },
            "http": {"listen": self.address, "port": self.http_port, "pin_file": self.pin_path},
            "telemetry": {"interval_s": 2, "camera_probe_s": 1},
            "controller": {"port": self.uart, "console": self.console},
            "cameras": [
                {"id": "cam-1", "name": "Rig camera", "host": self.camera_host, "port": self.camera_port}
            ],
        }
        for section, values in self.config_extra.items():
            if isinstance(values, dict):
                config.setdefault(section, {}).update(values)
            else:
                config[section] = values
        local = workdir / "edge.toml"
        local.write_text(toml_text(config))
        self.shell.put(str(local), self.config_path)
        self._sh(f"printf %s {shlex.quote(self.pin)} > {shlex.quote(self.pin_path)}")
        self._sh(f"systemctl restart {shlex.quote(self.unit)}")

    @Driver.check_active
    @step()
    def stop(self) -> None:
        self._sh(f"systemctl stop {shlex.quote(self.unit)}")

    @Driver.check_active
    @step()
    def kill(self) -> None:
        self._sh(f"systemctl kill --signal=SIGKILL {shlex.quote(self.unit)}")


@target_factory.reg_driver
@attr.s(eq=False)
class SysfsGpioInputDriver(Driver, DigitalInputProtocol):
    """A GPIO of the lab host read through sysfs, e.g. the lamp's output through an
    optocoupler (which inverts: `invert: true`)."""

    bindings: ClassVar[dict[str, Any]] = {"gpio": {"SysfsGPIO"}}
    invert = attr.ib(default=False, validator=attr.validators.instance_of(bool))

    @Driver.check_active
    @step(result=True)
    def get(self) -> bool:
        value = Path(f"/sys/class/gpio/gpio{self.gpio.index}/value").read_text().strip() == "1"
        return value != self.invert


@target_factory.reg_driver
@attr.s(eq=False)
class PicoHangDriver(Driver, ControllerFaultProtocol):
    """Hang the Pico's firmware: a Ctrl-C on its USB console stops main.py at the REPL, which
    does not feed the hardware watchdog, so the RP2040 resets as it would after a firmware
    bug. The console is on the Pi (the agent updates the firmware through it)."""

    bindings: ClassVar[dict[str, Any]] = {"shell": "SSHDriver"}
    console = attr.ib(default="/dev/ttyACM0", validator=_str)

    @Driver.check_active
    @step()
    def hang(self) -> None:
        out, err, code = self.shell.run(f"printf '\\003' > {shlex.quote(self.console)}")
        if code != 0:
            raise RuntimeError(f"could not write to the Pico's console: {' '.join(err or out)}")
        time.sleep(0.1)
