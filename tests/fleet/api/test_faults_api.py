"""The technician workflow over HTTP: a ticket from open to reported, each step attributed,
timed by the API's clock and audited; what the lifecycle refuses comes back as 409 naming what
is allowed; the SLA clocks pause and resume; a restart of the API changes no deadline."""

from __future__ import annotations

from fleet.access.roles import Role
from fleet.faults.sla import HOUR_MS, MINUTE_MS
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0, Api, create_app, serve

NODE = "pole-0001"


def test_a_ticket_from_open_to_reported(api: Api) -> None:
    seed.add_node(api.engine, NODE)
    ticket = seed.open_fault(api.engine, NODE, at=T0, kind="door", severity="major")
    operator, tech = api.as_(Role.OPERATOR, "operator-7"), api.as_(Role.TECHNICIAN, "tech-0193")
    url = f"/api/v1/faults/{ticket}"

    opened = operator.get(url).body
    # Response: 2 h from the fault; resolution (major): 4 h; report: 24 h.
    assert (opened["state"], opened["response_deadline_ms"]) == ("open", T0 + 2 * HOUR_MS)
    assert opened["resolution_deadline_ms"] == T0 + 4 * HOUR_MS
    assert opened["allowed_actions"] == ["acknowledge", "arrive", "cancel"]

    api.clock.now = T0 + 5 * MINUTE_MS
    assert operator.post(f"{url}/acknowledge").body["state"] == "acknowledged"
    api.clock.now = T0 + 7 * MINUTE_MS
    assert operator.post(f"{url}/dispatch", {"technician": "tech-0193"}).body["assignee"] == "tech-0193"
    api.clock.now = T0 + 95 * MINUTE_MS
    on_site = tech.post(f"{url}/check-in", {"note": "cabinet door hanging open"}).body
    assert on_site["state"] == "on_site"
    response = next(c for c in on_site["clocks"] if c["clock"] == "response")
    # Arrived 95 min after the fault: stopped 25 min inside the 2-hour budget.
    assert (response["state"], response["remaining_ms"]) == ("met", 25 * MINUTE_MS)
    api.clock.now = T0 + 150 * MINUTE_MS
    tech.post(f"{url}/resolve", {"note": "hinge replaced, door switch tested"})
    api.clock.now = T0 + 200 * MINUTE_MS
    done = tech.post(f"{url}/report", {"note": "hinge worn; replaced; switch OK"}).body
    assert done["state"] == "reported"
    assert [(s["action"], s["by"], s["at_ms"] - T0) for s in done["steps"]] == [
        ("acknowledge", "operator-7", 5 * MINUTE_MS),
        ("dispatch", "operator-7", 7 * MINUTE_MS),
        ("arrive", "tech-0193", 95 * MINUTE_MS),
        ("resolve", "tech-0193", 150 * MINUTE_MS),
        ("report", "tech-0193", 200 * MINUTE_MS),
    ]
    assert done["steps"][2]["verification"] == "self-reported"  # the API's check-in is not the pole's
    assert operator.get("/api/v1/faults?status=open").body["items"] == []
    assert [t["ticket_id"] for t in operator.get("/api/v1/faults?status=closed").body["items"]] == [ticket]

    audit = api.as_(Role.ADMIN).get(f"/api/v1/audit?target=ticket/{ticket}").body["items"]
    assert [(e["action"], e["actor"]) for e in reversed(audit)] == [
        ("ticket.acknowledge", "operator-7"),
        ("ticket.dispatch", "operator-7"),
        ("ticket.check-in", "tech-0193"),
        ("ticket.resolve", "tech-0193"),
        ("ticket.report", "tech-0193"),
    ]
    assert audit[0]["detail"] == {"note": "hinge worn; replaced; switch OK"}


def test_what_the_lifecycle_refuses_is_a_409_naming_what_is_allowed(api: Api) -> None:
    seed.add_node(api.engine, NODE)
    ticket = seed.open_fault(api.engine, NODE, at=T0)
    seed.assign(api.engine, ticket, "tech-0193")
    tech = api.as_(Role.TECHNICIAN, "tech-0193")
    refused = tech.post(f"/api/v1/faults/{ticket}/report", {"note": "done"})
    assert (refused.status, refused.code) == (409, "illegal-transition")
    assert "allowed: acknowledge, arrive, cancel" in refused.body["error"]["message"]
    no_note = tech.post(f"/api/v1/faults/{ticket}/resolve", {})
    assert (no_note.status, no_note.code) == (422, "invalid-request")
    assert no_note.body["error"]["details"][0]["field"] == "note"
    # Nothing of the refused requests stuck: still open, no steps, nothing audited.
    assert api.as_(Role.VIEWER).get(f"/api/v1/faults/{ticket}").body["steps"] == []
    assert api.as_(Role.ADMIN).get("/api/v1/audit").body["items"] == []


def test_a_technician_works_only_the_tickets_assigned_to_them(api: Api) -> None:
    seed.add_node(api.engine, NODE)
    ticket = seed.open_fault(api.engine, NODE, at=T0)
    seed.assign(api.engine, ticket, "tech-0193")
    other = api.as_(Role.TECHNICIAN, "tech-0200").post(f"/api/v1/faults/{ticket}/check-in", {})
    assert (other.status, other.code) == (403, "not-your-ticket")
    assert "assigned to tech-0193" in other.body["error"]["message"]
    # The control centre may check a technician in (a phone out of battery).
    assert api.as_(Role.OPERATOR).post(f"/api/v1/faults/{ticket}/check-in", {}).status == 200


def test_a_pause_moves_the_running_deadlines_by_the_time_paused(api: Api) -> None:
    seed.add_node(api.engine, NODE)
    ticket = seed.open_fault(api.engine, NODE, at=T0, severity="critical")
    operator = api.as_(Role.OPERATOR)
    url = f"/api/v1/faults/{ticket}"
    api.clock.now = T0 + 30 * MINUTE_MS
    paused = operator.post(f"{url}/pause", {"reason": "waiting for the power utility"}).body
    assert paused["paused"]
    assert paused["pauses"][0]["reason"] == "waiting for the power utility"
    again = operator.post(f"{url}/pause", {"reason": "twice"})
    assert (again.status, again.code) == (409, "step-refused/already-paused")
    api.clock.now = T0 + 100 * MINUTE_MS
    resumed = operator.post(f"{url}/resume").body
    # 70 minutes paused: response 2 h + 70 min, resolution (critical, 3 h) + 70 min.
    assert resumed["response_deadline_ms"] == T0 + 2 * HOUR_MS + 70 * MINUTE_MS
    assert resumed["resolution_deadline_ms"] == T0 + 3 * HOUR_MS + 70 * MINUTE_MS
    assert resumed["pauses"][0]["ended_at_ms"] == T0 + 100 * MINUTE_MS


def test_a_restart_of_the_fleet_mid_ticket_changes_no_deadline(api: Api) -> None:
    seed.add_node(api.engine, NODE)
    ticket = seed.open_fault(api.engine, NODE, at=T0, severity="minor")
    operator = api.as_(Role.OPERATOR)
    url = f"/api/v1/faults/{ticket}"
    api.clock.now = T0 + 10 * MINUTE_MS
    operator.post(f"{url}/acknowledge")
    operator.post(f"{url}/pause", {"reason": "road closed by the police"})
    api.clock.now = T0 + 40 * MINUTE_MS
    before = operator.post(f"{url}/resume").body

    # A new process on the same database, three hours later by its own clock.
    api.clock.now = T0 + 220 * MINUTE_MS
    with serve(create_app(api.engine, clock_ms=api.clock)) as restarted:
        operator.port = restarted.port
        after = operator.get(url).body
    keys = ("response_deadline_ms", "resolution_deadline_ms", "report_deadline_ms", "pauses", "steps")
    assert {k: after[k] for k in keys} == {k: before[k] for k in keys}
    assert after["resolution_deadline_ms"] == T0 + 8 * HOUR_MS + 30 * MINUTE_MS  # minor: 8 h + 30 min paused
    # Now 3 h 40 min in: the response clock (2 h + 30 min) is breached, and says so.
    response = next(c for c in after["clocks"] if c["clock"] == "response")
    assert (response["state"], response["remaining_ms"]) == ("breached", -70 * MINUTE_MS)


def test_listing_filters_and_pages(api: Api) -> None:
    for n in range(1, 4):
        seed.add_node(api.engine, f"pole-000{n}")
    first = seed.open_fault(api.engine, "pole-0001", at=T0, kind="door")
    seed.open_fault(api.engine, "pole-0002", at=T0 + 1, kind="temperature", component="cabinet")
    third = seed.open_fault(api.engine, "pole-0003", at=T0 + 2, kind="door")
    viewer = api.as_(Role.VIEWER)
    doors = viewer.get("/api/v1/faults?kind=door").body["items"]
    assert [t["ticket_id"] for t in doors] == [third, first]  # newest first
    page = viewer.get("/api/v1/faults?limit=2").body
    assert len(page["items"]) == 2
    assert page["next_before"] is not None
    rest = viewer.get(f"/api/v1/faults?limit=2&before={page['next_before']}").body
    assert [t["ticket_id"] for t in rest["items"]] == [first]
    assert rest["next_before"] is None
    bad = viewer.get("/api/v1/faults?state=sleeping")
    assert (bad.status, bad.body["error"]["details"][0]["field"]) == (422, "state")
