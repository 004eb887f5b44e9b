"""Topic namespace and the Sparkplug-style session rules the fleet applies per node."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import messages as m
from protocols import topics
from protocols.errors import TopicError
from protocols.session import NodeSession, Verdict, next_bd_seq
from protocols.topics import Kind, Topic

from .examples import EXAMPLES, TS


@pytest.mark.parametrize("kind", [k for k in Kind if k is not Kind.HOST_STATE])
def test_node_topics_round_trip(kind: Kind) -> None:
    topic = topics.node_topic("pole-0412", kind)
    assert topics.parse_topic(topic) == Topic(kind, node_id="pole-0412")


def test_topic_layout() -> None:
    assert topics.node_topic("pole-0412", Kind.ALARM) == "watchpost/v1/node/pole-0412/up/alarm"
    assert topics.node_topic("pole-0412", Kind.COMMAND) == "watchpost/v1/node/pole-0412/down/command"
    assert topics.host_state_topic("fleet-1") == "watchpost/v1/host/fleet-1/state"
    assert topics.parse_topic("watchpost/v1/host/fleet-1/state") == Topic(Kind.HOST_STATE, host_id="fleet-1")
    assert topics.fleet_subscription(share_group="fleet") == "$share/fleet/watchpost/v1/node/+/up/#"


def test_only_alarms_events_and_records_are_qos1_telemetry_is_not() -> None:
    assert topics.ROUTES[Kind.TELEMETRY].qos == 0
    assert all(r.qos == 1 for k, r in topics.ROUTES.items() if k is not Kind.TELEMETRY)
    assert [k for k, r in topics.ROUTES.items() if r.retain] == [Kind.HOST_STATE]


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        ("other/v1/node/a/up/birth", "outside"),
        ("watchpost/v1/node/a/up/selfie", "unknown message kind"),
        ("watchpost/v1/node/a/down/alarm", "does not travel 'down'"),
        ("watchpost/v1/node/A B/up/alarm", "not a valid id"),
        ("watchpost/v1/node/a/up", "is not"),
        ("watchpost/v1/host/+/state", "not a valid id"),
    ],
)
def test_bad_topics_say_why(topic: str, words: str) -> None:
    result = topics.parse_topic(topic)
    assert isinstance(result, TopicError)
    assert words in str(result)


@pytest.mark.parametrize("bad", ["", "Pole", "a/b", "a+", "#", "$sys", "-lead", "x" * 65])
def test_ids_that_would_break_topics_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        topics.node_topic(bad, Kind.ALARM)


@given(st.text(max_size=120))
def test_any_topic_string_parses_or_gives_a_typed_error(text: str) -> None:
    assert isinstance(topics.parse_topic(text), Topic | TopicError)


# --- session -----------------------------------------------------------------------------------


def birth(bd_seq: int) -> m.NodeBirth:
    b = EXAMPLES[Kind.BIRTH]
    assert isinstance(b, m.NodeBirth)
    return m.NodeBirth(
        ts=TS, seq=0, bd_seq=bd_seq, site_id=b.site_id, hardware=b.hardware, agent_version=b.agent_version
    )


def event(seq: int) -> m.Event:
    return m.Event(ts=TS, seq=seq, event_id=f"ev-{seq}", category="door", state="raised", severity="major")


def telemetry(seq: int) -> m.Telemetry:
    return m.Telemetry(ts=TS, seq=seq, readings=m.Readings(uptime_s=1))


def test_session_in_order() -> None:
    node = NodeSession()
    assert node.observe(birth(3)) is Verdict.NEW_SESSION
    assert [node.observe(event(s)) for s in (1, 2, 3)] == [Verdict.ACCEPT] * 3
    assert node.online


def test_redelivered_message_is_a_duplicate() -> None:
    node = NodeSession()
    node.observe(birth(3))
    node.observe(event(1))
    assert node.observe(event(1)) is Verdict.DUPLICATE
    assert node.duplicates == 1


def test_skipped_seq_is_a_gap_that_asks_for_rebirth() -> None:
    node = NodeSession()
    node.observe(birth(3))
    node.observe(event(1))
    assert node.observe(event(4)) is Verdict.GAP
    assert node.observe(event(5)) is Verdict.ACCEPT
    assert node.gaps == 1


def test_lost_telemetry_is_not_a_gap() -> None:
    node = NodeSession()
    node.observe(birth(3))
    node.observe(event(1))
    # Telemetry repeats the current seq; a later event (seq 2) may still be in flight.
    assert node.observe(telemetry(2)) is Verdict.ACCEPT
    assert node.observe(event(2)) is Verdict.ACCEPT


def test_data_before_any_birth_asks_for_rebirth() -> None:
    assert NodeSession().observe(event(9)) is Verdict.NO_SESSION


def test_death_of_the_current_session_takes_the_node_offline() -> None:
    node = NodeSession()
    node.observe(birth(3))
    assert node.observe(m.NodeDeath(ts=TS, bd_seq=3)) is Verdict.OFFLINE
    assert not node.online
    assert node.observe(event(1)) is Verdict.NO_SESSION


def test_late_will_of_an_older_connection_is_ignored() -> None:
    node = NodeSession()
    node.observe(birth(3))
    node.observe(birth(4))  # reconnected before the broker noticed the old connection died
    assert node.observe(m.NodeDeath(ts=TS, bd_seq=3)) is Verdict.STALE_DEATH
    assert node.online


def test_rebirth_restarts_the_counter() -> None:
    node = NodeSession()
    node.observe(birth(3))
    node.observe(event(1))
    node.observe(event(2))
    node.observe(birth(4))
    assert node.observe(event(1)) is Verdict.ACCEPT


def test_bd_seq_wraps_like_sparkplug() -> None:
    assert next_bd_seq(None) == 0
    assert next_bd_seq(41) == 42
    assert next_bd_seq(255) == 0
