"""Edge agent footprint: resident memory of `watchpost edge run` after an hour of a pole's load.

The agent runs as on a pole: its own process, a real Mosquitto, the local HTTP server, two
cameras probed, and its pole controller: the real firmware on the simulated device
(MicroPython unix port) behind a pty, as the agent would find it on /dev/ttyAMA0.

The load is an hour of a busy pole, compressed `--speed` times (60: one minute of wall time):
each camera's NVR pushes a 10-second recording segment as it closes and a motion event every
30 s, a citizen presses the bell every 10 minutes, the fleet pings the node every 5 minutes, a
technician polls the diagnostics status every minute; telemetry and camera probes every minute.
VmRSS is read from /proc every second. The reference is the same process right after it said
READY=1, before any load: what the growth is measured from. The issue's aim is <= 60 MB.

    python bench/edge_rss.py [--quick] [--speed 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._report import print_header
from protocols import messages as m
from protocols.topics import Kind, node_topic
from watchpost.broker import MosquittoBroker, free_port
from watchpost.sim.controls import SimulatedInputs
from watchpost.sim.pole import simulated_pole

NODE = "pole-0412"
TARGET_MB = 60.0
HOUR_S = 3600.0
PIN = "482916"
WATCHPOST = Path(sys.executable).parent / "watchpost"
REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def write_config(work: Path, broker: MosquittoBroker, http_port: int, speed: float, pole: str = "") -> Path:
    (work / "pin").write_text(PIN)
    interval = 60 / speed
    path = work / "edge.toml"
    path.write_text(
        f"""
[node]
id = "{NODE}"
site_id = "s-0412"
state_dir = "{work / "state"}"

[uplink]
host = "{broker.host}"
port = {broker.port}

[http]
listen = "127.0.0.1"
port = {http_port}
pin_file = "{work / "pin"}"

{pole}

[telemetry]
interval_s = {interval}
camera_probe_s = {interval}

[[cameras]]
id = "cam-north"
name = "North approach"
host = "127.0.0.1"
port = 9
probe = "tcp"

[[cameras]]
id = "cam-bus"
name = "Bus stop"
host = "127.0.0.1"
port = 9
probe = "tcp"
"""
    )
    return path


def post(url: str, body: object, token: str | None = None) -> object:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def get(url: str, token: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_ready(notify: socket.socket, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    notify.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if notify.recv(4096).startswith(b"READY=1"):
                return
        except TimeoutError:
            if process.poll() is not None:
                raise RuntimeError("the agent exited before it was ready") from None
    raise RuntimeError("the agent did not say READY=1 within 30 s")


def run_load(
    base: str,
    broker: MosquittoBroker,
    process: subprocess.Popen[bytes],
    pole: SimulatedInputs,
    *,
    simulated_s: float,
    speed: float,
) -> list[float]:
    """Drive the load for `simulated_s` simulated seconds; returns RSS samples (MB), one a second."""
    fleet = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    fleet.connect(broker.host, broker.port)
    fleet.loop_start()
    token = str(post(f"{base}/diag/api/login", {"pin": PIN})["token"])  # type: ignore[index]
    start_wall = time.monotonic()
    t0_ms = int(time.time() * 1000)
    samples: list[float] = []
    next_sample = 0.0
    done = {"segment": 0.0, "motion": 0.0, "ping": 0.0, "status": 0.0, "bell": 0.0}
    commands = 0
    while True:
        wall = time.monotonic() - start_wall
        sim = wall * speed
        if sim >= simulated_s:
            break
        now_ms = t0_ms + int(sim * 1000)
        if sim - done["segment"] >= 10:
            done["segment"] = sim
            records = [
                {
                    "record": "segment",
                    "camera_id": camera,
                    "start": now_ms - 10_000,
                    "end": now_ms,
                    "bytes": 5_000_000,
                    "codec": "h265",
                    "width": 2560,
                    "height": 1440,
                    "fps": 20.0,
                    "bitrate_kbps": 4000.0,
                }
                for camera in ("cam-north", "cam-bus")
            ]
            post(f"{base}/api/v1/video-metadata", {"records": records})
        if sim - done["motion"] >= 30:
            done["motion"] = sim
            motion = {"record": "video-event", "camera_id": "cam-north", "at": now_ms, "kind": "motion"}
            post(f"{base}/api/v1/video-metadata", motion)
        if sim - done["ping"] >= 300:
            done["ping"] = sim
            commands += 1
            command = m.Command(
                ts=now_ms,
                command_id=f"cmd-{commands}",
                name="ping",
                issued_by="bench",
                expires_at=now_ms + 3_600_000,
            )
            fleet.publish(node_topic(NODE, Kind.COMMAND), m.encode(command), qos=1)
        if sim - done["bell"] >= 600:
            done["bell"] = sim
            pole.press_bell()
            time.sleep(0.08)
            pole.release_bell()
        if sim - done["status"] >= 60:
            done["status"] = sim
            get(f"{base}/diag/api/status", token)
        if wall >= next_sample:
            next_sample += 1.0
            samples.append(rss_mb(process.pid))
        time.sleep(0.002)
    fleet.disconnect()
    fleet.loop_stop()
    samples.append(rss_mb(process.pid))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few simulated minutes: a smoke run for CI")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second (default 60)")
    args = parser.parse_args(argv)
    simulated = 240.0 if args.quick else HOUR_S
    with (
        tempfile.TemporaryDirectory(prefix="watchpost-bench-") as tmp,
        MosquittoBroker() as broker,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        http_port = free_port()
        uart = stack.enter_context(simulated_pole(work / "pole"))
        config = write_config(work, broker, http_port, args.speed, f'[controller]\nport = "{uart}"')
        notify_path = work / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
        process = subprocess.Popen(
            [str(WATCHPOST), "edge", "run", "--config", str(config), "--log-level", "ERROR"], env=env
        )
        try:
            wait_ready(notify, process)
            time.sleep(1.0)  # settle: first telemetry, first probes
            at_start = rss_mb(process.pid)
            pole = SimulatedInputs(work / "pole")
            base = f"http://127.0.0.1:{http_port}"
            samples = run_load(base, broker, process, pole, simulated_s=simulated, speed=args.speed)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
            notify.close()
    end, peak = samples[-1], max(samples)
    print_header(
        "edge agent resident memory under a pole's load",
        [
            (
                "load",
                f"{simulated / 60:.0f} simulated minutes at {args.speed:g}x: 2 cameras, pings, diagnostics",
            ),
            (
                "process",
                "watchpost edge run: simulated pole controller, local HTTP, MQTT to a real Mosquitto",
            ),
        ],
        quick=args.quick,
    )
    label = f"agent RSS after {simulated / 60:.0f} simulated minutes"
    reference = "  reference: the same process right after READY=1, idle"
    width = max(len(label), len(reference))
    print(f"{label:<{width}}  end {end:6.1f}  peak {peak:6.1f}  MB")
    growth = f"(grew {end - at_start:+.1f} MB)"
    print(f"{reference:<{width}}  end {at_start:6.1f}  peak {at_start:6.1f}  MB   {growth}")
    verdict = "met" if peak <= TARGET_MB else "NOT met"
    print(f"{label}: target <= {TARGET_MB:.0f} MB, {verdict} (peak)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
