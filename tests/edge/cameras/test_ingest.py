"""The metadata endpoint (edge.cameras.ingest) through the node's real HTTP server (edge.http) on a
loopback port and a real client (aiohttp's): 202 only once the sink stored the push, 4xx with
reasons, 503 and nothing lost when the sink cannot store, counters, and recording gaps handed to
the agent."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from edge.cameras.gaps import GapPolicy, RecordingGap
from edge.cameras.ingest import PUSH_PATH, IngestCounters, MetadataIngest
from edge.cameras.metadata import VideoRecord
from edge.http import HttpServer, Request, Response, Router, json_response
from edge.outbox.errors import OutboxFull
from edge.outbox.policy import Lane
from protocols.messages import RecordingSegment, VideoEvent
from tests.edge.cameras.conftest import body, event, run, segment

JSON = {"Content-Type": "application/json"}
TOKEN = "s3cret-token-for-tests"
MINUTE = 60_000


class Sink:
    """Stands in for the agent's outbox write: keeps what it stored; fails while `failure` is
    set, storing nothing; can be held at `gate` to see what the sender hears meanwhile."""

    def __init__(self) -> None:
        self.stored: list[list[VideoRecord]] = []
        self.calls = 0
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, records: list[VideoRecord]) -> None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        self.stored.append(list(records))


class Clock:
    def __init__(self, now: int = 1_734_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@contextlib.asynccontextmanager
async def serving(ingest: MetadataIngest) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The agent's shared router: the ingest routes beside a diagnostics route, served with the
    agent's body limit (a little over the ingest's)."""
    router = Router()

    async def diagnostics(request: Request) -> Response:
        return json_response({"ok": True})

    router.get("/diag", diagnostics)
    ingest.add_routes(router)
    async with (
        HttpServer(router, "127.0.0.1", 0, max_body_bytes=ingest.max_body_bytes + 4096) as server,
        aiohttp.ClientSession() as session,
    ):
        yield session, f"http://127.0.0.1:{server.port}{PUSH_PATH}"


async def post(
    session: aiohttp.ClientSession, url: str, data: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with session.post(url, data=data, headers=JSON if headers is None else headers) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


def make(sink: Sink, **settings: Any) -> MetadataIngest:
    settings.setdefault("clock", Clock())
    return MetadataIngest(camera_ids=["cam-1", "cam-2"], accept=sink, **settings)


# --- accepted ---------------------------------------------------------------------------------


def test_a_push_is_answered_202_with_the_count_once_stored() -> None:
    sink = Sink()
    ingest = make(sink)

    async def scenario() -> list[tuple[int, dict[str, Any], dict[str, str]]]:
        async with serving(ingest) as (session, url):
            return [
                await post(session, url, body(segment())),
                await post(
                    session, url, body({"records": [event(), event(camera_id="cam-2", kind="tamper")]})
                ),
                await post(session, url, body([segment(start=1, end=2), event()])),
            ]

    answers = run(scenario())
    assert [(status, answer) for status, answer, _ in answers] == [
        (202, {"accepted": 1}),
        (202, {"accepted": 2}),
        (202, {"accepted": 2}),
    ]
    assert [len(batch) for batch in sink.stored] == [1, 2, 2]
    assert isinstance(sink.stored[1][1], VideoEvent)
    assert sink.stored[1][1].kind == "tamper"
    assert ingest.counters() == IngestCounters(pushes=3, records=5, segments=2, events=3)


def test_the_sender_hears_nothing_until_the_sink_has_stored_the_push() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    ingest = make(sink)

    async def scenario() -> tuple[bool, int]:
        assert sink.gate is not None
        async with serving(ingest) as (session, url):
            answer = asyncio.create_task(post(session, url, body(segment())))
            await sink.entered.wait()
            # Give a wrong endpoint ample time to answer early; a right one never does.
            done, _ = await asyncio.wait({answer}, timeout=0.3)
            answered_early = bool(done)
            sink.gate.set()
            status, _, _ = await answer
            return answered_early, status

    answered_early, status = run(scenario())
    assert (answered_early, status) == (False, 202)
    assert len(sink.stored) == 1


def test_a_configured_token_is_required() -> None:
    sink = Sink()
    ingest = make(sink, token=TOKEN)

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        async with serving(ingest) as (session, url):
            answers = []
            for headers in ({}, {"X-Watchpost-Token": "wrong"}, {"X-Watchpost-Token": TOKEN}):
                status, answer, _ = await post(session, url, body(segment()), {**JSON, **headers})
                answers.append((status, answer))
            return answers

    missing, wrong, right = run(scenario())
    unauthorized = {
        "error": "missing or wrong X-Watchpost-Token header: send the node's ingest token",
        "reason": "unauthorized",
    }
    assert missing == wrong == (401, unauthorized)
    assert right == (202, {"accepted": 1})
    assert sink.calls == 1
    assert ingest.counters().rejections == {"unauthorized": 2}


def test_a_placeholder_token_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="too short to be a secret"):
        make(Sink(), token="changeme")


# --- refused ----------------------------------------------------------------------------------


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


PADDED = b" " * 2_000 + body(segment())

REFUSED: list[tuple[str, Callable[[], Any], dict[str, str], int, str, str]] = [
    (
        "not json",
        lambda: b"{records: 1}",
        JSON,
        400,
        "bad-json",
        "the body is not valid JSON: JSON is malformed: object keys must be strings (byte 1)",
    ),
    (
        "schema",
        lambda: body({"records": [segment(), segment(fps=0)]}),
        JSON,
        422,
        "invalid",
        "records[1].fps: expected a number > 0, got 0",
    ),
    (
        "unknown camera",
        lambda: body(event(camera_id="cam-7")),
        JSON,
        422,
        "unknown-camera",
        "camera_id: unknown camera 'cam-7'; known cameras: 'cam-1', 'cam-2'",
    ),
    (
        "text/plain",
        lambda: body(segment()),
        {"Content-Type": "text/plain"},
        415,
        "wrong-content-type",
        "Content-Type 'text/plain' is not accepted: send application/json (UTF-8)",
    ),
    (
        "latin-1",
        lambda: body(segment()),
        {"Content-Type": "application/json; charset=latin-1"},
        415,
        "wrong-content-type",
        "Content-Type 'application/json; charset=latin-1' is not accepted: send application/json (UTF-8)",
    ),
    (
        "too large by content-length",
        lambda: PADDED,
        JSON,
        413,
        "too-large",
        f"the body is {len(PADDED)} bytes, at most 2000 are accepted: send smaller batches",
    ),
    (
        "too large, chunked",
        lambda: _chunks(b"[", b" " * 1_500, b" " * 1_500, b"]"),
        JSON,
        413,
        "too-large",
        "the body is over 2000 bytes, at most 2000 are accepted: send smaller batches",
    ),
    (
        "too large, chunked, past the server's own limit",
        lambda: _chunks(b"[", b" " * 4_000, b" " * 4_000, b"]"),
        JSON,
        413,
        "too-large",
        "the body is over 2000 bytes, at most 2000 are accepted: send smaller batches",
    ),
]


@pytest.mark.parametrize(
    ("make_data", "headers", "status", "reason", "detail"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_a_refused_push_gets_a_4xx_with_the_reason(
    make_data: Callable[[], Any], headers: dict[str, str], status: int, reason: str, detail: str
) -> None:
    sink = Sink()
    ingest = make(sink, max_body_bytes=2_000)

    async def scenario() -> tuple[int, dict[str, Any]]:
        async with serving(ingest) as (session, url):
            answer_status, answer, _ = await post(session, url, make_data(), headers)
            # The endpoint keeps working after a refusal.
            assert (await post(session, url, body(segment())))[0] == 202
            return answer_status, answer

    assert run(scenario()) == (status, {"error": detail, "reason": reason})
    assert sink.calls == 1  # only the good push after it
    counters = ingest.counters()
    assert (counters.pushes, counters.rejections) == (1, {reason: 1})
    assert counters.last_rejection == f"{status} {reason}: {detail}"


def test_an_oversized_body_is_refused_unread_and_its_connection_closed() -> None:
    sink = Sink()
    ingest = make(sink)  # the default limit, 1 MiB

    async def scenario() -> list[tuple[int, dict[str, Any], dict[str, str]]]:
        async with serving(ingest) as (session, url):
            return [
                await post(session, url, io.BytesIO(b" " * (4 * 1024 * 1024))),
                await post(session, url, body(segment())),
            ]

    (status, answer, headers), (after, _, _) = run(scenario())
    assert (status, answer["reason"], headers["Connection"]) == (413, "too-large", "close")
    assert answer["error"] == "the body is 4194304 bytes, at most 1048576 are accepted: send smaller batches"
    assert after == 202
    assert sink.calls == 1


def test_a_missing_content_type_is_refused() -> None:
    ingest = make(Sink())

    async def scenario() -> tuple[int, dict[str, Any], dict[str, str]]:
        async with serving(ingest) as (session, url):
            return await post(session, url, body(segment()), {})

    status, answer, _ = run(scenario())
    assert (status, answer["reason"]) == (415, "wrong-content-type")


def test_rejections_are_counted_per_reason() -> None:
    ingest = make(Sink())

    async def scenario() -> None:
        async with serving(ingest) as (session, url):
            for data in (b"nope", b"[1", body(segment(fps=-1)), body(segment(camera_id="cam-x")), b"[]"):
                await post(session, url, data)

    run(scenario())
    assert ingest.counters().rejections == {"bad-json": 2, "invalid": 1, "unknown-camera": 1, "empty": 1}
    assert ingest.counters().pushes == 0


def test_only_post_is_routed() -> None:
    ingest = make(Sink())

    async def scenario() -> tuple[int, int]:
        async with (
            serving(ingest) as (session, url),
            session.get(url) as push_get,
            session.get(url.replace(PUSH_PATH, "/diag")) as diag,
        ):
            return push_get.status, diag.status

    assert run(scenario()) == (405, 200)


# --- the sink cannot store --------------------------------------------------------------------


def test_a_push_the_sink_cannot_store_is_503_and_nothing_is_lost() -> None:
    sink = Sink()
    sink.failure = OutboxFull("outbox full: 1000000 records", lane=Lane.VIDEO)
    gaps: list[RecordingGap] = []
    ingest = make(sink, on_gap=gaps.append, gap_policy=GapPolicy(settle_ms=0), retry_after_s=7)
    batch = body([segment(start=0, end=MINUTE), segment(start=5 * MINUTE, end=6 * MINUTE), event()])

    async def scenario() -> list[tuple[int, dict[str, Any], dict[str, str]]]:
        async with serving(ingest) as (session, url):
            refused = await post(session, url, batch)
            sink.failure = None  # the outbox made room; the NVR retries the same push
            retried = await post(session, url, batch)
            return [refused, retried]

    (status, answer, headers), (retried_status, retried, _) = run(scenario())
    assert (status, answer) == (
        503,
        {"error": "not stored, try again later: outbox full: 1000000 records", "reason": "unavailable"},
    )
    assert headers["Retry-After"] == "7"
    assert (retried_status, retried) == (202, {"accepted": 3})
    # The sink saw the whole batch twice and stored it once, whole; never a part of it.
    assert sink.calls == 2
    assert [len(batch) for batch in sink.stored] == [3]
    counters = ingest.counters()
    assert (counters.unavailable, counters.pushes, counters.records) == (1, 1, 3)
    assert counters.last_unavailable == "not stored: outbox full: 1000000 records"
    # Gaps come from stored segments only: the refused attempt fed nothing.
    assert gaps == [RecordingGap("cam-1", MINUTE, 5 * MINUTE)]


# --- gaps -------------------------------------------------------------------------------------


def test_stored_segments_feed_the_gap_detector_and_gaps_reach_the_agent() -> None:
    clock = Clock()
    gaps: list[RecordingGap] = []
    ingest = make(Sink(), clock=clock, on_gap=gaps.append, gap_policy=GapPolicy(settle_ms=MINUTE))

    async def scenario() -> None:
        async with serving(ingest) as (session, url):
            for start in (0, 1, 3, 4):  # minute 2 is missing
                await post(session, url, body(segment(start=start * MINUTE, end=(start + 1) * MINUTE)))
            await post(session, url, body(segment(camera_id="cam-7")))  # refused: never fed

    run(scenario())
    assert gaps == []  # still settling: the NVR may yet push minute 2
    assert ingest.settle_gaps() == []
    clock.now += MINUTE
    assert ingest.settle_gaps() == [RecordingGap("cam-1", 2 * MINUTE, 3 * MINUTE)]
    assert gaps == [RecordingGap("cam-1", 2 * MINUTE, 3 * MINUTE)]
    assert ingest.counters().gaps == 1
    assert ingest.gaps.latest_end("cam-1") == 5 * MINUTE


def test_a_failing_gap_listener_does_not_fail_the_push() -> None:
    def on_gap(gap: RecordingGap) -> None:
        raise RuntimeError("event queue closed")

    sink = Sink()
    ingest = make(sink, on_gap=on_gap, gap_policy=GapPolicy(settle_ms=0))
    pushes = [body(segment(start=0, end=MINUTE)), body(segment(start=3 * MINUTE, end=4 * MINUTE))]

    async def scenario() -> list[int]:
        async with serving(ingest) as (session, url):
            return [(await post(session, url, data))[0] for data in pushes]

    assert run(scenario()) == [202, 202]
    assert len(sink.stored) == 2
    assert ingest.counters().gaps == 1


def test_cameras_without_recent_segments_are_not_recording() -> None:
    clock = Clock(now=0)
    ingest = make(Sink(), clock=clock, gap_policy=GapPolicy(stale_after_ms=5 * MINUTE))

    async def scenario() -> None:
        async with serving(ingest) as (session, url):
            await post(session, url, body(segment(camera_id="cam-2", start=0, end=4 * MINUTE)))

    run(scenario())
    clock.now = 6 * MINUTE
    assert ingest.not_recording() == ["cam-1"]
    assert isinstance(ingest.gaps.latest_end("cam-2"), int)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_body_bytes", 0, "max_body_bytes 0 is not allowed: use 1 or more"),
        ("retry_after_s", 0, "retry_after_s 0 is not allowed: use 1 or more seconds"),
    ],
)
def test_bad_settings_are_refused(setting: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        make(Sink(), **{setting: value})


def test_segment_records_reach_the_sink_typed() -> None:
    sink = Sink()
    ingest = make(sink)

    async def scenario() -> None:
        async with serving(ingest) as (session, url):
            await post(session, url, body(segment(bookmarks=["incident-42"])))

    run(scenario())
    (stored,) = sink.stored[0]
    assert isinstance(stored, RecordingSegment)
    assert stored.bookmarks == ["incident-42"]
