"""`watchpost diag`: a technician's client for a node's diagnostics API (edge.diagnostics), from a
laptop on the pole's service interface or on the node itself.

Only the standard library talks HTTP here, and rich draws the tables, so the base install plus
rich is enough. Every failure is a DiagError with an exit code; watchpost.cli prints it.
"""

from __future__ import annotations

import datetime
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 8080  # edge.config.HttpConfig.port
DEFAULT_TIMEOUT_S = 30.0  # a self-test may wait 10 s for a PUBACK, camera probes a few more
ACTIONS = ("check-in", "resolve", "check-out")

# Exit codes, for scripts (docs/diagnostics.md lists them).
EXIT_TEST_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_NOT_AUTHORIZED = 4
EXIT_LOCKED_OUT = 5
EXIT_DISABLED = 6
EXIT_REFUSED = 7


class DiagError(Exception):
    """Base of `watchpost diag` failures; `exit_code` is what the command exits with."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NodeUnreachable(DiagError):
    exit_code = EXIT_UNREACHABLE


class NotAuthorized(DiagError):
    """Wrong PIN, or a session the node no longer knows."""

    exit_code = EXIT_NOT_AUTHORIZED


class LockedOut(DiagError):
    exit_code = EXIT_LOCKED_OUT

    def __init__(self, message: str, *, retry_after_s: int | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DiagnosticsDisabled(DiagError):
    exit_code = EXIT_DISABLED


class NodeRefused(DiagError):
    """The node answered a request with an error: `status`, its `reason` code, the `field`."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, status: int, reason: str | None, field: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.field = field


def node_url(text: str) -> str:
    """The node's base URL from what a technician types: `10.0.0.5` means
    http://10.0.0.5:8080; a pasted page address (…/diag/) is taken back to the node."""
    given = text.strip()
    if not given:
        raise ValueError("give the node's address, e.g. http://10.0.0.5:8080")
    bare = "://" not in given
    parts = urllib.parse.urlsplit(f"http://{given}" if bare else given)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r}: use an http:// address, e.g. http://10.0.0.5:8080")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError(f"{text!r}: no host; e.g. http://10.0.0.5:8080")
    netloc = parts.netloc if port is not None or not bare else f"{parts.netloc}:{DEFAULT_PORT}"
    path = parts.path.rstrip("/")
    path = path.removesuffix("/diag")
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


class NodeClient:
    """One technician's session with one node: `login()` first, then the calls.

    Proxies from the environment are ignored: the node is on the pole's own network."""

    def __init__(self, node: str, *, pin: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base = node_url(node)
        self._pin = pin
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def login(self) -> None:
        answer = self._call("POST", "login", {"pin": self._pin}, authorized=False)
        token = answer.get("token")
        if not isinstance(token, str):
            raise DiagError(f"{self.base} does not look like a watchpost node: its login gave no token")
        self._token = token

    def status(self) -> dict[str, Any]:
        return self._call("GET", "status")

    def self_test(self, name: str) -> dict[str, Any]:
        return self._call("POST", "self-tests/" + urllib.parse.quote(name, safe=""))

    def visit(self, action: str, technician: str, *, fault_id: str | None, note: str) -> dict[str, Any]:
        body: dict[str, Any] = {"action": action, "technician": technician, "note": note}
        if fault_id is not None:
            body["fault_id"] = fault_id
        return self._call("POST", "visits", body)

    def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, authorized: bool = True
    ) -> dict[str, Any]:
        url = f"{self.base}/diag/api/{path}"
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if authorized and self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return self._decode(response.read(), response.status)
        except urllib.error.HTTPError as error:
            refusal = self._refusal(error)
            error.close()
            raise refusal from None
        except urllib.error.URLError as error:
            reason = error.reason
            said = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            raise NodeUnreachable(f"cannot reach the node at {self.base}: {said}") from None
        except TimeoutError:
            raise NodeUnreachable(
                f"the node at {self.base} did not answer within {self.timeout_s:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            raise NodeUnreachable(f"the connection to {self.base} failed: {error!r}") from None

    def _decode(self, raw: bytes, status: int) -> dict[str, Any]:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise DiagError(
                f"{self.base} does not look like a watchpost node: it answered HTTP {status} with no JSON"
            )
        return value

    def _refusal(self, error: urllib.error.HTTPError) -> DiagError:
        try:
            answer = json.loads(error.read())
        except (ValueError, OSError):
            answer = None
        if not isinstance(answer, dict) or "reason" not in answer:
            return NodeRefused(
                f"{self.base} does not look like a watchpost node: "
                f"it answered HTTP {error.code} {error.reason}",
                status=error.code,
                reason=None,
                field=None,
            )
        reason = str(answer.get("reason"))
        detail = str(answer.get("error", ""))
        if reason == "disabled":
            return DiagnosticsDisabled(f"the node says: {detail}")
        if reason == "locked-out":
            retry = answer.get("retry_after_s")
            return LockedOut(
                f"login refused: {detail}", retry_after_s=retry if isinstance(retry, int) else None
            )
        if error.code == 401:
            return NotAuthorized(f"not authorized: {detail}")
        field = answer.get("field")
        return NodeRefused(
            f"the node refused it (HTTP {error.code}, {reason}): {detail}",
            status=error.code,
            reason=reason,
            field=field if isinstance(field, str) else None,
        )


# --- turning answers into tables (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One table: `columns` None for a two-column list of name and value."""

    title: str
    rows: Sequence[tuple[str, ...]]
    columns: tuple[str, ...] | None = None


_SHOWN = {"node", "uplink", "outbox", "pole", "lamp_on_until_ms", "cameras", "storage", "self_tests"}


def status_sections(status: Mapping[str, Any]) -> list[Section]:
    """The node's status (GET /diag/api/status) as the tables a technician reads, in the order
    of the phone page. Keys this client does not know yet still show, under "More"."""
    pole = _mapping(status.get("pole"))
    outbox = _mapping(status.get("outbox"))
    backlog = _mapping(outbox.get("backlog"))
    total = sum(v for v in backlog.values() if isinstance(v, int))
    node_rows = _flatten(_mapping(status.get("node")))
    if "self_tests" in status:
        node_rows.append(("self-tests", _text(status["self_tests"])))
    lamp = _pick(pole, _is_lamp) | {"lamp_on_until_ms": status.get("lamp_on_until_ms")}
    return [
        Section("Node", node_rows),
        Section("Uplink", _flatten(_mapping(status.get("uplink")))),
        Section(
            "Outbox backlog",
            [*_flatten(backlog), ("total", str(total)), *_flatten(_pick(outbox, lambda k: k != "backlog"))],
        ),
        Section(
            "Pole controller and link",
            _flatten(_pick(pole, lambda k: not (_is_bell(k) or _is_door(k) or _is_lamp(k)))),
        ),
        Section("Bell", _flatten(_pick(pole, _is_bell))),
        Section("Door", _flatten(_pick(pole, _is_door))),
        Section("Lamp", _flatten(lamp)),
        Section(
            "Cameras",
            [
                (
                    _text(c.get("camera_id")),
                    _text(c.get("reachable")),
                    _text(c.get("latency_ms")),
                    _text(c.get("detail")),
                )
                for c in _mappings(status.get("cameras"))
            ],
            columns=("camera", "reachable", "latency ms", "detail"),
        ),
        Section(
            "Storage",
            [
                (
                    _text(s.get("device")),
                    _text(s.get("health")),
                    _text(s.get("wear_pct")),
                    _size(s.get("free_bytes")),
                    _text(s.get("reasons")),
                )
                for s in _mappings(status.get("storage"))
            ],
            columns=("device", "health", "wear %", "free", "reasons"),
        ),
        Section("More", _flatten(_pick(status, lambda k: k not in _SHOWN))),
    ]


def self_test_section(answer: Mapping[str, Any]) -> Section:
    result = _mapping(answer.get("result"))
    verdict = "passed" if answer.get("ok") is True else "FAILED"
    rows = [("result", verdict), ("took", f"{_text(answer.get('took_ms'))} ms")]
    rows += _flatten(_pick(result, lambda k: k != "ok"))
    return Section(f"Self-test {_text(answer.get('name'))}", rows)


def visit_section(answer: Mapping[str, Any]) -> Section:
    visit = _mapping(answer.get("visit"))
    rows = [
        ("action", _text(visit.get("action"))),
        ("technician", _text(visit.get("technician"))),
        ("fault", _text(visit.get("fault_id"))),
        ("at (node clock)", _text(visit.get("at"), key="at_ms")),
        ("node", _text(answer.get("node_id"))),
        ("visit id", _text(visit.get("visit_id"))),
        ("signed with key", _text(visit.get("node_key_id"))),
        ("uplink", _text(answer.get("uplink"))),
        ("what happens next", _text(answer.get("detail"))),
    ]
    if visit.get("note"):
        rows.insert(3, ("note", _text(visit.get("note"))))
    return Section("Site visit signed by the node", rows)


def _is_bell(key: str) -> bool:
    return key.startswith("bell") or key in ("loop", "presses")


def _is_door(key: str) -> bool:
    return key.startswith("door")


def _is_lamp(key: str) -> bool:
    return key.startswith("lamp")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _pick(mapping: Mapping[str, Any], keep: Any) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if keep(k)}


def _flatten(value: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, Mapping):
            rows += _flatten(item, name) if item else [(name, "none")]
        elif isinstance(item, list) and any(isinstance(i, Mapping) for i in item):
            for index, element in enumerate(item):
                if isinstance(element, Mapping):
                    rows += _flatten(element, f"{name}[{index}]")
                else:
                    rows.append((f"{name}[{index}]", _text(element)))
        else:
            rows.append((name, _text(item, key=str(key))))
    return rows


def _text(value: Any, *, key: str = "") -> str:
    if value is None or value == "":
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) if value else "none"
    if isinstance(value, int) and key.endswith("_ms") and value > 10**12:
        moment = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, int) and key == "uptime_s":
        return f"{value // 3600} h {value % 3600 // 60:02d} min"
    return str(value)


def _size(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


# --- the commands (watchpost.cli declares them) -------------------------------------------------------


def show(sections: Sequence[Section]) -> None:
    """Print the tables on stdout. Values are rich Text, so a camera's "[red]" stays text."""
    # Imported here: --json works on a base install without rich.
    try:
        from rich.console import Console  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415
    except ImportError:
        raise DiagError("the tables need rich (pip install rich), or use --json") from None

    console = Console(highlight=False)
    for section in sections:
        table = Table(
            title=Text(section.title, style="bold"),
            title_justify="left",
            show_header=section.columns is not None,
        )
        for column in section.columns or ("name", "value"):
            table.add_column(Text(column), overflow="fold")
        for row in section.rows or [("-",) * len(section.columns or ("", ""))]:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def status_command(node: str, pin: str, *, timeout_s: float, as_json: bool) -> int:
    client = NodeClient(node, pin=pin, timeout_s=timeout_s)
    client.login()
    status = client.status()
    if as_json:
        print_json(status)
    else:
        show(status_sections(status))
    return 0


def self_test_command(node: str, pin: str, name: str, *, timeout_s: float, as_json: bool) -> int:
    """Exits 1 when the self-test ran and reported a failure."""
    client = NodeClient(node, pin=pin, timeout_s=timeout_s)
    client.login()
    answer = client.self_test(name)
    if as_json:
        print_json(answer)
    else:
        show([self_test_section(answer)])
    return 0 if answer.get("ok") is True else EXIT_TEST_FAILED


def visit_command(
    node: str,
    pin: str,
    action: str,
    *,
    technician: str,
    fault_id: str | None,
    note: str,
    timeout_s: float,
    as_json: bool,
) -> int:
    client = NodeClient(node, pin=pin, timeout_s=timeout_s)
    client.login()
    answer = client.visit(action, technician, fault_id=fault_id, note=note)
    if as_json:
        print_json(answer)
    else:
        show([visit_section(answer)])
    return 0
