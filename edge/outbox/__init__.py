"""The edge node's durable store-and-forward outbox: records wait on flash until their PUBACK.

`store` is the SQLite mechanism, `policy` the pure decisions (which record is evicted, when to
commit), `committer` the asyncio group-commit task. The uplink reads `next_batch`, publishes at
QoS 1 and calls `delivered` on PUBACK.
"""

from edge.outbox.committer import GroupCommitter
from edge.outbox.errors import OutboxError, OutboxFull
from edge.outbox.policy import LANE_OF_KIND, CommitPolicy, Lane, OutboxLimits
from edge.outbox.store import Outbox, Record, RecordId

__all__ = [
    "LANE_OF_KIND",
    "CommitPolicy",
    "GroupCommitter",
    "Lane",
    "Outbox",
    "OutboxError",
    "OutboxFull",
    "OutboxLimits",
    "Record",
    "RecordId",
]
