"""A request as a handler sees it (head and whole body, already read) and the response it returns,
with helpers for the answers the node gives: JSON, HTML or text, a redirect. No I/O here: the
server (edge.http.server) fills a Request from the wire and writes the Response back.
"""

from __future__ import annotations

import http
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .errors import BodyTooLarge


class Headers(Mapping[str, str]):
    """A request's header fields, looked up case-insensitively. A field sent more than once
    reads as its values joined by ", " (RFC 9110 section 5.3); iteration gives lowercase names."""

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        joined: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self._fields = joined

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        # Names only: the values may be secrets (Authorization, the ingest token).
        return f"Headers({list(self._fields)!r})"


class Request:
    """One request, its body read whole before the handler sees it. `path` is percent-decoded;
    `path_params` holds what the route's `{name}` segments matched; `remote` is the peer's
    address. Reading `body` raises BodyTooLarge when the body was over the server's limit: the
    server then read none or only part of it."""

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        *,
        body: bytes = b"",
        too_large: BodyTooLarge | None = None,
        remote: str | None = None,
    ) -> None:
        self.method = method
        self.target = target  # as sent: path and query, percent-encoded
        self.headers = headers
        self.remote = remote
        self.path_params: dict[str, str] = {}
        self._body = body
        self._too_large = too_large

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} from {self.remote}>"

    @property
    def path(self) -> str:
        return urllib.parse.unquote(self.raw_path)

    @property
    def raw_path(self) -> str:
        return self._split_target()[0]

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters; of one sent twice, the last."""
        return dict(urllib.parse.parse_qsl(self._split_target()[1], keep_blank_values=True))

    @property
    def body(self) -> bytes:
        if self._too_large is not None:
            raise self._too_large
        return self._body

    @property
    def content_type(self) -> str:
        """The media type, lowercase, without parameters; application/octet-stream when the
        request names none (RFC 9110 section 8.3)."""
        return self._content_type()[0] or "application/octet-stream"

    @property
    def charset(self) -> str | None:
        return self._content_type()[1].get("charset")

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    def _split_target(self) -> tuple[str, str]:
        target = self.target
        if not target.startswith("/") and "://" in target:  # absolute-form (RFC 9112 section 3.2.2)
            parts = urllib.parse.urlsplit(target)
            return parts.path or "/", parts.query
        path, _, query = target.partition("?")
        return path, query

    def _content_type(self) -> tuple[str, dict[str, str]]:
        media_type, *parameters = self.headers.get("Content-Type", "").split(";")
        named: dict[str, str] = {}
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            named[name.strip().lower()] = value.strip().strip('"')
        return media_type.strip().lower(), named


@dataclass
class Response:
    """What a handler answers. The server sets Content-Length (and Connection); `close` asks it
    to close the connection after this answer, e.g. when an unread body may still be coming."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def json_response(value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status,
        msgspec.json.encode(value),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def text_response(
    text: str,
    *,
    status: int = 200,
    content_type: str = "text/plain",
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8", **(headers or {})}
    )


def html_response(html: str, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return text_response(html, status=status, content_type="text/html", headers=headers)


def redirect(location: str, *, status: int = 308) -> Response:
    """308 by default: permanent, and the method and body are kept."""
    return text_response(f"{status}: {reason_phrase(status)}", status=status, headers={"Location": location})


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """IMF-fixdate (RFC 9110 section 5.6.7), whatever the locale."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
