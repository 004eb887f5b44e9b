"""The edge agent's link to the pole controller (edge.controller): against the real firmware
on the simulated device (marker `micropython`), and against the fake transport for what the
real firmware never does on purpose (garbage, malformed payloads, duplicated frames)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from edge.controller import payloads
from edge.controller.errors import CommandTimeout, LinkClosed, PayloadRejected, TransportError
from edge.controller.fake import FakeControllerTransport
from edge.controller.link import (
    ControllerLink,
    ControllerReset,
    LinkDown,
    LinkItem,
    LinkUp,
    monotonic_ms,
)
from edge.controller.payloads import BellPressed, CommandResult, decode_controller_payload
from protocols import link
from tests.edge.conftest import Pole
from watchpost.deploy import firmware_version

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_VERSION = firmware_version(REPO / "firmware")
BELL_DEBOUNCE_S = 0.1  # comfortably past the firmware's 30 ms debounce at a 5 ms loop

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def expect(
    controller: ControllerLink, wanted: Callable[[LinkItem], bool], timeout: float = 5.0
) -> LinkItem:
    """The next item on the link's queue that matches; fails the test after `timeout` s."""
    seen: list[LinkItem] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                item = await controller.items.get()
                seen.append(item)
                if wanted(item):
                    return item
    except TimeoutError:
        pytest.fail(f"no matching item within {timeout} s; saw {seen[-10:]}")


async def drain(controller: ControllerLink, seconds: float) -> list[LinkItem]:
    """Everything the link delivers during the next `seconds`."""
    await asyncio.sleep(seconds)
    items = []
    while not controller.items.empty():
        items.append(controller.items.get_nowait())
    return items


def is_reset(item: LinkItem) -> bool:
    return isinstance(item, ControllerReset)


async def press(pole: Pole) -> None:
    pole.inputs.press_bell()
    await asyncio.sleep(BELL_DEBOUNCE_S)
    pole.inputs.release_bell()
    await asyncio.sleep(BELL_DEBOUNCE_S)


# --- Against the real firmware on the simulated controller -------------------------------------


@pytest.mark.micropython
def test_hello_is_a_power_on_reset_with_the_firmware_version(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()

    async def scenario() -> None:
        async with ControllerLink(port=pole.uart) as controller:
            assert isinstance(await expect(controller, lambda i: isinstance(i, LinkUp)), LinkUp)
            reset = await expect(controller, is_reset)
            assert isinstance(reset, ControllerReset)
            assert (reset.cause, reset.firmware) == ("power-on", FIRMWARE_VERSION)
            assert controller.peer_up
            counters = controller.counters()
            assert counters.controller_resets == 1
            assert counters.decode_errors == {}
            assert counters.payload_rejections == {}

    run(scenario())


@pytest.mark.micropython
def test_a_bell_press_is_delivered_exactly_once(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()

    async def scenario() -> None:
        async with ControllerLink(port=pole.uart) as controller:
            await expect(controller, is_reset)
            await press(pole)
            alarm = await expect(controller, lambda i: isinstance(i, BellPressed))
            assert isinstance(alarm, BellPressed)
            assert (alarm.id, alarm.n) == ("bell-1", 1)
            later = await drain(controller, 1.0)  # a retransmission would show up here
            assert not [i for i in later if isinstance(i, BellPressed)]
            assert controller.counters().duplicates == 0

    run(scenario())


@pytest.mark.micropython
def test_lamp_and_status_commands_get_their_results(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()

    async def scenario() -> None:
        async with ControllerLink(port=pole.uart) as controller:
            await expect(controller, is_reset)
            lit = await controller.send_command(payloads.lamp(True, 30, id="c-7"))
            assert (lit.cmd, lit.ok, lit.lamp, lit.buzz, lit.id) == ("lamp", True, 1, 0, "c-7")
            status = await controller.send_command(payloads.status(id=8))
            assert (status.cmd, status.ok, status.id) == ("status", True, 8)
            assert (status.fw, status.rst, status.peer) == (FIRMWARE_VERSION, "power-on", 1)
            assert status.inputs == (0, 0, 0, 1)  # bell up, not stuck, door shut, lamp lit
            refused = await controller.send_command(b'{"cmd":"frob","id":"c-9"}')
            assert (refused.ok, refused.err) == (False, "unknown-command")
            assert controller.counters().commands == 3

    run(scenario())


@pytest.mark.micropython
def test_a_watchdog_reset_is_reported_and_the_link_recovers(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole("--watchdog", "2")

    async def scenario() -> None:
        async with ControllerLink(port=pole.uart) as controller:
            first = await expect(controller, is_reset)
            assert isinstance(first, ControllerReset)
            assert first.cause == "power-on"
            pole.inputs.hang()
            second = await expect(controller, is_reset, timeout=10)
            assert isinstance(second, ControllerReset)
            assert (second.cause, second.firmware) == ("watchdog", FIRMWARE_VERSION)
            pong = await controller.send_command(payloads.ping(id=1))
            assert (pong.cmd, pong.ok) == ("ping", True)
            assert controller.counters().controller_resets == 2

    run(scenario())


@pytest.mark.micropython
def test_link_down_when_the_simulator_stops(start_pole: Callable[..., Pole]) -> None:
    pole = start_pole()

    async def scenario() -> None:
        async with ControllerLink(
            port=pole.uart, heartbeat_ms=200, dead_after_ms=800, reopen_interval=0.2
        ) as controller:
            await expect(controller, is_reset)
            pole.sim.stop()
            started = time.monotonic()
            down = await expect(controller, lambda i: isinstance(i, LinkDown), timeout=3)
            assert isinstance(down, LinkDown)
            assert time.monotonic() - started < 2
            assert not controller.peer_up
            counters = controller.counters()
            assert counters.link_downs == 1
            assert counters.transport_errors >= 1  # the pty went away under pyserial

    run(scenario())


# --- Against the fake transport (no MicroPython) ------------------------------------------------


def fake_link(
    *, confirm_delivery: bool = False, **settings: Any
) -> tuple[ControllerLink, FakeControllerTransport]:
    fake = FakeControllerTransport(clock=monotonic_ms, **settings)
    return ControllerLink(transport=fake, poll_interval=0.001, confirm_delivery=confirm_delivery), fake


def test_the_fake_controller_says_hello_and_answers_commands() -> None:
    async def scenario() -> None:
        controller, fake = fake_link()
        async with controller:
            reset = await expect(controller, is_reset, timeout=1)
            assert isinstance(reset, ControllerReset)
            assert reset.cause == "power-on"
            result = await controller.send_command(payloads.self_test(id="st-1"))
            assert (result.cmd, result.ok, result.id) == ("self-test", True, "st-1")
            assert fake.commands == [b'{"cmd":"self-test","id":"st-1"}']
        assert fake.closed

    run(scenario())


def test_garbage_on_the_line_is_counted_and_survived() -> None:
    async def scenario() -> None:
        controller, fake = fake_link()
        async with controller:
            await expect(controller, is_reset, timeout=1)
            fake.inject(b"\x00\x01\x02\x03\x00")  # COBS-valid, far too short
            fake.inject(b"\x00\xff\xff\x00")  # not valid COBS
            fake.inject(b"\x5a" * 600 + b"\x00")  # no delimiter for longer than any frame
            good = link.encode_frame(link.T_EVENT, 7, 0, b'{"k":"door","st":"open","t":1}')
            fake.inject(good[:-6] + b"\xaa" + good[-5:])  # a flipped byte: bad CRC
            fake.send(link.T_EVENT, b'{"k":"door","st":"closed","t":2}')
            door = await expect(controller, lambda i: isinstance(i, payloads.DoorChanged), timeout=1)
            assert isinstance(door, payloads.DoorChanged)
            assert door.st == "closed"
            errors = controller.counters().decode_errors
            assert errors.get("oversized") == 1
            assert sum(errors.values()) >= 4
            assert controller.peer_up

    run(scenario())


def test_malformed_payloads_are_counted_by_reason_and_the_next_one_arrives() -> None:
    async def scenario() -> None:
        controller, fake = fake_link()
        async with controller:
            await expect(controller, is_reset, timeout=1)
            fake.send(link.T_EVENT, b'{"k":"bell","st":')  # cut off
            fake.send(link.T_EVENT, b'{"k":"warp","t":1}')  # unknown kind
            fake.send(link.T_EVENT, b'{"k":"bell","st":"pressed","id":"bell-1","n":"1","t":1}')
            fake.send(link.T_TELEMETRY, b'{"k":"tel","up":-1}')
            fake.send(link.T_EVENT, b'{"k":"bell","st":"pressed","id":"bell-1","n":2,"t":3}')
            alarm = await expect(controller, lambda i: isinstance(i, BellPressed), timeout=2)
            assert alarm == BellPressed(id="bell-1", n=2, t=3)
            counters = controller.counters()
            assert counters.payload_rejections == {"not-json": 1, "unknown-kind": 1, "invalid": 2}
            assert counters.decode_errors == {}

    run(scenario())


def test_a_duplicated_frame_is_delivered_once() -> None:
    async def scenario() -> None:
        controller, fake = fake_link()
        async with controller:
            await expect(controller, is_reset, timeout=1)
            frame = link.encode_frame(
                link.T_EVENT, 200, 0, b'{"k":"bell","st":"pressed","id":"b","n":1,"t":9}'
            )
            fake.inject(frame + frame)
            later = await drain(controller, 0.2)
            assert [i for i in later if isinstance(i, BellPressed)] == [BellPressed(id="b", n=1, t=9)]
            assert controller.counters().duplicates == 1

    run(scenario())


def test_with_confirm_delivery_a_press_is_acked_only_once_stored() -> None:
    async def scenario() -> None:
        controller, fake = fake_link(confirm_delivery=True)
        async with controller:
            reset = await expect(controller, is_reset, timeout=1)
            controller.confirm_stored(reset)  # the reset is handled
            fake.send(link.T_EVENT, b'{"k":"bell","st":"pressed","id":"b","n":1,"t":9}', link.CLASS_ALARM)
            pressed = await expect(controller, lambda i: isinstance(i, BellPressed), timeout=1)
            assert pressed == BellPressed(id="b", n=1, t=9)
            later = await drain(controller, 0.6)
            assert fake.session.backlog() == 1  # not acknowledged: the controller still holds it
            assert fake.session.retransmits > 0
            assert not [i for i in later if isinstance(i, BellPressed)]  # and not delivered twice
            controller.confirm_stored(LinkUp(0))  # another item: confirms nothing
            await drain(controller, 0.3)
            assert fake.session.backlog() == 1
            controller.confirm_stored(pressed)  # the outbox has committed it
            await drain(controller, 0.3)
            assert fake.session.backlog() == 0
            # A command still works: its result is confirmed by the link itself.
            result = await controller.send_command(payloads.ping(id="p-1"))
            assert result.ok

    run(scenario())


def test_a_command_without_a_result_times_out_with_its_id() -> None:
    async def scenario() -> None:
        controller, _ = fake_link(answer_commands=False)
        async with controller:
            await expect(controller, is_reset, timeout=1)
            with pytest.raises(CommandTimeout) as caught:
                await controller.send_command(payloads.ping(id=42), timeout=0.1)
            assert (caught.value.command, caught.value.command_id) == ("ping", 42)
            assert controller.counters().command_timeouts == 1

    run(scenario())


def test_closing_the_link_fails_a_waiting_command() -> None:
    async def scenario() -> None:
        controller, _ = fake_link(answer_commands=False)
        async with controller:
            await expect(controller, is_reset, timeout=1)
            waiting = asyncio.create_task(controller.send_command(payloads.ping(id="p")))
            await asyncio.sleep(0.05)
        with pytest.raises(LinkClosed) as caught:
            await waiting
        assert caught.value.command_id == "p"

    run(scenario())


def test_reset_silence_and_return_of_the_controller_are_status_events() -> None:
    async def scenario() -> None:
        fake = FakeControllerTransport(clock=monotonic_ms)
        controller = ControllerLink(transport=fake, poll_interval=0.001, heartbeat_ms=50, dead_after_ms=200)
        async with controller:
            await expect(controller, is_reset, timeout=1)
            fake.reset("watchdog")
            reset = await expect(controller, is_reset, timeout=1)
            assert isinstance(reset, ControllerReset)
            assert reset.cause == "watchdog"
            fake.mute()
            await expect(controller, lambda i: isinstance(i, LinkDown), timeout=1)
            fake.mute(False)
            await expect(controller, lambda i: isinstance(i, LinkUp), timeout=1)
            counters = controller.counters()
            assert (counters.link_downs, counters.controller_resets) == (1, 2)

    run(scenario())


def test_an_unplugged_transport_is_counted_and_ends_in_link_down() -> None:
    async def scenario() -> None:
        fake = FakeControllerTransport(clock=monotonic_ms)
        controller = ControllerLink(transport=fake, poll_interval=0.001, heartbeat_ms=50, dead_after_ms=200)
        async with controller:
            await expect(controller, is_reset, timeout=1)
            fake.unplug()
            await expect(controller, lambda i: isinstance(i, LinkDown), timeout=1)
            assert controller.counters().transport_errors > 0

    run(scenario())


def test_a_missing_serial_port_is_a_transport_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(TransportError) as caught:
            async with ControllerLink(port=str(tmp_path / "no-such-tty")):
                pass
        assert caught.value.port == str(tmp_path / "no-such-tty")

    run(scenario())


def test_the_constructor_wants_exactly_one_of_port_and_transport() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ControllerLink()
    with pytest.raises(ValueError, match="exactly one"):
        ControllerLink(port="/dev/null", transport=FakeControllerTransport(clock=monotonic_ms))


# --- Payloads: the vocabulary table of firmware/controller.py -----------------------------------

VOCABULARY = [
    (link.T_HELLO, b'{"fw":"0.1.0","rst":"power-on","t":5}', payloads.Hello(fw="0.1.0", rst="power-on", t=5)),
    (
        link.T_EVENT,
        b'{"k":"bell","st":"pressed","id":"bell-1","n":1,"t":12345}',
        BellPressed(id="bell-1", n=1, t=12345),
    ),
    (
        link.T_EVENT,
        b'{"k":"bell","st":"stuck","id":"bell-1","t":7}',
        payloads.BellStuck(id="bell-1", st="stuck", t=7),
    ),
    (
        link.T_EVENT,
        b'{"k":"circuit","st":"open","raw":61234,"t":7}',
        payloads.CircuitChanged(st="open", raw=61234, t=7),
    ),
    (link.T_EVENT, b'{"k":"door","st":"open","t":7}', payloads.DoorChanged(st="open", t=7)),
    (
        link.T_EVENT,
        b'{"k":"temp","st":"high","c":71.3,"t":7}',
        payloads.TemperatureChanged(st="high", c=71.3, t=7),
    ),
    (
        link.T_EVENT,
        b'{"k":"supply","st":"low","v":10.41,"t":7}',
        payloads.SupplyChanged(st="low", v=10.41, t=7),
    ),
    (
        link.T_TELEMETRY,
        b'{"k":"tel","up":3600,"c":25.0,"v":12.00,"heap":40000,"loop":"normal",'
        b'"in":[0,0,0,0],"bp":3,"q":0,"t":7}',
        payloads.Telemetry(
            up=3600, c=25.0, v=12.0, heap=40000, loop="normal", inputs=(0, 0, 0, 0), bp=3, q=0, t=7
        ),
    ),
    (
        link.T_TELEMETRY,
        b'{"k":"cnt","ln":[40,2,0,5,0,0,1],"fe":[0,0,0,0,2,0,0],"cm":[5,1,1],"exc":0,"t":7}',
        payloads.Counters(ln=(40, 2, 0, 5, 0, 0, 1), fe=[0, 0, 0, 0, 2, 0, 0], cm=(5, 1, 1), exc=0, t=7),
    ),
    (
        link.T_RESULT,
        b'{"cmd":"lamp","ok":true,"lamp":1,"buzz":0,"id":"c-7","t":7}',
        CommandResult(cmd="lamp", ok=True, lamp=1, buzz=0, id="c-7", t=7),
    ),
    (
        link.T_RESULT,
        b'{"ok":false,"err":"bad-command","t":7}',
        CommandResult(ok=False, err="bad-command", t=7),
    ),
]


@pytest.mark.parametrize(("frame_type", "payload", "message"), VOCABULARY)
def test_every_payload_in_the_vocabulary_decodes(frame_type: int, payload: bytes, message: object) -> None:
    assert decode_controller_payload(frame_type, payload) == message


def test_counters_name_decode_errors_by_reason() -> None:
    counters = decode_controller_payload(
        link.T_TELEMETRY, b'{"k":"cnt","ln":[0,0,0,0,0,0,0],"fe":[0,0,0,0,2,0,0],"cm":[0,0,0],"exc":0,"t":1}'
    )
    assert isinstance(counters, payloads.Counters)
    assert counters.decode_errors()["bad-crc"] == 2


@pytest.mark.parametrize(
    ("frame_type", "payload", "reason"),
    [
        (link.T_EVENT, b"\xff\xfe", "not-json"),
        (link.T_EVENT, b"[1,2]", "invalid"),
        (link.T_HELLO, b'{"fw":"0.1.0","rst":"brown-out","t":5}', "invalid"),
        (link.T_TELEMETRY, b'{"k":"door","st":"open","t":1}', "unknown-kind"),
        (link.T_HEARTBEAT, b"", "unexpected-frame-type"),
        (link.T_COMMAND, b'{"cmd":"ping"}', "unexpected-frame-type"),
    ],
)
def test_a_rejected_payload_says_why(frame_type: int, payload: bytes, reason: str) -> None:
    rejected = decode_controller_payload(frame_type, payload)
    assert isinstance(rejected, PayloadRejected)
    assert (rejected.reason, rejected.frame_type) == (reason, frame_type)


def test_command_builders_write_the_controller_vocabulary() -> None:
    assert payloads.lamp(True, 30, id="c-7") == b'{"cmd":"lamp","on":true,"s":30,"buzz":false,"id":"c-7"}'
    assert payloads.reboot(id=3) == b'{"cmd":"reboot","id":3}'
    assert payloads.command_header(payloads.status(id="s")) == ("status", "s")
    with pytest.raises(ValueError, match=r"0\.\.86400"):
        payloads.lamp(True, 86401, id=1)
    with pytest.raises(ValueError, match=r"1\.\.32"):
        payloads.ping(id="x" * 33)
    with pytest.raises(ValueError, match="no id"):
        payloads.command_header(b'{"cmd":"ping"}')


def test_next_hello_returns_the_hello_of_the_next_start_only() -> None:
    async def scenario() -> None:
        controller, fake = fake_link()
        async with controller:
            await expect(controller, is_reset, timeout=1)  # the first start, before the wait
            assert await controller.next_hello(0.2) is None
            waiting = asyncio.create_task(controller.next_hello(2))
            await asyncio.sleep(0.05)
            fake.reset("watchdog")
            hello = await waiting
            assert hello is not None
            assert hello.rst == "watchdog"
            reset = await expect(controller, is_reset, timeout=1)  # still on the queue as well
            assert isinstance(reset, ControllerReset)
            assert reset.hello == hello

    run(scenario())


def test_next_hello_since_a_moment_finds_a_hello_that_came_before_the_question() -> None:
    async def scenario() -> None:
        controller, fake = fake_link()
        async with controller:
            await expect(controller, is_reset, timeout=1)  # the first start
            before_reset = time.monotonic()
            # The first start's HELLO came before `since`: it does not count.
            assert await controller.next_hello(0.2, since=before_reset) is None
            fake.reset("soft")
            await expect(controller, is_reset, timeout=1)  # decoded before anyone asks
            hello = await controller.next_hello(0.2, since=before_reset)
            assert hello is not None
            assert hello.rst == "soft"

    run(scenario())
