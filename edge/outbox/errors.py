"""Typed errors of the outbox; details are attributes so callers count them by `reason`."""

from __future__ import annotations

from typing import ClassVar

from edge.outbox.policy import Lane


class OutboxError(Exception):
    reason: ClassVar[str] = "outbox"


class OutboxFull(OutboxError):
    """A record was not stored (or not yet made durable) because the outbox or its disk is full.

    `lane` is the refused record's lane. `durable` is False when an alarm or event was kept in
    memory only (the disk itself is full): it is retried at every commit, never dropped.
    """

    reason = "outbox-full"

    def __init__(self, detail: str, *, lane: Lane, durable: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.lane = lane
        self.durable = durable
