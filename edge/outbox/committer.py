"""Group commit for the outbox: one asyncio task commits pending appends at most every 100 ms.

Producers call `append` (cheap, in memory); the task commits when `policy.commit_due` says so;
`await flush()` waits for the commit that makes the caller's appends durable. Alarms bypass the
wait: `append_alarm` commits before it returns. The commit runs on the event loop: one fsync of
the WAL, a few milliseconds on flash, which is what the uplink would wait for anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from edge.outbox.errors import OutboxFull
from edge.outbox.policy import CommitPolicy, Lane, commit_due, seconds_until_due
from edge.outbox.store import Outbox, RecordId


class GroupCommitter:
    """Owns the commit schedule of one `Outbox`; run `run()` as a named task in the agent."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        policy: CommitPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.policy = policy or CommitPolicy()
        self._monotonic = monotonic
        self._first_pending_at: float | None = None
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []  # flush(): commit now
        self._riders: list[asyncio.Future[None]] = []  # durable(): ride the next scheduled commit
        self.commits = 0
        self.failed_commits = 0
        # Called after each commit that made records durable (the uplink looks for new work).
        self.on_commit: list[Callable[[], None]] = []

    def append(self, lane: Lane, kind: str, payload: bytes) -> RecordId:
        if lane == Lane.ALARM:
            return self.append_alarm(kind, payload)
        record_id = self.outbox.append(lane, kind, payload)
        if self._first_pending_at is None:
            self._first_pending_at = self._monotonic()
            self._wake.set()
        elif self.outbox.pending_count >= self.policy.max_pending:
            self._wake.set()
        return record_id

    def note_change(self) -> None:
        """Deliveries (PUBACKs) and attempt counts also reach the file on the commit schedule."""
        if self._first_pending_at is None and self.outbox.unwritten_changes:
            self._first_pending_at = self._monotonic()
            self._wake.set()

    def append_alarm(self, kind: str, payload: bytes) -> RecordId:
        """Durable on return (it commits everything pending with it)."""
        try:
            record_id = self.outbox.append_alarm(kind, payload)
        finally:
            self._after_commit(None)
        self._notify()
        return record_id

    async def flush(self) -> None:
        """Return once everything appended so far is committed; raises `OutboxFull` if not."""
        if self.outbox.pending_count == 0:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    async def durable(self) -> None:
        """Return once everything appended so far is committed, on the normal schedule (at
        most `policy.interval_s` away): many callers share one fsync. Raises `OutboxFull` if not."""
        if self.outbox.pending_count == 0:
            return
        rider: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._riders.append(rider)
        await rider

    async def run(self) -> None:
        """Commit forever on the policy's schedule; cancel to stop (pending records are committed)."""
        try:
            while True:
                pending = self.outbox.unwritten_changes
                age = self._age()
                if commit_due(pending, age, flush_requested=bool(self._waiters), policy=self.policy):
                    self._commit()
                    continue
                sleep = seconds_until_due(pending, age, self.policy)
                self._wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
                # that lands as the wait ends, and the agent would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(sleep):
                        await self._wake.wait()
        finally:
            self._commit()

    def _age(self) -> float:
        return 0.0 if self._first_pending_at is None else self._monotonic() - self._first_pending_at

    def _commit(self) -> None:
        try:
            self.outbox.commit()
        except OutboxFull as error:
            self.failed_commits += 1
            self._after_commit(error)
        else:
            self.commits += 1
            self._after_commit(None)
            self._notify()

    def _notify(self) -> None:
        for callback in self.on_commit:
            callback()

    def _after_commit(self, error: OutboxFull | None) -> None:
        # Alarms/events kept in memory on a full disk stay pending: restart their clock.
        self._first_pending_at = self._monotonic() if self.outbox.unwritten_changes else None
        waiters, self._waiters = self._waiters, []
        riders, self._riders = self._riders, []
        for waiter in waiters + riders:
            if waiter.done():
                continue
            if error is None and self.outbox.pending_count == 0:
                waiter.set_result(None)
            elif error is not None:
                waiter.set_exception(error)
            else:
                self._waiters.append(waiter)
