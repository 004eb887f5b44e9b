"""`watchpost edge run` as systemd runs it: readiness and watchdog notifications, journald
priorities, a clean stop on SIGTERM with the node's death, and config errors that name the key."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest

from tests.edge.agent_process import WATCHPOST, AgentProcess
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker, free_port

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "watchpost-edge.service"


def write_config(tmp_path: Path, broker: MosquittoBroker, extra: str = "") -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[node]
id = "pole-0042"
site_id = "site-0042"
state_dir = "{tmp_path / "state"}"

[http]
listen = "127.0.0.1"
port = {free_port()}

[uplink]
host = "{broker.host}"
port = {broker.port}
{extra}
"""
    )
    return path


@pytest.mark.broker
def test_ready_watchdog_and_a_clean_stop_with_the_death(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = write_config(tmp_path, broker)
    with Observer(broker) as fleet, AgentProcess(config, tmp_path, watchdog_s=0.4) as agent:
        ready = agent.wait_for("READY=1")
        assert "STATUS=node pole-0042: running" in ready
        agent.wait_for("WATCHDOG=1")
        agent.wait_for("WATCHDOG=1")  # keeps pinging, from the running loop
        fleet.wait_for(lambda seen: any(s.kind == "birth" for s in seen))
        assert agent.terminate() == 0
        fleet.wait_for(lambda seen: any(s.kind == "death" for s in seen))
        agent.wait_for("STOPPING=1")
    stderr = agent.stderr_path.read_text()
    # JOURNAL_STREAM set: every line starts with a syslog priority for journald.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    assert all(line[:3] in ("<2>", "<3>", "<4>", "<6>", "<7>") for line in lines), lines[:5]
    assert any(line.startswith("<6>edge.agent: agent 0.1.0 running") for line in lines)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('colour = "red"', "uplink.colour: unknown key"),
        ("keepalive_s = 1", "uplink.keepalive_s: Expected `int` >= 5; accepted: from 5 to 3600"),
        ('[storage]\ninterval_s = "hourly"', "storage.interval_s: Expected `float`, got `str`"),
        ('[[cameras]]\nid = "cam-1"\nname = "North"\nhost = "10.0.0.7"\nprobe = "ping"', "'rtsp' or 'tcp'"),
    ],
)
def test_a_config_error_names_the_key_and_exits_2(tmp_path: Path, extra: str, expected: str) -> None:
    broker = MosquittoBroker()  # not started: the agent must not get that far
    config = write_config(tmp_path, broker, extra)
    done = subprocess.run(
        [str(WATCHPOST), "edge", "run", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(WATCHPOST), "edge", "run", "--config", str(tmp_path / "nope.toml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "nope.toml: cannot read the config file: No such file or directory" in done.stderr


def test_the_systemd_unit_matches_the_agent() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    # The boot selector (edge.ota.boot) execs the agent in the same process (Type=notify).
    command = service["ExecStart"].split()
    assert command[1:4] == ["-P", "-m", "edge.ota.boot"]
    assert command[command.index("--") + 1] == "--config"
    assert service["Environment"] == f"PYTHONPATH={command[command.index('--root') + 1]}/committed"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"  # an update's restarts never exhaust it
    # The exit status the CLI uses for config errors (tested above) must not restart-loop.
    assert service["RestartPreventExitStatus"] == "2"
    assert service["StateDirectory"] == "watchpost"  # /var/lib/watchpost, the default state_dir
