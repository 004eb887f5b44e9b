"""The debounce and stuck-bell rules of edge.gpio.contacts, fed with levels and times directly:
no pins, no timers, hours of holding in microseconds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.gpio.contacts import BellChange, BellContact, BellOutcome, DoorContact

DEBOUNCE = 0.03
STUCK = 10.0


def bell() -> BellContact:
    return BellContact(debounce_s=DEBOUNCE, stuck_after_s=STUCK)


def outcomes(changes: list[BellChange]) -> list[BellOutcome]:
    return [change.outcome for change in changes]


def test_a_press_is_reported_on_its_first_edge_and_once() -> None:
    contact = bell()
    assert outcomes(contact.edge(True, 1.0)) == [BellOutcome.PRESSED]
    assert contact.edge(True, 1.001) == []  # a repeated level is not a second press
    assert contact.edge(False, 1.2) == []
    assert contact.poll(1.2 + DEBOUNCE) == []
    assert not contact.pressed
    assert contact.presses == 1


def test_bounces_on_press_and_release_are_one_press() -> None:
    contact = bell()
    seen: list[BellOutcome] = []
    t = 5.0
    for level in [True, False, True, False, True]:  # contact chatter while pushed
        seen += outcomes(contact.edge(level, t))
        t += 0.002
    t += 0.5  # held
    for level in [False, True, False, True, False]:  # and while let go
        seen += outcomes(contact.edge(level, t))
        t += 0.002
    seen += outcomes(contact.poll(t + DEBOUNCE))
    assert seen == [BellOutcome.PRESSED]
    assert contact.presses == 1


def test_a_second_press_after_a_settled_release_counts_even_if_the_timer_never_ran() -> None:
    contact = bell()
    contact.edge(True, 1.0)
    contact.edge(False, 1.1)
    # No poll(): the edge itself settles the release that fell due before it.
    assert outcomes(contact.edge(True, 1.1 + DEBOUNCE)) == [BellOutcome.PRESSED]
    assert contact.presses == 2


def test_a_bell_held_past_the_limit_is_stuck_once_and_its_release_clears_it() -> None:
    contact = bell()
    contact.edge(True, 100.0)
    assert contact.deadline() == 100.0 + STUCK
    assert contact.poll(100.0 + STUCK - 0.001) == []
    stuck = contact.poll(100.0 + STUCK)
    assert outcomes(stuck) == [BellOutcome.STUCK]
    assert stuck[0].held_s == pytest.approx(STUCK)
    assert contact.stuck
    assert contact.poll(500.0) == []  # raised once, not every poll
    assert contact.deadline() is None
    assert contact.edge(False, 600.0) == []  # not cleared before the release has settled
    cleared = contact.poll(600.0 + DEBOUNCE)
    assert outcomes(cleared) == [BellOutcome.UNSTUCK]
    assert cleared[0].held_s == pytest.approx(500.0)
    assert (contact.stuck, contact.presses) == (False, 1)  # and the release is not a press


def test_a_bounce_while_releasing_a_stuck_bell_keeps_it_stuck() -> None:
    contact = bell()
    contact.edge(True, 0.0)
    contact.poll(STUCK)
    contact.edge(False, 20.0)
    assert contact.edge(True, 20.01) == []  # chatter, not a press and not a clear
    assert contact.stuck
    assert contact.presses == 1


def test_a_release_pending_debounce_does_not_raise_stuck() -> None:
    contact = bell()
    contact.edge(True, 0.0)
    contact.edge(False, STUCK - 0.01)
    assert contact.poll(STUCK + 0.001) == []
    assert not contact.stuck


def test_a_bell_held_when_watching_starts_is_reported() -> None:
    contact = bell()
    assert outcomes(contact.start(True, 3.0)) == [BellOutcome.PRESSED]
    assert bell().start(False, 3.0) == []


@pytest.mark.parametrize(
    ("debounce_s", "stuck_after_s", "named"),
    [(-0.1, 10.0, "debounce_s"), (0.03, 0.03, "stuck_after_s"), (0.03, -1.0, "stuck_after_s")],
)
def test_bad_timings_are_refused_naming_the_value(
    debounce_s: float, stuck_after_s: float, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        BellContact(debounce_s=debounce_s, stuck_after_s=stuck_after_s)


@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=30.0)),
        max_size=60,
    )
)
def test_stuck_and_cleared_alternate_and_presses_never_come_while_stuck(
    steps: list[tuple[bool, float]],
) -> None:
    contact = bell()
    t = 0.0
    stuck = False
    presses = 0
    for level, gap in steps:
        t += gap
        for change in contact.poll(t) + contact.edge(level, t):
            if change.outcome is BellOutcome.STUCK:
                assert not stuck
                stuck = True
            elif change.outcome is BellOutcome.UNSTUCK:
                assert stuck
                stuck = False
            else:
                assert not stuck, "a stuck bell must be cleared before it can be pressed again"
                presses += 1
        assert contact.stuck == stuck
    assert contact.presses == presses
    assert presses <= sum(1 for level, _ in steps if level)


def test_a_door_change_is_reported_once_it_has_settled() -> None:
    door = DoorContact(debounce_s=DEBOUNCE)
    assert door.start(False, 0.0) is False
    assert door.edge(True, 1.0) == []
    assert door.deadline() == 1.0 + DEBOUNCE
    assert door.poll(1.0 + DEBOUNCE / 2) == []
    assert door.poll(1.0 + DEBOUNCE) == [True]
    assert door.deadline() is None
    assert door.edge(False, 2.0) == []
    assert door.edge(True, 2.01) == []  # rattled back before settling: nothing to report
    assert door.poll(3.0) == []
    assert door.reported is True


def test_a_door_edge_before_start_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="start"):
        DoorContact(debounce_s=DEBOUNCE).edge(True, 0.0)
