"""Bell alarms over HTTP: latched until acknowledged, the acknowledgement sent to the pole,
the timeline's latencies, and what an operator cannot do twice."""

from __future__ import annotations

from fleet.access.roles import Role
from protocols import messages as m
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0, Api

NODE = "pole-0001"


def test_an_alarm_is_latched_until_acknowledged_and_the_pole_is_told(api: Api) -> None:
    seed.add_node(api.engine, NODE)
    seed.press_bell(api.engine, NODE, alarm_id="alarm-1", pressed_at=T0, received_at=T0 + 180)
    seed.press_bell(api.engine, NODE, alarm_id="alarm-2", pressed_at=T0 + 5000, received_at=T0 + 5150)
    operator = api.as_(Role.OPERATOR, "operator-7")

    latched = operator.get("/api/v1/alarms?latched=true").body["items"]
    assert [a["alarm_id"] for a in latched] == ["alarm-2", "alarm-1"]  # newest first
    api.clock.now = T0 + 1_400
    operator.post("/api/v1/alarms/alarm-1/shown")
    api.clock.now = T0 + 9_000
    operator.post("/api/v1/alarms/alarm-1/shown")  # shown again: the first showing counts
    api.clock.now = T0 + 12_000
    acked = operator.post("/api/v1/alarms/alarm-1/acknowledge", {"lamp": True}).body
    assert (acked["latched"], acked["acknowledged_by"]) == (False, "operator-7")
    assert acked["timeline"] == {
        "pole_to_fleet_ms": 180,  # pressed T0, received T0 + 180
        "fleet_to_screen_ms": 1_220,  # shown T0 + 1400
        "screen_to_ack_ms": 10_600,  # acknowledged T0 + 12000
        "press_to_ack_ms": 12_000,
    }
    assert api.nodes.messages == [
        (NODE, m.AlarmAck(ts=T0 + 12_000, alarm_id="alarm-1", operator="operator-7", lamp=True))
    ]
    still = operator.get("/api/v1/alarms?latched=true").body["items"]
    assert [a["alarm_id"] for a in still] == ["alarm-2"]

    twice = operator.post("/api/v1/alarms/alarm-1/acknowledge", {})
    assert (twice.status, twice.code) == (409, "alarm-refused")
    assert "acknowledged by operator-7 already" in twice.body["error"]["message"]
    early = operator.post("/api/v1/alarms/alarm-2/clear")
    assert (early.status, early.code) == (409, "alarm-refused")
    api.clock.now = T0 + 60_000
    cleared = operator.post("/api/v1/alarms/alarm-1/clear").body
    assert (cleared["cleared_at_ms"], cleared["cleared_by"]) == (T0 + 60_000, "operator-7")
    assert len(api.nodes.messages) == 1  # refusals sent nothing to the pole
    actions = [e["action"] for e in api.as_(Role.ADMIN).get("/api/v1/audit").body["items"]]
    assert actions == ["alarm.clear", "alarm.acknowledge"]


def test_an_unknown_alarm_is_a_404_that_names_it(api: Api) -> None:
    response = api.as_(Role.OPERATOR).post("/api/v1/alarms/alarm-404/acknowledge", {})
    assert (response.status, response.body["error"]["message"]) == (404, "no bell alarm 'alarm-404'")
