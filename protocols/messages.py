"""MQTT payloads between edge nodes and the fleet manager: typed, strictly validated JSON.

The session model follows Sparkplug B: a node's session starts with a birth carrying `bd_seq`;
the MQTT will, registered at CONNECT with the same `bd_seq`, is its death; messages after the
birth carry `seq` (0 in the birth, +1 per QoS 1 message; telemetry repeats the current value,
see `protocols.session`) so the fleet sees gaps and asks for a rebirth. Unlike Sparkplug,
payloads are JSON (readable with `mosquitto_sub`), and alarms and buffered records go at QoS 1
from the node's durable outbox; records replayed from that outbox say `historical: true`.

Versioning: every payload carries `v`, the contract's major version. Within a version, fields
are only ever added, as optional, and readers ignore fields they do not know, so a fleet and
nodes of different releases still understand each other. A change that old readers would get
wrong gets a new `v` (and topic prefix), and the reader refuses it as `unknown-version`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from protocols import CONTRACT_VERSION
from protocols.errors import (
    ContractError,
    InvalidJson,
    InvalidUtf8,
    InvalidValue,
    MissingField,
    OutOfRange,
    PayloadTooLarge,
    UnknownMessageType,
    UnknownVersion,
    WrongType,
)
from protocols.topics import ID_PATTERN, Kind

SUPPORTED_VERSIONS: Final = frozenset({CONTRACT_VERSION})

# --- field types -----------------------------------------------------------------------------

EpochMs = Annotated[int, Meta(ge=0, le=2**53 - 1, description="milliseconds since the Unix epoch, UTC")]
BdSeq = Annotated[int, Meta(ge=0, le=255, description="birth/death sequence, wraps 255 -> 0")]
Seq = Annotated[int, Meta(ge=0, le=2**32 - 1, description="per-session message counter, birth is 0")]
Id = Annotated[str, Meta(pattern=ID_PATTERN, description="a-z, 0-9, '.', '_', '-'; at most 64")]
VERSION_PATTERN: Final = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
Version = Annotated[str, Meta(pattern=VERSION_PATTERN, max_length=64)]
Name = Annotated[str, Meta(min_length=1, max_length=128)]
Text = Annotated[str, Meta(max_length=2000)]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Celsius = Annotated[float, Meta(ge=-60.0, le=150.0)]
Percent = Annotated[float, Meta(ge=0.0, le=100.0)]
ConfigValue = str | int | float | bool
OutputValue = str | int | float | bool | None | list[str]


class _Struct(msgspec.Struct, kw_only=True, frozen=True):
    pass


class _Part(_Struct, omit_defaults=True, kw_only=True, frozen=True):
    """A nested part of a message: fields left at their default are not sent."""


class _Message(_Struct, tag_field="type", kw_only=True, frozen=True):
    v: int = CONTRACT_VERSION
    ts: EpochMs


class _SessionMessage(_Message, kw_only=True, frozen=True):
    """Sent by a node inside a session: carries the session counter."""

    seq: Seq


class _Record(_SessionMessage, kw_only=True, frozen=True):
    """May sit in the node's outbox and be replayed later."""

    historical: bool = False


# --- node -> fleet ----------------------------------------------------------------------------


ResetCause = Literal["power-on", "watchdog", "soft", "brown-out", "unknown"]


class ControllerInfo(_Part, kw_only=True, frozen=True):
    """The pole controller behind this node, as it said in its first frame after boot."""

    link: Literal["serial", "gpio"]
    firmware_version: Version | None = None
    reset_cause: ResetCause | None = None


class CameraInfo(_Part, kw_only=True, frozen=True):
    """A camera on this pole."""

    camera_id: Id
    name: Name
    model: Name | None = None


NodeKey = Annotated[str, Meta(pattern=r"^[A-Za-z0-9+/]{43}=$", description="base64 raw Ed25519 public key")]
KeyId = Annotated[
    str, Meta(pattern=r"^[0-9a-f]{16}$", description="first 16 hex digits of SHA-256(raw public key)")
]


class NodeBirth(_SessionMessage, tag="birth", kw_only=True, frozen=True):
    """Starts a node's session: who it is and what it has. Everything the fleet knew before is replaced."""

    bd_seq: BdSeq
    site_id: Id
    hardware: Name
    agent_version: Version
    controller: ControllerInfo | None = None
    cameras: Annotated[list[CameraInfo], Meta(max_length=64)] = []
    bells: Annotated[list[Id], Meta(max_length=8)] = []
    capabilities: Annotated[list[Name], Meta(max_length=64)] = []
    node_key: NodeKey | None = None  # verifies the node's signed site visits (protocols.visits)

    def __post_init__(self) -> None:
        if self.seq != 0:
            raise ValueError(f"a birth starts its session at seq 0, not {self.seq}")
        # Ids name things: the fleet keeps one camera, one bell per id.
        for what, ids in (("camera", [c.camera_id for c in self.cameras]), ("bell", self.bells)):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"{what} id {twice[0]!r} is listed twice")


class NodeDeath(_Message, tag="death", kw_only=True, frozen=True):
    """The node's MQTT will: published by the broker when the connection with this `bd_seq` is lost."""

    bd_seq: BdSeq


class CameraHealth(_Part, kw_only=True, frozen=True):
    """One camera's reachability and stream, as last probed by the node."""

    camera_id: Id
    reachable: bool
    fps: Annotated[float, Meta(ge=0, le=1000)] | None = None
    bitrate_kbps: Annotated[float, Meta(ge=0, le=10_000_000)] | None = None


class StorageHealth(_Part, kw_only=True, frozen=True):
    """One storage device (SD card, eMMC, disk) of the node."""

    device: Name
    health: Literal["ok", "warning", "failing", "unknown"]
    free_bytes: Count | None = None
    wear_pct: Percent | None = None
    read_only: bool = False


class Readings(_Part, kw_only=True, frozen=True):
    """One sample of everything a node measures; absent means not measured."""

    uptime_s: Count | None = None
    cpu_temp_c: Celsius | None = None
    throttled: bool | None = None
    mem_used_pct: Percent | None = None
    disk_free_bytes: Count | None = None
    clock_synced: bool | None = None
    controller_temp_c: Celsius | None = None
    supply_v: Annotated[float, Meta(ge=0.0, le=60.0)] | None = None
    controller_heap_free: Count | None = None
    link_errors: Count | None = None
    outbox_backlog: Count | None = None
    outbox_dropped: Count | None = None
    cameras: Annotated[list[CameraHealth], Meta(max_length=64)] = []
    storage: Annotated[list[StorageHealth], Meta(max_length=16)] = []


class Telemetry(_Record, tag="telemetry", kw_only=True, frozen=True):
    """Periodic readings at QoS 0; the next one supersedes a lost one."""

    readings: Readings


EventCategory = Literal[
    "door",
    "tamper",
    "temperature",
    "supply",
    "storage",
    "camera",
    "link",
    "controller",
    "bell-circuit",
    "bell-stuck",
    "system",
]


EventState = Literal["raised", "cleared", "info"]
Severity = Literal["info", "minor", "major", "critical"]


class Event(_Record, tag="event", kw_only=True, frozen=True):
    """Something changed at the pole: raised and cleared pairs open and close faults in the fleet."""

    event_id: Id
    category: EventCategory
    state: EventState
    severity: Severity
    component: Id | None = None
    value: float | None = None
    detail: Text = ""


class BellAlarm(_Record, tag="alarm", kw_only=True, frozen=True):
    """A citizen pressed the emergency call bell. Latched in the fleet until an operator acknowledges."""

    alarm_id: Id
    bell_id: Id
    pressed_at: EpochMs
    source: Literal["controller", "gpio"]
    presses: Annotated[int, Meta(ge=1, le=10_000)] = 1  # presses folded into this alarm


class RecordingSegment(_Part, tag_field="record", tag="segment", kw_only=True, frozen=True):
    """A stretch of recorded video, so the centre can find footage without asking the pole."""

    camera_id: Id
    start: EpochMs
    end: EpochMs
    bytes: Count
    codec: Name
    width: Annotated[int, Meta(ge=1, le=16384)]
    height: Annotated[int, Meta(ge=1, le=16384)]
    fps: Annotated[float, Meta(gt=0, le=1000)]
    bitrate_kbps: Annotated[float, Meta(ge=0, le=10_000_000)]
    bookmarks: Annotated[list[Id], Meta(max_length=16)] = []

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"segment ends ({self.end}) before it starts ({self.start})")


class VideoEvent(_Part, tag_field="record", tag="video-event", kw_only=True, frozen=True):
    """Something a camera or the NVR noticed in the picture."""

    camera_id: Id
    at: EpochMs
    kind: Literal["motion", "analytics", "video-loss", "tamper"]
    detail: Text = ""
    bookmarks: Annotated[list[Id], Meta(max_length=16)] = []


class VideoBatch(_Record, tag="video", kw_only=True, frozen=True):
    """Video metadata from the node's outbox, in batches of up to 1,000 records."""

    records: Annotated[list[RecordingSegment | VideoEvent], Meta(min_length=1, max_length=1000)]


CommandStatus = Literal["ok", "failed", "rejected", "expired", "unknown-command"]


class CommandResult(_Record, tag="result", kw_only=True, frozen=True):
    """What became of a command, by its `command_id`."""

    command_id: Id
    status: CommandStatus
    detail: Text = ""
    output: Annotated[dict[Name, OutputValue], Meta(max_length=64)] = {}


OtaState = Literal[
    "queued",
    "notified",
    "downloading",
    "downloaded",
    "verified",
    "installing",
    "restarting",
    "health-check",
    "committed",
    "failed",
    "rolled-back",
]


class OtaProgress(_Record, tag="ota", kw_only=True, frozen=True):
    """The node's state in an update campaign."""

    campaign_id: Id
    release: Version
    state: OtaState
    progress: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    # Why a node refused, failed or rolled back, as a short token the fleet counts by
    # (e.g. "bad-signature", "hash-mismatch", "health-check"); `detail` says it in words.
    reason: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9-]{0,63}$")] | None = None
    detail: Text = ""


VisitAction = Literal["check-in", "resolve", "check-out"]


class SiteVisit(_Record, tag="visit", kw_only=True, frozen=True):
    """A technician at the pole checked in, resolved a fault, or left, on the node's own service
    interface. The node signs it (protocols.visits), so the centre knows someone was physically
    there; `at` is the node's clock when it happened, which may be long before it was sent."""

    visit_id: Id
    action: VisitAction
    technician: Name
    at: EpochMs
    clock_synced: bool | None = None  # was the node's clock synchronised when `at` was taken
    fault_id: Id | None = None
    note: Text = ""
    node_key_id: KeyId
    signature: Annotated[str, Meta(pattern=r"^[A-Za-z0-9+/]{86}==$", description="base64 Ed25519")]


# --- fleet -> node ----------------------------------------------------------------------------

CommandName = Literal[
    "ping",
    "self-test",
    "lamp",
    "reboot-controller",
    "fetch-logs",
    "set-config",
    "rebirth",
]


class Command(_Message, tag="command", kw_only=True, frozen=True):
    """The fleet asks a node to act; the node refuses it after `expires_at`."""

    command_id: Id
    name: CommandName
    issued_by: Name
    expires_at: EpochMs
    args: Annotated[dict[Name, ConfigValue], Meta(max_length=32)] = {}

    def __post_init__(self) -> None:
        if self.expires_at < self.ts:
            raise ValueError(f"command expires ({self.expires_at}) before it was issued ({self.ts})")


class AlarmAck(_Message, tag="alarm-ack", kw_only=True, frozen=True):
    """An operator took the call: the node lights the pole's lamp."""

    alarm_id: Id
    operator: Name
    lamp: bool = True  # light the pole's "call received" lamp


class OtaOffer(_Message, tag="ota-offer", kw_only=True, frozen=True):
    """A signed release is waiting for this node at `manifest_url`."""

    campaign_id: Id
    release: Version
    manifest_url: Annotated[str, Meta(pattern=r"^https?://", max_length=2000)]
    manifest_sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    expires_at: EpochMs


class HostState(_Message, tag="host-state", kw_only=True, frozen=True):
    """Retained by the fleet manager; `online: false` is its own MQTT will."""

    host_id: Id
    online: bool


Message = (
    NodeBirth
    | NodeDeath
    | Telemetry
    | Event
    | BellAlarm
    | VideoBatch
    | CommandResult
    | OtaProgress
    | SiteVisit
    | Command
    | AlarmAck
    | OtaOffer
    | HostState
)

MESSAGE_TYPES: Final[dict[Kind, type[Message]]] = {
    Kind.BIRTH: NodeBirth,
    Kind.DEATH: NodeDeath,
    Kind.TELEMETRY: Telemetry,
    Kind.EVENT: Event,
    Kind.ALARM: BellAlarm,
    Kind.VIDEO: VideoBatch,
    Kind.RESULT: CommandResult,
    Kind.OTA_PROGRESS: OtaProgress,
    Kind.VISIT: SiteVisit,
    Kind.COMMAND: Command,
    Kind.ALARM_ACK: AlarmAck,
    Kind.OTA_OFFER: OtaOffer,
    Kind.HOST_STATE: HostState,
}

# Largest payload accepted per kind: a video batch of 1,000 records fits in 256 KiB.
MAX_PAYLOAD_BYTES: Final[dict[Kind, int]] = {
    kind: (256 * 1024 if kind is Kind.VIDEO else 32 * 1024 if kind is Kind.BIRTH else 16 * 1024)
    for kind in Kind
}


def kind_of(message: Message) -> Kind:
    return Kind(str(type(message).__struct_config__.tag))


# --- encode / decode --------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_decoders: dict[Kind, msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(cls) for kind, cls in MESSAGE_TYPES.items()
}


class _Envelope(msgspec.Struct):
    # Raw: look at these two fields without building whatever else the payload nests.
    v: msgspec.Raw = msgspec.Raw()  # empty: the field is absent
    type: msgspec.Raw = msgspec.Raw()


def _raw_as(raw: msgspec.Raw, kind: type[int] | type[str]) -> int | str | None:
    if not raw:
        return None
    try:
        value: int | str = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError:
        return None
    return value


_envelope_decoder = msgspec.json.Decoder(_Envelope)

_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode(kind: Kind, payload: bytes) -> Message | ContractError:
    """Decode and validate one payload of the kind its topic names.

    Returns the message or a ContractError saying what was wrong; never raises.
    """
    limit = MAX_PAYLOAD_BYTES[kind]
    if len(payload) > limit:
        return PayloadTooLarge(f"{kind} payload is {len(payload)} bytes, at most {limit} are accepted")
    try:
        # JSON is UTF-8 throughout (RFC 8259), including fields this side would skip.
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidUtf8(f"not valid UTF-8: {exc.reason} at byte {exc.start}")
    try:
        message: Message = _decoders[kind].decode(payload)
    except msgspec.ValidationError as exc:
        return _explain(kind, payload, str(exc))
    except msgspec.DecodeError as exc:
        return InvalidJson(f"not valid JSON: {exc}")
    except RecursionError:
        return InvalidJson("not valid JSON here: nested too deeply")
    if message.v not in SUPPORTED_VERSIONS:
        return _unknown_version(message.v)
    # msgspec treats the tag as optional when the decoder's type is a single struct; the
    # contract does not: a payload read with mosquitto_sub must say what it is.
    try:
        has_type = bool(_envelope_decoder.decode(payload).type)
    except RecursionError:  # deep nesting in a field this side ignores
        return InvalidJson("not valid JSON here: nested too deeply")
    if not has_type:
        return MissingField(f"Object missing required field `type` (expected {kind.value!r})", path="$")
    return message


def _unknown_version(v: object) -> UnknownVersion:
    supported = ", ".join(str(s) for s in sorted(SUPPORTED_VERSIONS))
    return UnknownVersion(
        f"contract version {v!r} is not supported (this side speaks {supported})", path="$.v"
    )


def _explain(kind: Kind, payload: bytes, text: str) -> ContractError:
    # A payload of another contract version may fail validation for that reason alone: say so.
    try:
        envelope = _envelope_decoder.decode(payload)
    except (msgspec.MsgspecError, RecursionError):
        envelope = None
    if envelope is not None:
        version = _raw_as(envelope.v, int)
        if isinstance(version, int) and version not in SUPPORTED_VERSIONS:
            return _unknown_version(version)
        claimed = _raw_as(envelope.type, str)
        if claimed is not None and claimed != kind.value:
            return UnknownMessageType(
                f"payload says type {claimed!r} but the topic carries {kind.value!r}", path="$.type"
            )
    match = _AT_PATH.search(text)
    path = match.group(1) if match else None
    detail = text[: match.start()] if match else text
    if detail.startswith("Object missing required field"):
        return MissingField(detail, path=path)
    if detail.startswith("Expected `") and ", got `" in detail:
        return WrongType(detail, path=path)
    if (
        detail.startswith("Expected `") and any(op in detail for op in (">=", "<=", " > ", " < ", "length"))
    ) or detail.startswith("Number out of range"):
        return OutOfRange(detail, path=path)
    return InvalidValue(detail, path=path)
