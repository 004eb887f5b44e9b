"""The node's HTTP server (edge.http.server) on a real loopback socket, called with http.client and
raw sockets: keep-alive, routing answers, body limits, malformed requests, timeouts, handler
failures, the connection cap, and closing."""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import time
from typing import Any

import pytest

from edge.http import HttpServer, Request, Response, Router, json_response
from tests.edge.http.conftest import (
    Answer,
    Calls,
    Served,
    exchange,
    get,
    parse_answers,
    read_to_end,
    serving,
)


def read_answer(sock: socket.socket) -> Answer:
    """Read exactly one answer, leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(parse_answers(head + b"\r\n\r\n", head_only=True)[0].headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of an answer"
        body += chunk
    (answer,) = parse_answers(head + b"\r\n\r\n" + body)
    return answer


def post_head(path: str, *fields: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: node", *fields, "", ""]).encode()


# --- requests and keep-alive ------------------------------------------------------------------------


def test_one_connection_serves_request_after_request() -> None:
    calls = Calls()
    with serving(calls.router()) as served:
        client = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        try:
            client.request("GET", "/hello")
            first = client.getresponse()
            first_body = first.read()
            sock = client.sock
            client.request("POST", "/echo", body=b"pole 42", headers={"Content-Type": "text/plain"})
            second = client.getresponse()
            second_body = second.read()
            assert client.sock is sock  # the same connection, kept alive
        finally:
            client.close()

    assert (first.status, first_body, first.getheader("Content-Type")) == (
        200,
        b"hello",
        "text/plain; charset=utf-8",
    )
    assert first.getheader("Connection") is None
    assert first.getheader("Date", "").endswith(" GMT")
    assert (second.status, second_body) == (200, b'{"size":7,"body":"pole 42"}')
    request = calls.seen[1]
    assert (request.method, request.path, request.remote) == ("POST", "/echo", "127.0.0.1")
    assert request.headers["content-type"] == request.headers["CONTENT-TYPE"] == "text/plain"


def test_pipelined_requests_are_answered_in_order() -> None:
    calls = Calls()
    with serving(calls.router()) as served:
        data = get("/items/a") + get("/items/b?x=1") + get("/hello", "Connection: close")
        answers = parse_answers(exchange(served, data))

    assert [a.status for a in answers] == [200, 200, 200]
    assert [answers[0].json(), answers[1].json()] == [
        {"name": "a", "query": {}},
        {"name": "b", "query": {"x": "1"}},
    ]
    assert answers[2].headers["connection"] == "close"


def test_a_client_that_says_connection_close_gets_it() -> None:
    with serving(Calls().router()) as served, served.connect() as sock:
        sock.sendall(get("/hello", "Connection: close"))
        answers = parse_answers(read_to_end(sock))  # the server closes: no SHUT_WR needed

    assert [(a.status, a.headers["connection"], a.body) for a in answers] == [(200, "close", b"hello")]


def test_an_http_1_0_client_is_answered_and_closed() -> None:
    with serving(Calls().router()) as served, served.connect() as sock:
        sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        (answer,) = parse_answers(read_to_end(sock))

    assert (answer.status, answer.body, answer.headers["connection"]) == (200, b"hello", "close")


def test_a_handler_can_ask_to_close_the_connection() -> None:
    with serving(Calls().router()) as served, served.connect() as sock:
        sock.sendall(get("/bye"))
        (answer,) = parse_answers(read_to_end(sock))

    assert (answer.status, answer.body, answer.headers["connection"]) == (200, b"bye", "close")


def test_head_gets_the_headers_of_get_without_the_body() -> None:
    with serving(Calls().router()) as served:
        raw = exchange(served, get("/hello").replace(b"GET", b"HEAD", 1))

    (answer,) = parse_answers(raw, head_only=True)
    assert raw.endswith(b"\r\n\r\n")
    assert (answer.status, answer.headers["content-length"]) == (200, "5")


# --- the router's answers -----------------------------------------------------------------------------


def test_an_unknown_path_is_a_json_404() -> None:
    with serving(Calls().router()) as served:
        (answer,) = parse_answers(exchange(served, get("/nowhere")))

    assert answer.status == 404
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.json() == {"error": "nothing at /nowhere", "reason": "not-found"}


@pytest.mark.parametrize(
    ("request_line", "allow"),
    [("GET /echo", "POST"), ("DELETE /echo", "POST"), ("POST /hello", "GET, HEAD")],
)
def test_a_wrong_method_is_405_with_allow(request_line: str, allow: str) -> None:
    method, path = request_line.split()
    with serving(Calls().router()) as served:
        (answer,) = parse_answers(
            exchange(served, f"{method} {path} HTTP/1.1\r\nHost: node\r\nContent-Length: 0\r\n\r\n".encode())
        )

    assert (answer.status, answer.headers["allow"]) == (405, allow)
    assert answer.json() == {
        "error": f"{method} is not accepted on {path}: use {allow.replace(', ', ' or ')}",
        "reason": "wrong-method",
    }


def test_path_parameters_are_percent_decoded() -> None:
    with serving(Calls().router()) as served:
        (answer,) = parse_answers(exchange(served, get("/items/cam%201%2Fnorth?note=a%20b&x=")))

    assert answer.json() == {"name": "cam 1/north", "query": {"note": "a b", "x": ""}}


# --- body limits ----------------------------------------------------------------------------------------


def test_a_body_within_the_limit_reaches_the_handler_whole() -> None:
    calls = Calls()
    with serving(calls.router(), max_body_bytes=1000) as served:
        body = b"x" * 1000
        (answer,) = parse_answers(exchange(served, post_head("/echo", "Content-Length: 1000") + body))

    assert (answer.status, answer.json()["size"]) == (200, 1000)


def test_a_content_length_over_the_limit_is_413_unread_and_the_connection_closed() -> None:
    calls = Calls()
    with serving(calls.router(), max_body_bytes=1000) as served, served.connect() as sock:
        # Expect: 100-continue, so the client sends the body only if asked: it is not asked.
        sock.sendall(post_head("/echo", "Content-Length: 10000", "Expect: 100-continue"))
        answers = parse_answers(read_to_end(sock))

    assert [a.status for a in answers] == [413]
    assert answers[0].headers["connection"] == "close"
    assert answers[0].json() == {
        "error": "the body is 10000 bytes, at most 1000 are accepted",
        "reason": "too-large",
    }
    assert len(calls.seen) == 1  # the handler ran; reading the body is what refused it


def test_a_client_waiting_for_100_continue_is_asked_for_a_body_within_the_limit() -> None:
    with serving(Calls().router(), max_body_bytes=1000) as served, served.connect() as sock:
        sock.sendall(post_head("/echo", "Content-Length: 5", "Expect: 100-continue"))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        sock.sendall(b"hello")
        answer = read_answer(sock)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert (answer.status, answer.json()) == (200, {"size": 5, "body": "hello"})


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def test_a_chunked_body_is_read_whole() -> None:
    with serving(Calls().router(), max_body_bytes=1000) as served:
        data = post_head("/echo", "Transfer-Encoding: chunked") + chunked(b"a" * 500, b"b" * 500)
        (answer,) = parse_answers(exchange(served, data))

    assert (answer.status, answer.json()["size"]) == (200, 1000)


def test_a_chunked_body_running_over_the_limit_is_413_and_the_connection_closed() -> None:
    with serving(Calls().router(), max_body_bytes=1000) as served:
        data = post_head("/echo", "Transfer-Encoding: chunked") + chunked(b"a" * 600, b"b" * 600)
        # A request after it on the same connection is never read.
        answers = parse_answers(exchange(served, data + get("/hello")))

    assert [(a.status, a.headers["connection"]) for a in answers] == [(413, "close")]
    assert answers[0].json() == {
        "error": "the body is over 1000 bytes, at most 1000 are accepted",
        "reason": "too-large",
    }


# --- malformed requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        pytest.param(b"HELLO POLE\r\n\r\n", 400, "bad-request", id="request line"),
        pytest.param(
            b"GET /hello HTTP/1.1\r\nHost: node\r\nno colon here\r\n\r\n", 400, "bad-request", id="field"
        ),
        pytest.param(b"GET /hello HTTP/1.1\r\n\r\n", 400, "bad-request", id="no host"),
        pytest.param(
            post_head("/echo", "Transfer-Encoding: chunked") + b"zz\r\nhello\r\n",
            400,
            "bad-request",
            id="chunk",
        ),
        pytest.param(
            post_head("/echo", "Content-Length: 500") + b"abc", 400, "bad-request", id="body cut short"
        ),
        pytest.param(get("/hello", "X-Long: " + "x" * 20_000), 431, "head-too-large", id="head too large"),
        pytest.param(post_head("/echo", "Transfer-Encoding: gzip"), 501, "refused", id="transfer coding"),
    ],
)
def test_a_malformed_request_is_refused_and_its_connection_closed(
    data: bytes, status: int, reason: str
) -> None:
    calls = Calls()
    with serving(calls.router()) as served:
        answers = parse_answers(exchange(served, data + get("/hello")))
        seen = list(calls.seen)
        after = parse_answers(exchange(served, get("/hello")))

    assert [(a.status, a.headers["connection"]) for a in answers] == [(status, "close")]
    assert answers[0].json()["reason"] == reason
    assert seen == []  # no handler saw the malformed request, nor the one behind it
    assert [a.status for a in after] == [200]


def test_a_client_that_sends_nothing_is_closed_after_the_idle_timeout() -> None:
    with serving(Calls().router(), idle_timeout_s=0.2) as served, served.connect() as sock:
        assert sock.recv(100) == b""


def test_an_idle_kept_alive_connection_is_closed_after_the_timeout() -> None:
    with serving(Calls().router(), idle_timeout_s=0.2) as served, served.connect() as sock:
        sock.sendall(get("/hello"))
        assert read_answer(sock).status == 200
        assert sock.recv(100) == b""


def test_a_request_head_that_stops_arriving_is_408() -> None:
    with serving(Calls().router(), idle_timeout_s=0.2) as served, served.connect() as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: no")
        (answer,) = parse_answers(read_to_end(sock))

    assert (answer.status, answer.json()["reason"], answer.headers["connection"]) == (408, "timeout", "close")


def test_a_body_that_stops_arriving_is_408() -> None:
    with serving(Calls().router(), idle_timeout_s=0.2) as served, served.connect() as sock:
        sock.sendall(post_head("/echo", "Content-Length: 10") + b"12345")
        (answer,) = parse_answers(read_to_end(sock))

    assert (answer.status, answer.headers["connection"]) == (408, "close")


# --- handler failures -------------------------------------------------------------------------------------


def test_a_handler_that_raises_is_a_json_500_logged_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serving(Calls().router()) as served, served.connect() as sock:
        sock.sendall(get("/boom"))
        failed = read_answer(sock)
        sock.sendall(get("/hello"))
        after = read_answer(sock)

    assert failed.status == 500
    assert failed.json() == {
        "error": "the node failed answering GET /boom: see its log",
        "reason": "internal-error",
    }
    assert "connection" not in failed.headers  # the connection goes on
    assert (after.status, after.body) == (200, b"hello")
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert "the handler broke" in str(record.exc_info[1])


def test_a_handler_raising_an_http_error_gets_its_status() -> None:
    with serving(Calls().router()) as served:
        (answer,) = parse_answers(exchange(served, get("/refuse")))

    assert (answer.status, answer.json()) == (409, {"error": "try again later", "reason": "busy-here"})


def test_a_response_with_a_header_that_cannot_be_sent_is_a_500() -> None:
    with serving(Calls().router()) as served:
        answers = parse_answers(exchange(served, get("/bad-header") + get("/hello")))

    assert [(a.status, a.headers["connection"]) for a in answers] == [(500, "close")]
    assert "injected" not in answers[0].headers


# --- the connection cap -----------------------------------------------------------------------------------


def test_connections_over_the_cap_are_answered_503_until_one_ends() -> None:
    with serving(Calls().router(), max_connections=2) as served:
        first, second = served.connect(), served.connect()
        with first, second:
            for sock in (first, second):
                sock.sendall(get("/hello"))
                assert read_answer(sock).status == 200
            with served.connect() as third:
                (busy,) = parse_answers(read_to_end(third))
            # The two served ones are still served.
            second.sendall(get("/hello"))
            assert read_answer(second).status == 200
        # Once one ends, the server takes a new one; it notices the end a moment later.
        statuses = []
        for _ in range(200):
            (answer,) = parse_answers(exchange(served, get("/hello")))
            statuses.append(answer.status)
            if answer.status == 200:
                break
            time.sleep(0.05)

    assert (busy.status, busy.headers["retry-after"], busy.headers["connection"]) == (503, "1", "close")
    assert busy.json()["reason"] == "busy"
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {503}


# --- starting and closing ---------------------------------------------------------------------------------


def test_closing_the_server_ends_its_open_connections() -> None:
    with serving(Calls().router()) as served:
        sock = served.connect()
        sock.sendall(get("/hello"))
        assert read_answer(sock).status == 200
    with sock:
        assert sock.recv(100) == b""


def test_the_server_works_as_an_async_context_manager() -> None:
    async def hello(request: Request) -> Response:
        return json_response({"from": request.remote})

    router = Router()
    router.get("/", hello)

    async def scenario() -> tuple[bytes, bool]:
        server = HttpServer(router, "127.0.0.1", 0)
        with pytest.raises(RuntimeError, match="not started"):
            _ = server.port
        async with server:
            with pytest.raises(RuntimeError, match="already started"):
                await server.start()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(get("/", "Connection: close"))
            answer = await reader.read()
            writer.close()
            await writer.wait_closed()
        return answer, server.addresses == []

    answer, closed = asyncio.run(scenario())
    (parsed,) = parse_answers(answer)
    assert parsed.json() == {"from": "127.0.0.1"}
    assert closed


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("max_body_bytes", -1, "max_body_bytes -1 is not allowed"),
        ("idle_timeout_s", 0, "idle_timeout_s must be more than 0"),
        ("max_connections", 0, "max_connections 0 is not allowed"),
        ("max_head_bytes", 100, "max_head_bytes 100 is not allowed"),
    ],
)
def test_bad_settings_are_refused(setting: str, value: float, words: str) -> None:
    settings: dict[str, Any] = {setting: value}
    with pytest.raises(ValueError, match=words):
        HttpServer(Router(), "127.0.0.1", 0, **settings)


def test_the_server_says_where_it_listens() -> None:
    with serving(Router()) as served:
        assert isinstance(served, Served)
        assert served.server.addresses == [("127.0.0.1", served.port)]
        assert served.port > 0
