"""Session rules of the MQTT contract, as a pure state machine the fleet feeds per node.

A node's session runs from its birth to its death (or to its next birth). The node keeps
`bd_seq` across restarts and advances it on every new connection; its will carries the same
`bd_seq` as the birth, so a will from an older connection arriving late is told apart.

`seq` counts the QoS 1 messages a node has sent in its session (birth = 0, each event, alarm,
video batch, result or OTA progress +1). QoS 0 telemetry repeats the current `seq` without
advancing it: telemetry may be lost by design and must not look like a gap. A QoS 1 message
whose `seq` skips ahead means messages were lost, and the fleet asks for a rebirth; one whose
`seq` is not ahead is a redelivery and is dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.messages import Message, NodeBirth, NodeDeath, Telemetry

QOS0_KINDS = (Telemetry,)


class Verdict(enum.StrEnum):
    ACCEPT = "accept"  # in order: act on it
    NEW_SESSION = "new-session"  # a birth: state replaced by what it says
    DUPLICATE = "duplicate"  # seen already in this session (QoS 1 redelivery): drop
    GAP = "gap"  # act on it, and send a rebirth command: messages were lost
    NO_SESSION = "no-session"  # data before any birth (fleet restarted?): send a rebirth command
    OFFLINE = "offline"  # the death of the current session: node is offline
    STALE_DEATH = "stale-death"  # a will from an older connection: ignore


@dataclass(slots=True)
class NodeSession:
    """What the fleet remembers of one node's session."""

    bd_seq: int | None = None
    last_seq: int = 0
    online: bool = False
    gaps: int = 0
    duplicates: int = 0

    def observe(self, message: Message) -> Verdict:
        if isinstance(message, NodeBirth):
            self.bd_seq = message.bd_seq
            self.last_seq = 0
            self.online = True
            return Verdict.NEW_SESSION
        if isinstance(message, NodeDeath):
            if self.bd_seq is None or message.bd_seq != self.bd_seq:
                return Verdict.STALE_DEATH
            self.online = False
            return Verdict.OFFLINE
        seq = getattr(message, "seq", None)
        if seq is None:
            return Verdict.ACCEPT  # fleet -> node messages carry no session counter
        if self.bd_seq is None or not self.online:
            return Verdict.NO_SESSION
        if isinstance(message, QOS0_KINDS):
            # Telemetry may name a seq this side has not seen yet: that QoS 1 message may
            # still be in flight, so it is not a gap by itself.
            return Verdict.ACCEPT
        if seq <= self.last_seq:
            self.duplicates += 1
            return Verdict.DUPLICATE
        gap = seq > self.last_seq + 1
        self.last_seq = seq
        if gap:
            self.gaps += 1
            return Verdict.GAP
        return Verdict.ACCEPT


def next_bd_seq(previous: int | None) -> int:
    """The bd_seq a node uses for its next connection (kept across restarts on the node)."""
    return 0 if previous is None else (previous + 1) % 256
