"""Video metadata pushed by the cameras or the NVR, checked before anything is stored: bytes in,
a list of protocols.messages records or an IngestRejected out, never an exception.

Pure: `edge.cameras.ingest` is the HTTP shell that calls `parse_push` and stores what it
returns; the gap detector (`edge.cameras.gaps`) is fed from what was stored.
"""

from __future__ import annotations

import re
from collections.abc import Set
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

import msgspec

from protocols.messages import RecordingSegment, VideoEvent
from protocols.topics import ID_PATTERN

from .errors import IngestRejected

VideoRecord = RecordingSegment | VideoEvent

# A push is stored as one unit and later travels in VideoBatch messages of at most 1,000.
MAX_RECORDS: Final = 1000

RECORD_TAGS: Final = ("segment", "video-event")
PUSH_SHAPES: Final = 'one record object, {"records": [...]}, or an array of records'

_record_decoder = msgspec.json.Decoder(VideoRecord)
_object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_any_decoder = msgspec.json.Decoder()

# The values a Literal field takes, so a rejection can list them (msgspec does not).
_LITERALS: Final[dict[str, tuple[str, ...]]] = {
    name: get_args(hint)
    for cls in (RecordingSegment, VideoEvent)
    for name, hint in get_type_hints(cls, include_extras=True).items()
    if get_origin(hint) is Literal
}

_AT_PATH = re.compile(r" - at `\$([^`]*)`$")
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_EXPECTED = re.compile(r"^Expected `(\w+)`(.*)$")
_GOT = re.compile(r"^, got `(\w+)`$")
_WHOLE_FLOAT = re.compile(r"(?<=\d)\.0\b")
_ABSENT: Final = object()  # the path points at nothing (a missing field)
_EXPECTED_NAMES: Final = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "an array",
    "object": "an object",
    "null": "null",
}
_GOT_NAMES: Final = {
    "int": "an integer",
    "float": "a number with a fraction or exponent",
    "str": "a string",
    "bool": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def parse_push(body: bytes, known_cameras: Set[str]) -> list[VideoRecord] | IngestRejected:
    """The records of one push, or why the whole push is refused.

    A push is one record object (its `record` field says "segment" or "video-event"), an
    object `{"records": [...]}` (any object with a `records` field is read as a batch), or a
    JSON array of records; 1 to MAX_RECORDS records. All or nothing: one bad record, or one
    naming a camera not in `known_cameras`, refuses the push, so its sender can fix and retry
    it whole. Fields this side does not know are ignored, as everywhere in the contract.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return IngestRejected(
            400, "bad-utf8", f"the body is not valid UTF-8: {exc.reason} at byte {exc.start}"
        )
    try:
        items = _split(body)
    except RecursionError:
        return IngestRejected(400, "bad-json", "the body is not JSON this side reads: nested too deeply")
    if isinstance(items, IngestRejected):
        return items
    prefix, raws = items
    if not raws:
        return IngestRejected(
            422, "empty", f"the push carries no records: send 1 to {MAX_RECORDS}", path=prefix or None
        )
    if len(raws) > MAX_RECORDS:
        return IngestRejected(
            413,
            "too-many-records",
            f"the push carries {len(raws)} records, at most {MAX_RECORDS} are accepted: split it",
            path=prefix or None,
        )
    records: list[VideoRecord] = []
    for index, raw in enumerate(raws):
        where = prefix if prefix is None else f"{prefix}[{index}]"
        try:
            records.append(_record_decoder.decode(raw))
        except msgspec.ValidationError as exc:
            return _invalid(str(exc), raw, where)
        except (msgspec.DecodeError, RecursionError) as exc:
            # The body parsed as JSON already: this is msgspec's nesting limit.
            detail = f"{where or 'the record'}: not JSON this side reads: {exc}"
            return IngestRejected(400, "bad-json", detail, path=where or None)
    for index, record in enumerate(records):
        if record.camera_id not in known_cameras:
            path = _join(prefix if prefix is None else f"{prefix}[{index}]", ".camera_id")
            known = ", ".join(repr(c) for c in sorted(known_cameras)) or "none are configured on this node"
            return IngestRejected(
                422,
                "unknown-camera",
                f"{path}: unknown camera {record.camera_id!r}; known cameras: {known}",
                path=path,
            )
    return records


def _split(body: bytes) -> tuple[str | None, list[msgspec.Raw]] | IngestRejected:
    """The push's records, still raw, and the JSON path they sit under (None: the body is one
    record). Checks that the whole body is JSON first, so bad JSON is a 400 even inside a
    record that would be refused for something else."""
    start = body.lstrip(b" \t\r\n")[:1]
    try:
        if start == b"[":
            return "", _array_decoder.decode(body)
        if start == b"{":
            fields = _object_decoder.decode(body)
            if "records" not in fields:
                return None, [msgspec.Raw(body)]
            try:
                return "records", _array_decoder.decode(fields["records"])
            except msgspec.ValidationError as exc:
                return _invalid(str(exc), fields["records"], "records")
        if not start:
            return IngestRejected(400, "bad-json", f"the body is empty: send {PUSH_SHAPES}")
        msgspec.json.decode(body, type=msgspec.Raw)  # raises if it is not JSON at all
    except msgspec.DecodeError as exc:
        return IngestRejected(400, "bad-json", f"the body is not valid JSON: {exc}")
    return IngestRejected(422, "invalid", f"expected {PUSH_SHAPES}; got {_kind_of_json(start)}")


def _kind_of_json(first: bytes) -> str:
    if first == b'"':
        return "a string"
    if first in (b"t", b"f"):
        return "a boolean"
    if first == b"n":
        return "null"
    return "a number"


def _invalid(text: str, raw: msgspec.Raw, prefix: str | None) -> IngestRejected:
    """msgspec's ValidationError text, said for a person configuring an NVR: the JSON path
    from the push's top, what was expected, and the value that was sent."""
    match = _AT_PATH.search(text)
    inner = match.group(1) if match else ""
    message = text[: match.start()] if match else text
    path = _join(prefix, inner)
    value = _value_at(raw, inner)
    field = _last_field(inner)
    explained = _explain(message, field, value)
    return IngestRejected(422, "invalid", f"{path}: {explained}" if path else explained, path=path or None)


def _explain(message: str, field: str | None, value: object) -> str:
    if message.startswith("Object missing required field `record`"):
        return (
            f'missing required field `record`: say {_either(RECORD_TAGS)} (a batch is {{"records": [...]}})'
        )
    if message.startswith("Object missing required field"):
        return message.replace("Object missing", "missing", 1)
    if message.startswith(("Invalid value", "Invalid enum value")) and field is not None:
        accepted = RECORD_TAGS if field == "record" else _LITERALS.get(field)
        if accepted:
            return f"{_show(value)} is not accepted: expected {_either(accepted)}"
    expected = _EXPECTED.match(message)
    if expected is None:
        return message  # e.g. a RecordingSegment whose end is before its start: already plain
    type_name, rest = expected.groups()
    said = f"expected {_EXPECTED_NAMES.get(type_name, type_name)}"
    got = _GOT.match(rest)
    if got is not None:
        return f"{said}, got {_GOT_NAMES.get(got.group(1), got.group(1))}"
    if rest.startswith(" matching regex"):
        if ID_PATTERN in rest:
            said = "expected an id: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        else:
            said = f"expected a string{rest}"
    elif " of length " in rest:
        said += rest
        return said if value is _ABSENT else f"{said}, got {_size(value)}"
    else:
        # A bound, "Expected `float` > 0.0": whole numbers read better without the ".0".
        said += _WHOLE_FLOAT.sub("", rest)
    return said if value is _ABSENT else f"{said}, got {_show(value)}"


def _join(prefix: str | None, inner: str) -> str:
    """`records` + `[3]` + `.fps` -> "records[3].fps"; a bare array's records are "[3]"."""
    path = (prefix or "") + inner
    return path.removeprefix(".")


def _last_field(inner: str) -> str | None:
    names = [m.group(1) for m in _PATH_STEP.finditer(inner) if m.group(1) is not None]
    return names[-1] if names else None


def _value_at(raw: msgspec.Raw, inner: str) -> object:
    """The value the path points at in one raw record (small: it was already parsed once)."""
    try:
        value: Any = _any_decoder.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        return _ABSENT
    for step in _PATH_STEP.finditer(inner):
        key, index = step.groups()
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _ABSENT
    return value


def _show(value: object, limit: int = 40) -> str:
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, OverflowError, msgspec.EncodeError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(value: object) -> str:
    if isinstance(value, str):
        return f"{len(value)} characters"
    if isinstance(value, list | dict):
        return f"{len(value)} items"
    return _show(value)


def _either(values: tuple[str, ...]) -> str:
    quoted = [f'"{v}"' for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
