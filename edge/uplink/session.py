"""The node's side of the MQTT session, as a pure state machine: connection states, `bd_seq`,
`seq`, reconnect backoff, and which outbox lanes may go now. The paho shell
(edge.uplink.mqtt) feeds it events and asks it questions; it reads no clock and touches no
socket. The fleet's side of the same rules is protocols.session.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from edge.outbox import Lane
from protocols.session import next_bd_seq


class UplinkState(enum.Enum):
    OFFLINE = "offline"  # no connection; waiting for the next attempt
    CONNECTING = "connecting"  # TCP/TLS up or going up, CONNACK not yet in
    ONLINE = "online"  # CONNACK accepted, birth published: records flow
    STOPPED = "stopped"  # the agent is shutting down: death published, no more attempts


_ALLOWED: dict[UplinkState, frozenset[UplinkState]] = {
    UplinkState.OFFLINE: frozenset({UplinkState.CONNECTING, UplinkState.STOPPED}),
    UplinkState.CONNECTING: frozenset({UplinkState.ONLINE, UplinkState.OFFLINE, UplinkState.STOPPED}),
    UplinkState.ONLINE: frozenset({UplinkState.OFFLINE, UplinkState.STOPPED}),
    UplinkState.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    def __init__(self, current: UplinkState, wanted: UplinkState) -> None:
        super().__init__(f"uplink cannot go from {current.value} to {wanted.value}")
        self.current = current
        self.wanted = wanted


def reconnect_delay(attempt: int, *, rng: random.Random, base_s: float = 0.5, cap_s: float = 60.0) -> float:
    """Seconds before connection attempt `attempt` (1 = the first retry): full jitter over an
    exponential ceiling, so 1,500 poles that lost the broker together do not return together."""
    ceiling = min(cap_s, base_s * 2 ** min(attempt, 16))
    return rng.uniform(0.0, ceiling)


@dataclass
class UplinkSession:
    """One node's uplink, across connections. `bd_seq` is persisted by the shell between runs."""

    last_bd_seq: int | None = None
    state: UplinkState = UplinkState.OFFLINE
    bd_seq: int | None = None  # of the current (or last) connection
    seq: int = 0
    failed_attempts: int = 0
    connections: int = 0
    births: int = 0
    last_error: str | None = None
    # None: no fleet host has said anything; False: every host that spoke is offline.
    hosts: dict[str, bool] = field(default_factory=dict)

    def transition(self, wanted: UplinkState) -> None:
        if wanted not in _ALLOWED[self.state]:
            raise IllegalTransition(self.state, wanted)
        self.state = wanted

    def connecting(self) -> int:
        """A new connection attempt: returns its `bd_seq` (persist it before connecting, since
        the will registered with this connection carries it)."""
        self.transition(UplinkState.CONNECTING)
        self.bd_seq = next_bd_seq(self.last_bd_seq)
        self.last_bd_seq = self.bd_seq
        return self.bd_seq

    def connected(self) -> None:
        """CONNACK accepted; the shell publishes the birth (seq 0) next."""
        self.transition(UplinkState.ONLINE)
        self.failed_attempts = 0
        self.connections += 1
        self.last_error = None
        self.birth()

    def birth(self) -> None:
        """A birth (first, or a rebirth the fleet asked for) restarts `seq` at 0."""
        self.seq = 0
        self.births += 1

    def lost(self, reason: str) -> None:
        """The connection failed or dropped."""
        if self.state is UplinkState.STOPPED:
            return
        if self.state is UplinkState.CONNECTING:
            self.failed_attempts += 1
        self.last_error = reason
        self.transition(UplinkState.OFFLINE)

    def stopped(self) -> None:
        if self.state is not UplinkState.STOPPED:
            self.transition(UplinkState.STOPPED)

    def next_seq(self) -> int:
        """The `seq` of the next QoS 1 message in this session."""
        self.seq = (self.seq + 1) % 2**32
        return self.seq

    def host_state(self, host_id: str, online: bool) -> None:
        self.hosts[host_id] = online

    def may_publish(self, lane: Lane) -> bool:
        """Alarms go whenever connected. The rest wait while every fleet host that announced
        itself says it is offline: the broker would only queue them for nobody to read."""
        if self.state is not UplinkState.ONLINE:
            return False
        if lane is Lane.ALARM or not self.hosts:
            return True
        return any(self.hosts.values())
