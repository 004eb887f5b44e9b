"""MQTT payloads: round trips, and a typed error for every kind of bad input."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import errors
from protocols import messages as m
from protocols.topics import Kind

from .examples import EXAMPLES, TS


def as_dict(kind: Kind) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(m.encode(EXAMPLES[kind]))
    return loaded


def raw(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def test_every_kind_has_an_example() -> None:
    assert set(EXAMPLES) == set(Kind)


@pytest.mark.parametrize("kind", list(Kind))
def test_round_trip(kind: Kind) -> None:
    message = EXAMPLES[kind]
    assert m.kind_of(message) is kind
    assert m.decode(kind, m.encode(message)) == message


@pytest.mark.parametrize("kind", list(Kind))
def test_payload_says_its_type_and_version(kind: Kind) -> None:
    data = as_dict(kind)
    assert data["type"] == kind.value
    assert data["v"] == 1


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    data = as_dict(Kind.ALARM) | {"camera_ptz_preset": 3}
    assert m.decode(Kind.ALARM, raw(data)) == EXAMPLES[Kind.ALARM]


def test_missing_optional_fields_take_their_defaults() -> None:
    data = as_dict(Kind.ALARM)
    del data["historical"], data["presses"]
    decoded = m.decode(Kind.ALARM, raw(data))
    assert isinstance(decoded, m.BellAlarm)
    assert decoded.historical is False
    assert decoded.presses == 1


def test_telemetry_leaves_unmeasured_readings_out() -> None:
    data = as_dict(Kind.TELEMETRY)
    assert "mem_used_pct" not in data["readings"]
    assert data["readings"]["cpu_temp_c"] == 51.5


# --- bad input: each names what was wrong ----------------------------------------------------


def check(kind: Kind, payload: bytes, error: type[errors.ContractError], *words: str) -> errors.ContractError:
    result = m.decode(kind, payload)
    assert type(result) is error, result
    for word in words:
        assert word in str(result)
    return result


def test_truncated_json() -> None:
    check(Kind.ALARM, m.encode(EXAMPLES[Kind.ALARM])[:-5], errors.InvalidJson, "truncated")


def test_oversized_payload() -> None:
    check(
        Kind.EVENT,
        b"{" + b" " * (16 * 1024 - 1) + b"}",
        errors.PayloadTooLarge,
        "16385 bytes",
        "at most 16384",
    )


def test_invalid_utf8_even_in_a_field_this_side_skips() -> None:
    payload = m.encode(EXAMPLES[Kind.EVENT])[:-1] + b',"note":"\xc3\x28"}'
    check(Kind.EVENT, payload, errors.InvalidUtf8, "UTF-8")


def test_not_json() -> None:
    check(Kind.EVENT, b"door open", errors.InvalidJson, "JSON")


def test_wrong_field_type() -> None:
    data = as_dict(Kind.ALARM) | {"pressed_at": "yesterday"}
    error = check(Kind.ALARM, raw(data), errors.WrongType, "int", "str")
    assert error.path == "$.pressed_at"


def test_out_of_range_number() -> None:
    data = as_dict(Kind.TELEMETRY)
    data["readings"]["cpu_temp_c"] = 400.0
    error = check(Kind.TELEMETRY, raw(data), errors.OutOfRange, "150")
    assert error.path == "$.readings.cpu_temp_c"


def test_negative_sequence_number() -> None:
    data = as_dict(Kind.EVENT) | {"seq": -1}
    check(Kind.EVENT, raw(data), errors.OutOfRange, ">= 0")


def test_payload_must_say_its_type() -> None:
    data = as_dict(Kind.ALARM)
    del data["type"]
    error = check(Kind.ALARM, raw(data), errors.MissingField, "type", "'alarm'")
    assert error.path == "$"


def test_missing_field() -> None:
    data = as_dict(Kind.ALARM)
    del data["alarm_id"]
    check(Kind.ALARM, raw(data), errors.MissingField, "alarm_id")


def test_unknown_version() -> None:
    data = as_dict(Kind.ALARM) | {"v": 2}
    check(Kind.ALARM, raw(data), errors.UnknownVersion, "2", "speaks 1")


def test_unknown_version_wins_over_the_shape_it_brings() -> None:
    # A v2 payload may look nothing like v1: the reason given is the version.
    check(Kind.ALARM, raw({"v": 2, "type": "alarm", "bell": {"id": 1}}), errors.UnknownVersion)


def test_type_that_does_not_match_the_topic() -> None:
    check(Kind.EVENT, m.encode(EXAMPLES[Kind.ALARM]), errors.UnknownMessageType, "'alarm'", "'event'")


def test_invalid_enumeration_value() -> None:
    data = as_dict(Kind.EVENT) | {"category": "graffiti"}
    check(Kind.EVENT, raw(data), errors.InvalidValue, "graffiti")


def test_id_that_would_break_a_topic() -> None:
    data = as_dict(Kind.BIRTH) | {"site_id": "s/04+12"}
    check(Kind.BIRTH, raw(data), errors.InvalidValue, "site_id")


def test_birth_must_start_at_seq_zero() -> None:
    data = as_dict(Kind.BIRTH) | {"seq": 3}
    check(Kind.BIRTH, raw(data), errors.InvalidValue, "seq 0")


@pytest.mark.parametrize(
    ("field", "items", "said"),
    [
        (
            "cameras",
            [{"camera_id": "cam-1", "name": "a"}, {"camera_id": "cam-1", "name": "b"}],
            "camera id 'cam-1'",
        ),
        ("bells", ["bell-1", "bell-2", "bell-1"], "bell id 'bell-1'"),
    ],
)
def test_birth_names_each_camera_and_bell_once(field: str, items: list[object], said: str) -> None:
    data = as_dict(Kind.BIRTH) | {field: items}
    check(Kind.BIRTH, raw(data), errors.InvalidValue, f"{said} is listed twice")


def test_segment_that_ends_before_it_starts() -> None:
    data = as_dict(Kind.VIDEO)
    data["records"][0]["end"] = data["records"][0]["start"] - 1
    check(Kind.VIDEO, raw(data), errors.InvalidValue, "ends")


def test_command_that_expired_before_it_was_issued() -> None:
    data = as_dict(Kind.COMMAND) | {"expires_at": TS - 1}
    check(Kind.COMMAND, raw(data), errors.InvalidValue, "expires")


def test_empty_video_batch() -> None:
    data = as_dict(Kind.VIDEO) | {"records": []}
    check(Kind.VIDEO, raw(data), errors.OutOfRange, "length")


def test_integer_too_big_for_json_numbers() -> None:
    data = as_dict(Kind.EVENT) | {"ts": 10**30}
    assert isinstance(m.decode(Kind.EVENT, raw(data)), errors.OutOfRange)


# --- property: any input gives a message or a typed error --------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@given(st.sampled_from(list(Kind)), st.binary(max_size=2000))
def test_arbitrary_bytes(kind: Kind, payload: bytes) -> None:
    result = m.decode(kind, payload)
    assert isinstance(result, errors.ContractError)
    assert result.reason
    assert result.detail


@given(st.sampled_from(list(Kind)), json_values)
def test_arbitrary_json(kind: Kind, value: Any) -> None:
    result = m.decode(kind, json.dumps(value).encode())
    assert isinstance(result, errors.ContractError)


@given(st.sampled_from(list(Kind)), st.data())
def test_one_field_replaced_by_anything(kind: Kind, data: st.DataObject) -> None:
    payload = as_dict(kind)
    field = data.draw(st.sampled_from(sorted(payload)))
    payload[field] = data.draw(json_values)
    result = m.decode(kind, json.dumps(payload).encode())
    assert isinstance(result, m.MESSAGE_TYPES[kind] | errors.ContractError)
    if isinstance(result, errors.ContractError):
        assert result.reason in {e.reason for e in errors.ALL_ERRORS}


@given(st.sampled_from(list(Kind)), st.integers(0, 400), st.binary(max_size=8))
def test_corrupted_bytes_of_a_valid_payload(kind: Kind, at: int, junk: bytes) -> None:
    payload = m.encode(EXAMPLES[kind])
    at = min(at, len(payload))
    result = m.decode(kind, payload[:at] + junk + payload[at + len(junk) :])
    assert isinstance(result, m.MESSAGE_TYPES[kind] | errors.ContractError)


def test_decoders_do_not_accept_lax_types() -> None:
    # Strict: "1" is not 1, 1.0 is not an int field, true is not 1.
    for value in ("17", 17.0, True):
        data = as_dict(Kind.DEATH) | {"bd_seq": value}
        assert isinstance(m.decode(Kind.DEATH, raw(data)), errors.WrongType), value


def test_encode_is_plain_json() -> None:
    assert msgspec.json.decode(m.encode(EXAMPLES[Kind.HOST_STATE])) == {
        "type": "host-state",
        "v": 1,
        "ts": TS,
        "host_id": "fleet-1",
        "online": True,
    }


@pytest.mark.parametrize("where", ["v", "type", "unknown_field", "readings"])
def test_deeply_nested_json_is_refused_not_a_crash(where: str) -> None:
    deep = "[" * 5000 + "]" * 5000
    payload = m.encode(EXAMPLES[Kind.TELEMETRY])[:-1] + f',"{where}":{deep}}}'.encode()
    assert isinstance(m.decode(Kind.TELEMETRY, payload), errors.ContractError)
