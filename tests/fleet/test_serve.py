"""`watchpost fleet serve` as a real process, on a real Mosquitto and a real PostgreSQL: a pole
(the test, speaking the contract over MQTT) is born, rings its bell and dies; an operator works
it through the API; what goes back to the pole arrives on its MQTT topics."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleet.inspections.models import Inspection
from protocols import messages as m
from protocols.topics import Kind, host_state_topic, node_topic
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker, free_port
from watchpost.fleetprocess import FleetProcess, call_json

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
WATCHPOST = Path(sys.executable).parent / "watchpost"
NODE = "pole-0412"
T0 = 1_764_000_000_000


class Fleet:
    def __init__(self, process: subprocess.Popen[bytes], port: int, token: str, stderr: Path) -> None:
        self.process, self.port, self.token, self.stderr = process, port, token, stderr

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1{path}"
        return call_json(url, method, body, token=token or self.token, timeout=10)

    def until(self, path: str, wanted: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.call("GET", path)
            if status == 200 and wanted(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: not as wanted within {timeout} s; last: {status} {body}")
            time.sleep(0.05)


def write_settings(tmp_path: Path, broker: MosquittoBroker, database_url: str, api_port: int) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
[fleet]
host_id = "fleet-a"
data_dir = "{tmp_path / "data"}"

[database]
url = "{database_url}"

[mqtt]
host = "{broker.host}"
port = {broker.port}

[api]
port = {api_port}

[faults]
offline_raise_after_s = 0
"""
    )
    return path


@pytest.fixture
def fleet(tmp_path: Path, broker: MosquittoBroker, postgres_url: str) -> Iterator[Fleet]:
    port = free_port()
    settings = write_settings(tmp_path, broker, postgres_url, port)
    with FleetProcess(settings, data_dir=tmp_path / "data", port=port) as running:
        assert running.process is not None
        yield Fleet(running.process, port, running.token, running.stderr_path)


def test_a_pole_through_the_fleet_process(fleet: Fleet, broker: MosquittoBroker, postgres_url: str) -> None:
    assert oct((Path(fleet.stderr).parent / "data" / "admin.token").stat().st_mode & 0o777) == "0o600"
    status, issued = fleet.call("POST", "/tokens", {"subject": "operator-7", "role": "operator"})
    assert status == 201
    operator = issued["token"]

    with Observer(broker) as pole:
        # The fleet announced itself, retained, for poles that connect later.
        pole.wait_for(lambda s: any(x.topic == host_state_topic("fleet-a") for x in s))

        def send(message: m.Message) -> None:
            pole.publish(node_topic(NODE, m.kind_of(message)), m.encode(message))

        send(
            m.NodeBirth(
                ts=T0,
                seq=0,
                bd_seq=4,
                site_id="site-0412",
                hardware="rpi4",
                agent_version="0.1.0",
                bells=["bell-1"],
            )
        )
        node = fleet.until(f"/nodes/{NODE}", lambda n: n["online"])
        assert (node["site_id"], node["bd_seq"]) == ("site-0412", 4)

        send(
            m.BellAlarm(
                ts=T0 + 10, seq=1, alarm_id="a-1", bell_id="bell-1", pressed_at=T0 + 10, source="controller"
            )
        )
        fleet.until("/alarms?latched=true", lambda page: [a["alarm_id"] for a in page["items"]] == ["a-1"])
        status, acked = fleet.call("POST", "/alarms/a-1/acknowledge", {"lamp": True}, token=operator)
        assert (status, acked["acknowledged_by"]) == (200, "operator-7")
        # The acknowledgement reaches the pole over MQTT: its lamp.
        seen = pole.wait_for(lambda s: any(x.kind == "alarm-ack" for x in s))
        (ack,) = [x.json() for x in seen if x.kind == "alarm-ack"]
        assert (ack["alarm_id"], ack["operator"], ack["lamp"]) == ("a-1", "operator-7", True)
        assert [x.topic for x in seen if x.kind == "alarm-ack"] == [node_topic(NODE, Kind.ALARM_ACK)]

        # A remote self-inspection: the command goes down, the pole's result is filed.
        status, sent = fleet.call("POST", f"/nodes/{NODE}/commands", {"name": "self-test"}, token=operator)
        assert status == 202
        seen = pole.wait_for(lambda s: any(x.kind == "command" for x in s))
        (command,) = [x.json() for x in seen if x.kind == "command"]
        assert (command["command_id"], command["name"]) == (sent["command_id"], "self-test")
        send(
            m.CommandResult(
                ts=T0 + 20,
                seq=2,
                command_id=command["command_id"],
                status="ok",
                output={"ok": True, "loop": "normal"},
            )
        )
        engine = sa.create_engine(postgres_url)
        try:
            deadline = time.monotonic() + 15
            while True:
                with engine.connect() as conn:
                    rows = conn.execute(sa.select(Inspection.kind, Inspection.result, Inspection.by)).all()
                if rows or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            engine.dispose()
        assert rows == [("remote", "pass", f"node/{NODE}")]

        # The pole's will: offline, and a fault opens (no debounce in these settings).
        send(m.NodeDeath(ts=T0 + 30, bd_seq=4))
        faults = fleet.until("/faults?node=" + NODE, lambda page: len(page["items"]) == 1)
        (ticket,) = faults["items"]
        assert (ticket["kind"], ticket["component"], ticket["state"]) == ("offline", "node", "open")
        assert fleet.call("GET", f"/nodes/{NODE}")[1]["online"] is False

        # A clean stop: the fleet says it is offline, retained.
        fleet.process.send_signal(signal.SIGTERM)
        assert fleet.process.wait(timeout=30) == 0
        last = pole.wait_for(
            lambda s: any(x.topic == host_state_topic("fleet-a") and not x.json()["online"] for x in s)
        )
        assert any(x.topic == host_state_topic("fleet-a") for x in last)


def test_bad_settings_stop_the_fleet_naming_the_key(tmp_path: Path) -> None:
    settings = tmp_path / "fleet.toml"
    settings.write_text('[mqtt]\nport = "mqtt"\n')
    result = subprocess.run(
        [str(WATCHPOST), "fleet", "serve", "--config", str(settings)],
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"settings error: {settings}: mqtt.port: Expected `int`, got `str`" in result.stderr.decode()
