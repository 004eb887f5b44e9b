"""`watchpost diag` (watchpost.diag, declared in watchpost.cli) against a live diagnostics server:
tables, self-tests, signed visits, and failures as one clear line with an exit code for each."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import msgspec
import pytest
from click.testing import CliRunner, Result

from protocols.messages import SiteVisit
from protocols.visits import verify_visit
from tests.edge.diagnostics.conftest import NODE_ID, PIN, FakeNode, ServedNode
from watchpost.cli import main
from watchpost.diag import (
    EXIT_DISABLED,
    EXIT_LOCKED_OUT,
    EXIT_NOT_AUTHORIZED,
    EXIT_REFUSED,
    EXIT_TEST_FAILED,
    EXIT_UNREACHABLE,
    node_url,
    status_sections,
)


def diag(*args: str, pin: str | None = PIN) -> Result:
    env = {"COLUMNS": "160", "WATCHPOST_PIN": pin, "WATCHPOST_NODE": None}
    return CliRunner().invoke(main, ["diag", *args], env=env)


def assert_clean_failure(result: Result, code: int) -> None:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)  # not a traceback
    assert "Traceback" not in result.output
    assert result.stderr.startswith("diag: ")


# --- status ---------------------------------------------------------------------------------------


def test_status_prints_the_nodes_tables(node: ServedNode) -> None:
    result = diag("status", "--node", node.url)

    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in ("Node", "Uplink", "Outbox backlog", "Pole controller and link", "Bell", "Door", "Lamp"):
        assert title in out
    assert NODE_ID in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 3}
    assert "250" in lines["video"]
    assert "17" in lines["telemetry"]
    assert "270" in lines["total"]
    assert "offline" in lines["state"]
    assert "cam-south" in out
    # A camera's detail is shown as it is, not read as rich markup.
    assert "[red]timeout" in out
    assert "412.0 GB" in out


def test_status_json_is_the_nodes_answer(node: ServedNode) -> None:
    result = diag("status", "--node", node.url, "--json")

    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["node"]["id"] == NODE_ID
    assert status["outbox"]["backlog"]["video"] == 250


def test_the_node_and_the_pin_can_come_from_the_environment(node: ServedNode) -> None:
    result = CliRunner().invoke(
        main, ["diag", "status", "--json"], env={"WATCHPOST_NODE": node.url, "WATCHPOST_PIN": PIN}
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["node"]["id"] == NODE_ID


# --- self-tests --------------------------------------------------------------------------------------


def test_self_test_runs_and_prints_the_result(node: ServedNode) -> None:
    result = diag("self-test", "bell-circuit", "--node", node.url)

    assert result.exit_code == 0, result.output
    assert "passed" in result.stdout
    assert "normal" in result.stdout
    assert node.target.ran == ["bell-circuit"]


def test_a_failed_self_test_exits_1(node: ServedNode) -> None:
    result = diag("self-test", "mqtt", "--node", node.url)

    assert result.exit_code == EXIT_TEST_FAILED
    assert "FAILED" in result.stdout
    assert "PUBACK" in result.stdout


def test_an_unknown_self_test_names_the_ones_the_node_has(node: ServedNode) -> None:
    result = diag("self-test", "lamp", "--node", node.url)

    assert_clean_failure(result, EXIT_REFUSED)
    assert "unknown self-test 'lamp'; accepted: bell-circuit, mqtt" in result.stderr


# --- visits ----------------------------------------------------------------------------------------


def test_check_in_is_signed_and_queued_while_the_uplink_is_down(node: ServedNode) -> None:
    result = diag("check-in", "--technician", "Anna Berg", "--note", "cabinet door", "--node", node.url)

    assert result.exit_code == 0, result.output
    assert "queued, will be sent when the uplink is back" in result.stdout
    assert "Anna Berg" in result.stdout
    [visit] = node.target.outbox
    assert (visit.action, visit.technician, visit.note, visit.fault_id) == (
        "check-in",
        "Anna Berg",
        "cabinet door",
        None,
    )
    assert visit.visit_id in result.stdout


def test_resolve_json_gives_a_visit_that_verifies(node: ServedNode) -> None:
    result = diag("resolve", "--technician", "anna", "--fault", "f-2026-0117", "--node", node.url, "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    visit = msgspec.convert(answer["visit"], SiteVisit)
    assert visit.fault_id == "f-2026-0117"
    assert verify_visit(NODE_ID, visit, node.target.key.public_key())


def test_resolve_needs_the_fault(node: ServedNode) -> None:
    result = diag("resolve", "--technician", "anna", "--node", node.url)

    assert result.exit_code == 2
    assert "--fault" in result.output
    assert node.target.outbox == []


def test_check_out_with_a_bad_fault_id_names_the_field(node: ServedNode) -> None:
    result = diag("check-out", "--technician", "anna", "--fault", "Fault 7", "--node", node.url)

    assert_clean_failure(result, EXIT_REFUSED)
    assert "fault_id" in result.stderr
    assert node.target.outbox == []


# --- failures ---------------------------------------------------------------------------------------


def test_a_wrong_pin_exits_4(node: ServedNode) -> None:
    result = diag("status", "--node", node.url, pin="111111")

    assert_clean_failure(result, EXIT_NOT_AUTHORIZED)
    assert "wrong PIN" in result.stderr


def test_a_locked_login_exits_5(node: ServedNode) -> None:
    for _ in range(5):
        diag("status", "--node", node.url, pin="111111")

    result = diag("status", "--node", node.url)

    assert_clean_failure(result, EXIT_LOCKED_OUT)
    assert "locked" in result.stderr


def test_a_node_with_diagnostics_disabled_exits_6(disabled_node: ServedNode) -> None:
    result = diag("status", "--node", disabled_node.url)

    assert_clean_failure(result, EXIT_DISABLED)
    assert "http.pin_file" in result.stderr


def test_an_unreachable_node_exits_3() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    result = diag("status", "--node", f"127.0.0.1:{port}")

    assert_clean_failure(result, EXIT_UNREACHABLE)
    assert f"cannot reach the node at http://127.0.0.1:{port}" in result.stderr


class _NotANode(http.server.BaseHTTPRequestHandler):
    """A web server that is not a watchpost node: a router's admin page, say."""

    def _page(self) -> None:
        body = b"<html><body>router login</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_address_that_is_not_a_node_is_said_so() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotANode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = diag("status", "--node", f"127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)

    assert_clean_failure(result, EXIT_REFUSED)
    assert "does not look like a watchpost node" in result.stderr


def test_an_address_that_is_not_one_is_a_usage_error() -> None:
    result = diag("status", "--node", "ftp://10.0.0.5")

    assert result.exit_code == 2
    assert "http://" in result.output


# --- pure parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("10.0.0.5", "http://10.0.0.5:8080"),
        ("10.0.0.5:9000", "http://10.0.0.5:9000"),
        ("http://10.0.0.5:8080/", "http://10.0.0.5:8080"),
        ("http://10.0.0.5:8080/diag/", "http://10.0.0.5:8080"),
        ("http://pole-42.local", "http://pole-42.local"),
        (" node-7:8080 ", "http://node-7:8080"),
    ],
)
def test_node_addresses(given: str, url: str) -> None:
    assert node_url(given) == url


@pytest.mark.parametrize("given", ["", "ftp://10.0.0.5", "http://:8080", "10.0.0.5:99999"])
def test_node_addresses_that_are_not(given: str) -> None:
    with pytest.raises(ValueError, match=r"http://|port|address"):
        node_url(given)


def test_status_sections_put_the_pole_under_bell_door_lamp_and_controller() -> None:
    sections = {s.title: dict(s.rows) for s in status_sections(FakeNode().status()) if s.columns is None}

    assert sections["Bell"] == {"loop": "normal", "bell_down": "no", "bell_presses": "12"}
    assert sections["Door"] == {"door_open": "yes"}
    assert sections["Lamp"] == {"lamp_on": "no", "lamp_on_until_ms": "-"}
    assert sections["Pole controller and link"]["link_counters.retransmits"] == "3"
    assert sections["Outbox backlog"]["total"] == "270"
    assert sections["Node"]["uptime_s"] == "2 h 03 min"
    assert sections["Node"]["time_ms"] == "2025-11-24 16:00:00 UTC"
    assert sections["More"] == {"counters.alarms": "2", "counters.events": "40"}


def test_status_sections_survive_a_node_that_reports_little() -> None:
    sections = status_sections({"node": {"id": "pole-1"}})

    assert [s.title for s in sections][:3] == ["Node", "Uplink", "Outbox backlog"]
    assert dict(sections[0].rows) == {"id": "pole-1"}
    assert dict(sections[2].rows) == {"total": "0"}
