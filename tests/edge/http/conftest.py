"""Helpers for the tests of edge.http: a server on a free loopback port, run by an event loop in
a thread of its own so plain blocking clients (http.client, raw sockets) can call it from the
test's thread; a raw exchange; and a small parser for what came back, malformed input included."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edge.http import (
    HttpError,
    HttpServer,
    Request,
    Response,
    Router,
    json_response,
    text_response,
)


class Served:
    """A running server, its port, and what its event loop reported unhandled (must stay empty)."""

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.port = server.port
        self.loop_errors: list[dict[str, Any]] = []

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)


@contextlib.contextmanager
def serving(router: Router, **settings: Any) -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="http-server", daemon=True)
    thread.start()
    server = HttpServer(router, "127.0.0.1", 0, **settings)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        served = Served(server, loop)
        loop.set_exception_handler(lambda _, context: served.loop_errors.append(context))
        try:
            yield served
        finally:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=30)
        assert served.loop_errors == []
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


class Calls:
    """The test app's handlers, and what they saw."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.release = threading.Event()

    def router(self) -> Router:
        router = Router()
        router.get("/hello", self.hello)
        router.post("/echo", self.echo)
        router.get("/items/{name}", self.item)
        router.get("/boom", self.boom)
        router.get("/refuse", self.refuse)
        router.get("/bad-header", self.bad_header)
        router.get("/bye", self.bye)
        return router

    async def hello(self, request: Request) -> Response:
        self.seen.append(request)
        return text_response("hello")

    async def echo(self, request: Request) -> Response:
        self.seen.append(request)
        return json_response({"size": len(request.body), "body": request.body.decode()})

    async def item(self, request: Request) -> Response:
        self.seen.append(request)
        return json_response({"name": request.path_params["name"], "query": request.query})

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("the handler broke")

    async def refuse(self, request: Request) -> Response:
        raise HttpError(409, "busy-here", "try again later")

    async def bad_header(self, request: Request) -> Response:
        return Response(200, b"x", {"X-Broken": "one\r\nInjected: two"})

    async def bye(self, request: Request) -> Response:
        return Response(200, b"bye", close=True)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lowercase
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_answers(data: bytes, *, head_only: bool = False) -> list[Answer]:
    """The responses in `data`, framed by Content-Length (which the server always sends)."""
    answers = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        assert separator, f"an incomplete answer: {data!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            assert colon, line
            headers[name.lower()] = value.strip()
        length = 0 if head_only or int(status) < 200 else int(headers.get("content-length", "0"))
        answers.append(Answer(int(status), headers, rest[:length]))
        data = rest[length:]
    return answers


def read_to_end(sock: socket.socket) -> bytes:
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def exchange(served: Served, data: bytes) -> bytes:
    """Send `data`, say we are done sending, and read until the server closes."""
    with served.connect() as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_to_end(sock)


def get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: node", *extra, "", ""]).encode()
