"""Requests and responses (edge.http.messages) without a server: header lookup, what a request
says about its body and target, and the answers the helpers build."""

from __future__ import annotations

import pytest

from edge.http import BodyTooLarge, Headers, Request, html_response, json_response, redirect, text_response
from edge.http.messages import http_date


def request(target: str = "/", *fields: tuple[str, str], body: bytes = b"") -> Request:
    return Request("POST", target, Headers(fields), body=body, remote="10.0.0.9")


def test_header_fields_are_looked_up_whatever_their_case() -> None:
    headers = Headers([("X-Watchpost-Token", "abc"), ("Accept", "text/html"), ("accept", "application/json")])

    assert headers["x-watchpost-token"] == headers["X-WATCHPOST-TOKEN"] == "abc"
    assert "X-Watchpost-Token" in headers
    assert headers.get("Authorization") is None
    assert headers["Accept"] == "text/html, application/json"  # sent twice: joined
    assert sorted(headers) == ["accept", "x-watchpost-token"]
    assert len(headers) == 2
    assert "abc" not in repr(headers)  # values may be secrets: kept out of logs


@pytest.mark.parametrize(
    ("content_type", "media_type", "charset"),
    [
        (None, "application/octet-stream", None),
        ("application/json", "application/json", None),
        ("Application/JSON; Charset=UTF-8", "application/json", "UTF-8"),
        ('application/json; charset="latin-1"', "application/json", "latin-1"),
        ("text/plain;format=flowed", "text/plain", None),
    ],
)
def test_the_content_type_is_read_as_media_type_and_charset(
    content_type: str | None, media_type: str, charset: str | None
) -> None:
    fields = [] if content_type is None else [("Content-Type", content_type)]
    given = request("/", *fields)

    assert (given.content_type, given.charset) == (media_type, charset)


def test_the_target_gives_path_and_query() -> None:
    given = request("/api/v1/video%20metadata?camera=cam-1&camera=cam-2&flag")

    assert given.raw_path == "/api/v1/video%20metadata"
    assert given.path == "/api/v1/video metadata"
    assert given.query == {"camera": "cam-2", "flag": ""}
    assert request("http://10.0.0.5:8080/diag/?x=1").path == "/diag/"


def test_content_length_is_a_number_or_none() -> None:
    assert request("/", ("Content-Length", "42")).content_length == 42
    assert request("/").content_length is None


def test_the_body_of_a_request_over_the_limit_cannot_be_read() -> None:
    too_large = BodyTooLarge(limit=1000, size=None)
    given = Request("POST", "/", Headers(), too_large=too_large)

    with pytest.raises(BodyTooLarge) as raised:
        _ = given.body
    assert (raised.value.status, raised.value.reason, raised.value.limit, raised.value.size) == (
        413,
        "too-large",
        1000,
        None,
    )
    assert str(raised.value) == "the body is over 1000 bytes, at most 1000 are accepted"
    assert str(BodyTooLarge(limit=10, size=99)) == "the body is 99 bytes, at most 10 are accepted"
    assert request(body=b"{}").body == b"{}"


def test_the_helpers_build_the_answers() -> None:
    as_json = json_response({"accepted": 3}, status=202, headers={"Retry-After": "5"})
    as_html = html_response("<p>pole</p>", headers={"Cache-Control": "no-store"})
    moved = redirect("/diag/")

    assert (as_json.status, as_json.body, as_json.headers) == (
        202,
        b'{"accepted":3}',
        {"Content-Type": "application/json; charset=utf-8", "Retry-After": "5"},
    )
    assert as_html.headers == {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    assert text_response("é").body == "é".encode()
    assert (moved.status, moved.headers["Location"], moved.body) == (
        308,
        "/diag/",
        b"308: Permanent Redirect",
    )
    assert as_json.close is False
    assert moved.close is False


def test_dates_are_imf_fixdates() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110's own example
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
