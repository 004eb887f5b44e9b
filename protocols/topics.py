"""The MQTT topic namespace between edge nodes and the fleet manager.

    watchpost/v1/node/{node_id}/up/{kind}     node -> fleet (birth, death, telemetry, ...)
    watchpost/v1/node/{node_id}/down/{kind}   fleet -> node (command, alarm-ack, ota-offer)
    watchpost/v1/host/{host_id}/state         the fleet's retained, timestamped host state

The direction segment lets a broker ACL say "node X writes only under its own up/ and reads
only its own down/" with one pattern each (see docs/protocols.md).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from protocols.errors import TopicError

PREFIX = "watchpost/v1"

# Node and host ids become topic levels, so they exclude '/', '+', '#' and '$'.
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class Kind(enum.StrEnum):
    BIRTH = "birth"
    DEATH = "death"
    TELEMETRY = "telemetry"
    EVENT = "event"
    ALARM = "alarm"
    VIDEO = "video"
    RESULT = "result"
    OTA_PROGRESS = "ota"
    VISIT = "visit"
    COMMAND = "command"
    ALARM_ACK = "alarm-ack"
    OTA_OFFER = "ota-offer"
    HOST_STATE = "host-state"


@dataclass(frozen=True, slots=True)
class Route:
    """How one kind of message travels: direction, QoS, retain, and why."""

    kind: Kind
    direction: Direction | None  # None: not under a node (the host state)
    qos: int
    retain: bool
    why: str


ROUTES: dict[Kind, Route] = {
    r.kind: r
    for r in (
        Route(Kind.BIRTH, Direction.UP, 1, False, "starts a session; carries bdSeq and what the node has"),
        Route(Kind.DEATH, Direction.UP, 1, False, "the MQTT will, same bdSeq as the birth it ends"),
        Route(
            Kind.TELEMETRY, Direction.UP, 0, False, "periodic readings; the next one supersedes a lost one"
        ),
        Route(Kind.EVENT, Direction.UP, 1, False, "door, tamper, storage, camera... from the durable outbox"),
        Route(
            Kind.ALARM, Direction.UP, 1, False, "a citizen pressed the bell: never lost, overtakes backlog"
        ),
        Route(Kind.VIDEO, Direction.UP, 1, False, "recording segments and video events, batched"),
        Route(Kind.RESULT, Direction.UP, 1, False, "outcome of a command, by its correlation id"),
        Route(Kind.OTA_PROGRESS, Direction.UP, 1, False, "per-node state of an update"),
        Route(Kind.VISIT, Direction.UP, 1, False, "a technician on site checked in or resolved, node-signed"),
        Route(Kind.COMMAND, Direction.DOWN, 1, False, "fleet asks the node to act; expires"),
        Route(Kind.ALARM_ACK, Direction.DOWN, 1, False, "an operator took the call: light the lamp"),
        Route(Kind.OTA_OFFER, Direction.DOWN, 1, False, "a signed release is available to this node"),
        Route(Kind.HOST_STATE, None, 1, True, "is the fleet manager online; nodes hold replay until it is"),
    )
}


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: which node (or host) and which kind of message."""

    kind: Kind
    node_id: str | None = None
    host_id: str | None = None


def check_id(value: str, *, what: str = "node id") -> str:
    if not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def node_topic(node_id: str, kind: Kind) -> str:
    route = ROUTES[kind]
    if route.direction is None:
        raise ValueError(f"{kind} is not a node topic")
    return f"{PREFIX}/node/{check_id(node_id)}/{route.direction}/{kind}"


def host_state_topic(host_id: str) -> str:
    return f"{PREFIX}/host/{check_id(host_id, what='host id')}/state"


def fleet_subscription(*, share_group: str | None = None) -> str:
    """What the fleet subscribes to; with a share group, MQTT 5 shared subscription."""
    topic = f"{PREFIX}/node/+/up/#"
    return f"$share/{share_group}/{topic}" if share_group else topic


def node_subscriptions(node_id: str) -> list[str]:
    """What a node subscribes to: its own down/ topics and every fleet host's state."""
    return [f"{PREFIX}/node/{check_id(node_id)}/down/#", f"{PREFIX}/host/+/state"]


def parse_topic(topic: str) -> Topic | TopicError:
    parts = topic.split("/")
    if len(parts) < 3 or "/".join(parts[:2]) != PREFIX:
        return TopicError(f"topic {topic!r} is outside {PREFIX}/")
    if len(parts) == 5 and parts[2] == "host" and parts[4] == "state":
        if not _ID_RE.fullmatch(parts[3]):
            return TopicError(f"host id {parts[3]!r} is not a valid id", path=topic)
        return Topic(Kind.HOST_STATE, host_id=parts[3])
    if len(parts) != 6 or parts[2] != "node":
        return TopicError(
            f"topic {topic!r} is not {PREFIX}/node/<id>/<up|down>/<kind> or {PREFIX}/host/<id>/state"
        )
    node_id, direction, kind = parts[3], parts[4], parts[5]
    if not _ID_RE.fullmatch(node_id):
        return TopicError(f"node id {node_id!r} is not a valid id", path=topic)
    try:
        parsed = Kind(kind)
    except ValueError:
        return TopicError(f"unknown message kind {kind!r}", path=topic)
    if ROUTES[parsed].direction != direction:
        return TopicError(f"{kind!r} does not travel {direction!r}", path=topic)
    return Topic(parsed, node_id=node_id)
