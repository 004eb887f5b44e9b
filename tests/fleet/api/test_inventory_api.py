"""Nodes and sites over HTTP: each node's live state, filters, key-set pages; the city's CSV
import (all or nothing, errors by line); a camera's purpose; commands to a node."""

from __future__ import annotations

from fleet.access.roles import Role
from protocols import messages as m
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0, Api


def test_nodes_list_with_their_state_filters_and_pages(api: Api) -> None:
    seed.add_node(api.engine, "pole-0001", district="Jung-gu", last_seen_ms=T0)
    seed.add_node(api.engine, "pole-0002", district="Mapo-gu", online=False, last_seen_ms=T0 - 600_000)
    seed.add_node(api.engine, "pole-0003", district="Jung-gu", site_class="centre")
    seed.open_fault(api.engine, "pole-0002", at=T0)
    viewer = api.as_(Role.VIEWER)

    everything = viewer.get("/api/v1/nodes").body
    assert [(n["node_id"], n["online"], n["open_faults"]) for n in everything["items"]] == [
        ("pole-0001", True, 0),
        ("pole-0002", False, 1),
        ("pole-0003", True, 0),
    ]
    assert everything["items"][1]["last_seen_ms"] == T0 - 600_000
    assert everything["next_after"] is None

    def ids(query: str) -> list[str]:
        return [n["node_id"] for n in viewer.get(f"/api/v1/nodes?{query}").body["items"]]

    assert ids("online=false") == ["pole-0002"]
    assert ids("district=Jung-gu") == ["pole-0001", "pole-0003"]
    assert ids("site_class=centre") == ["pole-0003"]
    assert ids("has_faults=true") == ["pole-0002"]
    assert ids("has_faults=false") == ["pole-0001", "pole-0003"]
    page = viewer.get("/api/v1/nodes?limit=2").body
    assert page["next_after"] == "pole-0002"
    assert ids(f"limit=2&after={page['next_after']}") == ["pole-0003"]

    detail = viewer.get("/api/v1/nodes/pole-0001").body
    assert (detail["site_id"], detail["cameras"][0]["camera_id"]) == ("site-0001", "cam-1")
    missing = viewer.get("/api/v1/nodes/pole-9999")
    assert (missing.status, missing.body["error"]["message"]) == (404, "no node 'pole-9999'")


def test_the_city_site_list_imports_all_or_nothing(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    good = "site_id,name,district,has_bell,tags\nsite-0412,Market St north,Jung-gu,yes,school-zone\n"
    response = admin.request("POST", "/api/v1/sites/import", raw=good.encode(), content_type="text/csv")
    assert (response.status, response.body) == (200, {"created": 1, "updated": 0})
    site = api.as_(Role.VIEWER).get("/api/v1/sites/site-0412").body
    assert (site["district"], site["has_bell"], site["tags"]) == ("Jung-gu", True, ["school-zone"])

    bad = "site_id,name,latitude\nsite-0413,Riverside,north\nBad Id,Nowhere,\n"
    refused = admin.request("POST", "/api/v1/sites/import", raw=bad.encode(), content_type="text/csv")
    assert (refused.status, refused.code) == (422, "invalid-csv")
    assert [(d["line"], d["column"]) for d in refused.body["error"]["details"]] == [
        (2, "latitude"),
        (3, "site_id"),
    ]
    assert api.as_(Role.VIEWER).get("/api/v1/sites/site-0413").status == 404  # nothing of it stayed


def test_a_camera_purpose_is_set_by_an_admin_and_audited(api: Api) -> None:
    seed.add_node(api.engine, "pole-0001")
    admin = api.as_(Role.ADMIN, "admin-city")
    changed = admin.request(
        "PUT", "/api/v1/nodes/pole-0001/cameras/cam-1/purpose", {"purpose": "flood-watch"}
    ).body
    assert changed["purpose"] == "flood-watch"
    wrong = admin.request("PUT", "/api/v1/nodes/pole-0001/cameras/cam-1/purpose", {"purpose": "spying"})
    assert (wrong.status, wrong.body["error"]["details"][0]["field"]) == (422, "purpose")
    (entry,) = admin.get("/api/v1/audit?action=camera.purpose").body["items"]
    assert (entry["actor"], entry["detail"]) == ("admin-city", {"before": "other", "after": "flood-watch"})


def test_a_command_goes_to_the_node_through_the_contract(api: Api) -> None:
    seed.add_node(api.engine, "pole-0001")
    operator = api.as_(Role.OPERATOR, "operator-7")
    sent = operator.post("/api/v1/nodes/pole-0001/commands", {"name": "self-test", "expires_in_s": 600})
    assert sent.status == 202
    ((node_id, command),) = api.nodes.messages
    assert isinstance(command, m.Command)
    assert (node_id, command.name, command.issued_by) == ("pole-0001", "self-test", "operator-7")
    assert (command.command_id, command.expires_at) == (sent.body["command_id"], T0 + 600_000)
    unknown = operator.post("/api/v1/nodes/pole-0001/commands", {"name": "format-disk"})
    assert (unknown.status, unknown.body["error"]["details"][0]["field"]) == (422, "name")
    bad_arg = operator.post(
        "/api/v1/nodes/pole-0001/commands", {"name": "set-config", "args": {"k" * 200: 1}}
    )
    # The contract caps an argument's name at 128 characters: refused here, not by the pole.
    assert (bad_arg.status, bad_arg.code) == (422, "invalid-command")
    assert "args" in bad_arg.body["error"]["message"]
    assert len(api.nodes.messages) == 1
