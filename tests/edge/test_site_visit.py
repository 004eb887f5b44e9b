"""A technician at the pole, end to end: `watchpost diag` against the running agent, with the
uplink down; the signed check-in waits in the outbox with the node's time and reaches the
fleet when the broker is back, where the key from the node's birth verifies it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.agent import Agent
from protocols import messages as m
from protocols.topics import Kind
from protocols.visits import public_key_from_text, verify_visit
from tests.edge.test_agent import agent_config, of, running, seen
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker
from watchpost.cli import main

PIN = "482916"


def diag(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["diag", *args], env={"WATCHPOST_PIN": PIN})
    return result.exit_code, result.output


@pytest.mark.broker
def test_check_in_with_the_uplink_down_arrives_later_signed(tmp_path: Path) -> None:
    broker = MosquittoBroker(persistent=True)
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    config = agent_config(
        tmp_path,
        broker,
        "[gpio]\nbell_pin = 17\ndoor_pin = 27\nlamp_pin = 22\nmock = true\n",
        pin_file=pin_file,
    )
    node = f"http://127.0.0.1:{config.http.port}"

    async def scenario() -> None:
        with Observer(broker, session="fleet-test") as fleet:
            agent = Agent(config)
            async with running(agent):
                births = await seen(fleet, lambda s: bool(of(s, "birth")))
                node_key = of(births, "birth")[0]["node_key"]
                broker.stop()  # the uplink goes down; the technician is at the pole anyway
                while agent.uplink.online:
                    await asyncio.sleep(0.01)

                code, output = await asyncio.to_thread(diag, "status", "--node", node)
                assert code == 0, output
                assert "pole-0042" in output

                before = int(time.time() * 1000)
                code, output = await asyncio.to_thread(
                    diag,
                    "check-in",
                    "--technician",
                    "tech-0193",
                    "--fault",
                    "fault-731",
                    "--node",
                    node,
                    "--json",
                )
                assert code == 0, output
                answer = json.loads(output)
                assert answer["uplink_online"] is False
                code, output = await asyncio.to_thread(diag, "self-test", "mqtt", "--node", node, "--json")
                assert code == 1  # the broker is down: the MQTT self-test says so
                assert "uplink offline" in output
                await asyncio.sleep(0.5)  # an hour on a real pole: the check-in waits, on flash

                broker.start()
                messages = await seen(fleet, lambda s: bool(of(s, "visit")), timeout=30)
                arrived_ms = int(time.time() * 1000)
        visit = m.decode(Kind.VISIT, next(s.payload for s in messages if s.kind == "visit"))
        assert isinstance(visit, m.SiteVisit)
        public_key = public_key_from_text(node_key)
        assert public_key is not None
        assert verify_visit("pole-0042", visit, public_key)
        assert (visit.action, visit.technician, visit.fault_id) == ("check-in", "tech-0193", "fault-731")
        assert visit.historical  # it waited out the outage
        # The node's time of the visit, taken at the pole, not when the fleet got it.
        assert before <= visit.at <= arrived_ms - 500

    with broker:
        asyncio.run(scenario())
