"""The pole's network is cut for longer than the broker's patience: the broker publishes the
node's death, the centre opens an offline ticket, and citizens press the bell meanwhile. When
the network comes back every call reaches the centre, in the order pressed, marked as replayed
(`historical`), and the offline ticket closes with the node's rebirth."""

from __future__ import annotations

import time
from typing import Any

from hil_tests.rig.lab import WAIT_S
from hil_tests.rig.rig import Rig, wait_until

# Minutes in the field; long enough here for the keepalive to expire (the broker publishes the
# node's will ~7.5 s in), the fleet to open the offline ticket, and three calls to wait out.
CUT_S = 60.0
PRESS_GAP_S = 3.0  # presses the controller sends one by one (closer ones fold into one alarm)


def alarms_by_session(rig: Rig) -> list[tuple[int | None, dict[str, Any]]]:
    """The node's alarms as published, each with the bd_seq of the birth before it."""
    prefix = f"watchpost/v1/node/{rig.node_id}/up/"
    session: int | None = None
    found = []
    for seen in list(rig.mqtt.messages):
        if not seen.topic.startswith(prefix):
            continue
        if seen.kind == "birth":
            session = seen.json()["bd_seq"]
        elif seen.kind == "alarm":
            found.append((session, seen.json()))
    return found


def test_calls_made_during_a_long_network_cut_arrive_in_order_after_it(rig: Rig) -> None:
    fleet = rig.lab.fleet
    before = fleet.node(rig.node_id)
    assert fleet.faults(rig.node_id, kind="offline") == []

    cut_at = time.monotonic()
    rig.lab.net.cut()
    # The first call comes before anyone noticed the cut: the node believes it is online.
    time.sleep(1.0)
    rig.press_bell()
    # The broker gives up on the node and publishes its will; the centre opens the ticket.
    ticket = fleet.fault(rig.node_id, "offline", timeout=CUT_S)
    assert ticket["state"] == "open"
    assert fleet.node(rig.node_id)["online"] is False
    time.sleep(PRESS_GAP_S)
    rig.press_bell()
    time.sleep(PRESS_GAP_S)
    rig.press_bell()
    time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
    assert not rig.sent("alarm"), "an alarm got through the cut network"
    rig.lab.net.restore()

    alarms = fleet.until(
        f"/alarms?node={rig.node_id}", lambda page: page["items"] if len(page["items"]) >= 3 else None
    )
    assert len(alarms) == 3
    assert all(a["historical"] and a["presses"] == 1 for a in alarms), alarms

    # On the wire: every copy of every call flagged as replayed, the first copies in the order
    # pressed, and numbered in that order within their session. (A copy sent again after a
    # reconnect would be allowed: at least once, historical; the centre keeps one by alarm_id.)
    first: dict[str, tuple[int | None, dict[str, Any]]] = {}
    for session, body in alarms_by_session(rig):
        assert body["historical"], body
        first.setdefault(body["alarm_id"], (session, body))
    assert set(first) == {a["alarm_id"] for a in alarms}
    assert [body["pressed_at"] for _, body in first.values()] == sorted(a["pressed_at_ms"] for a in alarms)
    for session in {session for session, _ in first.values()}:
        seqs = [body["seq"] for s, body in first.values() if s == session]
        assert seqs == sorted(seqs), (session, seqs)

    # The node came back in a new session, and the centre closed the offline ticket by itself.
    back = rig.wait_online()
    assert back["bd_seq"] != before["bd_seq"]
    closed = fleet.until(
        f"/faults/{ticket['ticket_id']}", lambda t: t if t["state"] == "cancelled" else None, timeout=WAIT_S
    )
    assert closed["fault_cleared_at_ms"] is not None
    assert closed["steps"][-1]["note"] == "auto-cleared"
    assert fleet.faults(rig.node_id) == []
    wait_until("no offline fault counted on the node", lambda: fleet.node(rig.node_id)["open_faults"] == 0)
