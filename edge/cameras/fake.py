"""A fake camera on a loopback port, beside the real probe (edge.cameras.probe): an asyncio
server that answers RTSP OPTIONS as a camera would, or answers wrongly, or says nothing. No
camera exists where the tests and the demo run."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

from . import rtsp

PUBLIC_METHODS = "OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER"


class FakeCamera:
    """`async with FakeCamera() as camera:` then probe `CameraConfig(host=camera.host,
    port=camera.port, ...)`.

    By default it answers every OPTIONS with `status` (200 with a Public header; 401 with a
    Digest challenge, as a camera wanting credentials does). `silent=True` accepts the
    connection and never answers; `raw_reply` is sent, whatever was asked, instead of an RTSP
    answer (an HTTP server, an SSH banner, noise). `requests` holds the request heads it read.
    """

    def __init__(
        self,
        *,
        status: int = 200,
        silent: bool = False,
        raw_reply: bytes | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if silent and raw_reply is not None:
            raise ValueError("give silent=True or raw_reply=, not both: a silent camera sends nothing")
        if not 100 <= status <= 599:
            raise ValueError(f"status {status} is not allowed: use an RTSP status code from 100 to 599")
        self.status = status
        self.silent = silent
        self.raw_reply = raw_reply
        self.host = host
        self._port = port
        self.requests: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake camera is not started: use `async with FakeCamera() as camera`")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.host, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            # Python 3.11's Server.wait_closed does not wait for the connections' handlers.
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            if self.silent:
                await self._closing.wait()
                return
            while not self._closing.is_set():
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                self.requests.append(head)
                writer.write(self._answer(head))
                await writer.drain()
        except ConnectionError:
            return  # the prober hung up first
        finally:
            self._writers.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> bytes:
        if self.raw_reply is not None:
            return self.raw_reply
        cseq = rtsp.request_cseq(head) or "0"
        if self.status == 200:
            return rtsp.response(200, cseq, headers={"Public": PUBLIC_METHODS})
        if self.status == 401:
            return rtsp.response(401, cseq, headers={"WWW-Authenticate": 'Digest realm="fake", nonce="0"'})
        return rtsp.response(self.status, cseq)
