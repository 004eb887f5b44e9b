"""Pure decisions of the outbox, fed with values: which record makes room, when to commit.

The store (`edge.outbox.store`) and the committer (`edge.outbox.committer`) call these; they
touch no file and read no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Lane(enum.IntEnum):
    """Priority lanes, most urgent first: the value is the publish order."""

    ALARM = 0
    EVENT = 1
    TELEMETRY = 2
    VIDEO = 3


# The lane of each message kind that waits in the outbox (protocols.topics.Kind values).
LANE_OF_KIND: dict[str, Lane] = {
    "alarm": Lane.ALARM,
    "event": Lane.EVENT,
    "result": Lane.EVENT,  # the fleet waits on a command's result as on an event
    "ota": Lane.EVENT,
    "visit": Lane.EVENT,
    "telemetry": Lane.TELEMETRY,
    "video": Lane.VIDEO,
}

# Lanes whose records may be dropped to make room, in the order they are sacrificed.
DROPPABLE = (Lane.VIDEO, Lane.TELEMETRY)
NEVER_DROPPED = frozenset({Lane.ALARM, Lane.EVENT})


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxLimits:
    """The outbox's soft bound, from config: records and payload bytes kept on flash."""

    max_records: int = 1_000_000
    max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_records < 1:
            raise ValueError(f"max_records {self.max_records} is not allowed: use 1 or more")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes {self.max_bytes} is not allowed: use 1 or more")


@dataclass(frozen=True, slots=True)
class Usage:
    """Records and payload bytes held per lane (committed and pending)."""

    records: dict[Lane, int]
    payload_bytes: dict[Lane, int]

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.payload_bytes.values())


class Admission(enum.Enum):
    ACCEPT = "accept"  # fits, or an alarm/event beyond the bound (never refused)
    EVICT_VIDEO = "evict-video"  # drop the oldest video record, then ask again
    EVICT_TELEMETRY = "evict-telemetry"  # drop the oldest telemetry record, then ask again
    REFUSE = "refuse"  # a video/telemetry record with nothing lower to evict


def admission(lane: Lane, size: int, usage: Usage, limits: OutboxLimits) -> Admission:
    """What to do with one new record of `size` payload bytes in `lane`."""
    fits = usage.total_records + 1 <= limits.max_records and usage.total_bytes + size <= limits.max_bytes
    if fits:
        return Admission.ACCEPT
    if usage.records[Lane.VIDEO] > 0:
        return Admission.EVICT_VIDEO
    # Telemetry outranks video: a video record never evicts it. The next reading supersedes it.
    if lane != Lane.VIDEO and usage.records[Lane.TELEMETRY] > 0:
        return Admission.EVICT_TELEMETRY
    if lane in NEVER_DROPPED:
        return Admission.ACCEPT
    return Admission.REFUSE


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitPolicy:
    """Group commit: a pending record waits at most `interval_s`; `max_pending` commits early."""

    interval_s: float = 0.1
    max_pending: int = 5_000

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"interval_s {self.interval_s} is not allowed: use a positive number of seconds")
        if self.max_pending < 1:
            raise ValueError(f"max_pending {self.max_pending} is not allowed: use 1 or more")


def commit_due(
    pending: int, oldest_pending_age_s: float, *, flush_requested: bool, policy: CommitPolicy
) -> bool:
    """Whether the committer commits now."""
    if pending == 0:
        return False
    return flush_requested or pending >= policy.max_pending or oldest_pending_age_s >= policy.interval_s


def seconds_until_due(pending: int, oldest_pending_age_s: float, policy: CommitPolicy) -> float | None:
    """How long the committer may sleep; None: nothing pending, sleep until woken."""
    if pending == 0:
        return None
    return max(0.0, policy.interval_s - oldest_pending_age_s)
