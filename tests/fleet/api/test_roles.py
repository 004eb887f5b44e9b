"""The role matrix: each role can do exactly what it should, route by route, over HTTP.

The expected matrix is written out here by hand from the contract's roles (not read from
fleet.access.roles), and every route the app serves must appear in it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from fleet.access.roles import Role
from fleet.api.app import API_PREFIX, create_app
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0, Api

ALL = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
CENTRE = frozenset({Role.OPERATOR, Role.ADMIN})
FIELD = frozenset({Role.TECHNICIAN, Role.OPERATOR, Role.ADMIN})

NODE, ALARM, SITE = "pole-0001", "alarm-1", "site-0001"
RELEASE, CAMPAIGN = "edge-agent-1.2.0", "0000cafe0000cafe"

# (method, path): (body, who may). {ticket} is the seeded node's open ticket.
MATRIX: dict[tuple[str, str], tuple[object, frozenset[Role]]] = {
    ("GET", "/whoami"): (None, ALL),
    ("GET", "/nodes"): (None, ALL),
    ("GET", f"/nodes/{NODE}"): (None, ALL),
    ("GET", "/sites"): (None, ALL),
    ("GET", f"/sites/{SITE}"): (None, ALL),
    ("GET", "/faults"): (None, ALL),
    ("GET", "/faults/{ticket}"): (None, ALL),
    ("GET", "/alarms"): (None, ALL),
    ("GET", f"/alarms/{ALARM}"): (None, ALL),
    ("POST", f"/alarms/{ALARM}/shown"): ({}, CENTRE),
    ("POST", f"/alarms/{ALARM}/acknowledge"): ({"lamp": True}, CENTRE),
    ("POST", f"/alarms/{ALARM}/clear"): ({}, CENTRE),
    ("POST", "/faults/{ticket}/acknowledge"): ({}, CENTRE),
    ("POST", "/faults/{ticket}/assign"): ({"technician": "technician-1"}, CENTRE),
    ("POST", "/faults/{ticket}/dispatch"): ({"technician": "technician-1"}, CENTRE),
    ("POST", "/faults/{ticket}/check-in"): ({"note": "at the pole"}, FIELD),
    ("POST", "/faults/{ticket}/pause"): ({"reason": "waiting for the power utility"}, FIELD),
    ("POST", "/faults/{ticket}/resume"): ({}, FIELD),
    ("POST", "/faults/{ticket}/resolve"): ({"note": "door switch replaced"}, FIELD),
    ("POST", "/faults/{ticket}/report"): ({"note": "switch corroded; replaced"}, FIELD),
    ("POST", f"/nodes/{NODE}/commands"): ({"name": "ping"}, CENTRE),
    ("PUT", f"/nodes/{NODE}/cameras/cam-1/purpose"): ({"purpose": "parking"}, ADMIN),
    ("POST", "/sites/import"): ("site_id,name\nsite-0009,New pole\n", ADMIN),
    ("POST", "/tokens"): ({"subject": "viewer-9", "role": "viewer"}, ADMIN),
    ("GET", "/tokens"): (None, ADMIN),
    ("DELETE", "/tokens/000000000000"): (None, ADMIN),
    ("GET", "/audit"): (None, ADMIN),
    ("GET", "/reports/sla/2025-11"): (None, ALL),
    ("GET", "/inspections/due"): (None, ALL),
    ("POST", "/inspections"): ({"site_id": SITE, "kind": "field", "result": "pass"}, FIELD),
    ("POST", "/ota/releases"): ({}, ADMIN),
    ("GET", "/ota/releases"): (None, ALL),
    ("GET", f"/ota/releases/{RELEASE}"): (None, ALL),
    ("POST", "/ota/campaigns"): ({"release_id": RELEASE}, CENTRE),
    ("GET", "/ota/campaigns"): (None, ALL),
    ("GET", f"/ota/campaigns/{CAMPAIGN}"): (None, ALL),
    ("GET", f"/ota/campaigns/{CAMPAIGN}/nodes"): (None, ALL),
    ("POST", f"/ota/campaigns/{CAMPAIGN}/pause"): ({}, CENTRE),
    ("POST", f"/ota/campaigns/{CAMPAIGN}/resume"): ({}, CENTRE),
    ("POST", f"/ota/campaigns/{CAMPAIGN}/cancel"): ({}, CENTRE),
    ("POST", f"/ota/campaigns/{CAMPAIGN}/approve"): ({}, CENTRE),
}
# Outside /api/v1 and without a token: what nodes fetch (signed, so the node checks it).
PUBLIC = {
    ("GET", f"/ota/v1/releases/{RELEASE}/manifest.json"),
    ("GET", f"/ota/v1/releases/{RELEASE}/edge-agent-1.2.0.tar"),
}
CONCRETE = {NODE, ALARM, SITE, "cam-1", "000000000000", "2025-11", RELEASE, CAMPAIGN, "edge-agent-1.2.0.tar"}


def _shape(path: str) -> str:
    """`/faults/{ticket_id}/check-in` and `/faults/{ticket}/check-in` -> `/faults/{}/check-in`."""
    return "/".join("{}" if p.startswith("{") or p in CONCRETE else p for p in path.split("/"))


def test_the_matrix_covers_every_route_the_app_serves(fleet_engine: sa.Engine) -> None:
    paths = create_app(fleet_engine).openapi()["paths"]
    served = {
        (method.upper(), _shape(path.removeprefix(API_PREFIX)))
        for path, operations in paths.items()
        if path != f"{API_PREFIX}/health"
        for method in operations
    }
    listed = {(method, _shape(path)) for method, path in MATRIX} | {
        (method, _shape(path)) for method, path in PUBLIC
    }
    assert served - listed == set(), "routes without a row in the role matrix"
    assert listed - served == set(), "matrix rows for routes the app does not serve"


@pytest.mark.parametrize("role", list(Role))
def test_each_role_can_do_exactly_what_it_should(api: Api, role: Role) -> None:
    seed.add_node(api.engine, NODE)
    ticket = seed.open_fault(api.engine, NODE, at=T0)
    seed.assign(api.engine, ticket, "technician-1")
    seed.press_bell(api.engine, NODE, alarm_id=ALARM, pressed_at=T0, received_at=T0 + 200)
    client = api.as_(role, f"{role.value}-1")
    outcomes = {}
    for (method, path), (body, allowed) in MATRIX.items():
        url = f"/api/v1{path.replace('{ticket}', ticket)}"
        if isinstance(body, str):
            response = client.request(method, url, raw=body.encode(), content_type="text/csv")
        else:
            response = client.request(method, url, body)
        api.clock.advance(60_000)  # steps in order, a minute apart
        if role in allowed:
            outcomes[(method, path)] = response.status not in (401, 403)
        else:
            outcomes[(method, path)] = response.status == 403 and response.code == "forbidden"
        assert response.status < 500, (method, path, response.text)
    wrong = [key for key, ok in outcomes.items() if not ok]
    assert wrong == [], f"{role}: these routes answered against the matrix"


def test_without_a_valid_token_nothing_but_health_answers(api: Api) -> None:
    seed.add_node(api.engine, NODE)
    anonymous = api.anonymous()
    assert anonymous.get("/api/v1/health").status == 200
    for (method, path), (body, _) in MATRIX.items():
        response = anonymous.request(method, f"/api/v1{path}", None if isinstance(body, str) else body)
        assert (response.status, response.code) == (401, "unauthenticated"), (method, path)
    for method, path in PUBLIC:  # answered without a token: here, no such release
        response = anonymous.request(method, path)
        assert (response.status, response.code) == (404, "not-found"), (method, path)
    forged = api.as_(Role.ADMIN)
    forged.token = forged.token[:-4] + "AAAA" if forged.token else None
    response = forged.get("/api/v1/nodes")
    assert (response.status, response.body["error"]["message"]) == (401, "unknown token")
    garbage = api.anonymous()
    garbage.token = "not-a-token"
    assert garbage.get("/api/v1/nodes").body["error"]["message"].startswith("malformed token")


# OTA has permissions of its own: a refusal names them, not the inventory's or a command's.
OTA_REFUSALS = [
    (Role.OPERATOR, "POST", "/ota/releases", "ota:release"),
    (Role.TECHNICIAN, "POST", "/ota/campaigns", "ota:campaign"),
    (Role.VIEWER, "POST", f"/ota/campaigns/{CAMPAIGN}/pause", "ota:campaign"),
    (Role.TECHNICIAN, "POST", f"/ota/campaigns/{CAMPAIGN}/approve", "ota:campaign"),
]


@pytest.mark.parametrize(("role", "method", "path", "permission"), OTA_REFUSALS)
def test_ota_refusals_name_the_ota_permissions(
    api: Api, role: Role, method: str, path: str, permission: str
) -> None:
    body = {"release_id": RELEASE} if path == "/ota/campaigns" else {}
    response = api.as_(role).request(method, f"/api/v1{path}", body)
    assert (response.status, response.code) == (403, "forbidden")
    assert f"lacks the permission {permission!r}" in response.body["error"]["message"]


def test_whoami_lists_the_ota_permissions_by_role(api: Api) -> None:
    held = {role: set(api.as_(role).get("/api/v1/whoami").body["permissions"]) for role in Role}
    assert "ota:campaign" in held[Role.OPERATOR]
    assert "ota:release" not in held[Role.OPERATOR]
    assert {"ota:campaign", "ota:release"} <= held[Role.ADMIN]
    assert held[Role.VIEWER].isdisjoint({"ota:campaign", "ota:release"})
    assert held[Role.TECHNICIAN].isdisjoint({"ota:campaign", "ota:release"})
