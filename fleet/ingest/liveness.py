"""Nodes that went quiet: a node the fleet holds online that has sent nothing for
`FaultRulesConfig.heartbeat_timeout_s` is taken offline, and the offline fault condition is
raised as of its last message plus the timeout, as a death would (fleet.faults.rules.heartbeat).
Its next birth brings it back (fleet.ingest.apply). Called by the ingest's settle step with the
time passed in; several fleet workers may call it at once.

Silence counts only while the fleet was listening: after a fleet restart or a lost broker
connection every node looks quiet, and it is the fleet that was away, not the poles.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.faults import rules, store
from fleet.ingest.apply import FaultPolicy
from fleet.inventory.models import Node


def silent_since(now_ms: int, config: rules.FaultRulesConfig) -> int:
    """A node last heard before this moment (epoch ms) is overdue at `now_ms`."""
    return now_ms - config.heartbeat_timeout_s * 1000


def expire_silent(
    session: Session, now_ms: int, *, policy: FaultPolicy, listening_since: int | None = None
) -> list[str]:
    """Take the overdue nodes offline and raise their offline condition; returns their ids.

    `now_ms` is the moment up to which every message received has been applied (the ingest's
    clock, or the receive time of its last applied message while a backlog waits: a message in
    the queue is not silence). `listening_since` is when the fleet's broker connection began:
    silence counts from then at the earliest.

    Each node's row is locked as a message for it would lock it (fleet.ingest.apply), so a
    message arriving meanwhile either comes first (and the node is no longer overdue) or finds
    the node offline and is answered with a rebirth request. On PostgreSQL rows another worker
    holds are skipped: that worker is applying a message of the node or expiring it itself."""
    cutoff = silent_since(now_ms, policy.rules)
    if listening_since is not None and listening_since >= cutoff:
        return []  # not listening for a whole timeout yet
    query = (
        sa.select(Node)
        .where(Node.online.is_(True), Node.last_seen_ms < cutoff)
        .order_by(Node.id)
        .with_for_update()
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    expired = []
    for node in session.scalars(query).all():
        if node.last_seen_ms is None:
            continue
        # Decided again on the locked row: the query's snapshot may predate its last message.
        heard_until = max(node.last_seen_ms, listening_since or 0)
        observation = rules.heartbeat(node.node_id, last_seen=heard_until, now=now_ms, config=policy.rules)
        if not observation.raised or not node.online:
            continue
        node.online = False
        store.observe(session, observation, config=policy.rules, policy=policy.sla)
        expired.append(node.node_id)
    return expired
