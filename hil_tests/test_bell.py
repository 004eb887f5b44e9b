"""A citizen's call, end to end: the bell pressed at the pole, the alarm on the operator's
screen, the operator's acknowledgement back to the pole, the "call received" lamp lit."""

from __future__ import annotations

from hil_tests.rig.rig import Rig, wait_until


def test_bell_press_reaches_the_operator_and_the_acknowledgement_lights_the_lamp(rig: Rig) -> None:
    fleet = rig.lab.fleet
    assert rig.lamp.get() is False

    rig.press_bell()

    latched = fleet.until(f"/alarms?latched=true&node={rig.node_id}", lambda page: page["items"])
    (alarm,) = latched
    assert alarm["bell_id"] == "bell-1"
    assert alarm["source"] == "controller"
    (sent,) = rig.sent("alarm")
    assert sent.json()["alarm_id"] == alarm["alarm_id"]
    assert sent.json().get("historical") in (None, False)  # live, not replayed

    acked = fleet.post(f"/alarms/{alarm['alarm_id']}/acknowledge", {"lamp": True})
    assert acked["acknowledged_by"] == "operator-7"

    # The lamp as a probe on its output pin sees it, not as the controller reports it.
    wait_until("the call-received lamp lit", rig.lamp.get, timeout=20)
    assert fleet.get(f"/alarms?latched=true&node={rig.node_id}")["items"] == []
