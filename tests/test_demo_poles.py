"""The demo's simulated poles (watchpost.demo_poles) speak the MQTT contract: what they send
decodes with protocols.messages, their bd_seq and seq follow the session rules the fleet
applies (protocols.session), they answer the fleet's commands (a rebirth among them) and an
operator's acknowledgement. The pure session first, then the MQTT shell on a real Mosquitto."""

from __future__ import annotations

import socket

import pytest

from fleet.inventory.csv_import import parse_sites
from fleet.inventory.models import CameraPurpose
from protocols import messages as m
from protocols.errors import ContractError
from protocols.session import NodeSession, Verdict
from protocols.topics import Kind, Topic, node_topic, parse_topic
from tests.mqtt_observer import Observer, Seen
from watchpost.broker import MosquittoBroker
from watchpost.demo_poles import (
    CAPABILITIES,
    PoleSession,
    SimulatedPoles,
    camera_purpose,
    city,
    sites_csv,
    wall_ms,
)

T0 = 1_764_000_000_000


def wire(message: m.Message) -> m.Message:
    """The message as the fleet reads it off the broker: encoded, then decoded by its kind."""
    decoded = m.decode(m.kind_of(message), m.encode(message))
    assert not isinstance(decoded, ContractError), decoded
    return decoded


def down(kind: Kind, node_id: str = "pole-0002") -> Topic:
    topic = parse_topic(node_topic(node_id, kind))
    assert not isinstance(topic, ContractError)
    return topic


def rebirth_command(command_id: str = "rebirth-1", *, ts: int = T0) -> bytes:
    command = m.Command(
        ts=ts, command_id=command_id, name="rebirth", issued_by="fleet/fleet-1", expires_at=ts + 60_000
    )
    return m.encode(command)


@pytest.fixture
def pole() -> PoleSession:
    return PoleSession(city(3)[1], started_ms=T0)


def test_the_city_has_distinct_poles_and_a_site_list_the_fleet_imports() -> None:
    poles = city(24)
    assert [p.node_id for p in poles[:3]] == ["pole-0001", "pole-0002", "pole-0003"]
    assert len({p.node_id for p in poles}) == 24
    assert len({c.camera_id for p in poles for c in p.cameras}) == sum(len(p.cameras) for p in poles)
    rows = parse_sites(sites_csv(poles))  # the fleet's own CSV parser
    assert [r.site_id for r in rows] == [p.site_id for p in poles]
    assert len({r.district for r in rows}) == 5
    assert rows[0].name == poles[0].site_name
    assert rows[0].has_bell is True
    assert any(not r.has_bell for r in rows)  # some poles carry cameras only
    purposes = {camera_purpose(p, c) for p in poles for c in p.cameras}
    assert purposes <= {purpose.value for purpose in CameraPurpose}
    assert len(purposes) >= 3


def test_a_birth_starts_the_session_and_the_will_carries_its_bd_seq(pole: PoleSession) -> None:
    will = wire(pole.connecting(T0))
    birth = wire(pole.connected(T0 + 5))
    assert isinstance(will, m.NodeDeath)
    assert isinstance(birth, m.NodeBirth)
    assert (birth.bd_seq, birth.seq, will.bd_seq) == (0, 0, 0)
    assert birth.site_id == "site-0002"
    assert [c.camera_id for c in birth.cameras] == [c.camera_id for c in pole.spec.cameras]
    assert birth.bells == ["bell-1"]
    assert birth.capabilities == list(CAPABILITIES)
    assert birth.controller is not None


def test_seq_counts_qos1_messages_and_telemetry_repeats_it(pole: PoleSession) -> None:
    pole.connecting(T0)
    sent = [
        pole.connected(T0),
        pole.telemetry(T0 + 10),
        pole.bell_pressed(T0 + 20),
        pole.telemetry(T0 + 30),
        pole.camera_changed(pole.spec.cameras[0].camera_id, reachable=False, now_ms=T0 + 40),
        pole.telemetry(T0 + 50),
        pole.camera_changed(pole.spec.cameras[0].camera_id, reachable=True, now_ms=T0 + 60),
    ]
    decoded = [wire(message) for message in sent]
    assert [getattr(d, "seq", None) for d in decoded] == [0, 0, 1, 1, 2, 2, 3]
    # The fleet's session rules see no gap and no duplicate in it.
    fleet_view = NodeSession()
    verdicts = [fleet_view.observe(d) for d in decoded]
    assert verdicts == [Verdict.NEW_SESSION] + [Verdict.ACCEPT] * 6
    assert (fleet_view.gaps, fleet_view.duplicates) == (0, 0)


def test_telemetry_reports_readings_and_the_camera_that_stopped_answering(pole: PoleSession) -> None:
    pole.connecting(T0)
    pole.connected(T0)
    camera = pole.spec.cameras[-1].camera_id
    event = wire(pole.camera_changed(camera, reachable=False, now_ms=T0 + 1_000, detail="connection refused"))
    telemetry = wire(pole.telemetry(T0 + 61_000))
    assert isinstance(event, m.Event)
    assert (event.category, event.state, event.severity, event.component) == (
        "camera",
        "raised",
        "major",
        camera,
    )
    assert isinstance(telemetry, m.Telemetry)
    readings = telemetry.readings
    assert readings.uptime_s == 61
    assert {c.camera_id: c.reachable for c in readings.cameras}[camera] is False
    assert readings.cpu_temp_c is not None
    assert readings.storage[0].health == "ok"


def test_a_bell_press_is_an_alarm_with_the_edge_agents_id(pole: PoleSession) -> None:
    pole.connecting(T0)
    pole.connected(T0)
    alarm = wire(pole.bell_pressed(T0 + 7))
    assert isinstance(alarm, m.BellAlarm)
    assert alarm.alarm_id == f"pole-0002.bell-1.{T0 + 7}"
    assert (alarm.bell_id, alarm.pressed_at, alarm.source) == ("bell-1", T0 + 7, "controller")


def test_a_pole_without_a_bell_cannot_be_pressed() -> None:
    no_bell = next(spec for spec in city(8) if not spec.bells)
    session = PoleSession(no_bell, started_ms=T0)
    with pytest.raises(ValueError, match="has no bell"):
        session.bell_pressed(T0)


def test_it_answers_a_rebirth_with_a_new_birth_then_the_result(pole: PoleSession) -> None:
    pole.connecting(T0)
    pole.connected(T0)
    pole.bell_pressed(T0 + 1)
    pole.bell_pressed(T0 + 2)  # seq 2 so far
    answer = pole.downlink(down(Kind.COMMAND), rebirth_command(ts=T0 + 3), T0 + 4)
    birth, result = (wire(message) for message in answer.send)
    assert isinstance(birth, m.NodeBirth)
    assert (birth.bd_seq, birth.seq) == (0, 0)  # the same connection, a new session
    assert isinstance(result, m.CommandResult)
    assert (result.command_id, result.status, result.seq) == ("rebirth-1", "ok", 1)
    # The fleet, which lost track of the node, takes the rebirth and then the result in order.
    fleet_view = NodeSession()
    assert [fleet_view.observe(birth), fleet_view.observe(result)] == [Verdict.NEW_SESSION, Verdict.ACCEPT]
    # The same command delivered again (QoS 1): the same result, no second birth.
    again = pole.downlink(down(Kind.COMMAND), rebirth_command(ts=T0 + 3), T0 + 5)
    assert again.send == [result]


def test_commands_it_cannot_run_or_that_expired_get_their_status(pole: PoleSession) -> None:
    pole.connecting(T0)
    pole.connected(T0)
    fetch = m.Command(ts=T0, command_id="c-1", name="fetch-logs", issued_by="operator-7", expires_at=T0 + 10)
    late = m.Command(ts=T0, command_id="c-2", name="ping", issued_by="operator-7", expires_at=T0 + 10)
    unknown = pole.downlink(down(Kind.COMMAND), m.encode(fetch), T0 + 1).send
    expired = pole.downlink(down(Kind.COMMAND), m.encode(late), T0 + 11).send
    assert [(r.status, r.seq) for r in unknown if isinstance(r, m.CommandResult)] == [("unknown-command", 1)]
    assert [(r.status, r.seq) for r in expired if isinstance(r, m.CommandResult)] == [("expired", 2)]


def test_an_operators_acknowledgement_lights_the_lamp(pole: PoleSession) -> None:
    pole.connecting(T0)
    pole.connected(T0)
    alarm = pole.bell_pressed(T0 + 1)
    ack = m.AlarmAck(ts=T0 + 2, alarm_id=alarm.alarm_id, operator="operator-7")
    answer = pole.downlink(down(Kind.ALARM_ACK), m.encode(ack), T0 + 3)
    assert answer.lamp == ack
    assert answer.send == []
    assert pole.lamp_for == alarm.alarm_id


def test_records_wait_while_every_fleet_host_is_offline(pole: PoleSession) -> None:
    pole.connecting(T0)
    pole.connected(T0)
    host = parse_topic("watchpost/v1/host/fleet-1/state")
    assert not isinstance(host, ContractError)
    assert pole.may_send()  # no host has said anything yet
    offline = m.HostState(ts=T0, host_id="fleet-1", online=False)
    pole.downlink(host, m.encode(offline), T0)
    assert not pole.may_send()
    pole.downlink(host, m.encode(m.HostState(ts=T0 + 1, host_id="fleet-1", online=True)), T0 + 1)
    assert pole.may_send()


def test_a_payload_that_breaks_the_contract_is_refused_and_changes_nothing(pole: PoleSession) -> None:
    pole.connecting(T0)
    pole.connected(T0)
    answer = pole.downlink(down(Kind.COMMAND), b'{"type": "command", "v": 1}', T0)
    assert isinstance(answer.refused, ContractError)
    assert answer.send == []
    assert pole.seq == 0


def test_a_new_connection_advances_bd_seq_and_starts_over(pole: PoleSession) -> None:
    first_will = pole.connecting(T0)
    pole.connected(T0)
    pole.bell_pressed(T0 + 1)
    pole.lost()
    second_will = pole.connecting(T0 + 2)
    birth = pole.connected(T0 + 3)
    assert (first_will.bd_seq, second_will.bd_seq, birth.bd_seq, birth.seq) == (0, 1, 1, 0)
    fleet_view = NodeSession()
    fleet_view.observe(birth)
    assert fleet_view.observe(first_will) is Verdict.STALE_DEATH  # the old connection's will, late


# --- the shell, on a real broker ----------------------------------------------------------------


def _of(seen: list[Seen], node_id: str, kind: str) -> list[m.Message]:
    topic = node_topic(node_id, Kind(kind))
    decoded = [m.decode(Kind(kind), s.payload) for s in seen if s.topic == topic]
    assert not any(isinstance(d, ContractError) for d in decoded), decoded
    return [d for d in decoded if not isinstance(d, ContractError)]


@pytest.mark.broker
def test_simulated_poles_on_a_broker_are_born_report_and_answer_the_fleet(broker: MosquittoBroker) -> None:
    specs = city(4)[1:]
    everyone = [spec.node_id for spec in specs]
    target = specs[0].node_id
    lamps: list[tuple[str, str]] = []
    poles = SimulatedPoles(
        specs,
        host=broker.host,
        port=broker.port,
        telemetry_s=0.3,
        on_lamp=lambda node_id, ack: lamps.append((node_id, ack.alarm_id)),
    )
    with Observer(broker, "watchpost/v1/node/+/up/#") as seen:
        poles.start()
        try:
            seen.wait_for(lambda s: all(_of(s, n, "birth") and _of(s, n, "telemetry") for n in everyone))
            alarm = poles.press_bell(target)
            ack = m.AlarmAck(ts=alarm.ts, alarm_id=alarm.alarm_id, operator="operator-7")
            seen.publish(node_topic(target, Kind.ALARM_ACK), m.encode(ack))
            seen.publish(node_topic(target, Kind.COMMAND), rebirth_command(ts=wall_ms()))
            seen.wait_for(lambda s: len(_of(s, target, "birth")) == 2 and _of(s, target, "result"))
            # The connection drops without a goodbye: the broker publishes the will, and the
            # pole comes back on a new connection with the next bd_seq.
            poles.poles[target].client.socket().shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
            seen.wait_for(lambda s: _of(s, target, "death") and len(_of(s, target, "birth")) == 3, timeout=15)
        finally:
            poles.close()
        after = seen.wait_for(lambda s: all(_of(s, n, "death") for n in everyone))
    assert lamps == [(target, alarm.alarm_id)]
    alarms = [a for a in _of(after, target, "alarm") if isinstance(a, m.BellAlarm)]
    assert [(a.alarm_id, a.seq) for a in alarms] == [(alarm.alarm_id, 1)]
    results = [r for r in _of(after, target, "result") if isinstance(r, m.CommandResult)]
    assert [(r.status, r.seq) for r in results] == [("ok", 1)]
    births = [b for b in _of(after, target, "birth") if isinstance(b, m.NodeBirth)]
    assert [b.bd_seq for b in births] == [0, 0, 1]  # first, rebirth (same connection), reconnected
    deaths = [d for d in _of(after, target, "death") if isinstance(d, m.NodeDeath)]
    assert [d.bd_seq for d in deaths] == [0, 1]  # the will of the dropped connection, then goodbye
