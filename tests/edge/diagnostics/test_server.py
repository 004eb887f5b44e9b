"""The diagnostics API (edge.diagnostics.server) through the node's real HTTP server (edge.http) on
a loopback port and a real HTTP client: PIN login and its lockout, tokens, status, self-tests,
signed site visits, strict bodies with errors that name the field, and the counters."""

from __future__ import annotations

import threading

import msgspec
import pytest

from edge.diagnostics import DiagnosticsCounters
from protocols.messages import SiteVisit
from protocols.visits import verify_visit
from tests.edge.diagnostics.conftest import (
    NODE_ID,
    PIN,
    FakeNode,
    ServedNode,
    call,
    in_thread,
    login,
    serve,
)

TWELVE_HOURS = 12 * 3600


def wrong_login(node: ServedNode) -> tuple[int, dict[str, object], dict[str, str]]:
    answer = call(node.url, "POST", "/diag/api/login", {"pin": "000000"})
    return answer.status, answer.json(), answer.headers


# --- login and sessions -------------------------------------------------------------------------


def test_login_with_the_pin_gives_a_token_that_opens_the_api(node: ServedNode) -> None:
    answer = call(node.url, "POST", "/diag/api/login", {"pin": PIN})

    assert answer.status == 200
    body = answer.json()
    assert len(body["token"]) >= 32
    assert body["expires_in_s"] == TWELVE_HOURS
    status = call(node.url, "GET", "/diag/api/status", token=body["token"])
    assert status.status == 200
    assert status.headers["Cache-Control"] == "no-store"


def test_each_login_gets_a_different_token(node: ServedNode) -> None:
    assert login(node) != login(node)


def test_a_wrong_pin_is_401_saying_how_many_tries_are_left(node: ServedNode) -> None:
    status, body, _ = wrong_login(node)

    assert status == 401
    assert body["reason"] == "wrong-pin"
    assert body["attempts_left"] == 4
    assert "wrong PIN" in str(body["error"])


def test_five_wrong_pins_in_a_row_lock_login_for_five_minutes(node: ServedNode) -> None:
    for left in (4, 3, 2, 1):
        status, body, _ = wrong_login(node)
        assert (status, body["attempts_left"]) == (401, left)

    status, body, headers = wrong_login(node)
    assert status == 429
    assert body["reason"] == "locked-out"
    assert headers["Retry-After"] == "300"
    assert body["retry_after_s"] == 300

    # The right PIN does not open a locked login either: otherwise the lock stops nobody.
    node.clock.now += 120
    right = call(node.url, "POST", "/diag/api/login", {"pin": PIN})
    assert right.status == 429
    assert right.headers["Retry-After"] == "180"

    node.clock.now += 180
    assert call(node.url, "POST", "/diag/api/login", {"pin": PIN}).status == 200
    # The count started again: one wrong PIN is not a lockout.
    assert wrong_login(node)[0] == 401


def test_the_right_pin_resets_the_count_of_wrong_ones(node: ServedNode) -> None:
    for _ in range(4):
        assert wrong_login(node)[0] == 401
    login(node)
    for _ in range(4):
        assert wrong_login(node)[0] == 401


def test_the_api_needs_a_bearer_token(node: ServedNode) -> None:
    for headers, reason in (
        ({}, "no-token"),
        ({"Authorization": "Basic dGVjaDpwaW4="}, "no-token"),
        ({"Authorization": "Bearer not-a-token-this-node-made"}, "unknown-token"),
    ):
        answer = call(node.url, "GET", "/diag/api/status", headers=headers)
        assert answer.status == 401, headers
        assert answer.json()["reason"] == reason
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    for method, path in (("POST", "/diag/api/self-tests/bell-circuit"), ("POST", "/diag/api/visits")):
        answer = call(node.url, method, path, {"action": "check-in", "technician": "anna"})
        assert answer.status == 401
    assert node.target.ran == []
    assert node.target.outbox == []


def test_a_token_expires_after_twelve_hours(node: ServedNode, token: str) -> None:
    node.clock.now += TWELVE_HOURS - 1
    assert call(node.url, "GET", "/diag/api/status", token=token).status == 200

    node.clock.now += 1
    answer = call(node.url, "GET", "/diag/api/status", token=token)
    assert answer.status == 401
    assert answer.json()["reason"] == "expired-token"


def test_logout_ends_the_session(node: ServedNode, token: str) -> None:
    assert call(node.url, "POST", "/diag/api/logout", token=token).status == 200

    answer = call(node.url, "GET", "/diag/api/status", token=token)
    assert answer.status == 401
    assert answer.json()["reason"] == "unknown-token"


def test_login_bodies_are_checked(node: ServedNode) -> None:
    cases = [
        ({"pin": 482913}, 422, "pin"),
        ({"pin": PIN, "user": "anna"}, 422, "user"),
        ({}, 422, "pin"),
    ]
    for body, status, field in cases:
        answer = call(node.url, "POST", "/diag/api/login", body)
        assert (answer.status, answer.json()["field"]) == (status, field), body
    # A malformed body is not a wrong PIN: it does not count towards the lockout.
    for _ in range(6):
        assert call(node.url, "POST", "/diag/api/login", raw=b"{", headers=_JSON).status == 400
    login(node)


# --- disabled --------------------------------------------------------------------------------------

_JSON = {"Content-Type": "application/json"}


def test_without_a_pin_every_diagnostics_route_says_it_is_disabled(disabled_node: ServedNode) -> None:
    for method, path, body in (
        ("GET", "/diag/", None),
        ("GET", "/diag", None),
        ("POST", "/diag/api/login", {"pin": PIN}),
        ("GET", "/diag/api/status", None),
        ("POST", "/diag/api/self-tests/bell-circuit", None),
        ("POST", "/diag/api/visits", {"action": "check-in", "technician": "anna"}),
    ):
        answer = call(disabled_node.url, method, path, body)
        assert answer.status == 404, path
        assert answer.json()["reason"] == "disabled"
        assert "http.pin_file" in answer.json()["error"]
    counters = disabled_node.diagnostics.counters()
    assert counters.enabled is False
    assert counters.rejections == {"disabled": 6}
    assert disabled_node.target.ran == []


def test_a_pin_too_short_to_be_one_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="at least 4"), serve(FakeNode(), pin="12"):
        pass


# --- status ------------------------------------------------------------------------------------------


def test_status_is_the_nodes_with_its_self_tests_and_the_diagnostics_counters(
    node: ServedNode, token: str
) -> None:
    answer = call(node.url, "GET", "/diag/api/status", token=token)

    assert answer.status == 200
    status = answer.json()
    assert status["node"]["id"] == NODE_ID
    assert status["outbox"]["backlog"] == {"alarm": 0, "event": 3, "telemetry": 17, "video": 250}
    assert status["uplink"]["state"] == "offline"
    assert status["self_tests"] == ["bell-circuit", "mqtt"]
    assert status["diagnostics"]["logins"] == 1
    assert status["diagnostics"]["requests"]["status"] == 1


# --- self-tests --------------------------------------------------------------------------------------


def test_a_self_test_runs_on_the_node_and_its_result_comes_back(node: ServedNode, token: str) -> None:
    answer = call(node.url, "POST", "/diag/api/self-tests/bell-circuit", token=token)

    assert answer.status == 200
    body = answer.json()
    assert body["name"] == "bell-circuit"
    assert body["ok"] is True
    assert body["result"] == {"ok": True, "loop": "normal", "raw": 512}
    assert node.target.ran == ["bell-circuit"]


def test_a_failing_self_test_is_a_result_not_an_error(node: ServedNode, token: str) -> None:
    answer = call(node.url, "POST", "/diag/api/self-tests/mqtt", token=token)

    assert answer.status == 200
    assert answer.json()["ok"] is False
    assert "PUBACK" in answer.json()["result"]["detail"]


def test_an_unknown_self_test_is_404_listing_the_nodes_own(node: ServedNode, token: str) -> None:
    answer = call(node.url, "POST", "/diag/api/self-tests/bell", token=token)

    assert answer.status == 404
    body = answer.json()
    assert body["reason"] == "unknown-self-test"
    assert body["accepted"] == ["bell-circuit", "mqtt"]
    assert "bell-circuit, mqtt" in body["error"]
    assert node.target.ran == []


def test_the_self_tests_are_whatever_the_node_offers() -> None:
    with serve(FakeNode(self_tests=("bell-circuit", "cameras", "smart"))) as node:
        token = login(node)
        listed = call(node.url, "GET", "/diag/api/self-tests", token=token).json()
        ran = call(node.url, "POST", "/diag/api/self-tests/smart", token=token)
    assert listed == {"self_tests": ["bell-circuit", "cameras", "smart"]}
    assert ran.status == 200
    assert node.target.ran == ["smart"]


def test_a_self_test_that_cannot_run_is_a_json_500(node: ServedNode, token: str) -> None:
    node.target.broken_tests["bell-circuit"] = TimeoutError("the controller did not answer")

    answer = call(node.url, "POST", "/diag/api/self-tests/bell-circuit", token=token)

    assert answer.status == 500
    assert answer.json()["reason"] == "self-test-error"
    assert "the controller did not answer" in answer.json()["error"]


def test_the_same_self_test_does_not_run_twice_at_once(node: ServedNode, token: str) -> None:
    node.target.hold = threading.Event()
    first, answers = in_thread(lambda: call(node.url, "POST", "/diag/api/self-tests/mqtt", token=token))
    assert node.target.entered.wait(timeout=30)

    second = call(node.url, "POST", "/diag/api/self-tests/mqtt", token=token)
    other = in_thread(lambda: call(node.url, "POST", "/diag/api/self-tests/bell-circuit", token=token))
    node.target.hold.set()
    first.join(timeout=30)
    other[0].join(timeout=30)

    assert second.status == 409
    assert second.json()["reason"] == "self-test-running"
    assert [a.status for a in answers] == [200]
    assert [a.status for a in other[1]] == [200]
    assert sorted(node.target.ran) == ["bell-circuit", "mqtt"]


# --- site visits ---------------------------------------------------------------------------------------


def test_a_check_in_is_signed_by_the_node_and_queued_while_the_uplink_is_down(
    node: ServedNode, token: str
) -> None:
    answer = call(
        node.url,
        "POST",
        "/diag/api/visits",
        {"action": "check-in", "technician": "Anna Berg", "fault_id": "f-2026-0117", "note": "door hinge"},
        token=token,
    )

    assert answer.status == 201
    body = answer.json()
    assert body["uplink"] == "offline"
    assert body["uplink_online"] is False
    assert "queued, will be sent when the uplink is back" in body["detail"]
    assert body["node_id"] == NODE_ID
    visit = msgspec.convert(body["visit"], SiteVisit)
    assert (visit.action, visit.technician, visit.fault_id, visit.note) == (
        "check-in",
        "Anna Berg",
        "f-2026-0117",
        "door hinge",
    )
    assert verify_visit(NODE_ID, visit, node.target.key.public_key())
    assert node.target.outbox == [visit]


def test_a_visit_returned_does_not_verify_for_another_pole_or_once_altered(
    node: ServedNode, token: str
) -> None:
    body = {"action": "resolve", "technician": "anna", "fault_id": "f-1"}
    visit = msgspec.convert(
        call(node.url, "POST", "/diag/api/visits", body, token=token).json()["visit"], SiteVisit
    )

    assert verify_visit(NODE_ID, visit, node.target.key.public_key())
    assert not verify_visit("pole-0043", visit, node.target.key.public_key())
    assert not verify_visit(
        NODE_ID, msgspec.structs.replace(visit, fault_id="f-2"), node.target.key.public_key()
    )


def test_with_the_uplink_online_the_answer_says_it_is_on_its_way(node: ServedNode, token: str) -> None:
    node.target.uplink_state = "online"

    answer = call(
        node.url, "POST", "/diag/api/visits", {"action": "check-out", "technician": "anna"}, token=token
    )

    assert answer.status == 201
    assert answer.json()["uplink_online"] is True
    assert "on its way" in answer.json()["detail"]


def test_the_technicians_name_is_trimmed(node: ServedNode, token: str) -> None:
    call(node.url, "POST", "/diag/api/visits", {"action": "check-in", "technician": "  anna \n"}, token=token)

    assert [v.technician for v in node.target.outbox] == ["anna"]


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({"technician": "anna"}, 422, "action", "required"),
        ({"action": "arrive", "technician": "anna"}, 422, "action", '"check-in", "resolve" or "check-out"'),
        ({"action": "check-in"}, 422, "technician", "required"),
        ({"action": "check-in", "technician": ""}, 422, "technician", "1 to 128"),
        ({"action": "check-in", "technician": "   "}, 422, "technician", "blank"),
        ({"action": "check-in", "technician": "a" * 129}, 422, "technician", "1 to 128"),
        ({"action": "check-in", "technician": 7}, 422, "technician", "Expected `str`"),
        ({"action": "resolve", "technician": "anna", "fault_id": "Fault/7"}, 422, "fault_id", "a-z, 0-9"),
        ({"action": "resolve", "technician": "anna", "fault_id": "f" * 65}, 422, "fault_id", "at most 64"),
        ({"action": "check-in", "technician": "anna", "note": "n" * 2001}, 422, "note", "2000"),
        ({"action": "check-in", "technician": "anna", "pole": "p-1"}, 422, "pole", "accepted fields"),
    ],
)
def test_a_bad_visit_is_refused_naming_the_field(
    node: ServedNode, token: str, body: dict[str, object], status: int, field: str, words: str
) -> None:
    answer = call(node.url, "POST", "/diag/api/visits", body, token=token)

    assert answer.status == status
    refused = answer.json()
    assert refused["field"] == field
    assert refused["error"].startswith(field)
    assert words in refused["error"]
    assert node.target.outbox == []


@pytest.mark.parametrize(
    ("raw", "headers", "status", "reason"),
    [
        (b'{"action": "check-in",', _JSON, 400, "bad-json"),
        (b"", _JSON, 400, "empty-body"),
        (b'["check-in", "anna"]', _JSON, 400, "not-an-object"),
        (
            b'{"action": "check-in", "technician": "anna"}',
            {"Content-Type": "text/plain"},
            415,
            "wrong-content-type",
        ),
        (b'{"note": "' + b"x" * 20_000 + b'"}', _JSON, 413, "too-large"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    node: ServedNode, token: str, raw: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    answer = call(node.url, "POST", "/diag/api/visits", raw=raw, headers=headers, token=token)

    assert answer.status == status
    assert answer.json()["reason"] == reason
    assert node.target.outbox == []


def test_a_visit_the_node_cannot_store_is_503_to_try_again(node: ServedNode, token: str) -> None:
    node.target.store_error = OSError(28, "No space left on device")

    answer = call(
        node.url, "POST", "/diag/api/visits", {"action": "check-in", "technician": "anna"}, token=token
    )

    assert answer.status == 503
    assert answer.json()["reason"] == "visit-not-stored"
    assert answer.headers["Retry-After"] == "5"
    assert "No space left" in answer.json()["error"]


# --- routes and counters ----------------------------------------------------------------------------


def test_a_wrong_method_is_405_naming_the_right_one(node: ServedNode) -> None:
    answer = call(node.url, "GET", "/diag/api/login")

    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"
    assert "use POST" in answer.json()["error"]


def test_an_unknown_diagnostics_path_is_a_json_404_listing_the_routes(node: ServedNode) -> None:
    answer = call(node.url, "GET", "/diag/api/stats")

    assert answer.status == 404
    assert answer.json()["reason"] == "not-found"
    assert "GET /diag/api/status" in answer.json()["error"]


def test_requests_and_rejections_are_counted_by_route_and_reason(node: ServedNode) -> None:
    wrong_login(node)
    token = login(node)
    call(node.url, "GET", "/diag/api/status")
    call(node.url, "POST", "/diag/api/visits", {"action": "nope", "technician": "a"}, token=token)
    call(node.url, "POST", "/diag/api/visits", {"action": "check-in", "technician": "a"}, token=token)
    call(node.url, "POST", "/diag/api/self-tests/bell-circuit", token=token)
    call(node.url, "POST", "/diag/api/self-tests/smart", token=token)

    counters = node.diagnostics.counters()

    assert isinstance(counters, DiagnosticsCounters)
    assert counters.requests == {"login": 2, "status": 1, "visit": 2, "self-test": 2}
    assert counters.rejections == {
        "wrong-pin": 1,
        "no-token": 1,
        "invalid-field": 1,
        "unknown-self-test": 1,
    }
    assert counters.last_rejection.startswith("404 unknown-self-test")
    assert counters.logins == 1
    assert counters.sessions == 1
    assert counters.self_tests == {"bell-circuit": 1}
    assert counters.visits == {"check-in": 1}
    # A snapshot: changing it changes nothing on the node.
    counters.rejections.clear()
    assert node.diagnostics.counters().rejections["wrong-pin"] == 1
