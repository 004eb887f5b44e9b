"""The pole controller's JSON payloads (the vocabulary table at the top of
firmware/controller.py) as typed msgspec structs, and builders for the commands it accepts.
No I/O: edge.controller.link feeds frames in and writes command bytes out."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocols import link

from .errors import PayloadRejected

# A controller tick (ms, wraps at 2**30 like MicroPython's ticks_ms()).
Tick = Annotated[int, msgspec.Meta(ge=0, lt=1 << 30)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Flag = Literal[0, 1]
CommandId = int | str
ResetCause = Literal["power-on", "watchdog", "soft", "unknown"]
LoopState = Literal["open", "short", "normal"]

# The controller echoes a string id only up to this length (firmware/controller.py).
MAX_ECHOED_ID = 32
MAX_LAMP_S = 86400


class Hello(msgspec.Struct, frozen=True, kw_only=True):
    fw: str
    rst: ResetCause
    t: Tick


class BellPressed(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    n: Annotated[int, msgspec.Meta(ge=1)]  # presses folded into this alarm
    t: Tick  # the first of them


class BellStuck(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    st: Literal["stuck", "stuck-cleared"]
    t: Tick


class CircuitChanged(msgspec.Struct, frozen=True, kw_only=True):
    st: LoopState
    raw: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    t: Tick


class DoorChanged(msgspec.Struct, frozen=True, kw_only=True):
    st: Literal["open", "closed"]
    t: Tick


class TemperatureChanged(msgspec.Struct, frozen=True, kw_only=True):
    st: Literal["high", "normal"]
    c: float
    t: Tick


class SupplyChanged(msgspec.Struct, frozen=True, kw_only=True):
    st: Literal["low", "normal"]
    v: float
    t: Tick


class Telemetry(msgspec.Struct, frozen=True, kw_only=True):
    up: Count
    c: float
    v: float
    heap: Count
    loop: LoopState
    inputs: tuple[Flag, Flag, Flag, Flag] = msgspec.field(name="in")  # bell down, stuck, door, lamp
    bp: Count
    q: Count
    t: Tick


class Counters(msgspec.Struct, frozen=True, kw_only=True):
    # ln: [sent, retransmits, duplicates, delivered, dropped telemetry, dropped events, downs]
    ln: tuple[Count, Count, Count, Count, Count, Count, Count]
    fe: list[Count]  # per reason, in protocols.link.ERROR_REASONS order
    cm: tuple[Count, Count, Count]  # commands, unknown, bad
    exc: Count
    t: Tick

    def decode_errors(self) -> dict[str, int]:
        return dict(zip(link.ERROR_REASONS, self.fe, strict=False))


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    t: Tick
    cmd: str | None = None
    id: CommandId | None = None
    err: str | None = None
    # lamp
    lamp: Flag | None = None
    buzz: Flag | None = None
    # self-test and status
    loop: LoopState | None = None
    raw: int | None = None
    c: float | None = None
    v: float | None = None
    stuck: Flag | None = None
    fw: str | None = None
    rst: ResetCause | None = None
    up: Count | None = None
    inputs: tuple[Flag, Flag, Flag, Flag] | None = msgspec.field(default=None, name="in")
    heap: Count | None = None
    bp: Count | None = None
    peer: Flag | None = None
    q: Count | None = None
    exc: Count | None = None


ControllerEvent = BellPressed | BellStuck | CircuitChanged | DoorChanged | TemperatureChanged | SupplyChanged
ControllerMessage = Hello | ControllerEvent | Telemetry | Counters | CommandResult


class _Kind(msgspec.Struct, frozen=True):
    k: str
    st: str | None = None


_EVENT_KINDS: dict[str, type[ControllerEvent]] = {
    "circuit": CircuitChanged,
    "door": DoorChanged,
    "temp": TemperatureChanged,
    "supply": SupplyChanged,
}
_TELEMETRY_KINDS: dict[str, type[Telemetry | Counters]] = {"tel": Telemetry, "cnt": Counters}

# Decoders are built once: msgspec compiles the type into a fast path.
_kind_decoder = msgspec.json.Decoder(_Kind)
_decoders: dict[type[ControllerMessage], msgspec.json.Decoder[ControllerMessage]] = {}


def _decoder(kind: type[ControllerMessage]) -> msgspec.json.Decoder[ControllerMessage]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return decoder


def _message_type(frame_type: int, payload: bytes) -> type[ControllerMessage] | PayloadRejected:
    if frame_type == link.T_HELLO:
        return Hello
    if frame_type == link.T_RESULT:
        return CommandResult
    if frame_type not in (link.T_EVENT, link.T_TELEMETRY):
        name = link.TYPE_NAMES.get(frame_type, hex(frame_type))
        return PayloadRejected(
            "unexpected-frame-type",
            f"a {name} frame carries no controller payload",
            frame_type=frame_type,
            payload=payload,
        )
    kind = _kind_decoder.decode(payload)  # msgspec errors are handled by the caller
    if frame_type == link.T_TELEMETRY:
        found: type[ControllerMessage] | None = _TELEMETRY_KINDS.get(kind.k)
        expected = sorted(_TELEMETRY_KINDS)
    elif kind.k == "bell":
        found = BellPressed if kind.st == "pressed" else BellStuck
        expected = []
    else:
        found = _EVENT_KINDS.get(kind.k)
        expected = ["bell", *sorted(_EVENT_KINDS)]
    if found is None:
        return PayloadRejected(
            "unknown-kind",
            f"k={kind.k!r} in a {link.TYPE_NAMES[frame_type]} frame; expected one of {expected}",
            frame_type=frame_type,
            payload=payload,
        )
    return found


def decode_controller_payload(frame_type: int, payload: bytes) -> ControllerMessage | PayloadRejected:
    """The typed message a controller frame carries, or why it was refused. Never raises."""
    try:
        kind = _message_type(frame_type, payload)
        if isinstance(kind, PayloadRejected):
            return kind
        return _decoder(kind).decode(payload)
    except msgspec.ValidationError as exc:
        return PayloadRejected("invalid", str(exc), frame_type=frame_type, payload=payload)
    except msgspec.DecodeError as exc:
        return PayloadRejected("not-json", str(exc), frame_type=frame_type, payload=payload)


# --- Commands (edge -> controller) ------------------------------------------------------------
# Every builder takes the id the controller echoes in its RESULT, which is how
# ControllerLink.send_command() finds the answer; so ids are required and kept echoable.


def _check_id(command_id: CommandId) -> None:
    if isinstance(command_id, bool) or not isinstance(command_id, int | str):
        raise TypeError(f"command id {command_id!r}: expected an int or a str")
    if isinstance(command_id, str) and not 0 < len(command_id) <= MAX_ECHOED_ID:
        raise ValueError(
            f"command id {command_id!r}: a string id must be 1..{MAX_ECHOED_ID} characters "
            "(the controller does not echo longer ones)"
        )


def _command(name: str, command_id: CommandId, **fields: object) -> bytes:
    _check_id(command_id)
    payload = msgspec.json.encode({"cmd": name, **fields, "id": command_id})
    if len(payload) > link.MAX_PAYLOAD:  # only a pathological id could do this
        raise ValueError(f"command {name!r} is {len(payload)} bytes, at most {link.MAX_PAYLOAD} fit a frame")
    return payload


def lamp(on: bool, seconds: int = 0, buzz: bool = False, *, id: CommandId) -> bytes:
    """Light (or put out) the "call received" lamp; `seconds` 0 means until told off."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_LAMP_S:
        raise ValueError(f"lamp seconds {seconds!r}: expected an int in 0..{MAX_LAMP_S} (0 = until off)")
    return _command("lamp", id, on=bool(on), s=seconds, buzz=bool(buzz))


def self_test(*, id: CommandId) -> bytes:
    return _command("self-test", id)


def status(*, id: CommandId) -> bytes:
    return _command("status", id)


def ping(*, id: CommandId) -> bytes:
    return _command("ping", id)


def reboot(*, id: CommandId) -> bytes:
    return _command("reboot", id)


class _CommandHeader(msgspec.Struct, frozen=True):
    cmd: str
    id: CommandId | None = None


_command_header_decoder = msgspec.json.Decoder(_CommandHeader)


def command_header(payload: bytes) -> tuple[str, CommandId]:
    """(name, id) of a command payload; ValueError if it has no echoable id."""
    try:
        header = _command_header_decoder.decode(payload)
    except msgspec.MsgspecError as exc:
        raise ValueError(f"not a command payload: {exc}") from exc
    if header.id is None:
        raise ValueError(f"command {header.cmd!r} has no id: its result could not be matched")
    _check_id(header.id)
    return header.cmd, header.id
