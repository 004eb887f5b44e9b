"""The node's small HTTP/1.1 server: asyncio streams around h11's sans-I/O parser, serving a
Router (edge.http.router) of handlers that take a Request and return a Response
(edge.http.messages). The camera metadata pushes and the technicians' diagnostics use it.

Why not aiohttp: the agent must stay under about 60 MB of RSS on a Raspberry Pi, and importing
aiohttp's server costs some 10 MB by itself, for far more than the node needs: a few small JSON
endpoints on the pole's own network. h11 parses and frames HTTP/1.1 correctly in a few hundred
kB; what is left here is the I/O and the limits a server on a cable in a pole cabinet needs:

- a body limit: a Content-Length over it is refused before the body is read, a chunked body is
  read only up to it; either way the connection closes after the answer;
- a timeout for a request's head, for each read of its body and for each write, so a silent
  or stalled client cannot hold a connection;
- a cap on connections at once, the ones over it answered 503 and closed;
- a malformed request answered 400 (431 for a head too large) and its connection closed; a
  handler that raises answered 500 and logged, the server going on.

The only module that imports h11.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any

import h11

from .errors import BodyTooLarge, HttpError
from .messages import Headers, Request, Response, http_date, json_response, reason_phrase
from .router import Router

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
MAX_HEAD_BYTES = 16 * 1024
LINGER_S = 2.0
_READ_CHUNK = 64 * 1024
_LINGER_BYTES = 16 * 1024 * 1024  # discarded at most while lingering before a close
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_NO_BODY = frozenset({204, 304})


class HttpServer:
    """`await server.start()` listens on host:port (port 0: a free one, see `port`); `await
    server.close()` stops listening and ends the connections. Also `async with server:`.

    `max_body_bytes` bounds a request's body; `idle_timeout_s` bounds the wait for a request's
    head (whole), for each read of its body and for each write; `max_connections` bounds the
    connections served at once; `max_head_bytes` the request line and header fields together;
    `linger_s` how long the rest of a refused request is read and dropped before closing, so
    the client gets to read the answer instead of a reset.
    """

    def __init__(
        self,
        router: Router,
        host: str,
        port: int,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        max_head_bytes: int = MAX_HEAD_BYTES,
        linger_s: float = LINGER_S,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes {max_body_bytes} is not allowed: use 0 or more")
        if idle_timeout_s <= 0 or linger_s < 0:
            raise ValueError("idle_timeout_s must be more than 0 s and linger_s 0 s or more")
        if max_connections < 1:
            raise ValueError(f"max_connections {max_connections} is not allowed: use 1 or more")
        if max_head_bytes < 1024:
            raise ValueError(f"max_head_bytes {max_head_bytes} is not allowed: use 1024 or more")
        self.router = router
        self.host = host
        self.requested_port = port
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.max_head_bytes = max_head_bytes
        self.linger_s = linger_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._serving = 0  # connections served now, not counting those refused as busy

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the HTTP server is already started")
        self._server = await asyncio.start_server(self._accept, self.host, self.requested_port)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where it listens, (host, port) per socket."""
        if self._server is None:
            return []
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]

    @property
    def port(self) -> int:
        addresses = self.addresses
        if not addresses:
            raise RuntimeError("the HTTP server is not started")
        return addresses[0][1]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A task of our own rather than a coroutine for asyncio to wrap: close() cancels these,
        # and asyncio would report a cancelled connection callback as an error.
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer), name="http-connection")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        try:
            if self._serving >= self.max_connections:
                await connection.refuse_busy()
                return
            self._serving += 1
            try:
                await connection.serve()
            finally:
                self._serving -= 1
        except Exception:
            # A bug here ends this one connection, never the server.
            log.exception("HTTP connection from %s failed", connection.remote)


class _Connection:
    """One client's connection: requests in turn (keep-alive), each read whole, answered, and
    the connection closed when either side says so or something goes wrong."""

    def __init__(
        self, server: HttpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=server.max_head_bytes)
        self.method = ""  # of the request being answered: a HEAD gets no body
        peer = writer.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) and peer else None

    async def serve(self) -> None:
        try:
            while await self._exchange():
                self.h11.start_next_cycle()
                self.method = ""
        except OSError as error:  # the client went away (reset, broken pipe)
            log.debug("HTTP connection from %s ended: %r", self.remote, error)
        finally:
            await self._close()

    async def refuse_busy(self) -> None:
        log.warning(
            "HTTP connection from %s refused: %d connections already",
            self.remote,
            self.server.max_connections,
        )
        try:
            await self._write(
                _answer_alone(
                    json_response(
                        {"error": "the node is busy with other connections: try again", "reason": "busy"},
                        status=503,
                        headers={"Retry-After": "1"},
                    )
                )
            )
        except (OSError, TimeoutError) as error:
            log.debug("busy answer to %s not sent: %r", self.remote, error)
        await self._close(linger=True)

    async def _exchange(self) -> bool:
        """One request and its answer; True to go on to the next on this connection."""
        try:
            head = await self._read_head()
            if head is None:
                return False
            request = await self._read_request(head)
        except h11.RemoteProtocolError as error:
            status = error.error_status_hint
            if status == 431:
                limit = self.server.max_head_bytes
                await self._refuse(
                    431, "head-too-large", f"the request line and fields are over {limit} bytes"
                )
            elif status == 400:
                await self._refuse(400, "bad-request", f"malformed HTTP/1.1 request: {error}")
            else:
                await self._refuse(status, "refused", f"HTTP/1.1 request refused: {error}")
            return False
        except TimeoutError:
            if self.h11.their_state is h11.IDLE and not self.h11.trailing_data[0]:
                return False  # a silent or idle keep-alive connection: just close it
            await self._refuse(
                408, "timeout", f"the request did not arrive within {self.server.idle_timeout_s:g} s"
            )
            return False
        await self._send(await self._answer(request), request.method)
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def _read_head(self) -> h11.Request | None:
        async with asyncio.timeout(self.server.idle_timeout_s):
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    await self._receive()
                elif isinstance(event, h11.Request):
                    self.method = event.method.decode("ascii")
                    # h11 checks the size of a head still incomplete; one that came whole in a
                    # single read is checked here.
                    size = (
                        len(event.method)
                        + len(event.target)
                        + sum(len(n) + len(v) + 4 for n, v in event.headers)
                    )
                    if size > self.server.max_head_bytes:
                        raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
                    return event
                else:  # ConnectionClosed: the client is done
                    return None

    async def _read_request(self, head: h11.Request) -> Request:
        limit = self.server.max_body_bytes
        headers = Headers(
            (name.decode("ascii"), value.decode("utf-8", "surrogateescape")) for name, value in head.headers
        )
        method = self.method
        target = head.target.decode("ascii")
        if "Transfer-Encoding" not in headers and int(headers.get("Content-Length", "0")) > limit:
            # Refused unread: a client that waits for 100 Continue never sends it.
            too_large = BodyTooLarge(limit=limit, size=int(headers["Content-Length"]))
            return Request(method, target, headers, too_large=too_large, remote=self.remote)
        body = bytearray()
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                if self.h11.they_are_waiting_for_100_continue:
                    await self._write(
                        self.h11.send(
                            h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                        )
                    )
                async with asyncio.timeout(self.server.idle_timeout_s):
                    await self._receive()
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    too_large = BodyTooLarge(limit=limit, size=None)
                    return Request(method, target, headers, too_large=too_large, remote=self.remote)
            elif isinstance(event, h11.EndOfMessage):
                return Request(method, target, headers, body=bytes(body), remote=self.remote)
            else:  # h11 raises for a body cut short; nothing else can come here
                raise h11.RemoteProtocolError(f"unexpected {event!r} in a request body")

    async def _answer(self, request: Request) -> Response:
        try:
            return await self.server.router.handle(request)
        except HttpError as error:
            return json_response({"error": error.detail, "reason": error.reason}, status=error.status)
        except Exception:
            log.exception("HTTP handler for %s %s failed", request.method, request.path)
            return json_response(
                {
                    "error": f"the node failed answering {request.method} {request.path}: see its log",
                    "reason": "internal-error",
                },
                status=500,
            )

    async def _send(self, response: Response, method: str, *, close: bool = False) -> None:
        # A body still unread (refused as too large) must not be taken for the next request.
        close = close or response.close or self.h11.their_state is not h11.DONE
        try:
            data = self.h11.send(_head(response, close=close))
            if response.body and method != "HEAD" and response.status not in _NO_BODY:
                data += self.h11.send(h11.Data(data=response.body))
            data += self.h11.send(h11.EndOfMessage())
        except (h11.LocalProtocolError, ValueError) as error:
            # A handler's bug (a header h11 cannot send): the client still gets an answer.
            log.error("HTTP response to %s %d could not be sent: %s", method, response.status, error)
            data = _answer_alone(
                json_response(
                    {
                        "error": "the node made an answer it cannot send: see its log",
                        "reason": "internal-error",
                    },
                    status=500,
                )
            )
        await self._write(data)

    async def _refuse(self, status: int, reason: str, detail: str) -> None:
        log.info("HTTP request from %s refused (%d %s): %s", self.remote, status, reason, detail)
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = json_response({"error": detail, "reason": reason}, status=status)
        with contextlib.suppress(OSError, TimeoutError):
            await self._send(response, self.method, close=True)

    async def _receive(self) -> None:
        self.h11.receive_data(await self.reader.read(_READ_CHUNK))

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.server.idle_timeout_s):
            await self.writer.drain()

    async def _close(self, *, linger: bool | None = None) -> None:
        """Close; first, if the client may still be sending (a refused body, a malformed
        request), stop writing and read and drop what comes for a while: closing with unread
        data makes the kernel reset the connection, and the client may lose the answer."""
        if linger is None:
            their_state = self.h11.their_state
            linger = their_state in (h11.SEND_BODY, h11.ERROR) or (
                their_state is h11.IDLE and bool(self.h11.trailing_data[0])
            )
        try:
            if linger and self.writer.can_write_eof() and not self.writer.is_closing():
                self.writer.write_eof()
                dropped = 0
                async with asyncio.timeout(self.server.linger_s):
                    while dropped < _LINGER_BYTES and (chunk := await self.reader.read(_READ_CHUNK)):
                        dropped += len(chunk)
        except (OSError, TimeoutError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


def _head(response: Response, *, close: bool) -> h11.Response:
    headers = [
        (name.encode("ascii"), value.encode())
        for name, value in response.headers.items()
        if name.lower() not in _FRAMING
    ]
    if response.status >= 200 and response.status not in _NO_BODY:
        headers.append((b"Content-Length", str(len(response.body)).encode()))
    headers.append((b"Date", http_date(time.time()).encode()))
    if close:
        headers.append((b"Connection", b"close"))
    return h11.Response(status_code=response.status, headers=headers, reason=reason_phrase(response.status))


def _answer_alone(response: Response) -> bytes:
    """A whole answer, Connection: close, outside any request's cycle (when the connection's
    own state machine cannot send it)."""
    connection = h11.Connection(h11.SERVER)
    data = connection.send(_head(response, close=True))
    data += connection.send(h11.Data(data=response.body))
    data += connection.send(h11.EndOfMessage())
    return data
