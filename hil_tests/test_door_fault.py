"""A forced cabinet door, end to end through the maintenance contract: the door opens a ticket
with its 2-hour response clock, the operator dispatches a technician, the technician checks in
at the pole through the node's diagnostics (the node signs the visit), closes the door,
resolves and reports; the month's SLA report counts the ticket as handled within its clocks."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fleet.faults.sla import HOUR_MS
from fleet.reports.service import DEFAULT_TIME_ZONE
from hil_tests.rig.rig import Rig

TECHNICIAN = "tech-0193"
OPERATOR = "operator-7"


def diag_post(rig: Rig, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    """A call to the node's diagnostics, as the technician's phone on the service port makes it."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{rig.node.diag_url}/diag/api{path}", method="POST", data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


def report_period(at_ms: int) -> str:
    """The report month a ticket belongs to: the month it opened in the city's time zone."""
    return datetime.fromtimestamp(at_ms / 1000, ZoneInfo(DEFAULT_TIME_ZONE)).strftime("%Y-%m")


def test_a_forced_door_is_handled_within_sla_and_reported(rig: Rig) -> None:
    fleet = rig.lab.fleet

    rig.door.set(True)

    opened = fleet.fault(rig.node_id, "door")
    ticket_url = f"/faults/{opened['ticket_id']}"
    assert (opened["component"], opened["severity"], opened["state"]) == ("cabinet", "minor", "open")
    assert opened["response_deadline_ms"] - opened["opened_at_ms"] == 2 * HOUR_MS  # on site within 2 h
    assert opened["resolution_deadline_ms"] - opened["opened_at_ms"] == 8 * HOUR_MS  # minor: fixed in 8 h
    (raised,) = rig.wait_sent("event", lambda e: e["category"] == "door" and e["state"] == "raised")
    assert opened["opened_at_ms"] == raised.json()["ts"]  # a door fault opens at once (no debounce)
    clocks = {c["clock"]: c for c in fleet.get(ticket_url)["clocks"]}
    assert (clocks["response"]["state"], clocks["response"]["running"]) == ("running", True)

    assert fleet.post(f"{ticket_url}/acknowledge")["state"] == "acknowledged"
    dispatched = fleet.post(f"{ticket_url}/dispatch", {"technician": TECHNICIAN})
    assert (dispatched["state"], dispatched["assignee"]) == ("dispatched", TECHNICIAN)

    # At the pole: the technician's phone on the node's service port; the node signs the visit.
    token = diag_post(rig, "/login", {"pin": rig.node.pin})["token"]
    visit = diag_post(
        rig,
        "/visits",
        {"action": "check-in", "technician": TECHNICIAN, "fault_id": opened["ticket_id"]},
        token,
    )
    on_site = fleet.until(ticket_url, lambda t: t if t["state"] == "on_site" else None)
    arrival = on_site["steps"][-1]
    assert (arrival["action"], arrival["by"], arrival["verification"]) == (
        "arrive",
        TECHNICIAN,
        "node-verified",
    )
    (signed,) = rig.wait_sent("visit")
    assert signed.json()["visit_id"] == visit["visit"]["visit_id"]  # the one the phone was shown
    assert signed.json()["fault_id"] == opened["ticket_id"]
    assert arrival["at_ms"] == signed.json()["at"]  # the node's time of the check-in, not the fleet's

    rig.door.set(False)
    rig.wait_sent("event", lambda e: e["category"] == "door" and e["state"] == "cleared")
    fleet.post(f"{ticket_url}/resolve", {"note": "lock forced; replaced"}, who=TECHNICIAN)
    reported = fleet.post(
        f"{ticket_url}/report", {"note": "lock replaced, door switch tested"}, who=TECHNICIAN
    )

    assert reported["state"] == "reported"
    assert [(s["action"], s["from_state"], s["to_state"], s["by"]) for s in reported["steps"]] == [
        ("acknowledge", "open", "acknowledged", OPERATOR),
        ("dispatch", "acknowledged", "dispatched", OPERATOR),
        ("arrive", "dispatched", "on_site", TECHNICIAN),
        ("resolve", "on_site", "resolved", TECHNICIAN),
        ("report", "resolved", "reported", TECHNICIAN),
    ]
    clocks = {c["clock"]: c for c in reported["clocks"]}
    assert {name: clock["state"] for name, clock in clocks.items()} == {
        "response": "met",
        "resolution": "met",
        "report": "met",
    }
    steps = {s["action"]: s for s in reported["steps"]}

    report = fleet.get(f"/reports/sla/{report_period(opened['opened_at_ms'])}")
    (door,) = [row for row in report["rows"] if row["category"] == "door"]
    assert door["site_class"] == "field"  # the fleet placed the pole at its site from the birth
    assert {k: door[k] for k in ("faults", "handled", "cancelled", "acknowledged")} == {
        "faults": 1,
        "handled": 1,
        "cancelled": 0,
        "acknowledged": 1,
    }
    assert door["response"] == {"met": 1, "breached": 0, "pending": 0, "share": 1.0}
    assert door["resolution"] == {"met": 1, "breached": 0, "pending": 0, "share": 1.0}
    assert door["mtta_ms"] == steps["acknowledge"]["at_ms"] - opened["opened_at_ms"]
    assert door["mttr_ms"] == steps["resolve"]["at_ms"] - opened["opened_at_ms"]
    assert report["total"]["response"]["breached"] == 0
