"""The PIN gate (edge.diagnostics.auth) on its own, with the clock in the test's hand: lockout,
session expiry, and the bound on live sessions."""

from __future__ import annotations

import itertools

import pytest

from edge.diagnostics.auth import PinGate
from edge.diagnostics.errors import LockedOut, NotAuthorized, WrongPin
from tests.edge.diagnostics.conftest import Clock


def gate(clock: Clock, **settings: int) -> PinGate:
    numbers = itertools.count(1)
    return PinGate("4829", clock=clock, make_token=lambda: f"token-{next(numbers)}", **settings)


def test_a_wrong_pin_says_how_many_tries_are_left_then_locks() -> None:
    clock = Clock()
    pins = gate(clock)

    lefts = []
    for _ in range(4):
        with pytest.raises(WrongPin) as wrong:
            pins.login("0000")
        lefts.append(wrong.value.attempts_left)
    with pytest.raises(LockedOut) as locked:
        pins.login("0000")

    assert lefts == [4, 3, 2, 1]
    assert locked.value.just_now
    assert locked.value.retry_after_s == 300
    assert pins.lockouts == 1


def test_a_locked_login_refuses_the_right_pin_until_the_time_is_up() -> None:
    clock = Clock()
    pins = gate(clock, max_failures=2, lockout_s=60)
    with pytest.raises(WrongPin):
        pins.login("1111")
    with pytest.raises(LockedOut):
        pins.login("1111")

    clock.now += 59.5
    with pytest.raises(LockedOut) as locked:
        pins.login("4829")
    assert locked.value.retry_after_s == 1
    assert not locked.value.just_now

    clock.now += 0.5
    assert pins.login("4829").token == "token-1"


def test_a_session_ends_when_its_time_is_up_or_at_logout() -> None:
    clock = Clock()
    pins = gate(clock, token_ttl_s=100)
    first = pins.login("4829").token
    second = pins.login("4829").token

    clock.now += 99
    pins.check(first)
    assert pins.logout(second)
    with pytest.raises(NotAuthorized) as unknown:
        pins.check(second)
    clock.now += 1
    with pytest.raises(NotAuthorized) as expired:
        pins.check(first)

    assert unknown.value.reason == "unknown-token"
    assert expired.value.reason == "expired-token"
    assert pins.sessions() == 0


def test_logging_in_past_the_session_limit_ends_the_oldest_session() -> None:
    clock = Clock()
    pins = gate(clock, max_sessions=2)
    oldest = pins.login("4829").token
    clock.now += 1
    middle = pins.login("4829").token
    clock.now += 1
    newest = pins.login("4829").token

    with pytest.raises(NotAuthorized):
        pins.check(oldest)
    pins.check(middle)
    pins.check(newest)
    assert pins.sessions() == 2


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_not_authorized(token: str | None) -> None:
    with pytest.raises(NotAuthorized) as refused:
        gate(Clock()).check(token)
    assert refused.value.reason == "no-token"


@pytest.mark.parametrize("pin", ["", "123", "    ", " 12 "])
def test_a_pin_shorter_than_four_characters_is_refused(pin: str) -> None:
    with pytest.raises(ValueError, match="at least 4 characters"):
        PinGate(pin, clock=Clock())
