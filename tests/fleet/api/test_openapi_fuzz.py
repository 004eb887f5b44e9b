"""Schemathesis over the fleet's own OpenAPI, against the API served for real (uvicorn on
loopback, SQLite and a real PostgreSQL): for every operation, whatever its schema allows and
beyond, no answer is a server error, and nothing is done without the right role.

The role matrix (test_roles.py) says who may do what with well-formed calls; this throws
generated ones at every route as an admin (who reaches the most code), a viewer and nobody.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.schemas import APIOperation

from fleet.access.roles import Role
from fleet.api.app import API_PREFIX
from tests.fleet.api import seed
from tests.fleet.api.conftest import T0, Api

NODE = "pole-0001"
READS = {"GET", "HEAD", "OPTIONS"}


def operations(api: Api) -> list[APIOperation]:
    seed.add_node(api.engine, NODE)
    ticket = seed.open_fault(api.engine, NODE, at=T0)
    seed.assign(api.engine, ticket, "technician-1")
    seed.press_bell(api.engine, NODE, alarm_id="alarm-1", pressed_at=T0, received_at=T0 + 200)
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{api.port}{API_PREFIX}/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) > 40  # every route, not a schema that failed to load
    return found


def fuzz(
    api: Api, operation: APIOperation, token: str | None, check: Callable[[Any], None], *, examples: int
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=f"http://127.0.0.1:{api.port}", headers=headers, timeout=30)
        check(response)

    run()


def server_error(operation: APIOperation, response: Any) -> str:
    return f"{operation.method.upper()} {operation.path}: {response.status_code} {response.text[:300]}"


@pytest.mark.slow
def test_no_generated_call_gets_a_server_error(api: Api) -> None:
    admin = api.token(Role.ADMIN, "admin-1")
    for operation in operations(api):

        def check(response: Any, operation: APIOperation = operation) -> None:
            assert response.status_code < 500, server_error(operation, response)

        fuzz(api, operation, admin, check, examples=25)


@pytest.mark.slow
def test_no_generated_call_gets_past_a_missing_token_or_a_viewer_s_role(api: Api) -> None:
    viewer = api.token(Role.VIEWER, "viewer-1")
    for operation in operations(api):
        if operation.path == f"{API_PREFIX}/health" or not operation.path.startswith(API_PREFIX):
            continue  # health, and what nodes fetch (signed releases): token-free by design
        changes = operation.method.upper() not in READS

        def anonymous(response: Any, operation: APIOperation = operation) -> None:
            # 422: the request was malformed before anyone asked who sent it; never served.
            assert response.status_code in (401, 422), server_error(operation, response)

        def as_viewer(response: Any, operation: APIOperation = operation, changes: bool = changes) -> None:
            assert response.status_code < 500, server_error(operation, response)
            if changes:  # a viewer changes nothing, whatever the call looks like
                assert response.status_code in (403, 404, 422), server_error(operation, response)

        fuzz(api, operation, None, anonymous, examples=10)
        fuzz(api, operation, viewer, as_viewer, examples=10)
