"""Metadata pushes (edge.cameras.metadata): the three shapes of a good push, and every way a push
is refused, with the words the camera's installer reads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cameras.errors import IngestRejected
from edge.cameras.metadata import MAX_RECORDS, parse_push
from protocols.messages import RecordingSegment, VideoEvent
from tests.edge.cameras.conftest import KNOWN, body, event, segment

# --- accepted ---------------------------------------------------------------------------------


def test_one_record_object_is_a_push_of_one() -> None:
    records = parse_push(body(segment()), KNOWN)
    assert records == [
        RecordingSegment(
            camera_id="cam-1",
            start=1_734_000_000_000,
            end=1_734_000_060_000,
            bytes=31_457_280,
            codec="h265",
            width=2560,
            height=1440,
            fps=25.0,
            bitrate_kbps=4096.0,
        )
    ]


def test_a_records_object_is_a_batch_in_order() -> None:
    records = parse_push(body({"records": [segment(), event(camera_id="cam-2", kind="tamper")]}), KNOWN)
    assert isinstance(records, list)
    assert [type(r) for r in records] == [RecordingSegment, VideoEvent]
    assert isinstance(records[1], VideoEvent)
    assert (records[1].camera_id, records[1].kind, records[1].detail) == ("cam-2", "tamper", "zone 2")


def test_a_bare_array_is_a_batch() -> None:
    records = parse_push(
        body([event(kind=k) for k in ("motion", "analytics", "video-loss", "tamper")]), KNOWN
    )
    assert isinstance(records, list)
    assert [r.kind for r in records if isinstance(r, VideoEvent)] == [
        "motion",
        "analytics",
        "video-loss",
        "tamper",
    ]


def test_unknown_fields_are_ignored_and_whitespace_is_fine() -> None:
    pushed = b'\n  {"records": [' + body(segment(vendor_extra={"x": 1})) + b'], "nvr": "rack-2"}  \n'
    records = parse_push(pushed, KNOWN)
    assert isinstance(records, list)
    assert len(records) == 1


def test_a_full_batch_of_max_records_is_accepted() -> None:
    records = parse_push(body([event(at=i) for i in range(MAX_RECORDS)]), KNOWN)
    assert isinstance(records, list)
    assert len(records) == MAX_RECORDS


# --- refused ----------------------------------------------------------------------------------

SEGMENT_WITHOUT_FPS = {k: v for k, v in segment().items() if k != "fps"}
UNTAGGED = {k: v for k, v in segment().items() if k != "record"}

REFUSED: list[tuple[str, bytes, int, str, str]] = [
    (
        "not utf-8",
        b'{"codec": "\xff"}',
        400,
        "bad-utf8",
        "the body is not valid UTF-8: invalid start byte at byte 11",
    ),
    (
        "empty body",
        b"  ",
        400,
        "bad-json",
        'the body is empty: send one record object, {"records": [...]}, or an array of records',
    ),
    (
        "truncated json",
        b'{"records": [',
        400,
        "bad-json",
        "the body is not valid JSON: Input data was truncated",
    ),
    (
        "trailing garbage",
        b'{"a":1}x',
        400,
        "bad-json",
        "the body is not valid JSON: JSON is malformed: trailing characters (byte 8)",
    ),
    (
        "a string",
        b'"segment"',
        422,
        "invalid",
        'expected one record object, {"records": [...]}, or an array of records; got a string',
    ),
    ("empty batch", b'{"records": []}', 422, "empty", "the push carries no records: send 1 to 1000"),
    ("empty array", b"[]", 422, "empty", "the push carries no records: send 1 to 1000"),
    ("records not an array", b'{"records": {}}', 422, "invalid", "records: expected an array, got an object"),
    (
        "too many",
        body([event()] * (MAX_RECORDS + 1)),
        413,
        "too-many-records",
        "the push carries 1001 records, at most 1000 are accepted: split it",
    ),
    (
        "fps zero in a batch",
        body({"records": [segment(), segment(), segment(), segment(fps=0)]}),
        422,
        "invalid",
        "records[3].fps: expected a number > 0, got 0",
    ),
    (
        "fps a string in an array",
        body([segment(fps="25")]),
        422,
        "invalid",
        "[0].fps: expected a number, got a string",
    ),
    ("missing field", body(SEGMENT_WITHOUT_FPS), 422, "invalid", "missing required field `fps`"),
    (
        "missing field in a batch",
        body({"records": [event(), SEGMENT_WITHOUT_FPS]}),
        422,
        "invalid",
        "records[1]: missing required field `fps`",
    ),
    (
        "no record tag",
        body(UNTAGGED),
        422,
        "invalid",
        'missing required field `record`: say "segment" or "video-event" (a batch is {"records": [...]})',
    ),
    (
        "unknown record tag",
        body(segment(record="clip")),
        422,
        "invalid",
        'record: "clip" is not accepted: expected "segment" or "video-event"',
    ),
    (
        "unknown event kind",
        body([event(), event(kind="explosion")]),
        422,
        "invalid",
        '[1].kind: "explosion" is not accepted: expected "motion", "analytics", "video-loss" or "tamper"',
    ),
    (
        "bad camera id",
        body(segment(camera_id="Cam 1")),
        422,
        "invalid",
        "camera_id: expected an id: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit,"
        ' got "Cam 1"',
    ),
    (
        "negative time",
        body(segment(end=-1)),
        422,
        "invalid",
        "end: expected an integer >= 0, got -1",
    ),
    (
        "time as a float",
        body(event(at=1.5)),
        422,
        "invalid",
        "at: expected an integer, got a number with a fraction or exponent",
    ),
    (
        "ends before it starts",
        body({"records": [segment(start=2000, end=1000)]}),
        422,
        "invalid",
        "records[0]: segment ends (1000) before it starts (2000)",
    ),
    (
        "empty codec",
        body(segment(codec="")),
        422,
        "invalid",
        "codec: expected a string of length >= 1, got 0 characters",
    ),
    (
        "too many bookmarks",
        body(event(bookmarks=[f"b{i}" for i in range(17)])),
        422,
        "invalid",
        "bookmarks: expected an array of length <= 16, got 17 items",
    ),
    (
        "bad bookmark",
        body(event(bookmarks=["ok", 7])),
        422,
        "invalid",
        "bookmarks[1]: expected a string, got an integer",
    ),
    (
        "a number where a record goes",
        body({"records": [event(), 5]}),
        422,
        "invalid",
        "records[1]: expected an object, got an integer",
    ),
    (
        "unknown camera",
        body({"records": [segment(), segment(camera_id="cam-9")]}),
        422,
        "unknown-camera",
        "records[1].camera_id: unknown camera 'cam-9'; known cameras: 'cam-1', 'cam-2'",
    ),
    (
        "unknown camera, single",
        body(event(camera_id="cam-9")),
        422,
        "unknown-camera",
        "camera_id: unknown camera 'cam-9'; known cameras: 'cam-1', 'cam-2'",
    ),
    (
        "nested too deeply",
        b"[" * 10_000 + b"]" * 10_000,
        400,
        "bad-json",
        "the body is not JSON this side reads: nested too deeply",
    ),
]


@pytest.mark.parametrize(
    ("pushed", "status", "reason", "detail"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_a_refused_push_says_what_is_wrong(pushed: bytes, status: int, reason: str, detail: str) -> None:
    rejected = parse_push(pushed, KNOWN)
    assert isinstance(rejected, IngestRejected)
    assert (rejected.status, rejected.reason, rejected.detail) == (status, reason, detail)


def test_the_rejection_carries_the_path_of_the_bad_field() -> None:
    rejected = parse_push(body({"records": [segment(), segment(height=0)]}), KNOWN)
    assert isinstance(rejected, IngestRejected)
    assert rejected.path == "records[1].height"


def test_an_unknown_camera_with_none_configured_says_so() -> None:
    rejected = parse_push(body(segment()), set())
    assert isinstance(rejected, IngestRejected)
    assert (
        rejected.detail
        == "camera_id: unknown camera 'cam-1'; known cameras: none are configured on this node"
    )


def test_one_bad_record_refuses_the_whole_batch() -> None:
    good = [segment(start=i * 1000, end=i * 1000 + 999) for i in range(10)]
    assert isinstance(parse_push(body(good), KNOWN), list)
    rejected = parse_push(body([*good, segment(width=-1)]), KNOWN)
    assert isinstance(rejected, IngestRejected)
    assert rejected.path == "[10].width"


# --- never raises -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def _check(result: object) -> None:
    if isinstance(result, IngestRejected):
        assert result.status in (400, 413, 422)
        assert result.reason in (
            "bad-utf8",
            "bad-json",
            "invalid",
            "empty",
            "too-many-records",
            "unknown-camera",
        )
        assert result.detail
    else:
        assert isinstance(result, list)
        assert 1 <= len(result) <= MAX_RECORDS
        assert all(isinstance(r, RecordingSegment | VideoEvent) and r.camera_id in KNOWN for r in result)


@settings(max_examples=400)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(pushed: bytes) -> None:
    _check(parse_push(pushed, KNOWN))


@settings(max_examples=400)
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    _check(parse_push(body(value), KNOWN))


FIELDS = sorted(set(segment()) | set(event()))


@settings(max_examples=400)
@given(st.sampled_from(["segment", "event"]), st.sampled_from(FIELDS), json_values, st.booleans())
def test_one_odd_field_is_named_in_the_rejection(shape: str, name: str, value: Any, batched: bool) -> None:
    record = segment() if shape == "segment" else event()
    record[name] = value
    pushed = {"records": [event(), record]} if batched else record
    result = parse_push(body(pushed), KNOWN)
    _check(result)
    if isinstance(result, IngestRejected):
        # The field itself, an item inside it, or its record as a whole (end before start,
        # a "record" tag that asks for other fields).
        prefix = "records[1]" if batched else ""
        at_field = f"{prefix}.{name}".lstrip(".")
        assert result.path in (prefix or None, at_field) or (result.path or "").startswith(f"{at_field}[")
