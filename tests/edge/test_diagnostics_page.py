"""The technicians' page in a real browser (Debian's Chromium), against the running agent:
log in with the PIN, read the node's status, run a self-test, check in while the uplink is
down and see the check-in arrive at the fleet once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from edge.agent import Agent
from edge.config import EdgeConfig
from tests.edge.test_agent import agent_config
from tests.mqtt_observer import Observer
from watchpost.broker import MosquittoBroker

pytestmark = [pytest.mark.browser, pytest.mark.broker]

PIN = "482916"


class AgentThread:
    """The agent on its own event loop in a thread: Playwright's sync API wants this one."""

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.agent: Agent | None = None  # made on its own thread: SQLite objects stay on theirs
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent", daemon=True)
        self._task: asyncio.Task[None] | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            agent = self.agent = Agent(self.config)
            self._task = asyncio.create_task(agent.run())
            while not agent.uplink.online and not self._task.done():
                await asyncio.sleep(0.01)
            self.ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

        self.loop.run_until_complete(main())
        self.loop.close()

    def __enter__(self) -> Agent:
        self._thread.start()
        if not self.ready.wait(20) or self.agent is None:
            raise TimeoutError("the agent did not come online")
        return self.agent

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(20)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Agent, MosquittoBroker]]:
    broker = MosquittoBroker(persistent=True)
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN)
    config = agent_config(
        tmp_path,
        broker,
        "[gpio]\nbell_pin = 17\ndoor_pin = 27\nlamp_pin = 22\nmock = true\n",
        pin_file=pin_file,
    )
    with broker, AgentThread(config) as agent:
        yield agent, broker


def test_a_technician_reads_the_node_runs_a_self_test_and_checks_in_offline(
    chromium: Browser, node: tuple[Agent, MosquittoBroker]
) -> None:
    agent, broker = node
    page = chromium.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(f"http://127.0.0.1:{agent.config.http.port}/diag/")

    page.fill("#pin", "000000")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).not_to_be_empty()  # a wrong PIN is said so
    page.fill("#pin", PIN)
    page.click("#login-form button[type=submit]")

    expect(page.locator("#s-node")).to_contain_text("pole-0042")
    expect(page.locator("#s-uplink")).to_contain_text("online")
    expect(page.locator("#s-outbox")).to_contain_text("alarm")

    page.click("text=Run mqtt")
    expect(page.locator("#self-tests")).to_contain_text("passed")

    with Observer(broker, session="fleet-page") as fleet:
        broker.stop()  # the uplink goes down; the technician checks in anyway
        expect(page.locator("#s-uplink")).not_to_contain_text("online", timeout=20_000)
        page.fill("#technician", "tech-0193")
        page.fill("#fault_id", "fault-731")
        page.click("#visit-form button[type=submit]")
        expect(page.locator("#visit-result")).to_contain_text("check-in by tech-0193")
        expect(page.locator("#visit-result")).to_contain_text("queued")
        broker.start()
        seen = fleet.wait_for(lambda messages: any(s.kind == "visit" for s in messages), timeout=30)
    visit = next(s.json() for s in seen if s.kind == "visit")
    assert (visit["technician"], visit["fault_id"], visit["historical"]) == ("tech-0193", "fault-731", True)
    page.close()
