"""A full outbox while the uplink is down: at the configured bound, and on a flash that is
really full (a small tmpfs). Only video metadata is dropped, and counted; every alarm and
event arrives once the broker is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.outbox import OutboxFull
from edge.pole import BellPress, DoorChange
from edge.rules import VideoRecord
from protocols import messages as m
from tests.edge.test_agent import agent_config, of, running, seen
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker

pytestmark = pytest.mark.broker

T0 = 1_764_000_000_000


def segment(n: int) -> VideoRecord:
    return m.RecordingSegment(
        camera_id="cam-1",
        start=T0 + n * 2_000,
        end=T0 + (n + 1) * 2_000,
        bytes=1_000_000,
        codec="h264",
        width=1920,
        height=1080,
        fps=25.0,
        bitrate_kbps=4000.0,
    )


async def fill_while_offline(agent: Agent, broker: MosquittoBroker, *, pushes: int) -> tuple[int, int]:
    """Broker down; alarms and door events interleaved with video pushes. Returns how many
    alarms and events went in, and leaves the broker running again."""
    broker.kill()
    async with asyncio.timeout(10):
        while agent.uplink.online:
            await asyncio.sleep(0.01)
    alarms = events = 0

    async def push(n: int) -> None:
        with contextlib.suppress(OutboxFull):  # refused video: the HTTP layer would answer 503
            await agent.accept_video([segment(2 * n), segment(2 * n + 1)])

    for n in range(pushes):
        if n % 100 == 0:  # cameras push concurrently: a hundred pushes share one commit
            await asyncio.gather(*(push(k) for k in range(n, min(n + 100, pushes))))
        if n % 50 == 0:
            await agent.on_pole_event(BellPress("bell-1", T0 + n, "gpio"))
            alarms += 1
        if n % 20 == 0:
            await agent.on_pole_event(DoorChange(n % 40 == 0, T0 + n))
            events += 1
    broker.start()
    return alarms, events


def test_the_outbox_bound_drops_only_video_and_counts_it(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = agent_config(tmp_path, broker, "[outbox]\nmax_records = 1000\n")

    async def scenario() -> None:
        async with running(Agent(config)) as agent:
            alarms, events = await fill_while_offline(agent, broker, pushes=2000)
            dropped = agent.outbox.counters["dropped_video"]
            assert dropped >= 1000  # 2000 pushes into a bound of 1000 records
            with Observer(broker) as fleet:
                newest = segment(3999).start
                messages = await seen(
                    fleet,
                    lambda s: (
                        len(of(s, "alarm")) == alarms
                        and len(of(s, "event")) >= events
                        and any(r["start"] == newest for v in of(s, "video") for r in v["records"])
                    ),
                    timeout=60,
                )
                # Counted and reported: a live reading says how much was dropped.
                await seen(
                    fleet,
                    lambda s: any(t["readings"]["outbox_dropped"] >= dropped for t in of(s, "telemetry")),
                )
        door = [e for e in of(messages, "event") if e["category"] == "door"]
        assert len(door) == events
        videos = [r for v in of(messages, "video") for r in v["records"]]
        assert 0 < len(videos) < 4000
        # The newest video survived; the oldest went first.
        starts = {r["start"] for r in videos}
        assert segment(3999).start in starts
        assert segment(0).start not in starts

    asyncio.run(scenario())


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as a full flash needs root")
def test_a_really_full_flash_drops_only_video(tmp_path: Path, broker: MosquittoBroker) -> None:
    # An 8 MiB flash that something else (logs, a stuck download) has half filled.
    with small_tmpfs(tmp_path / "flash", "8m") as flash:
        (flash / "other-files").write_bytes(b"\0" * 4 * 2**20)
        config = agent_config(
            flash,
            broker,
            "[outbox]\nmax_records = 1000000\nmax_mb = 1000\nmin_free_mb = 2\nballast_kb = 512\n",
        )

        async def scenario() -> None:
            async with running(Agent(config)) as agent:
                assert (flash / "state" / "outbox.db.ballast").stat().st_size == 512 * 1024
                alarms, events = await fill_while_offline(agent, broker, pushes=6_000)
                counters = agent.outbox.counters
                assert counters["dropped_video"] > 0
                assert counters["dropped_video"] + counters["refused_video"] >= 1_000
                assert os.statvfs(flash).f_bavail > 0  # held back from the very edge
                with Observer(broker) as fleet:
                    messages = await seen(
                        fleet,
                        lambda s: (
                            len(of(s, "alarm")) == alarms
                            and len([e for e in of(s, "event") if e["category"] == "door"]) == events
                            and bool(of(s, "video"))
                        ),
                        timeout=60,
                    )
            assert len(of(messages, "alarm")) == alarms

        asyncio.run(scenario())
