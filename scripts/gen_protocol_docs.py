"""Write docs/protocols.md and docs/schemas/*.json from the wire contracts in protocols/.

Everything the code knows (constants, frame types, routes, structs, limits, verdicts, error
codes) is read from the modules; only prose, examples and sequence diagrams are written here.
Anything in the code that has no prose here (a new Kind, frame type, Verdict, error class...)
stops the script, so new parts of the contract cannot go undocumented.

    python scripts/gen_protocol_docs.py          # rewrite the generated files
    python scripts/gen_protocol_docs.py --check  # write nothing; exit 1 naming stale files
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import sys
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import protocols
from protocols import errors, link, messages, ota, session, topics, visits
from protocols.messages import Message
from protocols.session import Verdict
from protocols.topics import Direction, Kind
from watchpost.broker import acl_rules

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKDOWN = DOCS / "protocols.md"
SCHEMAS = DOCS / "schemas"
MANIFEST_SCHEMA = "ota-manifest.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]


class Undocumented(Exception):
    """The code has something this script has no prose for (or prose for something gone)."""


def require_documented(what: str, in_code: Iterable[Any], documented: Iterable[Any]) -> None:
    code, docs = list(in_code), list(documented)
    missing = [str(k) for k in code if k not in docs]
    extra = [str(k) for k in docs if k not in code]
    problems = []
    if missing:
        problems.append(f"{what} without a description in {Path(__file__).name}: {', '.join(missing)}")
    if extra:
        problems.append(
            f"{what} described in {Path(__file__).name} but gone from the code: {', '.join(extra)}"
        )
    if problems:
        raise Undocumented("; ".join(problems))


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Undocumented(message)


# --- hand-written prose, keyed by what the code defines ------------------------------------

# Serial link frame types, by link.TYPE_NAMES value: (sequenced, sender, meaning).
FRAME_TYPE_DOCS: dict[str, tuple[bool, str, str]] = {
    "hello": (True, "both", "first frame of a session: firmware version and reset cause"),
    "heartbeat": (False, "both", "sent after `heartbeat_ms` of silence; carries only `ack`"),
    "ack": (False, "both", "acknowledges the seq in its `ack` field; no payload"),
    "event": (True, "controller → edge", "bell press, door, bell circuit, supply, temperature thresholds"),
    "telemetry": (True, "controller → edge", "periodic readings; droppable when the queue is full"),
    "command": (True, "edge → controller", "lamp, self-test, status, reboot"),
    "result": (True, "controller → edge", "outcome of a command"),
}

# Delivery classes of the link's outgoing queue, by constant name: (what goes in it, drop rule).
CLASS_DOCS: dict[str, tuple[str, str]] = {
    "CLASS_ALARM": (
        "bell presses",
        "never dropped: when the queue is full an alarm evicts the oldest telemetry frame, "
        "or is queued past the limit",
    ),
    "CLASS_EVENT": (
        "events, command results",
        "a new event evicts the oldest telemetry frame, else the oldest event; it is refused only "
        "when the queue holds nothing but alarms",
    ),
    "CLASS_TELEMETRY": (
        "periodic readings",
        "a new reading evicts the oldest reading; it is refused when the queue holds no telemetry",
    ),
}

# Decode errors of the serial link, by reason code.
LINK_ERROR_DOCS: dict[str, str] = {
    "truncated": "the body is shorter than header + CRC, or holds fewer payload bytes than `len` says",
    "bad-length": "the body holds more payload bytes than `len` says",
    "oversized": (
        "a COBS block (or a run without delimiter) longer than `MAX_ENCODED`; skipped up to the next 0x00"
    ),
    "bad-cobs": "the bytes between two delimiters are not a valid COBS block",
    "bad-crc": "the CRC does not match the body: line noise or a torn frame",
    "unknown-version": "the `ver` byte is not this side's link `VERSION`",
    "unknown-type": "the `type` byte is not a defined frame type",
}

# What each MQTT message kind is for and when it is sent.
KIND_DOCS: dict[Kind, str] = {
    Kind.BIRTH: (
        "First message of every connection (and the answer to a `rebirth` command): what the node "
        "is and has. Starts a session at `seq` 0 with the `bd_seq` of the will registered at CONNECT."
    ),
    Kind.DEATH: (
        "Registered as the MQTT will at CONNECT and published by the broker when the connection is "
        "lost. Being composed at CONNECT, its `ts` is when the connection started, not when it ended."
    ),
    Kind.TELEMETRY: (
        "Periodic readings at QoS 0. It repeats the session's current `seq` without advancing it, "
        "so a lost reading never looks like a gap."
    ),
    Kind.EVENT: "A state change on the pole (door, tamper, storage, camera, supply...), raised or cleared.",
    Kind.ALARM: (
        "A citizen pressed the bell. Written to the durable outbox first and published ahead of any "
        "backlog; presses close together are folded into one alarm (`presses`)."
    ),
    Kind.VIDEO: "Recording segments and video events, batched (at most 1,000 records per message).",
    Kind.RESULT: "The outcome of a `command`, by its `command_id`.",
    Kind.OTA_PROGRESS: "Each state an update passes through on this node, for one campaign.",
    Kind.VISIT: (
        "A technician at the pole checked in, resolved a fault or left, on the node's service "
        "interface. Signed by the node's own Ed25519 key (its public half is in the birth's "
        "`node_key`), so the centre knows someone was physically at the pole; `at` is when it "
        "happened by the node's clock, which can be hours before a node with a dead uplink sends it."
    ),
    Kind.COMMAND: (
        "The fleet asks the node to act, once, by `command_id`. A command past `expires_at` is not "
        "carried out (its result says `expired`)."
    ),
    Kind.ALARM_ACK: "An operator took the call: the node lights the pole's call-received lamp.",
    Kind.OTA_OFFER: "A signed release is available to this node: where its manifest is, and its SHA-256.",
    Kind.HOST_STATE: (
        "The fleet manager's presence, one retained topic per fleet host. Nodes hold back replay of "
        "their outbox while no host is online."
    ),
}

# Rules a struct checks in __post_init__ (on decode too), which JSON Schema cannot express.
POST_INIT_DOCS: dict[str, str] = {
    "NodeBirth": "`seq` is 0",
    "RecordingSegment": "`end` is not before `start`",
    "Command": "`expires_at` is not before `ts`",
    "ManifestFile": (
        "`path` is a normalised relative POSIX path inside the release: no leading `/`, no `..`, "
        "no `\\`, no NUL"
    ),
    "Manifest": "no `path` is listed twice in `files`",
}

VERDICT_DOCS: dict[Verdict, str] = {
    Verdict.ACCEPT: "in order (or telemetry, or fleet → node): act on it",
    Verdict.NEW_SESSION: "a birth: the node's state is replaced by what it says; `last_seq` back to 0",
    Verdict.DUPLICATE: "`seq` not ahead of the last one: a QoS 1 redelivery, drop it",
    Verdict.GAP: "`seq` skipped ahead: act on it, and send a `rebirth` command (messages were lost)",
    Verdict.NO_SESSION: "data before any birth (e.g. the fleet restarted): send a `rebirth` command",
    Verdict.OFFLINE: "the death of the current session (same `bd_seq`): the node is offline",
    Verdict.STALE_DEATH: "a will from an older connection (other `bd_seq`): ignore it",
}

# MQTT contract errors, by class name.
ERROR_DOCS: dict[str, str] = {
    "TopicError": (
        "the topic is outside the namespace, names an unknown kind, or a kind in the wrong direction"
    ),
    "PayloadTooLarge": "the payload exceeds the limit for its kind (or a manifest exceeds its limit)",
    "InvalidUtf8": "the payload is not valid UTF-8",
    "InvalidJson": "the payload is not valid JSON",
    "WrongType": "a field has the wrong JSON type (or a manifest contains a float)",
    "MissingField": "a required field is absent",
    "OutOfRange": "a number or length is outside its bounds",
    "InvalidValue": "any other invalid value: pattern, enum, cross-field rule",
    "UnknownVersion": "`v` is not a contract version this side supports",
    "UnknownMessageType": "the payload's `type` is not the kind its topic names",
    "BadSignature": "a trusted key signed, but the signature does not match the manifest's bytes",
    "UnknownKey": "none of the manifest's signatures is by a key this node trusts",
}

# --- examples ----------------------------------------------------------------------------------

TS = 1_764_000_000_000  # 2025-11-24T16:00:00Z, fixed so the output is deterministic
NODE_ID = "s-0412-a"
SITE_ID = "s-0412"
HOST_ID = "fleet-1"
CAMPAIGN = "edge-1-5-0-wave-2"
RELEASE = "1.5.0"


def fake_sha256(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def example_node_key() -> Ed25519PrivateKey:
    """A fixed example node key for the site-visit example. Not a real key."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"watchpost docs example node key").digest())


def example_keys() -> list[Ed25519PrivateKey]:
    """Two fixed example keys (an old and a new one, as during a rotation). Not real keys."""
    return [
        Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"watchpost docs example key {n}".encode()).digest()
        )
        for n in (2024, 2025)
    ]


def example_manifest() -> ota.Manifest:
    return ota.Manifest(
        release=RELEASE,
        component="edge-agent",
        hardware=["raspberry-pi-4b", "raspberry-pi-5"],
        files=[
            ota.ManifestFile(
                path="watchpost-1.5.0-py3-none-any.whl",
                size=412_388,
                sha256=fake_sha256("watchpost-1.5.0-py3-none-any.whl"),
            ),
            ota.ManifestFile(
                path="bin/watchpost-health",
                size=2_113,
                sha256=fake_sha256("watchpost-health"),
                mode="executable",
            ),
        ],
        artifact=ota.Artifact(
            path="edge-agent-1.5.0.tar", size=419_840, sha256=fake_sha256("edge-agent-1.5.0.tar")
        ),
        created_at=TS - 86_400_000,
        min_version="1.3.0",
        delta=ota.Delta(
            base_release="1.4.2",
            base_sha256=fake_sha256("release 1.4.2"),
            path="edge-agent-1.4.2-to-1.5.0.bsdiff4",
            size=61_204,
            sha256=fake_sha256("delta 1.4.2 to 1.5.0"),
        ),
        notes="Outbox replay resumes after a broker restart; lamp command accepts a duration.",
    )


def signed_example() -> bytes:
    return ota.sign(example_manifest(), example_keys())


def examples() -> dict[Kind, Message]:
    m = messages
    return {
        Kind.BIRTH: m.NodeBirth(
            ts=TS,
            seq=0,
            bd_seq=7,
            site_id=SITE_ID,
            hardware="raspberry-pi-4b",
            agent_version="1.4.2",
            controller=m.ControllerInfo(link="serial", firmware_version="0.9.1", reset_cause="power-on"),
            cameras=[
                m.CameraInfo(camera_id="cam-1", name="North approach", model="Axis P1465-LE"),
                m.CameraInfo(camera_id="cam-2", name="Bus stop", model="Axis P3727-PLE"),
            ],
            bells=["bell-1"],
            capabilities=["lamp", "self-test", "fetch-logs", "delta-ota"],
        ),
        Kind.DEATH: m.NodeDeath(ts=TS, bd_seq=7),
        Kind.TELEMETRY: m.Telemetry(
            ts=TS + 60_000,
            seq=3,
            readings=m.Readings(
                uptime_s=86_460,
                cpu_temp_c=54.5,
                throttled=False,
                mem_used_pct=41.5,
                disk_free_bytes=182_536_110_080,
                clock_synced=True,
                controller_temp_c=31.25,
                supply_v=12.1,
                controller_heap_free=61_440,
                link_errors=0,
                outbox_backlog=0,
                outbox_dropped=0,
                cameras=[
                    m.CameraHealth(camera_id="cam-1", reachable=True, fps=25.0, bitrate_kbps=4096.0),
                    m.CameraHealth(camera_id="cam-2", reachable=False),
                ],
                storage=[
                    m.StorageHealth(device="nvme0n1", health="ok", free_bytes=182_536_110_080, wear_pct=3.0)
                ],
            ),
        ),
        Kind.EVENT: m.Event(
            ts=TS + 75_000,
            seq=4,
            event_id="ev-000231",
            category="door",
            state="raised",
            severity="major",
            component="cabinet-door",
            detail="cabinet door opened",
        ),
        Kind.ALARM: m.BellAlarm(
            ts=TS + 120_400,
            seq=5,
            alarm_id="al-000057",
            bell_id="bell-1",
            pressed_at=TS + 120_000,
            source="controller",
        ),
        Kind.VIDEO: m.VideoBatch(
            ts=TS + 180_000,
            seq=6,
            records=[
                m.RecordingSegment(
                    camera_id="cam-1",
                    start=TS,
                    end=TS + 60_000,
                    bytes=31_457_280,
                    codec="h264",
                    width=1920,
                    height=1080,
                    fps=25.0,
                    bitrate_kbps=4096.0,
                ),
                m.VideoEvent(
                    camera_id="cam-1",
                    at=TS + 41_000,
                    kind="motion",
                    detail="motion in zone 2",
                    bookmarks=["bm-0091"],
                ),
            ],
        ),
        Kind.RESULT: m.CommandResult(
            ts=TS + 121_300,
            seq=7,
            command_id="cmd-000912",
            status="ok",
            output={"lamp": "on", "seconds": 30},
        ),
        Kind.OTA_PROGRESS: m.OtaProgress(
            ts=TS + 240_000,
            seq=8,
            campaign_id=CAMPAIGN,
            release=RELEASE,
            state="downloading",
            progress=0.4,
        ),
        Kind.VISIT: visits.sign_visit(
            NODE_ID,
            example_node_key(),
            ts=TS + 300_000,
            visit_id="visit-20261125-0412-1",
            action="check-in",
            technician="tech-0193",
            at=TS + 290_000,
            clock_synced=True,
            fault_id="fault-000731",
        ),
        Kind.COMMAND: m.Command(
            ts=TS + 121_000,
            command_id="cmd-000912",
            name="lamp",
            issued_by="control-room/desk-3",
            expires_at=TS + 181_000,
            args={"on": True, "seconds": 30},
        ),
        Kind.ALARM_ACK: m.AlarmAck(ts=TS + 121_000, alarm_id="al-000057", operator="control-room/desk-3"),
        Kind.OTA_OFFER: m.OtaOffer(
            ts=TS + 200_000,
            campaign_id=CAMPAIGN,
            release=RELEASE,
            manifest_url=f"https://updates.example.org/watchpost/edge-agent/{RELEASE}/manifest.json",
            manifest_sha256=hashlib.sha256(signed_example()).hexdigest(),
            expires_at=TS + 7 * 86_400_000,
        ),
        Kind.HOST_STATE: m.HostState(ts=TS, host_id=HOST_ID, online=True),
    }


# --- markdown helpers --------------------------------------------------------------------------


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: Iterable[Iterable[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def code(value: object) -> str:
    return f"`{value}`"


def jsonval(value: object) -> str:
    return code(json.dumps(value))


def number(n: int | float) -> str:
    if isinstance(n, int) and n >= 2**20:
        if n & (n - 1) == 0:
            return f"2^{n.bit_length() - 1}"
        if (n + 1) & n == 0:
            return f"2^{n.bit_length()} - 1"
    return json.dumps(n)


def paragraphs(doc: str) -> list[str]:
    return [p.strip("\n") for p in inspect.cleandoc(doc).split("\n\n")]


def fenced(lang: str, text: str) -> list[str]:
    return [f"```{lang}", text.rstrip("\n"), "```", ""]


def size(n: int) -> str:
    return f"{n:,} bytes ({n // 1024} KiB)" if n % 1024 == 0 else f"{n:,} bytes"


# --- JSON Schema to field tables ---------------------------------------------------------------


def ref_name(node: Schema) -> str:
    return str(node["$ref"]).rsplit("/", 1)[-1]


def type_of(node: Schema) -> str:
    if "$ref" in node:
        return f"object `{ref_name(node)}`"
    if "anyOf" in node:
        options: list[Schema] = node["anyOf"]
        parts = [type_of(o) for o in options if o != {"type": "null"}]
        if len(parts) < len(options):
            parts.append("null")
        return " or ".join(parts)
    if "enum" in node:
        kinds = sorted({type(v).__name__ for v in node["enum"]})
        return "string" if kinds == ["str"] else "enum"
    kind = node.get("type")
    if kind == "array":
        return f"array of {type_of(node['items'])}"
    if kind == "object" and "additionalProperties" in node:
        return f"object: string → {type_of(node['additionalProperties'])}"
    if isinstance(kind, str):
        return kind
    raise Undocumented(f"no way to describe JSON Schema node {node!r}: teach type_of()")


def literal_values(annotation: Any) -> list[Any]:
    """Literal values in a type annotation, in the order the code declares them."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    found: list[Any] = []
    for arg in typing.get_args(annotation):
        found += literal_values(arg)
    return found


def bounds(node: Schema, unit: str, low: str, high: str) -> list[str]:
    lo, hi = node.get(low), node.get(high)
    if lo is not None and hi is not None:
        return [f"{number(lo)}..{number(hi)}{unit}"]
    if lo is not None:
        return [f"at least {number(lo)}{unit}"]
    if hi is not None:
        return [f"at most {number(hi)}{unit}"]
    return []


def constraints(node: Schema, order: list[Any]) -> list[str]:
    out: list[str] = []
    if "anyOf" in node:
        for option in node["anyOf"]:
            out += constraints(option, order)
        if "discriminator" in node:
            out.append(f"tagged by {code(node['discriminator']['propertyName'])}")
        return out
    if "enum" in node:
        values = list(node["enum"])
        if set(values) <= set(order):
            values.sort(key=order.index)
        out.append("one of " + ", ".join(code(v) for v in values))
    out += bounds(node, "", "minimum", "maximum")
    if "exclusiveMinimum" in node:
        out.append(f"> {number(node['exclusiveMinimum'])}")
    if "exclusiveMaximum" in node:
        out.append(f"< {number(node['exclusiveMaximum'])}")
    out += bounds(node, " chars", "minLength", "maxLength")
    if "pattern" in node:
        out.append(f"pattern {code(node['pattern'])}")
    out += bounds(node, " items", "minItems", "maxItems")
    out += bounds(node, " keys", "minProperties", "maxProperties")
    if "items" in node:
        out += [f"each: {c}" for c in constraints(node["items"], order)]
    if "propertyNames" in node:
        out += [f"keys: {c}" for c in constraints(node["propertyNames"], order)]
    if isinstance(node.get("additionalProperties"), dict):
        out += [f"values: {c}" for c in constraints(node["additionalProperties"], order)]
    return out


def struct_class(name: str) -> type[msgspec.Struct]:
    for module in (messages, ota):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
            return cls
    raise Undocumented(
        f"schema names a struct {name!r} found in neither protocols.messages nor protocols.ota"
    )


def defs_in_order(schema: Schema) -> list[str]:
    """Struct names of a schema, the top one first, then as their fields first mention them."""
    defs: Schema = schema["$defs"]
    seen: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node and ref_name(node) not in seen:
                seen.append(ref_name(node))
                visit(defs[ref_name(node)])
            for key, value in node.items():
                if key != "discriminator":
                    visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit({"$ref": schema["$ref"]})
    return seen


def field_table(schema: Schema, name: str) -> list[str]:
    node: Schema = schema["$defs"][name]
    cls = struct_class(name)
    config = cls.__struct_config__
    hints = typing.get_type_hints(cls, include_extras=True)
    required = set(node.get("required", []))
    rows = []
    for field, prop in node["properties"].items():
        if field == config.tag_field:
            rows.append([code(field), "string", "always sent", f"always {jsonval(config.tag)}", "tag"])
            continue
        if field in required:
            presence = "required"
        elif "default" in prop:
            presence = f"default {jsonval(prop['default'])}"
        else:
            presence = "optional"
        order = literal_values(hints.get(field))
        rows.append(
            [
                code(field),
                type_of(prop),
                presence,
                "; ".join(constraints(prop, order)),
                prop.get("description", ""),
            ]
        )
    return table(["Field", "Type", "Required / default", "Constraints", "Description"], rows)


def struct_notes(cls: type[msgspec.Struct]) -> list[str]:
    out: list[str] = []
    if cls.__doc__:
        out += paragraphs(cls.__doc__)
    for base in cls.__mro__[1:]:
        if base.__module__ == cls.__module__ and base.__doc__ and issubclass(base, msgspec.Struct):
            out.append(f"Inherited from `{base.__name__}`: {inspect.cleandoc(base.__doc__)}")
    if "__post_init__" in vars(cls):
        check(
            cls.__name__ in POST_INIT_DOCS,
            f"{cls.__name__}.__post_init__ has no description in POST_INIT_DOCS",
        )
        out.append(f"Also checked when decoding (the schema cannot say it): {POST_INIT_DOCS[cls.__name__]}.")
    config = cls.__struct_config__
    if config.forbid_unknown_fields:
        out.append("Unknown fields are refused.")
    if config.omit_defaults and not any("default" in p for p in out):
        out.append("Fields left at their default are not sent.")
    return [line for p in out for line in (p, "")]


def struct_tables(schema: Schema, heading: str) -> list[str]:
    out: list[str] = []
    for i, name in enumerate(defs_in_order(schema)):
        if i > 0:
            out += [f"{heading} `{name}`", ""]
        out += struct_notes(struct_class(name))
        out += field_table(schema, name)
    return out


# --- schemas ---------------------------------------------------------------------------------


def json_schema(cls: type[msgspec.Struct]) -> Schema:
    return {"$schema": JSON_SCHEMA_DIALECT, **msgspec.json.schema(cls)}


def schema_files() -> dict[str, Schema]:
    files = {f"{kind.value}.json": json_schema(messages.MESSAGE_TYPES[kind]) for kind in Kind}
    files[MANIFEST_SCHEMA] = json_schema(ota.Manifest)
    return files


def render_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# --- sections ----------------------------------------------------------------------------------


def node_pattern(kind: Kind) -> str:
    route = topics.ROUTES[kind]
    if route.direction is None:
        pattern = f"{topics.PREFIX}/host/{{host_id}}/state"
        check(
            topics.host_state_topic(HOST_ID) == pattern.replace("{host_id}", HOST_ID),
            f"the documented topic {pattern} is not what topics.host_state_topic() builds",
        )
    else:
        pattern = f"{topics.PREFIX}/node/{{node_id}}/{route.direction}/{kind}"
        check(
            topics.node_topic(NODE_ID, kind) == pattern.replace("{node_id}", NODE_ID),
            f"the documented topic {pattern} is not what topics.node_topic() builds",
        )
    return pattern


def header() -> list[str]:
    return [
        "<!-- Generated by scripts/gen_protocol_docs.py from protocols/: do not edit by hand. -->",
        "<!-- Regenerate: python scripts/gen_protocol_docs.py (CI runs it with --check). -->",
        "",
        "# Watchpost wire protocols",
        "",
        "*This file is generated by `scripts/gen_protocol_docs.py` from the code in `protocols/`; "
        "do not edit it. Change the code (or the prose in the script) and regenerate.*",
        "",
        *paragraphs(protocols.__doc__ or ""),
        "",
        f"Contract version: `{protocols.CONTRACT_VERSION}`.",
        "",
        "1. [Serial link](#1-serial-link-controller--edge) (pole controller ↔ edge agent)",
        "2. [MQTT topics](#2-mqtt-topics) (edge agent ↔ fleet manager)",
        "3. [Payloads](#3-payloads)",
        "4. [Session model](#4-session-model)",
        "5. [Versioning and errors](#5-versioning-and-errors)",
        "6. [OTA manifest](#6-ota-manifest)",
        "7. [Sequence diagrams](#7-sequence-diagrams)",
        "",
    ]


def serial_link() -> list[str]:
    check(link.HEADER_LEN == 5, "link.HEADER_LEN changed: update the frame layout table in the script")
    check(link.CRC_LEN == 2, "link.CRC_LEN changed: update the frame layout table in the script")
    min_body = link.HEADER_LEN + link.CRC_LEN
    check_value = link.crc16(b"123456789")
    check(check_value == link.crc16_py(b"123456789") == 0x29B1, "link CRC is not CRC-16/CCITT-FALSE any more")
    frame_consts = {getattr(link, n): n for n in dir(link) if n.startswith("T_")}
    require_documented("link frame types", list(link.TYPE_NAMES.values()), FRAME_TYPE_DOCS)
    check(list(link.FRAME_TYPES) == list(link.TYPE_NAMES), "link.FRAME_TYPES and link.TYPE_NAMES disagree")
    classes = sorted((getattr(link, n), n) for n in dir(link) if n.startswith("CLASS_"))
    require_documented("link delivery classes", [n for _, n in classes], CLASS_DOCS)
    require_documented("link decode errors", link.ERROR_REASONS, LINK_ERROR_DOCS)
    error_classes = {
        cls.reason: cls.__name__
        for cls in vars(link).values()
        if isinstance(cls, type) and issubclass(cls, link.FrameError) and cls is not link.FrameError
    }
    defaults = {
        name: p.default
        for name, p in inspect.signature(link.LinkSession.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    n = link.MAX_PAYLOAD
    heartbeat = link.encode_frame(link.T_HEARTBEAT, 0, 5)
    event = link.encode_frame(link.T_EVENT, 3, 0, b"\x01\x00\x02")
    out = [
        "## 1. Serial link (controller ↔ edge)",
        "",
        "Source: `protocols/link.py` — one file that runs unchanged on CPython (edge agent) and "
        "MicroPython (pole controller). UART at 115200 baud (8N1): a bell event of ~60 bytes "
        "takes ~5 ms on the wire, the largest frame ~22 ms.",
        "",
        "### Frame layout",
        "",
        "On the wire, every frame is a COBS-encoded body between two `0x00` delimiters. "
        "The leading delimiter cuts off any line noise before the frame instead of letting it "
        "corrupt the frame.",
        "",
        *table(
            ["Wire bytes", "Field", "Notes"],
            [
                ["1", "delimiter `0x00`", "ends whatever came before"],
                [
                    f"{min_body + 1}..{link.MAX_ENCODED}",
                    "COBS(body)",
                    "contains no `0x00`; at most `MAX_ENCODED` bytes",
                ],
                ["1", "delimiter `0x00`", "ends the frame"],
            ],
        ),
        "The body, before COBS encoding:",
        "",
        *table(
            ["Offset", "Size", "Field", "Meaning"],
            [
                ["0", "1", "`ver`", f"link version, `VERSION` = {link.VERSION}"],
                ["1", "1", "`type`", "frame type (table below)"],
                ["2", "1", "`seq`", "1..255 for sequenced types, 0 for unsequenced ones"],
                ["3", "1", "`ack`", "the last seq this side accepted from its peer (0: none yet)"],
                [
                    "4",
                    "1",
                    "`len`",
                    "payload length: a frame cut short is refused for certain, not by CRC odds",
                ],
                [str(link.HEADER_LEN), f"0..{n}", "`payload`", "opaque bytes, at most `MAX_PAYLOAD`"],
                [
                    f"{link.HEADER_LEN}+len",
                    str(link.CRC_LEN),
                    "`crc16`",
                    "CRC-16/CCITT-FALSE over `ver`..`payload`, big-endian",
                ],
            ],
        ),
        *table(
            ["Constant", "Value", "Meaning"],
            [
                ["`VERSION`", link.VERSION, "the `ver` byte of every frame"],
                ["`HEADER_LEN`", link.HEADER_LEN, "ver, type, seq, ack, len"],
                ["`CRC_LEN`", link.CRC_LEN, "CRC-16, big-endian"],
                ["`MAX_PAYLOAD`", link.MAX_PAYLOAD, "largest payload of one frame"],
                ["`MAX_BODY`", link.MAX_BODY, "HEADER_LEN + MAX_PAYLOAD + CRC_LEN"],
                ["`MAX_ENCODED`", link.MAX_ENCODED, "largest COBS block (one byte per started 254)"],
                ["max frame on the wire", link.MAX_ENCODED + 2, "MAX_ENCODED + both delimiters"],
            ],
        ),
        "CRC: **CRC-16/CCITT-FALSE** — polynomial `0x1021`, init `0xFFFF`, no reflection, no final "
        f'XOR; check value `0x{check_value:04X}` for the ASCII bytes `"123456789"`. On CPython it is '
        "`binascii.crc_hqx(data, 0xFFFF)`.",
        "",
        "Examples (`link.encode_frame`, hex, delimiters included):",
        "",
        *fenced(
            "text",
            f"heartbeat, seq 0, ack 5:                 {heartbeat.hex(' ')}\n"
            f"event, seq 3, ack 0, payload 01 00 02:   {event.hex(' ')}",
        ),
        "### Frame types",
        "",
        "Sequenced types carry seq 1..255, are delivered once and acknowledged. Unsequenced "
        "frames carry seq 0 and only their `ack` field matters.",
        "",
        *table(
            ["Code", "Constant", "Name", "Sequenced", "Sent by", "Meaning"],
            [
                [
                    f"`0x{code_:02X}`",
                    code(frame_consts[code_]),
                    code(name),
                    "yes" if FRAME_TYPE_DOCS[name][0] else "no (seq 0)",
                    FRAME_TYPE_DOCS[name][1],
                    FRAME_TYPE_DOCS[name][2],
                ]
                for code_, name in link.TYPE_NAMES.items()
            ],
        ),
        "### Delivery classes",
        "",
        f"The outgoing queue holds up to `queue_limit` = {defaults['queue_limit']} frames (plus the one "
        "in flight). A lower class is sent first and dropped last; within a class, oldest first. "
        "Drops are counted (`dropped_telemetry`, `dropped_events`).",
        "",
        *table(
            ["Class", "Value", "Carries", "When the queue is full"],
            [[code(name), value, *CLASS_DOCS[name]] for value, name in classes],
        ),
        "### Decode errors",
        "",
        "The incremental decoder (`FrameDecoder`) returns errors as values, never raises, and "
        "resynchronises at the next `0x00`. Each error has a stable `reason`, counted in telemetry.",
        "",
        *table(
            ["Reason", "Class", "Meaning"],
            [[code(r), code(error_classes[r]), LINK_ERROR_DOCS[r]] for r in link.ERROR_REASONS],
        ),
        "### Session rules",
        "",
        "Stop-and-wait: one sequenced frame in flight per direction (`LinkSession`).",
        "",
        "* A sequenced frame carries seq 1..255. The receiver accepts it unless seq equals the last "
        "seq it accepted: that is a retransmission, acknowledged again but not delivered again.",
        "* Every frame carries `ack` = the last seq this side accepted (0: none yet).",
        "* A receiver made with `confirm_delivery=True` acknowledges a frame only when the application "
        "calls `confirm(seq)` — the edge does so once the frame's content is on flash. Until then the "
        "sender retransmits and duplicates are not delivered again; a receiver that dies before "
        "confirming gets the frame again after it restarts.",
        f"* The sender retransmits the frame in flight every `rto_ms` (default {defaults['rto_ms']} ms), "
        f"doubling up to `rto_max_ms` ({defaults['rto_max_ms']} ms), until an ack names its seq. "
        "Nothing is ever given up: a bell press waits for the edge.",
        "* A side sends sequenced frames only while it hears its peer, and never picks a seq equal to "
        "the ack its peer advertises, so a stale ack from before a reboot of either side can never "
        "acknowledge a new frame, and a rebooted peer's HELLO is never taken for a duplicate.",
        f"* Either side sends HEARTBEAT after `heartbeat_ms` ({defaults['heartbeat_ms']} ms) of silence; a "
        f"peer not heard for `dead_after_ms` ({defaults['dead_after_ms']} ms) is down. Queued frames wait "
        "(bounded by the delivery classes above) and go when it returns.",
        "* An unsequenced frame of a data type is delivered as it is, without an ack.",
        "* Time is a millisecond counter; differences are taken modulo 2^30, so MicroPython's "
        "`ticks_ms()` can be passed as it is.",
        "",
    ]
    return out


def mqtt_topics() -> list[str]:
    directions = {
        Direction.UP: "up: node → fleet",
        Direction.DOWN: "down: fleet → node",
        None: "host → everyone",
    }
    rows = []
    for kind in Kind:
        route = topics.ROUTES[kind]
        rows.append(
            [
                code(kind.value),
                code(node_pattern(kind)),
                directions[route.direction],
                route.qos,
                "yes" if route.retain else "no",
                route.why,
            ]
        )
    node_subs = [t.replace(f"/{NODE_ID}/", "/{node_id}/") for t in topics.node_subscriptions(NODE_ID)]
    # The very ACL deploy/mosquitto/acl ships and tests/fleet/ingest/test_bad_input.py runs.
    acl = acl_rules(fleet_user="fleet")
    return [
        "## 2. MQTT topics",
        "",
        "Source: `protocols/topics.py`.",
        "",
        *paragraphs(topics.__doc__ or "")[:1],
        "",
        "Node and host ids become topic levels, so they are restricted to "
        f"{code(topics.ID_PATTERN)} (no `/`, `+`, `#` or `$`).",
        "",
        *table(["Kind", "Topic", "Direction", "QoS", "Retained", "Why"], rows),
        "Subscriptions:",
        "",
        *table(
            ["Who", "Subscribes to"],
            [
                ["fleet manager (one instance)", code(topics.fleet_subscription())],
                [
                    'fleet manager (several instances, MQTT 5 shared subscription "fleet")',
                    code(topics.fleet_subscription(share_group="fleet")),
                ],
                ["edge node", ", ".join(code(t) for t in node_subs)],
            ],
        ),
        "### Broker ACL",
        "",
        "The direction segment lets the broker confine each node with one pattern per direction. "
        "Mosquitto `acl_file` (`deploy/mosquitto/acl`, made by `watchpost.broker.acl_rules`), "
        "assuming each node logs in with its node id as user name (the node's will, its death, is "
        "published under its own `up/` and is covered too):",
        "",
        *fenced("text", acl),
        "`%u` is the authenticated user name: a password file, or a client certificate whose CN is "
        "the node id with `use_identity_as_username true`, keeps a node from naming itself another.",
        "",
    ]


def payloads() -> list[str]:
    require_documented("Kind members", list(Kind), KIND_DOCS)
    require_documented("Kind members", list(Kind), messages.MESSAGE_TYPES)
    require_documented("Kind members", list(Kind), topics.ROUTES)
    examples_ = examples()
    require_documented("examples of Kind members", list(Kind), examples_)
    out = [
        "## 3. Payloads",
        "",
        "Source: `protocols/messages.py`. Every payload is a JSON object whose `type` names its kind "
        "(the same as the topic's last level) and whose `v` is the contract version. Readers ignore "
        "fields they do not know. Fields of the top-level message are always sent, defaults included; "
        "nested parts leave out fields at their default. Writers always send `type`; the schemas "
        "require it, while `messages.decode` also accepts a payload without it (the topic names the "
        "kind). Schemas: `docs/schemas/<kind>.json` "
        "(JSON Schema 2020-12, from `msgspec.json.schema`).",
        "",
        *table(
            ["Kind", "Struct", "Max payload", "Schema"],
            [
                [
                    code(k.value),
                    code(messages.MESSAGE_TYPES[k].__name__),
                    size(messages.MAX_PAYLOAD_BYTES[k]),
                    f"[{k.value}.json](schemas/{k.value}.json)",
                ]
                for k in Kind
            ],
        ),
    ]
    for kind in Kind:
        cls = messages.MESSAGE_TYPES[kind]
        check(
            messages.kind_of(examples_[kind]) is kind,
            f"the example for {kind} is a {type(examples_[kind]).__name__}",
        )
        encoded = messages.encode(examples_[kind])
        decoded = messages.decode(kind, encoded)
        check(
            decoded == examples_[kind], f"the example {kind} payload does not decode to itself: {decoded!r}"
        )
        route = topics.ROUTES[kind]
        schema = msgspec.json.schema(cls)
        out += [
            f"### `{kind.value}` — {cls.__name__}",
            "",
            KIND_DOCS[kind],
            "",
            f"Topic {code(node_pattern(kind))}, QoS {route.qos}, "
            f"{'retained' if route.retain else 'not retained'}. "
            f"At most {size(messages.MAX_PAYLOAD_BYTES[kind])}. "
            f"Schema: [schemas/{kind.value}.json](schemas/{kind.value}.json).",
            "",
            *struct_tables(schema, "####"),
            f"Example ({len(encoded)} bytes):",
            "",
            *fenced("json", encoded.decode()),
        ]
    return out


def session_model() -> list[str]:
    require_documented("Verdict members", list(Verdict), VERDICT_DOCS)
    doc = paragraphs(session.__doc__ or "")
    model = next((p for p in paragraphs(messages.__doc__ or "") if p.startswith("The session model")), None)
    check(model is not None, "protocols/messages.py docstring lost its session model paragraph")
    kind_by_class = {cls: kind for kind, cls in messages.MESSAGE_TYPES.items()}
    qos0 = ", ".join(code(kind_by_class[c].value) for c in session.QOS0_KINDS)
    return [
        "## 4. Session model",
        "",
        "Sources: `protocols/session.py` (the fleet's per-node state machine `NodeSession`) and "
        "`protocols/messages.py`.",
        "",
        str(model),
        "",
        *[line for p in doc[1:] for line in (p, "")],
        f"* `bd_seq` is 0..255: `next_bd_seq(None)` = {session.next_bd_seq(None)}, "
        f"`next_bd_seq(254)` = {session.next_bd_seq(254)}, `next_bd_seq(255)` = {session.next_bd_seq(255)}.",
        f"* Kinds that repeat `seq` without advancing it (QoS 0): {qos0}.",
        "* Fleet → node messages carry no `seq`; the fleet accepts its own messages as they are.",
        "",
        "Verdicts of `NodeSession.observe()`:",
        "",
        *table(
            ["Verdict", "Value", "Meaning"],
            [[code(f"Verdict.{v.name}"), code(v.value), VERDICT_DOCS[v]] for v in Verdict],
        ),
    ]


def versioning_and_errors() -> list[str]:
    rule = next((p for p in paragraphs(messages.__doc__ or "") if p.startswith("Versioning:")), None)
    check(rule is not None, "protocols/messages.py docstring lost its 'Versioning:' paragraph")
    names = [cls.__name__ for cls in errors.ALL_ERRORS]
    require_documented("error classes in errors.ALL_ERRORS", names, ERROR_DOCS)
    supported = ", ".join(str(v) for v in sorted(messages.SUPPORTED_VERSIONS))
    return [
        "## 5. Versioning and errors",
        "",
        "### Versioning",
        "",
        str(rule),
        "",
        f"This release writes `v` = {protocols.CONTRACT_VERSION} and reads: {supported}. "
        "The JSON Schemas therefore allow additional properties. OTA manifests are the exception: "
        "a node must never install from a manifest that says something it does not understand, "
        "so their structs refuse unknown fields (`additionalProperties: false`).",
        "",
        "### Error reasons",
        "",
        *paragraphs(errors.__doc__ or "")[1:],
        "",
        "The decoders are `messages.decode`, `topics.parse_topic` and `ota.verify`; the serial "
        "link's reasons are in section 1.",
        "",
        *table(
            ["Reason", "Class", "Meaning"],
            [[code(c.reason), code(c.__name__), ERROR_DOCS[c.__name__]] for c in errors.ALL_ERRORS],
        ),
    ]


def ota_manifest() -> list[str]:
    keys = example_keys()
    document = signed_example()
    trusted = {ota.key_id(k.public_key()): k.public_key() for k in keys}
    check(ota.verify(document, trusted) == example_manifest(), "the example signed manifest does not verify")
    for k in keys:
        raw = k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        check(
            ota.key_id(k.public_key()) == hashlib.sha256(raw).hexdigest()[:16],
            "ota.key_id() is no longer the first 16 hex digits of SHA-256 of the raw public key",
        )
    manifest_schema = msgspec.json.schema(ota.Manifest)
    signature_schema = msgspec.json.schema(ota.Signature)
    pretty = json.dumps(json.loads(document), indent=2)
    return [
        "## 6. OTA manifest",
        "",
        "Source: `protocols/ota.py`. Schema of the manifest: "
        f"[schemas/{MANIFEST_SCHEMA}](schemas/{MANIFEST_SCHEMA}).",
        "",
        *[line for p in paragraphs(ota.__doc__ or "") for line in (p, "")],
        "Rules:",
        "",
        "* **Canonical bytes** (`ota.canonical_bytes`): the manifest as UTF-8 JSON, object keys sorted, "
        "no whitespace, no floats. Signatures are over these bytes, never over the document as "
        "received; a document with a float in its manifest is refused (`wrong-type`).",
        "* **Key id** (`ota.key_id`): the first 16 hex digits of the SHA-256 of the raw 32-byte Ed25519 "
        "public key. A node looks signatures up by key id in its trusted set; signatures by keys it does "
        "not know are skipped.",
        "* **Accepted** when one signature by a trusted key verifies; `bad-signature` when trusted keys "
        "signed but none verifies, `unknown-key` when no trusted key signed. Only then is the manifest "
        "itself validated (`v`, then the fields below).",
        "* **Rotation**: sign every release with the old and the new key; roll the new key out to the "
        "nodes' trusted sets; then stop signing with the old key and remove it from the trusted sets.",
        f"* The whole document is at most {size(ota.MAX_DOCUMENT_BYTES)}, with 1..8 signatures; the "
        "`ota-offer` message carries the SHA-256 of the exact document bytes.",
        "",
        "### `Manifest`",
        "",
        *struct_tables(manifest_schema, "###"),
        "### `Signature`",
        "",
        *struct_tables(signature_schema, "###"),
        "### Example",
        "",
        "A signed document (pretty-printed here; the wire form is compact), signed during a rotation "
        "by two example keys:",
        "",
        *fenced("json", pretty),
        "The manifest's canonical bytes, which both signatures cover:",
        "",
        *fenced("text", ota.canonical_bytes(example_manifest()).decode()),
    ]


def sequence_diagrams() -> list[str]:
    alarm_topic = node_pattern(Kind.ALARM).replace("{node_id}", NODE_ID)
    ack_topic = node_pattern(Kind.ALARM_ACK).replace("{node_id}", NODE_ID)
    death_topic = node_pattern(Kind.DEATH).replace("{node_id}", NODE_ID)
    defaults = {
        n: p.default
        for n, p in inspect.signature(link.LinkSession.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    qos = {k: topics.ROUTES[k].qos for k in Kind}
    rto, rto_max = defaults["rto_ms"], defaults["rto_max_ms"]
    bell = f"""sequenceDiagram
    participant Bell as Bell button
    participant C as Pole controller
    participant E as Edge agent
    participant Q as Edge outbox (durable)
    participant B as MQTT broker
    participant F as Fleet manager
    actor Op as Operator
    Bell->>C: pressed
    C-xE: EVENT frame seq=n (class ALARM), lost on the wire
    Note over C: no ack naming n after rto ({rto} ms, doubling up to {rto_max} ms)
    C->>E: EVENT frame seq=n, retransmitted (never given up)
    E->>Q: store alarm (alarm_id, bell_id, pressed_at)
    E->>C: ACK ack=n
    Q->>B: PUBLISH {alarm_topic} QoS {qos[Kind.ALARM]}, ahead of any backlog
    B-->>Q: PUBACK, the alarm leaves the outbox
    B->>F: alarm
    F->>Op: call from site {SITE_ID}, bell-1
    Op->>F: acknowledge
    F->>B: PUBLISH {ack_topic} QoS {qos[Kind.ALARM_ACK]} (lamp=true)
    B->>E: alarm-ack (alarm_id)
    E->>C: COMMAND frame seq=m, lamp on
    C->>E: ACK ack=m
    C->>Bell: light the call-received lamp
    C->>E: RESULT frame seq=n+1 (lamp on)
    E->>C: ACK ack=n+1"""

    v = {verdict: verdict.value for verdict in Verdict}
    birth = f"""sequenceDiagram
    participant N as Edge node {NODE_ID}
    participant B as MQTT broker
    participant F as Fleet manager
    Note over N: bd_seq n = next_bd_seq(previous), kept across restarts
    N->>B: CONNECT, will = death(bd_seq=n) on {death_topic}
    N->>B: birth (bd_seq=n, seq=0)
    B->>F: birth
    Note over F: {v[Verdict.NEW_SESSION]} (bd_seq=n, last_seq=0, online)
    N->>B: event seq=1, QoS 1
    B->>F: event seq=1
    Note over F: {v[Verdict.ACCEPT]}
    N->>B: telemetry seq=1, QoS 0 (seq not advanced)
    B->>F: telemetry seq=1
    Note over F: {v[Verdict.ACCEPT]}
    Note over N,B: connection lost, keep-alive expires
    B->>F: will: death (bd_seq=n)
    Note over F: {v[Verdict.OFFLINE]} (bd_seq matches the session)
    N->>B: CONNECT, will = death(bd_seq=n+1)
    N->>B: birth (bd_seq=n+1, seq=0)
    B->>F: birth
    Note over F: {v[Verdict.NEW_SESSION]}
    B->>F: a will from the older connection, late: death (bd_seq=n)
    Note over F: {v[Verdict.STALE_DEATH]}: ignored, the node stays online
    N->>B: alarm seq=1
    B->>F: alarm seq=1
    N-xB: event seq=2, lost (e.g. broker restarted without persistence)
    N->>B: result seq=3
    B->>F: result seq=3
    Note over F: {v[Verdict.GAP]}: act on it, then ask for a rebirth
    F->>B: command name=rebirth
    B->>N: command name=rebirth
    N->>B: birth (bd_seq=n+1, seq=0), same connection so same bd_seq as its will
    B->>F: birth
    Note over F: {v[Verdict.NEW_SESSION]}
    Note over F: after a fleet restart, data without a known birth is {v[Verdict.NO_SESSION]}: rebirth"""

    ota_states = set(literal_values(messages.OtaState))
    used = {"notified", "downloading", "downloaded", "verified", "installing", "restarting"}
    used |= {"health-check", "committed", "failed", "rolled-back"}
    check(used <= ota_states, f"OTA states in the diagram no longer exist: {sorted(used - ota_states)}")
    update = f"""sequenceDiagram
    participant F as Fleet manager
    participant B as MQTT broker
    participant N as Edge agent
    participant R as Release server (HTTPS)
    F->>B: ota-offer (campaign_id, release, manifest_url, manifest_sha256, expires_at)
    B->>N: ota-offer, QoS {qos[Kind.OTA_OFFER]}
    N->>B: ota state=notified
    N->>R: GET manifest_url
    R-->>N: signed manifest document
    Note over N: SHA-256 of the document = manifest_sha256, a trusted key's signature verifies
    Note over N: v, component, hardware and min_version fit this node
    alt manifest refused
        N->>B: ota state=failed, detail names the reason code
    else manifest accepted
        N->>B: ota state=downloading, progress 0.0 to 1.0
        N->>R: GET the delta (if its base_release is running) or the files
        Note over N: each file: size and sha256 as listed
        N->>B: ota state=downloaded, then verified
        N->>N: install into the inactive slot (A/B)
        N->>B: ota state=installing, then restarting
        N->>N: boot the new slot
        N->>B: ota state=health-check
        alt healthy in time
            N->>B: ota state=committed
        else unhealthy or no answer
            N->>N: boot the previous slot again
            N->>B: ota state=rolled-back
        end
    end
    B->>F: every ota progress message, QoS {qos[Kind.OTA_PROGRESS]}"""

    return [
        "## 7. Sequence diagrams",
        "",
        "### Bell press to call-received lamp",
        "",
        "The controller retransmits the EVENT frame until the edge acknowledges it; the edge "
        "stores the alarm in its durable outbox before that ack goes out, so an acknowledged "
        "press survives an edge restart. The alarm is published at QoS 1 ahead of any backlog.",
        "",
        *fenced("mermaid", bell),
        "### Birth, death and rebirth",
        "",
        *fenced("mermaid", birth),
        "### OTA update",
        "",
        *fenced("mermaid", update),
    ]


def markdown() -> str:
    checked = [
        name
        for module in (messages, ota)
        for name, cls in vars(module).items()
        if isinstance(cls, type) and issubclass(cls, msgspec.Struct) and "__post_init__" in vars(cls)
    ]
    require_documented("structs with a __post_init__ check", checked, POST_INIT_DOCS)
    lines = [
        *header(),
        *serial_link(),
        *mqtt_topics(),
        *payloads(),
        *session_model(),
        *versioning_and_errors(),
        *ota_manifest(),
        *sequence_diagrams(),
    ]
    text = "\n".join(line.rstrip() for line in lines)
    return text.rstrip("\n") + "\n"


# --- main --------------------------------------------------------------------------------------


def outputs() -> dict[Path, str]:
    files = {MARKDOWN: markdown()}
    files.update({SCHEMAS / name: render_json(schema) for name, schema in schema_files().items()})
    return files


def stale(files: Mapping[Path, str]) -> tuple[list[Path], list[Path]]:
    """Generated files whose content differs (or which are missing), and schemas no longer generated."""
    changed = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    extra = sorted(p for p in SCHEMAS.glob("*.json") if p not in files) if SCHEMAS.is_dir() else []
    return changed, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    args = parser.parse_args(argv)
    try:
        files = outputs()
    except Undocumented as exc:
        print(f"gen_protocol_docs: {exc}", file=sys.stderr)
        return 1
    changed, extra = stale(files)
    rel = [str(p.relative_to(ROOT)) for p in changed]
    gone = [str(p.relative_to(ROOT)) for p in extra]
    if args.check:
        if not changed and not extra:
            return 0
        if rel:
            print(f"stale generated files: {', '.join(rel)}", file=sys.stderr)
        if gone:
            print(f"schemas no longer generated: {', '.join(gone)}", file=sys.stderr)
        print("run: python scripts/gen_protocol_docs.py", file=sys.stderr)
        return 1
    SCHEMAS.mkdir(parents=True, exist_ok=True)
    for path in changed:
        path.write_text(files[path], encoding="utf-8", newline="\n")
    for path in extra:
        path.unlink()
    print(f"wrote {len(changed)} file(s), removed {len(extra)}, {len(files) - len(changed)} unchanged")
    for name in rel + [f"{g} (removed)" for g in gone]:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
