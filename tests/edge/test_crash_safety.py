"""Crash safety of the edge agent process: SIGKILL at random moments during heavy ingest,
repeated, and then nothing that was acknowledged may be missing at the broker.

"Acknowledged" means: a video metadata push answered 202 (the agent says it is on flash), and
a bell press acknowledged on the serial link (the real firmware stops retransmitting it only
then). The broker and the fleet's subscriber stay up throughout; only the agent dies.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.edge.agent_process import AgentProcess
from tests.edge.conftest import Pole
from tests.mqtt_observer import Observer, Seen
from watchpost.broker import MosquittoBroker, free_port

KILLS = 50
SEED = 20261125


class Pusher:
    """Camera/NVR stand-in: pushes batches of segments as fast as the agent takes them, and
    remembers which the agent acknowledged with 202."""

    def __init__(self, port: int, camera_id: str, *, first_start: int, batch: int = 100) -> None:
        self.port = port
        self.camera_id = camera_id
        self.batch = batch
        self.accepted: set[int] = set()  # segment start times
        self.refused = 0  # 503 (outbox could not take it) or 4xx: must be none here
        self._next_start = first_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pusher-{camera_id}", daemon=True)

    def _segments(self) -> list[dict[str, Any]]:
        records = []
        for _ in range(self.batch):
            start = self._next_start
            self._next_start += 2_000
            records.append(
                {
                    "record": "segment",
                    "camera_id": self.camera_id,
                    "start": start,
                    "end": start + 2_000,
                    "bytes": 1_000_000,
                    "codec": "h264",
                    "width": 1920,
                    "height": 1080,
                    "fps": 25.0,
                    "bitrate_kbps": 4000.0,
                }
            )
        return records

    def _run(self) -> None:
        url = f"http://127.0.0.1:{self.port}/api/v1/video-metadata"
        while not self._stop.is_set():
            records = self._segments()
            request = urllib.request.Request(
                url,
                data=json.dumps({"records": records}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 202:
                        self.accepted.update(r["start"] for r in records)
            except urllib.error.HTTPError as error:
                self.refused += 1
                error.close()
            except OSError:
                time.sleep(0.02)  # the agent is down (killed, or starting): not accepted

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def config(tmp_path: Path, broker: MosquittoBroker, http_port: int, uart: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[node]
id = "pole-0042"
site_id = "site-0042"
state_dir = "{tmp_path / "state"}"

[http]
listen = "127.0.0.1"
port = {http_port}

[uplink]
host = "{broker.host}"
port = {broker.port}
reconnect_max_s = 1

[controller]
port = "{uart}"

[[cameras]]
id = "cam-1"
name = "North approach"
host = "127.0.0.1"
port = 9
probe = "tcp"

[[cameras]]
id = "cam-2"
name = "Bus stop"
host = "127.0.0.1"
port = 9
probe = "tcp"
"""
    )
    return path


class Tally:
    """What the fleet has received, read incrementally (the stream runs to 100k messages)."""

    def __init__(self) -> None:
        self.read = 0
        self.starts: set[int] = set()
        self.presses = 0
        self.historical = 0

    def update(self, messages: list[Seen]) -> None:
        for seen in messages[self.read :]:
            if seen.kind == "video":
                body = seen.json()
                self.starts.update(r["start"] for r in body["records"])
                self.historical += body["historical"]
            elif seen.kind == "alarm":
                self.presses += seen.json()["presses"]
        self.read = len(messages)


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.micropython
def test_sigkill_during_heavy_ingest_loses_nothing_acknowledged(
    tmp_path: Path, broker: MosquittoBroker, start_pole: Callable[..., Pole]
) -> None:
    rng = random.Random(SEED)
    pole = start_pole()
    http_port = free_port()
    path = config(tmp_path, broker, http_port, pole.uart)
    # Each push waits for its group commit (up to 100 ms): four NVR streams keep it busy.
    pushers = [
        Pusher(http_port, camera, first_start=1_764_000_000_000 + n * 10**11)
        for n, camera in enumerate(["cam-1", "cam-2", "cam-1", "cam-2"])
    ]
    presses = 0
    with Observer(broker, "watchpost/v1/node/+/up/#") as fleet:
        for pusher in pushers:
            pusher.start()
        for kill in range(KILLS):
            with AgentProcess(path, tmp_path, watchdog_s=None) as agent:
                agent.wait_for("READY=1")
                # A citizen presses the bell at some point while the agent runs (or dies).
                deadline = time.monotonic() + rng.uniform(0.05, 0.8)
                if kill % 3 == 0:
                    pole.inputs.press_bell()
                    time.sleep(0.06)
                    pole.inputs.release_bell()
                    presses += 1
                time.sleep(max(0.0, deadline - time.monotonic()))
                agent.kill()
        for pusher in pushers:
            pusher.stop()
        accepted = set().union(*(p.accepted for p in pushers))
        assert len(accepted) > 10_000, "the ingest was not heavy: the test proves little"
        assert presses >= KILLS // 3
        # One last, undisturbed run delivers whatever the killed ones left on flash.
        tally = Tally()

        def everything_arrived(seen: list[Seen]) -> bool:
            tally.update(seen)
            return tally.starts >= accepted and tally.presses >= presses

        with AgentProcess(path, tmp_path, watchdog_s=None) as agent:
            agent.wait_for("READY=1")
            try:
                fleet.wait_for(everything_arrived, timeout=120)
            except AssertionError:
                missing = len(accepted - tally.starts)
                pytest.fail(
                    f"{missing} accepted segments and {presses - tally.presses} presses never arrived"
                )
            assert agent.terminate() == 0
    assert sum(p.refused for p in pushers) == 0
    # At least once: duplicates are allowed (a PUBACK lost to a kill means a resend, flagged).
    assert tally.historical > 0
