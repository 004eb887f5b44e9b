"""Whatever bytes a client sends, the server (edge.http.server) answers with a well-formed refusal
or closes the connection, logs no failure of its own, and serves the next client as before."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.edge.http.conftest import Calls, Served, exchange, get, parse_answers, serving


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request, valid or nearly: real parts, then perhaps a few bytes changed somewhere, and
    perhaps sent twice in a row (pipelined)."""
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE", b"G\x00T"]))
    target = draw(
        st.sampled_from([b"/hello", b"/echo", b"/items/x%20y", b"/nowhere", b"*", b"http://n/echo"])
    )
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/1.1 x"]))
    fields = draw(
        st.lists(
            st.sampled_from(
                [
                    b"Host: node\r\n",
                    b"Content-Length: 5\r\n",
                    b"Content-Length: 99999\r\n",
                    b"Content-Length: -1\r\n",
                    b"Transfer-Encoding: chunked\r\n",
                    b"Transfer-Encoding: gzip\r\n",
                    b"Expect: 100-continue\r\n",
                    b"Connection: close\r\n",
                    b"Content-Type: application/json\r\n",
                    b" folded\r\n",
                    b"X-Long: " + b"x" * 17_000 + b"\r\n",
                ]
            ),
            max_size=5,
        )
    )
    body = draw(
        st.sampled_from([b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"400\r\n" + b"x" * 1024, b"y" * 1200])
    )
    data = b"%s %s %s\r\n%s\r\n%s" % (method, target, version, b"".join(fields), body)
    at = draw(st.none() | st.integers(0, len(data)))
    if at is not None:
        data = data[:at] + draw(st.binary(max_size=8)) + data[at + draw(st.integers(0, 4)) :]
    return data * draw(st.integers(1, 2))


_INPUTS = st.binary(max_size=512) | requests()

# Valid requests among them get real answers.
_STATUSES = {100, 200, 400, 404, 405, 413, 431, 501}


def check(served: Served, data: bytes) -> None:
    received = exchange(served, data)
    if received:
        status_line = received.split(b"\r\n", 1)[0]
        well_formed = re.fullmatch(rb"HTTP/1\.1 (\d{3}) [A-Za-z -]*", status_line)
        assert well_formed is not None, (data, received)
        assert int(well_formed.group(1)) in _STATUSES, (data, received)
    if b"HEAD" not in data:  # an answer to HEAD has a Content-Length but no body to frame by it
        for answer in parse_answers(received):
            assert answer.status in _STATUSES, (data, answer)
    # The next client is served as before.
    (hello,) = parse_answers(exchange(served, get("/hello", "Connection: close")))
    assert (hello.status, hello.body) == (200, b"hello")


def test_arbitrary_bytes_never_break_the_server(caplog: pytest.LogCaptureFixture) -> None:
    with serving(Calls().router(), max_body_bytes=1000, idle_timeout_s=10) as served:

        @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(_INPUTS)
        def property_holds(data: bytes) -> None:
            check(served, data)

        property_holds()

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
