"""The edge agent end to end: the real firmware on the simulated pole controller, the agent,
a real Mosquitto, and the test playing the fleet (publishing acks and commands, reading what
the node sends)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edge.agent import CALL_HOLD_MS, Agent
from edge.cameras.fake import FakeCamera
from edge.config import EdgeConfig, parse_config
from edge.controller.pole import ControllerPole
from edge.pole import BellPress
from protocols import messages as m
from protocols.topics import Kind, node_topic
from tests.edge.conftest import Pole
from tests.edge.storage.test_probe import fake_smartctl
from tests.mqtt_observer import Observer, Seen
from watchpost.broker import MosquittoBroker, free_port

NODE = "pole-0042"
T_CALL = 1_764_000_000_000


def agent_config(
    tmp_path: Path, broker: MosquittoBroker, extra: str = "", *, pin_file: Path | None = None
) -> EdgeConfig:
    pin = f'pin_file = "{pin_file}"' if pin_file else ""
    return parse_config(
        f"""
[node]
id = "{NODE}"
site_id = "site-0042"
state_dir = "{tmp_path / "state"}"

[uplink]
host = "{broker.host}"
port = {broker.port}

[http]
listen = "127.0.0.1"
port = {free_port()}
{pin}

[telemetry]
interval_s = 0.5
{extra}
"""
    )


@contextlib.asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[Agent]:
    task = asyncio.create_task(agent.run(), name="agent")
    try:
        async with asyncio.timeout(10):
            await agent.ready.wait()
            while not agent.uplink.online:
                await asyncio.sleep(0.01)
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def seen(observer: Observer, wanted: Callable[[list[Seen]], bool], timeout: float = 15.0) -> list[Seen]:
    return await asyncio.to_thread(observer.wait_for, wanted, timeout)


def of(messages: list[Seen], kind: str) -> list[dict[str, Any]]:
    return [s.json() for s in messages if s.kind == kind]


@pytest.mark.broker
@pytest.mark.micropython
def test_bell_press_to_alarm_and_ack_to_lamp_with_the_real_firmware(
    tmp_path: Path, broker: MosquittoBroker, start_pole: Callable[..., Pole]
) -> None:
    pole = start_pole()
    config = agent_config(tmp_path, broker, f'[controller]\nport = "{pole.uart}"\n')

    async def scenario() -> None:
        with Observer(broker) as fleet:
            async with running(Agent(config)) as agent:
                # The birth names the controller once it has said hello.
                pole.inputs.press_bell()
                await asyncio.sleep(0.15)
                pole.inputs.release_bell()
                messages = await seen(fleet, lambda s: bool(of(s, "alarm")))
                alarm = of(messages, "alarm")[0]
                assert (alarm["bell_id"], alarm["source"], alarm["presses"]) == ("bell-1", "controller", 1)
                assert agent.bell_call_active()  # an update would wait now (edge.ota)

                ack = m.AlarmAck(ts=alarm["ts"], alarm_id=alarm["alarm_id"], operator="operator-7")
                fleet.publish(node_topic(NODE, Kind.ALARM_ACK), m.encode(ack))
                controller = agent.pole
                assert isinstance(controller, ControllerPole)
                async with asyncio.timeout(10):
                    while True:  # ask the controller itself: in = (bell, stuck, door, lamp)
                        status = await controller.command("status")
                        if status.inputs is not None and status.inputs[3] == 1:
                            break
                        await asyncio.sleep(0.1)
                assert agent.counters.lamp_failures == 0
                assert agent.bell_call_active()  # answered, and the lamp is lit: still the call

                pole.inputs.open_door()
                messages = await seen(fleet, lambda s: any(e["category"] == "door" for e in of(s, "event")))
                door = next(e for e in of(messages, "event") if e["category"] == "door")
                assert (door["state"], door["severity"]) == ("raised", "minor")

                messages = await seen(fleet, lambda s: bool(of(s, "telemetry")))
                telemetry = of(messages, "telemetry")[-1]["readings"]
                assert telemetry["outbox_backlog"] >= 0
                assert agent.outbox.usage().total_records <= 1  # everything else has its PUBACK
        assert len(of(fleet.messages, "alarm")) == 1  # delivered once, though acked after storing

    asyncio.run(scenario())


@pytest.mark.broker
def test_commands_from_the_fleet_get_results(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = agent_config(tmp_path, broker)

    def command(command_id: str, name: str, *, expires_in: int = 60_000, **args: Any) -> bytes:
        now = 1_900_000_000_000
        return m.encode(
            m.Command(
                ts=now - 1000 if expires_in > 0 else 1_000,
                command_id=command_id,
                name=name,  # type: ignore[arg-type]
                issued_by="operator-7",
                expires_at=now + expires_in if expires_in > 0 else 2_000,
                args=args,
            )
        )

    async def scenario() -> None:
        with Observer(broker) as fleet:
            async with running(Agent(config)) as agent:
                topic = node_topic(NODE, Kind.COMMAND)
                fleet.publish(topic, command("c-1", "ping"))
                fleet.publish(topic, command("c-2", "fetch-logs", lines=5))
                fleet.publish(topic, command("c-3", "self-test"))  # no controller on this node
                fleet.publish(topic, command("c-4", "ping", expires_in=-1))
                fleet.publish(topic, command("c-5", "fetch-logs", lines=0))
                fleet.publish(topic, command("c-1", "ping"))  # redelivered: not run twice
                fleet.publish(topic, command("c-6", "rebirth"))
                fleet.publish(topic, command("c-7", "set-config", **{"telemetry.interval_s": 30}))
                fleet.publish(topic, command("c-8", "set-config", **{"uplink.port": 1}))
                fleet.publish(topic, command("c-9", "set-config", **{"rules.lamp_s": -5}))
                messages = await seen(fleet, lambda s: len({r["command_id"] for r in of(s, "result")}) == 9)
                await seen(fleet, lambda s: len(of(s, "birth")) == 2)
        results = {r["command_id"]: r for r in of(messages, "result")}
        assert results["c-1"]["status"] == "ok"
        assert results["c-1"]["output"]["agent_version"] == "0.1.0"
        assert results["c-2"]["status"] == "ok"
        assert isinstance(results["c-2"]["output"]["lines"], list)
        assert results["c-3"]["status"] == "rejected"
        assert results["c-4"]["status"] == "expired"
        assert results["c-5"]["status"] == "rejected"
        assert "1 to 500" in results["c-5"]["detail"]
        assert results["c-6"]["status"] == "ok"
        assert agent.commands.counts["duplicate"] == 1
        assert (results["c-7"]["status"], results["c-7"]["output"]) == ("ok", {"telemetry.interval_s": 30})
        assert results["c-8"]["status"] == "rejected"
        assert (
            "uplink.port: cannot be changed at run time; accepted: telemetry.interval_s"
            in results["c-8"]["detail"]
        )
        assert results["c-9"]["status"] == "rejected"
        assert "rules.lamp_s: Expected `int` >= 0" in results["c-9"]["detail"]
        # The change holds across a restart of the agent, on top of the config file.
        assert config.telemetry.interval_s == 0.5
        restarted = Agent(config)
        assert restarted.config.telemetry.interval_s == 30
        restarted.outbox.close()

    asyncio.run(scenario())


@pytest.mark.broker
def test_a_pole_wired_to_gpio_raises_alarms_and_lights_its_lamp(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    config = agent_config(
        tmp_path, broker, "[gpio]\nbell_pin = 17\ndoor_pin = 27\nlamp_pin = 22\nmock = true\n"
    )

    async def scenario() -> None:
        with Observer(broker) as fleet:
            async with running(Agent(config)) as agent:
                wiring = agent.gpio_wiring
                assert wiring is not None
                wiring.press_bell()
                await asyncio.sleep(0.1)
                wiring.release_bell()
                messages = await seen(fleet, lambda s: bool(of(s, "alarm")))
                alarm = of(messages, "alarm")[0]
                assert (alarm["source"], alarm["bell_id"]) == ("gpio", "bell-1")
                assert not wiring.lamp_lit()
                ack = m.AlarmAck(ts=alarm["ts"], alarm_id=alarm["alarm_id"], operator="operator-7")
                fleet.publish(node_topic(NODE, Kind.ALARM_ACK), m.encode(ack))
                async with asyncio.timeout(10):
                    while not wiring.lamp_lit():
                        await asyncio.sleep(0.02)
                birth = of(messages, "birth")[0]
                assert birth["controller"] == {"link": "gpio"}
                assert birth["bells"] == ["bell-1"]

    asyncio.run(scenario())


@pytest.mark.broker
def test_a_failing_disk_raises_a_storage_event_and_shows_in_telemetry(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    smartctl = fake_smartctl(tmp_path, "usb_jmicron_hitachi_failing")
    config = agent_config(
        tmp_path, broker, f'[storage]\ndevices = ["/dev/sda"]\nsmartctl = "{smartctl}"\ninterval_s = 3600\n'
    )

    async def scenario() -> None:
        with Observer(broker) as fleet:
            async with running(Agent(config)):
                messages = await seen(
                    fleet, lambda s: any(t["readings"]["storage"] for t in of(s, "telemetry"))
                )
        (event,) = [e for e in of(messages, "event") if e["category"] == "storage"]
        assert (event["state"], event["severity"], event["component"]) == ("raised", "critical", "sda")
        assert "/dev/sda failing" in event["detail"]
        (disk,) = next(t for t in of(messages, "telemetry") if t["readings"]["storage"])["readings"][
            "storage"
        ]
        assert (disk["device"], disk["health"]) == ("/dev/sda", "failing")

    asyncio.run(scenario())


def push(port: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/video-metadata",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def segment(camera_id: str, start: int, end: int) -> dict[str, Any]:
    return {
        "record": "segment",
        "camera_id": camera_id,
        "start": start,
        "end": end,
        "bytes": 9_000_000,
        "codec": "h265",
        "width": 2560,
        "height": 1440,
        "fps": 20.0,
        "bitrate_kbps": 4000.0,
    }


@pytest.mark.broker
def test_video_metadata_is_bookmarked_around_a_bell_press_and_cameras_are_probed(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async def scenario() -> None:
        async with FakeCamera() as camera:
            config = agent_config(
                tmp_path,
                broker,
                "[gpio]\nbell_pin = 17\ndoor_pin = 27\nlamp_pin = 22\nmock = true\n"
                f'[[cameras]]\nid = "cam-1"\nname = "North"\nhost = "127.0.0.1"\nport = {camera.port}\n'
                '[[cameras]]\nid = "cam-2"\nname = "Gone"\nhost = "127.0.0.1"\nport = 9\nprobe = "tcp"\n',
            )
            port = config.http.port
            with Observer(broker) as fleet:
                async with running(Agent(config)) as agent:
                    now = int(time.time() * 1000)
                    # 90 s and 30 s before the press: only the second is within ±60 s.
                    early = segment("cam-1", now - 100_000, now - 90_000)
                    close = segment("cam-1", now - 30_000, now - 20_000)
                    assert await asyncio.to_thread(push, port, {"records": [early, close]}) == (
                        202,
                        {"accepted": 2},
                    )
                    assert agent.gpio_wiring is not None
                    agent.gpio_wiring.press_bell()
                    await asyncio.sleep(0.1)
                    agent.gpio_wiring.release_bell()
                    messages = await seen(fleet, lambda s: bool(of(s, "alarm")))
                    alarm_id = of(messages, "alarm")[0]["alarm_id"]
                    after = segment("cam-1", now + 10_000, now + 20_000)
                    status, body = await asyncio.to_thread(push, port, after)
                    assert status == 202
                    status, body = await asyncio.to_thread(push, port, segment("cam-9", now, now + 1))
                    assert status == 422
                    assert "cam-9" in body["error"]
                    messages = await seen(
                        fleet, lambda s: sum(len(v["records"]) for v in of(s, "video")) >= 4
                    )
                    events = await seen(
                        fleet, lambda s: any(e["category"] == "camera" for e in of(s, "event"))
                    )
        records = [r for v in of(messages, "video") for r in v["records"]]
        tagged = {(r["start"], tuple(r.get("bookmarks", []))) for r in records}
        assert (now - 100_000, ()) in tagged  # outside the window: never tagged
        assert (now - 30_000, ()) in tagged  # as first pushed...
        assert (now - 30_000, (alarm_id,)) in tagged  # ...and sent again, tagged, after the press
        assert (now + 10_000, (alarm_id,)) in tagged  # pushed after the press: tagged at once
        (gone,) = [e for e in of(events, "event") if e["category"] == "camera"]
        assert (gone["component"], gone["state"], gone["severity"]) == ("cam-2", "raised", "major")
        assert "refused" in gone["detail"]

    asyncio.run(scenario())


def test_a_bell_call_holds_updates_until_it_is_answered_and_the_lamp_is_out(tmp_path: Path) -> None:
    now = [T_CALL]
    config = parse_config(
        f"""
[node]
id = "{NODE}"
site_id = "site-0042"
state_dir = "{tmp_path / "state"}"
[uplink]
host = "127.0.0.1"
[rules]
lamp_s = 60
"""
    )
    agent = Agent(config, clock_ms=lambda: now[0])

    async def scenario() -> None:
        assert not agent.bell_call_active()
        await agent.on_pole_event(BellPress(bell_id="bell-1", pressed_at_ms=now[0], source="gpio"))
        assert agent.bell_call_active()
        now[0] += CALL_HOLD_MS - 1
        assert agent.bell_call_active()  # nobody answered yet
        now[0] += 1
        assert not agent.bell_call_active()  # unanswered for the whole hold: updates go on

        await agent.on_pole_event(BellPress(bell_id="bell-1", pressed_at_ms=now[0], source="gpio"))
        agent.lamp_on_until_ms = now[0] + 60_000  # the lamp the acknowledgement lit
        agent._on_downlink(m.AlarmAck(ts=now[0], alarm_id="a-2", operator="operator-7", lamp=False))
        assert agent.bell_call_active()  # answered, lamp still lit
        now[0] += 60_000
        assert not agent.bell_call_active()

    try:
        asyncio.run(scenario())
    finally:
        agent.outbox.close()
