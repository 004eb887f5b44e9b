"""The lab host's side of a rig, the same on every rig: the project's own Mosquitto, the
network relay the node reaches it through (`NetworkCut`), and `watchpost fleet serve` as a
process on its own SQLite database, with the people who work it: an operator and a technician,
each with a token of their role. The lab has its own release-signing key pair, made for each
lab; the fleet trusts its public half, so a scenario can upload releases it signs with the
private half (hil_tests/rig/ota.py).

On a real rig the node is another machine: the lab host's address and the relay's port are
then the rig file's `lab` options, and the Pi's agent is configured with them (docs/hil.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from hil_tests.rig.netcut import NetworkCut
from watchpost.broker import MosquittoBroker, free_port
from watchpost.fleetprocess import FleetProcess, call_json
from watchpost.ota.keys import generate

WAIT_S = 60.0  # a guard against hanging, not a performance figure


class ApiRefused(AssertionError):
    """The fleet answered a call with an error status; the message has its body."""


@dataclass(frozen=True, slots=True)
class LabAddresses:
    """Where the node finds the centre: the relay (standing in for the broker) and the fleet."""

    broker_host: str
    broker_port: int
    fleet_url: str


class Fleet:
    """The fleet manager's REST API, as the control centre and a technician's phone call it."""

    def __init__(self, process: FleetProcess) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{process.port}"
        self.tokens = {"admin": process.token}

    def issue(self, subject: str, role: str) -> None:
        self.tokens[subject] = self.post("/tokens", {"subject": subject, "role": role}, who="admin")["token"]

    def call(self, method: str, path: str, body: Any = None, *, who: str = "operator-7") -> tuple[int, Any]:
        return call_json(f"{self.url}/api/v1{path}", method, body, token=self.tokens[who])

    def get(self, path: str, *, who: str = "operator-7") -> Any:
        status, body = self.call("GET", path, who=who)
        if status != 200:
            raise ApiRefused(f"GET {path}: {status} {body}")
        return body

    def post(self, path: str, body: Any = None, *, who: str = "operator-7") -> Any:
        status, answer = self.call("POST", path, body if body is not None else {}, who=who)
        if status >= 300:
            raise ApiRefused(f"POST {path}: {status} {answer}")
        return answer

    def until(self, path: str, wanted: Callable[[Any], Any], *, timeout: float = WAIT_S) -> Any:
        """GET `path` until `wanted(answer)` is truthy; returns that value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            status, last = self.call("GET", path)
            if status == 200 and (found := wanted(last)):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: not as wanted within {timeout:.0f} s; last answer: {last}")
            time.sleep(0.1)

    # -- what the scenarios ask most

    def node(self, node_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.get(f"/nodes/{node_id}")
        return answer

    def faults(self, node_id: str, **filters: str) -> list[dict[str, Any]]:
        query = "&".join([f"node={node_id}", *(f"{k}={v}" for k, v in filters.items())])
        items: list[dict[str, Any]] = self.get(f"/faults?{query}")["items"]
        return items

    def fault(self, node_id: str, kind: str, *, timeout: float = WAIT_S) -> dict[str, Any]:
        """The node's ticket of `kind` (e.g. "door"), once it is open."""
        ticket: dict[str, Any] = self.until(
            f"/faults?node={node_id}",
            lambda page: next((t for t in page["items"] if t["kind"] == kind), None),
            timeout=timeout,
        )
        return ticket


class Lab(contextlib.ExitStack):
    """Broker, relay and fleet, started in `workdir`; stopped when the block ends."""

    def __init__(
        self,
        workdir: Path,
        *,
        listen_host: str = "127.0.0.1",
        advertise_host: str = "127.0.0.1",
        fleet_settings: str = "",
    ):
        super().__init__()
        self.workdir = workdir
        self.listen_host = listen_host
        self.advertise_host = advertise_host
        self.fleet_settings = fleet_settings  # TOML a scenario adds, e.g. [faults.debounce.camera]

    def __enter__(self) -> Self:
        super().__enter__()
        try:
            # `release_key` signs (0600), `release_pub` is what the fleet and the nodes pin.
            self.release_key, self.release_pub, _ = generate(self.workdir / "keys", "lab-release")
            # Sessions kept across a restart, as a city's broker is set up (docs/deploy-mosquitto.md).
            self.broker = self.enter_context(MosquittoBroker(persistent=True))
            self.net = self.enter_context(
                NetworkCut(self.broker.host, self.broker.port, listen_host=self.listen_host)
            )
            self.fleet = Fleet(self.enter_context(self._fleet_process()))
            self.fleet.issue("operator-7", "operator")
            self.fleet.issue("tech-0193", "technician")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return bool(super().__exit__(exc_type, exc, tb))

    @property
    def addresses(self) -> LabAddresses:
        return LabAddresses(self.advertise_host, self.net.port, self.fleet.url)

    def restart_broker(self, down_s: float = 2.0) -> None:
        """The broker goes away and comes back on the same port, with the sessions it saved."""
        self.broker.stop()
        time.sleep(down_s)
        self.broker.start()

    def _fleet_process(self) -> FleetProcess:
        home = self.workdir / "fleet"
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        settings = home / "fleet.toml"
        # Offline tickets open at the node's death and close at its rebirth: a rig test cannot
        # wait the production 5 minutes of grace either way, and a ticket left open by a restart
        # (an update's) would hold the node out of the next campaign. Campaigns tick every
        # 0.2 s (production: 5 s); nodes fetch releases from the advertised address.
        settings.write_text(
            f"""
[fleet]
host_id = "fleet-hil"
data_dir = "{home / "data"}"
[mqtt]
host = "{self.broker.host}"
port = {self.broker.port}
[api]
host = "{self.listen_host}"
port = {port}
[faults]
heartbeat_timeout_s = 60
offline_raise_after_s = 0
[faults.debounce.offline]
raise_after_s = 0
clear_after_s = 0
[ota]
trusted_keys = ["{self.release_pub}"]
public_url = "http://{self.advertise_host}:{port}"
tick_s = 0.2
{self.fleet_settings}
"""
        )
        return FleetProcess(settings, data_dir=home / "data", port=port)
