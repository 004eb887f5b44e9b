"""The little of RTSP (RFC 2326) the camera probe speaks, without I/O: the OPTIONS request it
sends and the status line it reads back. edge.cameras.probe does the socket work; the fake
camera (edge.cameras.fake) answers with `response`."""

from __future__ import annotations

import re
from dataclasses import dataclass

USER_AGENT = "watchpost-edge"
MAX_STATUS_LINE = 1024  # a status line is a few dozen bytes; more is not an RTSP server talking

# RFC 2326 section 7.1: RTSP-Version SP Status-Code SP Reason-Phrase CRLF.
_STATUS_LINE = re.compile(r"^RTSP/(\d)\.(\d) ([1-5]\d\d)(?: ([^\r\n]*))?\r?\n?$")

REASON_PHRASES = {
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    454: "Session Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class StatusLine:
    version: str  # "1.0"
    code: int
    phrase: str

    def __str__(self) -> str:
        return f"RTSP {self.code} {self.phrase}".rstrip()


def url(host: str, port: int) -> str:
    # An IPv6 literal goes in brackets, as in any URL (RFC 2326 section 3.2 follows RFC 2396).
    return f"rtsp://[{host}]:{port}/" if ":" in host else f"rtsp://{host}:{port}/"


def options_request(host: str, port: int, cseq: int) -> bytes:
    """OPTIONS for the camera's root: every RTSP server must answer it, no auth or stream
    path needed to learn that one is there."""
    return (f"OPTIONS {url(host, port)} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: {USER_AGENT}\r\n\r\n").encode(
        "ascii"
    )


def parse_status_line(line: bytes) -> StatusLine | None:
    """The status line of an RTSP response; None if `line` is not one."""
    text = line.decode("ascii", errors="replace")
    match = _STATUS_LINE.match(text)
    if match is None:
        return None
    major, minor, code, phrase = match.groups()
    return StatusLine(f"{major}.{minor}", int(code), (phrase or "").strip())


def response(code: int, cseq: str, *, headers: dict[str, str] | None = None) -> bytes:
    """An RTSP response head, for the fake camera."""
    lines = [f"RTSP/1.0 {code} {REASON_PHRASES.get(code, 'Status')}", f"CSeq: {cseq}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def request_cseq(head: bytes) -> str | None:
    """The CSeq header of a request head, for the fake camera's answer."""
    for line in head.decode("ascii", errors="replace").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "cseq":
            return value.strip()
    return None
