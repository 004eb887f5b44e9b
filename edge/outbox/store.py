"""The outbox on the node's flash: SQLite in WAL mode, priority lanes, bounded, group-committed.

Appends wait in memory until `commit()` (driven by `edge.outbox.committer`); alarms are
committed before `append_alarm` returns. Only committed records are handed to the uplink, so
nothing is published that a crash could take back. A record leaves only by `delivered()` (its
PUBACK came) or by eviction of a droppable lane (counted).

Durability. journal_mode=WAL with synchronous=FULL: every commit fsyncs the WAL, so a committed
record survives a power cut, not only a process kill. With synchronous=NORMAL a commit reaches
the OS page cache only (safe against a crash or SIGKILL of the agent, but a power cut, common on
a pole, may roll back the last commits until a checkpoint). Group commit is what makes FULL
affordable: one fsync per 100 ms of records, plus one per bell alarm.

At the hard limit of the disk (SQLITE_FULL) committed records are never lost: the failed
transaction rolls back, pending video/telemetry are dropped (counted `dropped_disk_full`),
committed video then telemetry are evicted (counted) to make room, and if alarms or events still
do not fit they stay pending in memory, retried at every commit, and `commit()` raises
`OutboxFull(durable=False)`. While the disk is full, `append` of video/telemetry is refused.

Deletes (delivered, evicted) and attempt counts are also applied at commit, so a rollback never
leaves the in-memory view ahead of the file; a PUBACK lost in a crash means a re-publish flagged
historical, never a lost record.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NewType

from edge.outbox.errors import OutboxFull
from edge.outbox.policy import DROPPABLE, NEVER_DROPPED, Admission, Lane, OutboxLimits, Usage, admission

log = logging.getLogger(__name__)

RecordId = NewType("RecordId", int)

COUNTERS = (
    "dropped_video",
    "dropped_telemetry",
    "refused_video",
    "refused_telemetry",
    "dropped_disk_full",
    "ballast_released",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lane INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS record_by_lane ON record (lane, id);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COLUMNS = "id, lane, kind, payload, created_at, attempts"


@dataclass(frozen=True, slots=True)
class Record:
    """One buffered record. `replayed`: it was handed to the uplink before, so publish it
    with `historical=True`."""

    id: RecordId
    lane: Lane
    kind: str
    payload: bytes
    created_at: float
    attempts: int

    @property
    def replayed(self) -> bool:
        return self.attempts > 0


def _is_disk_full(error: sqlite3.OperationalError) -> bool:
    # SQLITE_FULL: the file system is full, or the database reached max_page_count.
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(error)


class Outbox:
    """The durable outbox of one edge node. Not thread-safe: one owner (the agent's loop)."""

    def __init__(
        self,
        path: Path | str,
        *,
        limits: OutboxLimits | None = None,
        clock: Callable[[], float] = time.time,
        synchronous: str = "FULL",
        ballast_bytes: int = 2 * 1024 * 1024,
        min_free_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous {synchronous!r} is not allowed: use 'FULL' or 'NORMAL'")
        self.limits = limits or OutboxLimits()
        self._clock = clock
        self._path = str(path)
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # After a burst (a backlog replayed) the WAL file shrinks back to this at checkpoints.
        self._db.execute("PRAGMA journal_size_limit=4194304")
        # Checkpoint every 1 MiB of WAL: the records live mostly in the database file, where
        # pages freed by deliveries and evictions are reused. A WAL holding everything could
        # not be checkpointed on a full disk (it would need the same space again).
        self._db.execute("PRAGMA wal_autocheckpoint=256")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'record'").fetchone()
        self._next_id = (seq[0] if seq else 0) + 1
        self._committed_records = dict.fromkeys(Lane, 0)
        self._committed_bytes = dict.fromkeys(Lane, 0)
        for lane, count, size in self._db.execute(
            "SELECT lane, count(*), coalesce(sum(length(payload)), 0) FROM record GROUP BY lane"
        ):
            self._committed_records[Lane(lane)] = count
            self._committed_bytes[Lane(lane)] = size
        self.counters = dict.fromkeys(COUNTERS, 0)
        for name, value in self._db.execute("SELECT name, value FROM counter"):
            self.counters[name] = value
        # Not yet in the file: inserts, deletes and attempt increments, applied by commit().
        self._pending: list[tuple[int, int, str, bytes, float]] = []
        self._pending_by_lane: dict[Lane, list[int]] = {lane: [] for lane in Lane}  # indexes into _pending
        self._pending_records = dict.fromkeys(Lane, 0)
        self._pending_bytes = dict.fromkeys(Lane, 0)
        self._dropped_pending: set[int] = set()  # ids of pending records evicted before commit
        self._deletes: dict[int, tuple[Lane, int]] = {}  # committed ids leaving: id -> (lane, size)
        self._attempts: dict[int, int] = {}  # committed id -> attempts to add
        self._in_flight: set[int] = set()
        self._counters_dirty = False
        self._disk_full = False
        # Ballast: space held back on the flash. On a really full disk SQLite cannot even write
        # the WAL pages of a DELETE, so nothing could be evicted to make room for an alarm;
        # giving the ballast back makes that room. It is laid again once there is space.
        self._ballast = Path(f"{path}.ballast")
        self._ballast_bytes = ballast_bytes
        self._ballast_checked_at = float("-inf")
        # Below this much free space the outbox stops growing (video makes way), leaving room
        # for the WAL and its checkpoints: a WAL that cannot be checkpointed blocks everything.
        self._min_free_bytes = min_free_bytes
        self._space_tight = False
        self._check_space()
        self._lay_ballast()

    # --- ballast ------------------------------------------------------------------------------

    def _check_space(self) -> None:
        try:
            stat = os.statvfs(self._ballast.parent)
        except OSError:
            return
        self._space_tight = stat.f_bavail * stat.f_frsize < self._min_free_bytes

    def _lay_ballast(self) -> None:
        if self._ballast_bytes <= 0 or self._ballast.exists():
            return
        try:
            stat = os.statvfs(self._ballast.parent)
            if stat.f_bavail * stat.f_frsize < self._min_free_bytes + 2 * self._ballast_bytes:
                return  # not now: the disk is close to full; try again later
            with open(self._ballast, "wb") as f:
                f.write(b"\0" * self._ballast_bytes)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            self._ballast.unlink(missing_ok=True)

    def _shrink_wal(self) -> bool:
        """Checkpoint and truncate the WAL; True if that gave disk space back."""
        wal = Path(f"{self._path}-wal")
        try:
            before = wal.stat().st_size
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return wal.stat().st_size < before
        except (OSError, sqlite3.OperationalError):
            return False

    def _give_back_ballast(self) -> bool:
        if not self._ballast.exists():
            return False
        self._ballast.unlink()
        self._count("ballast_released")
        return True

    # --- writing ----------------------------------------------------------------------------

    def append(self, lane: Lane, kind: str, payload: bytes) -> RecordId:
        """Buffer one record for the next group commit. An alarm is committed before returning."""
        if lane == Lane.ALARM:
            return self.append_alarm(kind, payload)
        if self._disk_full and lane in DROPPABLE:
            self._count(f"refused_{lane.name.lower()}")
            raise OutboxFull(f"the disk is full: {lane.name.lower()} record refused", lane=lane)
        self._make_room(lane, len(payload))
        return self._buffer(lane, kind, payload)

    def append_alarm(self, kind: str, payload: bytes) -> RecordId:
        """Buffer a bell alarm and commit at once (with everything pending): durable on return."""
        self._make_room(Lane.ALARM, len(payload))
        record_id = self._buffer(Lane.ALARM, kind, payload)
        self.commit()
        return record_id

    def _buffer(self, lane: Lane, kind: str, payload: bytes) -> RecordId:
        record_id = self._next_id
        self._next_id += 1
        self._pending_by_lane[lane].append(len(self._pending))
        self._pending.append((record_id, lane.value, kind, payload, self._clock()))
        self._pending_records[lane] += 1
        self._pending_bytes[lane] += len(payload)
        return RecordId(record_id)

    def _make_room(self, lane: Lane, size: int) -> None:
        limits = self.limits
        if self._space_tight:
            self._check_space()  # space may be back: a refused append commits nothing to look again
        if self._space_tight:
            # The flash is nearly full: hold the outbox at its present size, so each new record
            # takes the place of the oldest video (whose pages the insert then reuses).
            held = sum(self._committed_bytes.values()) + sum(self._pending_bytes.values())
            held = max(1, min(limits.max_bytes, held))
            limits = OutboxLimits(max_records=limits.max_records, max_bytes=held)
        records = sum(self._committed_records.values()) + sum(self._pending_records.values())
        if records < limits.max_records:
            payload_bytes = sum(self._committed_bytes.values()) + sum(self._pending_bytes.values())
            if payload_bytes + size <= limits.max_bytes:
                return  # the common case, without building a Usage
        while True:
            decision = admission(lane, size, self.usage(), limits)
            if decision is Admission.ACCEPT:
                return
            if decision is Admission.REFUSE:
                self._count(f"refused_{lane.name.lower()}")
                why = (
                    f"the flash has less than {self._min_free_bytes // 2**20} MiB free (outbox.min_free_mb)"
                    if self._space_tight
                    else f"the outbox is at its bound ({limits})"
                )
                raise OutboxFull(
                    f"{why} with nothing droppable left: {lane.name.lower()} record refused", lane=lane
                )
            victim = Lane.VIDEO if decision is Admission.EVICT_VIDEO else Lane.TELEMETRY
            self._evict_oldest(victim)
            self._count(f"dropped_{victim.name.lower()}")

    def _evict_oldest(self, lane: Lane) -> None:
        if self._committed_records[lane] > 0:
            row = self._db.execute(
                "SELECT id, length(payload) FROM record WHERE lane = ? ORDER BY id LIMIT ? ",
                (lane.value, len(self._deletes) + 1),
            ).fetchall()
            for record_id, size in row:
                if record_id not in self._deletes:
                    self._forget_committed(record_id, lane, size)
                    return
        for index in self._pending_by_lane[lane]:
            record_id, _, _, payload, _ = self._pending[index]
            if record_id not in self._dropped_pending:
                self._dropped_pending.add(record_id)
                self._pending_records[lane] -= 1
                self._pending_bytes[lane] -= len(payload)
                return
        raise AssertionError(f"no {lane.name} record to evict, yet usage says there is one")

    def _forget_committed(self, record_id: int, lane: Lane, size: int) -> None:
        self._deletes[record_id] = (lane, size)
        self._committed_records[lane] -= 1
        self._committed_bytes[lane] -= size
        self._in_flight.discard(record_id)
        self._attempts.pop(record_id, None)

    def _count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount
        self._counters_dirty = True

    def commit(self) -> None:
        """Write everything pending in one transaction (one fsync). See the module on SQLITE_FULL."""
        if not (self._pending or self._deletes or self._attempts or self._counters_dirty):
            return
        try:
            self._write(with_inserts=True)
        except sqlite3.OperationalError as error:
            if not _is_disk_full(error):
                raise
            self._rollback()
            self._on_disk_full()
            return
        self._settle_pending()
        self._check_space()
        if not self._ballast.exists() and self._clock() - self._ballast_checked_at > 10.0:
            self._ballast_checked_at = self._clock()
            self._lay_ballast()

    def _write(self, *, with_inserts: bool) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            if self._deletes:
                db.executemany("DELETE FROM record WHERE id = ?", ((i,) for i in self._deletes))
            if self._attempts:
                db.executemany(
                    "UPDATE record SET attempts = attempts + ? WHERE id = ?",
                    ((n, i) for i, n in self._attempts.items()),
                )
            if with_inserts and self._pending:
                dropped = self._dropped_pending
                db.executemany(
                    "INSERT INTO record (id, lane, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                    (row for row in self._pending if row[0] not in dropped) if dropped else self._pending,
                )
            if self._counters_dirty:
                db.executemany(
                    "INSERT INTO counter (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    self.counters.items(),
                )
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._deletes.clear()
        self._attempts.clear()
        self._counters_dirty = False

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _settle_pending(self) -> None:
        for lane in Lane:
            self._committed_records[lane] += self._pending_records[lane]
            self._committed_bytes[lane] += self._pending_bytes[lane]
            self._pending_records[lane] = 0
            self._pending_bytes[lane] = 0
            self._pending_by_lane[lane].clear()
        self._pending.clear()
        self._dropped_pending.clear()

    def _on_disk_full(self) -> None:
        self._disk_full = True
        # Pending video and telemetry go first: they were never durable.
        kept: list[tuple[int, int, str, bytes, float]] = []
        dropped = 0
        for row in self._pending:
            if row[0] in self._dropped_pending:
                continue
            if Lane(row[1]) in NEVER_DROPPED:
                kept.append(row)
            else:
                dropped += 1
        if dropped:
            self._count("dropped_disk_full", dropped)
        self._pending, self._dropped_pending = [], set()
        for lane in Lane:
            self._pending_by_lane[lane].clear()
            self._pending_records[lane] = 0
            self._pending_bytes[lane] = 0
        for row in kept:
            lane = Lane(row[1])
            self._pending_by_lane[lane].append(len(self._pending))
            self._pending.append(row)
            self._pending_records[lane] += 1
            self._pending_bytes[lane] += len(row[3])
        while True:
            try:
                self._write(with_inserts=True)
            except sqlite3.OperationalError as error:
                if not _is_disk_full(error):
                    raise
            else:
                self._settle_pending()
                self._shrink_wal()
                return
            # Ways to make room, cheapest first: fold the WAL into the database (its pages freed
            # by evictions are reused there), give back the ballast, then evict more video.
            if self._shrink_wal() or self._give_back_ballast():
                continue
            if not self._pending:
                return  # only deletes and counters failed: they stay queued for the next commit
            victim = next((lane for lane in DROPPABLE if self._committed_records[lane] > 0), None)
            if victim is None:
                lane = Lane(min(row[1] for row in self._pending))
                raise OutboxFull(
                    f"the disk is full: {len(self._pending)} alarm/event records kept in memory only, "
                    "retried at every commit",
                    lane=lane,
                    durable=False,
                ) from None
            # Free a batch of the oldest droppable records, committed on their own. Records
            # already waiting for their delete are skipped: picking them again makes no room.
            freed = 0
            for record_id, size in self._db.execute(
                "SELECT id, length(payload) FROM record WHERE lane = ? ORDER BY id LIMIT ?",
                (victim.value, 64 + len(self._deletes)),
            ).fetchall():
                if record_id not in self._deletes and freed < 64:
                    self._forget_committed(record_id, victim, size)
                    self._count(f"dropped_{victim.name.lower()}")
                    freed += 1
            if freed == 0:
                raise AssertionError(f"{victim.name} records counted but none left to evict")
            try:
                self._write(with_inserts=False)
            except sqlite3.OperationalError as error:
                if not _is_disk_full(error):
                    raise

    # --- reading and delivery ---------------------------------------------------------------

    @property
    def next_id(self) -> RecordId:
        """The id the next appended record will get: ids only grow, so "appended before now" is
        `id < next_id`, a test that does not lean on a wall clock (a Pi has no RTC)."""
        return RecordId(self._next_id)

    def next_batch(self, limit: int) -> list[Record]:
        """Up to `limit` committed records, alarms first, FIFO within a lane, none in flight."""
        batch: list[Record] = []
        skip = self._in_flight
        deletes = self._deletes
        for lane in Lane:
            want = limit - len(batch)
            if want <= 0:
                break
            if self._committed_records[lane] == 0:
                continue
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM record WHERE lane = ? ORDER BY id LIMIT ?",
                (lane.value, want + len(skip) + len(deletes)),
            )
            for record_id, _, kind, payload, created_at, attempts in rows:
                if record_id in skip or record_id in deletes:
                    continue
                tries = attempts + self._attempts.get(record_id, 0)
                batch.append(Record(RecordId(record_id), lane, kind, payload, created_at, tries))
                if len(batch) == limit:
                    break
        return batch

    def mark_in_flight(self, ids: Iterable[RecordId]) -> None:
        """The uplink published these: keep them out of `next_batch` until PUBACK or requeue."""
        for record_id in ids:
            self._in_flight.add(record_id)
            self._attempts[record_id] = self._attempts.get(record_id, 0) + 1

    def delivered(self, ids: Iterable[RecordId]) -> None:
        """Their PUBACK came: they leave at the next commit. Unknown ids (evicted) are ignored."""
        wanted = [i for i in ids if i not in self._deletes]
        if not wanted:
            return
        marks = ",".join("?" * len(wanted))
        for record_id, lane, size in self._db.execute(
            f"SELECT id, lane, length(payload) FROM record WHERE id IN ({marks})", wanted
        ).fetchall():
            self._forget_committed(record_id, Lane(lane), size)
        self._in_flight.difference_update(wanted)
        self._disk_full = False  # room may have come back; the next commit finds out

    def requeue_in_flight(self) -> list[RecordId]:
        """After a reconnect: records without a PUBACK go back, to be republished as historical."""
        ids = sorted(self._in_flight)
        self._in_flight.clear()
        return [RecordId(i) for i in ids]

    # --- state ------------------------------------------------------------------------------

    def usage(self) -> Usage:
        return Usage(
            {lane: self._committed_records[lane] + self._pending_records[lane] for lane in Lane},
            {lane: self._committed_bytes[lane] + self._pending_bytes[lane] for lane in Lane},
        )

    @property
    def pending_count(self) -> int:
        return len(self._pending) - len(self._dropped_pending)

    @property
    def unwritten_changes(self) -> int:
        """Appends, deliveries and attempt counts the next commit will write."""
        return self.pending_count + len(self._deletes) + len(self._attempts) + int(self._counters_dirty)

    @property
    def in_flight(self) -> frozenset[int]:
        return frozenset(self._in_flight)

    @property
    def disk_full(self) -> bool:
        return self._disk_full

    def close(self) -> None:
        """Commit what is pending (best effort) and close the file."""
        try:
            self.commit()
        except OutboxFull as error:
            # Their sources were never told they are stored: a pole controller sends them again.
            log.error("outbox closed with records it could not write: %s", error)
        finally:
            self._db.close()
