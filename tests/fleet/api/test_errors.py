"""Bad requests get a 4xx with a reason in one JSON shape, never a 500, whatever the body; and
tokens are issued, used and revoked."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.access.roles import Role
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0, Api
from tests.fleet.api.test_roles import MATRIX

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
BODY_KEYS = sorted(
    {key for body, _ in MATRIX.values() if isinstance(body, dict) for key in body}
    | {"lamp", "args", "expires_in_s", "technician", "note", "reason", "purpose", "subject", "role"}
)
bodies = json_values | st.dictionaries(st.sampled_from(BODY_KEYS), json_values, max_size=4)
WRITES = [(method, path) for (method, path), (body, _) in MATRIX.items() if method != "GET"]


def test_the_error_shape_for_paths_methods_and_bodies(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    missing = admin.get("/api/v1/nothing-here")
    assert (missing.status, missing.body) == (
        404,
        {"error": {"code": "not-found", "message": "no such path: /api/v1/nothing-here"}},
    )
    wrong_method = admin.request("DELETE", "/api/v1/nodes")
    assert (wrong_method.status, wrong_method.code) == (405, "method-not-allowed")
    broken = admin.request("POST", "/api/v1/tokens", raw=b'{"subject": "x",', content_type="application/json")
    assert (broken.status, broken.code) == (422, "invalid-request")
    assert "JSON decode error" in broken.body["error"]["message"]
    typed = admin.get("/api/v1/nodes?limit=0")
    assert typed.status == 422
    assert typed.body["error"]["details"] == [
        {"field": "limit", "problem": "Input should be greater than or equal to 1", "where": "query"}
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(WRITES), body=bodies, segment=st.text(max_size=30))
def test_no_body_or_path_makes_the_api_fail_with_a_500(
    api: Api, route: tuple[str, str], body: Any, segment: str
) -> None:
    if not getattr(api, "seeded", False):
        seed.add_node(api.engine, "pole-0001")
        seed.open_fault(api.engine, "pole-0001", at=T0)
        seed.press_bell(api.engine, "pole-0001", alarm_id="alarm-1", pressed_at=T0, received_at=T0)
        api.seeded = True  # type: ignore[attr-defined]
    method, path = route
    path = path.replace("{ticket}", urllib.parse.quote(segment, safe="") or "x")
    response = api.as_(Role.ADMIN).request(method, f"/api/v1{path}", raw=json.dumps(body).encode())
    assert response.status < 500, response.text
    if response.status >= 400:
        assert set(response.body["error"]) >= {"code", "message"}


def test_tokens_are_issued_used_and_revoked(api: Api) -> None:
    admin = api.as_(Role.ADMIN, "admin-city")
    issued = admin.post("/api/v1/tokens", {"subject": "tech-0193", "role": "technician"}).body
    assert issued["token"].startswith(f"wp_{issued['token_id']}_")
    tech = api.anonymous()
    tech.token = issued["token"]
    me = tech.get("/api/v1/whoami").body
    assert (me["subject"], me["role"]) == ("tech-0193", "technician")
    assert me["permissions"] == ["inspection:record", "read", "ticket:field"]
    listed = {t["token_id"]: t for t in admin.get("/api/v1/tokens").body}
    assert listed[issued["token_id"]]["created_by"] == "admin-city"
    assert "token" not in listed[issued["token_id"]]  # the secret is never shown again
    assert admin.request("DELETE", f"/api/v1/tokens/{issued['token_id']}").status == 204
    refused = tech.get("/api/v1/whoami")
    assert (refused.status, refused.body["error"]["message"]) == (
        401,
        f"token {issued['token_id']} was revoked",
    )
    own = admin.request("DELETE", f"/api/v1/tokens/{admin.token[3:15]}")  # type: ignore[index]
    assert (own.status, own.code) == (409, "own-token")
    bad_subject = admin.post("/api/v1/tokens", {"subject": "a b", "role": "viewer"})
    assert (bad_subject.status, bad_subject.body["error"]["details"][0]["field"]) == (422, "subject")
    actions = [e["action"] for e in admin.get("/api/v1/audit").body["items"]]
    assert actions == ["token.revoke", "token.issue"]


def test_every_answer_carries_the_security_headers(api: Api) -> None:
    for response in (
        api.anonymous().get("/api/v1/health"),
        api.anonymous().get("/api/v1/nodes"),  # a refusal too
        api.anonymous().get("/signin"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
