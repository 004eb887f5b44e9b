"""A small HTTP server for OTA tests, standing in for the fleet's `/ota/v1/releases/…`: serves
files from memory with `Range` (206, 416), can ignore Range (200), cut a response half-way
(the connection drops), or hold it half-way until the test lets go; remembers every request."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class Seen:
    path: str
    range: str | None


@dataclass
class Behaviour:
    ignore_range: bool = False
    cut_at: dict[str, int] = field(default_factory=dict)  # path -> drop the connection after N bytes, once
    hold_at: dict[str, int] = field(default_factory=dict)  # path -> stop after N bytes until released, once


class ReleaseServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[Seen] = []
        self.behaviour = Behaviour()
        self.holding = threading.Event()  # a held response has sent its first part
        self.release_hold = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="release-server",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def requests_for(self, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                wanted = self.headers.get("Range")
                with server._lock:
                    server.requests.append(Seen(self.path, wanted))
                    data = server.files.get(self.path)
                    behaviour = server.behaviour
                    cut = behaviour.cut_at.pop(self.path, None)
                    hold = behaviour.hold_at.pop(self.path, None)
                if data is None:
                    self._reply(404, b"not found")
                    return
                start = 0
                match = _RANGE.match(wanted or "")
                if match and not behaviour.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                stop = cut if cut is not None else hold
                if stop is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[: max(0, stop - start)])
                self.wfile.flush()
                if hold is not None:
                    server.holding.set()
                    server.release_hold.wait(60)
                self.close_connection = True

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release_hold.set()
        self._server.shutdown()
        self._server.server_close()
