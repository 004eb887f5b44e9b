"""GpioPole (edge.gpio.pole) on gpiozero's mock pins (edge.gpio.fake): the events a pole's
wiring produces, the lamp, and pins released when the pole closes. Waits are for events, with
generous timeouts; no test asserts how long anything took."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from edge.gpio import GpioPole, PinUnavailable, PoleNotOpen
from edge.gpio.fake import FakePoleWiring
from edge.pole import BellPress, DoorChange, InputFault, PoleEvent

T = TypeVar("T")
NOW_MS = 1_764_000_000_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def wiring() -> Iterator[FakePoleWiring]:
    board = FakePoleWiring()
    yield board
    board.close()


async def expect(
    pole: GpioPole, wanted: Callable[[PoleEvent], bool], timeout: float = 5.0
) -> list[PoleEvent]:
    """Events up to and including the first that matches; fails the test after `timeout` s."""
    seen: list[PoleEvent] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                seen.append(await pole.next_event())
                if wanted(seen[-1]):
                    return seen
    except TimeoutError:
        pytest.fail(f"no matching event within {timeout} s; saw {seen[-10:]}")


def is_door(is_open: bool) -> Callable[[PoleEvent], bool]:
    return lambda event: isinstance(event, DoorChange) and event.open is is_open


def presses(events: list[PoleEvent]) -> list[BellPress]:
    return [event for event in events if isinstance(event, BellPress)]


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def test_the_door_is_reported_as_it_is_when_the_pole_opens(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole(clock_ms=lambda: NOW_MS) as pole:
            assert await pole.next_event() == DoorChange(open=False, at_ms=NOW_MS)
            assert pole.status().door_open is False
            assert pole.events.empty()  # the bell is up: nothing else to say

    run(scenario())


def test_a_door_wired_open_low_that_is_open_at_start() -> None:
    board = FakePoleWiring(door_open_when="low", door_open=True)
    try:

        async def scenario() -> None:
            async with board.pole() as pole:
                first = await pole.next_event()
                assert isinstance(first, DoorChange)
                assert first.open is True
                board.close_door()
                await expect(pole, is_door(False))

        run(scenario())
    finally:
        board.close()


def test_a_press_is_one_bell_press_from_gpio(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole(bell_id="bell-7", clock_ms=lambda: NOW_MS) as pole:
            await expect(pole, is_door(False))
            wiring.press_bell()
            (press,) = await expect(pole, lambda e: isinstance(e, BellPress))
            assert press == BellPress(bell_id="bell-7", pressed_at_ms=NOW_MS, source="gpio", presses=1)
            assert pole.status().bell_pressed
            wiring.release_bell()
            wiring.open_door()  # a marker: every event of the press is queued before it
            assert presses(await expect(pole, is_door(True))) == []
            await wait_for(lambda: not pole.status().bell_pressed)
            assert pole.status().presses == 1

    run(scenario())


def test_contact_bounce_is_one_press(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        # A long debounce, so the whole burst surely falls inside it even on a slow runner.
        async with wiring.pole(debounce_s=0.5) as pole:
            await expect(pole, is_door(False))
            wiring.chatter_bell(7)  # press with chatter: ends pressed
            assert not wiring.bell_level()
            wiring.chatter_bell(5)  # release with chatter: ends released
            assert wiring.bell_level()
            wiring.open_door()
            events = await expect(pole, is_door(True))
            assert len(presses(events)) == 1
            assert not [e for e in events if isinstance(e, InputFault)]
            assert pole.status().presses == 1

    run(scenario())


def test_two_presses_are_two_bell_presses(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole(debounce_s=0.01) as pole:
            await expect(pole, is_door(False))
            for _ in range(2):
                wiring.press_bell()
                await expect(pole, lambda e: isinstance(e, BellPress))
                wiring.release_bell()
                await wait_for(lambda: not pole.status().bell_pressed)
            assert pole.status().presses == 2

    run(scenario())


def test_a_held_bell_raises_bell_stuck_and_its_release_clears_it(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole(debounce_s=0.01, stuck_after_s=0.2) as pole:
            await expect(pole, is_door(False))
            wiring.press_bell()
            raised_at = await expect(pole, lambda e: isinstance(e, InputFault))
            assert len(presses(raised_at)) == 1
            raised = raised_at[-1]
            assert isinstance(raised, InputFault)
            assert (raised.category, raised.raised, raised.component) == ("bell-stuck", True, "bell-1")
            assert raised.value is not None
            assert raised.value >= 0.2
            assert pole.status().bell_stuck
            wiring.release_bell()
            cleared_at = await expect(pole, lambda e: isinstance(e, InputFault))
            assert presses(cleared_at) == []  # the release is not a second press
            cleared = cleared_at[-1]
            assert isinstance(cleared, InputFault)
            assert (cleared.category, cleared.raised, cleared.component) == ("bell-stuck", False, "bell-1")
            assert not pole.status().bell_stuck
            assert pole.status().presses == 1

    run(scenario())


def test_a_bell_held_when_the_pole_opens_is_reported(wiring: FakePoleWiring) -> None:
    wiring.press_bell()

    async def scenario() -> None:
        async with wiring.pole() as pole:
            events = await expect(pole, is_door(False))
            assert len(presses(events)) == 1

    run(scenario())


def test_door_open_and_close(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole(clock_ms=lambda: NOW_MS) as pole:
            await expect(pole, is_door(False))
            wiring.open_door()
            assert (await expect(pole, is_door(True)))[-1] == DoorChange(open=True, at_ms=NOW_MS)
            assert pole.status().door_open is True
            wiring.close_door()
            await expect(pole, is_door(False))
            assert pole.status().door_open is False

    run(scenario())


def test_a_rattling_door_reports_only_where_it_settles(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole(debounce_s=0.5) as pole:
            await expect(pole, is_door(False))
            for _ in range(3):
                wiring.open_door()
                wiring.close_door()
            wiring.open_door()
            events = await expect(pole, is_door(True))
            assert events == [DoorChange(open=True, at_ms=events[-1].at_ms)]  # type: ignore[union-attr]

    run(scenario())


def test_the_lamp_goes_on_and_off(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole() as pole:
            assert not wiring.lamp_lit()
            await pole.set_lamp(True)
            assert wiring.lamp_lit()
            assert pole.status().lamp_on
            await pole.set_lamp(False)
            assert not wiring.lamp_lit()
            assert not pole.status().lamp_on

    run(scenario())


def test_a_timed_lamp_goes_out_by_itself(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole() as pole:
            await pole.set_lamp(True, seconds=0.05)
            assert wiring.lamp_lit()
            await wait_for(lambda: not wiring.lamp_lit())
            assert not pole.status().lamp_on

    run(scenario())


@pytest.mark.parametrize("then", [{}, {"seconds": 30}])
def test_a_new_lamp_call_cancels_the_old_timer(wiring: FakePoleWiring, then: dict[str, float]) -> None:
    async def scenario() -> None:
        async with wiring.pole() as pole:
            await pole.set_lamp(True, seconds=0.05)
            await pole.set_lamp(True, **then)
            await asyncio.sleep(0.3)  # well past the first timer: had it run, the lamp is out
            assert wiring.lamp_lit()

    run(scenario())


def test_a_lamp_put_out_early_is_not_relit_by_its_timer(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole() as pole:
            await pole.set_lamp(True, seconds=0.05)
            await pole.set_lamp(False)
            await asyncio.sleep(0.2)
            assert not wiring.lamp_lit()

    run(scenario())


def test_two_poles_on_separate_boards_do_not_interfere() -> None:
    first, second = FakePoleWiring(), FakePoleWiring()  # the same pin numbers on both
    try:

        async def scenario() -> None:
            async with first.pole(bell_id="bell-a") as a, second.pole(bell_id="bell-b") as b:
                await expect(a, is_door(False))
                await expect(b, is_door(False))
                first.press_bell()
                (press,) = await expect(a, lambda e: isinstance(e, BellPress))
                assert isinstance(press, BellPress)
                assert press.bell_id == "bell-a"
                await a.set_lamp(True)
                second.open_door()
                assert presses(await expect(b, is_door(True))) == []
                assert first.lamp_lit()
                assert not second.lamp_lit()
                assert (a.status().presses, b.status().presses) == (1, 0)
                assert a.events.empty()

        run(scenario())
    finally:
        first.close()
        second.close()


def test_closing_releases_the_pins_and_puts_the_lamp_out(wiring: FakePoleWiring) -> None:
    threads_before = threading.active_count()

    async def scenario() -> None:
        async with wiring.pole() as pole:
            await pole.set_lamp(True, seconds=60)
        assert not wiring.lamp_lit()
        wiring.press_bell()  # nobody is listening any more
        await asyncio.sleep(0)
        assert presses([pole.events.get_nowait() for _ in range(pole.events.qsize())]) == []
        with pytest.raises(PoleNotOpen, match="not open"):
            await pole.set_lamp(True)
        async with wiring.pole():  # the pins are free again
            pass
        with pytest.raises(RuntimeError, match="opens once"):
            async with pole:
                pass

    run(scenario())
    assert threading.active_count() == threads_before


def test_a_pin_in_use_is_refused_naming_it(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole():
            with pytest.raises(PinUnavailable, match="pin 17 for the bell") as refused:
                async with wiring.pole():
                    pass
            assert (refused.value.role, refused.value.pin) == ("bell", 17)

    run(scenario())


def test_a_pin_that_is_not_a_gpio_is_refused_and_nothing_stays_claimed(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        with pytest.raises(PinUnavailable, match="pin 99 for the lamp"):
            async with GpioPole(bell_pin=17, door_pin=27, lamp_pin=99, pin_factory=wiring.factory):
                pass
        # bell and door were claimed before the lamp failed: released again
        async with wiring.pole():
            pass

    run(scenario())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bell_pin": 17, "door_pin": 17, "lamp_pin": 22}, "three different pins"),
        ({"bell_pin": 17, "door_pin": 27, "lamp_pin": 22, "door_open_when": "up"}, "'high' or 'low'"),
        ({"bell_pin": 17, "door_pin": 27, "lamp_pin": 22, "bell_id": ""}, "bell_id"),
        ({"bell_pin": 17, "door_pin": 27, "lamp_pin": 22, "debounce_s": -1}, "debounce_s"),
        ({"bell_pin": 17, "door_pin": 27, "lamp_pin": 22, "stuck_after_s": 0}, "stuck_after_s"),
    ],
)
def test_bad_settings_are_refused_before_any_pin_is_touched(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GpioPole(**settings)


def test_a_negative_lamp_time_is_refused(wiring: FakePoleWiring) -> None:
    async def scenario() -> None:
        async with wiring.pole() as pole:
            with pytest.raises(ValueError, match="seconds must be >= 0"):
                await pole.set_lamp(True, seconds=-1)

    run(scenario())
