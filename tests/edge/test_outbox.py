"""The edge outbox: priority lanes, delivery only after PUBACK, the bound, a full disk, crashes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from edge.outbox import CommitPolicy, GroupCommitter, Lane, Outbox, OutboxFull, OutboxLimits, RecordId
from edge.outbox.policy import Admission, Usage, admission, commit_due, seconds_until_due

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, now: float = 1_734_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", clock=FakeClock())
    yield box
    box.close()


def ids_of(box: Outbox, limit: int = 1000) -> list[RecordId]:
    return [record.id for record in box.next_batch(limit)]


# --- order ------------------------------------------------------------------------------------


def test_next_batch_is_alarm_event_telemetry_video_and_fifo_within_a_lane(outbox: Outbox) -> None:
    video = [outbox.append(Lane.VIDEO, "video", b"v%d" % i) for i in range(3)]
    telemetry = [outbox.append(Lane.TELEMETRY, "telemetry", b"t%d" % i) for i in range(3)]
    events = [outbox.append(Lane.EVENT, "event", b"e%d" % i) for i in range(3)]
    alarm = outbox.append_alarm("alarm", b"bell")
    assert ids_of(outbox) == [alarm, *events, *telemetry, *video]
    assert ids_of(outbox, 2) == [alarm, events[0]]
    lanes = [record.lane for record in outbox.next_batch(100)]
    assert lanes == sorted(lanes)


def test_appends_are_not_handed_out_before_commit_but_alarms_are_committed_at_once(outbox: Outbox) -> None:
    event = outbox.append(Lane.EVENT, "event", b"door open")
    assert outbox.next_batch(10) == []
    alarm = outbox.append_alarm("alarm", b"bell")
    # The alarm's commit carried the event with it.
    assert ids_of(outbox) == [alarm, event]


def test_records_keep_kind_payload_and_injected_creation_time(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", clock=lambda: 1234.5)
    record_id = box.append(Lane.EVENT, "event", b'{"type":"event"}')
    box.commit()
    [record] = box.next_batch(1)
    assert (record.id, record.lane, record.kind, record.payload) == (
        record_id,
        Lane.EVENT,
        "event",
        b'{"type":"event"}',
    )
    assert record.created_at == 1234.5
    assert (record.attempts, record.replayed) == (0, False)
    box.close()


# --- in flight, delivery, replay --------------------------------------------------------------


def test_in_flight_records_are_skipped_and_come_back_replayed_after_requeue(outbox: Outbox) -> None:
    first = [outbox.append(Lane.EVENT, "event", b"%d" % i) for i in range(4)]
    outbox.commit()
    outbox.mark_in_flight(first[:2])
    assert ids_of(outbox) == first[2:]
    assert outbox.requeue_in_flight() == first[:2]
    batch = outbox.next_batch(10)
    assert [r.id for r in batch] == first
    assert [r.replayed for r in batch] == [True, True, False, False]


def test_a_record_leaves_only_after_delivered(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    kept, acked = box.append(Lane.EVENT, "event", b"a"), box.append(Lane.EVENT, "event", b"b")
    box.commit()
    box.mark_in_flight([kept, acked])
    box.delivered([acked])
    box.close()
    # Reopened (a reboot): the unacknowledged one is still there and flagged as replayed.
    box = Outbox(path)
    [record] = box.next_batch(10)
    assert record.id == kept
    assert record.replayed
    box.close()


def test_ids_are_never_reused_after_delivery_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    ids = [box.append(Lane.EVENT, "event", b"x") for _ in range(3)]
    box.commit()
    box.delivered(ids)
    box.close()
    box = Outbox(path)
    assert box.append(Lane.EVENT, "event", b"y") > max(ids)
    box.close()


# --- the bound --------------------------------------------------------------------------------


def test_over_the_bound_the_oldest_video_goes_first_and_is_counted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=OutboxLimits(max_records=4))
    video = [box.append(Lane.VIDEO, "video", b"v") for _ in range(3)]
    box.commit()
    telemetry = box.append(Lane.TELEMETRY, "telemetry", b"t")
    event = box.append(Lane.EVENT, "event", b"e")  # evicts video[0]
    alarm = box.append_alarm("alarm", b"a")  # evicts video[1]
    assert ids_of(box) == [alarm, event, telemetry, video[2]]
    assert box.counters["dropped_video"] == 2
    box.close()
    reopened = Outbox(tmp_path / "o.db", limits=OutboxLimits(max_records=4))
    assert reopened.counters["dropped_video"] == 2  # the counter is persisted
    reopened.close()


def test_without_video_telemetry_goes_next_and_video_is_refused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=OutboxLimits(max_records=2))
    old = box.append(Lane.TELEMETRY, "telemetry", b"t0")
    new = box.append(Lane.TELEMETRY, "telemetry", b"t1")
    with pytest.raises(OutboxFull) as refused:
        box.append(Lane.VIDEO, "video", b"v")
    assert refused.value.lane is Lane.VIDEO
    assert box.counters["refused_video"] == 1
    event = box.append(Lane.EVENT, "event", b"e")
    box.commit()
    assert ids_of(box) == [event, new]
    assert old not in ids_of(box)
    assert box.counters["dropped_telemetry"] == 1
    box.close()


def test_alarms_and_events_are_never_dropped_beyond_the_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=OutboxLimits(max_records=3, max_bytes=10))
    events = [box.append(Lane.EVENT, "event", b"0123456789") for _ in range(5)]
    alarms = [box.append_alarm("alarm", b"0123456789") for _ in range(5)]
    assert ids_of(box) == alarms + events
    with pytest.raises(OutboxFull):
        box.append(Lane.TELEMETRY, "telemetry", b"t")
    assert box.counters["refused_telemetry"] == 1
    box.close()


def test_the_bound_counts_payload_bytes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=OutboxLimits(max_bytes=250))
    first = box.append(Lane.VIDEO, "video", bytes(200))
    second = box.append(Lane.VIDEO, "video", bytes(200))
    box.commit()
    assert ids_of(box) == [second]
    assert first not in ids_of(box)
    assert box.usage().total_bytes == 200
    box.close()


def test_admission_policy_table() -> None:
    limits = OutboxLimits(max_records=1)

    def usage(**records: int) -> Usage:
        counts = {lane: records.get(lane.name.lower(), 0) for lane in Lane}
        return Usage(counts, dict.fromkeys(Lane, 0))

    assert admission(Lane.VIDEO, 1, usage(), limits) is Admission.ACCEPT
    assert admission(Lane.ALARM, 1, usage(video=1), limits) is Admission.EVICT_VIDEO
    assert admission(Lane.VIDEO, 1, usage(video=1), limits) is Admission.EVICT_VIDEO
    assert admission(Lane.EVENT, 1, usage(telemetry=1), limits) is Admission.EVICT_TELEMETRY
    assert admission(Lane.VIDEO, 1, usage(telemetry=1), limits) is Admission.REFUSE
    assert admission(Lane.TELEMETRY, 1, usage(event=1), limits) is Admission.REFUSE
    assert admission(Lane.EVENT, 1, usage(alarm=1), limits) is Admission.ACCEPT
    assert admission(Lane.ALARM, 1, usage(event=1), limits) is Admission.ACCEPT


# --- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_refuses_droppable_records_and_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    events = [box.append(Lane.EVENT, "event", bytes(200)) for _ in range(20)]
    box.commit()
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages + 10}")  # emulate a nearly full flash
    committed_video: list[RecordId] = []

    def fill_with_video() -> None:
        for _ in range(10_000):
            video = [box.append(Lane.VIDEO, "video", bytes(200)) for _ in range(10)]
            box.commit()
            if not box.disk_full:
                committed_video.extend(video)

    with pytest.raises(OutboxFull) as full:
        fill_with_video()
    assert full.value.lane is Lane.VIDEO
    assert box.counters["dropped_disk_full"] > 0
    assert box.counters["refused_video"] == 1
    # Alarms and events are still accepted: committed video makes room for them.
    alarm = box.append_alarm("alarm", bytes(200))
    more = box.append(Lane.EVENT, "event", bytes(200))
    box.commit()
    assert box.counters["dropped_video"] > 0
    box.close()
    reopened = Outbox(path)
    remaining = ids_of(reopened, 100_000)
    assert remaining[: 2 + len(events)] == [alarm, *events, more]
    assert set(remaining[2 + len(events) :]) <= set(committed_video)
    reopened.close()


def test_a_full_disk_with_nothing_droppable_keeps_alarms_in_memory(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.commit()
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages + 2}")

    def fill_with_events() -> None:
        for _ in range(1000):
            box.append(Lane.EVENT, "event", bytes(1000))
            box.commit()

    with pytest.raises(OutboxFull) as full:
        fill_with_events()
    assert full.value.durable is False
    pending = box.pending_count
    assert pending >= 1  # kept, not dropped
    with pytest.raises(OutboxFull):
        box.append_alarm("alarm", b"bell")
    assert box.pending_count == pending + 1
    box._db.execute("PRAGMA max_page_count = 1000000")  # room again (say, after a cleanup)
    box.commit()
    assert box.pending_count == 0
    assert box.next_batch(1)[0].lane is Lane.ALARM
    box.close()


# --- group commit -----------------------------------------------------------------------------


def test_commit_policy_is_time_and_count() -> None:
    policy = CommitPolicy(interval_s=0.1, max_pending=100)
    assert not commit_due(0, 5.0, flush_requested=True, policy=policy)
    assert not commit_due(1, 0.05, flush_requested=False, policy=policy)
    assert commit_due(1, 0.1, flush_requested=False, policy=policy)
    assert commit_due(100, 0.0, flush_requested=False, policy=policy)
    assert commit_due(1, 0.0, flush_requested=True, policy=policy)
    assert seconds_until_due(0, 0.0, policy) is None
    assert seconds_until_due(3, 0.04, policy) == pytest.approx(0.06)
    with pytest.raises(ValueError, match="interval_s"):
        CommitPolicy(interval_s=0)


def test_group_committer_commits_within_the_interval_and_flush_waits(tmp_path: Path) -> None:
    async def scenario() -> None:
        box = Outbox(tmp_path / "o.db")
        committer = GroupCommitter(box, policy=CommitPolicy(interval_s=0.05))
        task = asyncio.create_task(committer.run(), name="outbox-commit")
        first = committer.append(Lane.EVENT, "event", b"a")
        await asyncio.sleep(0.2)
        assert ids_of(box) == [first]  # committed by time, nobody flushed
        second = committer.append(Lane.TELEMETRY, "telemetry", b"b")
        await committer.flush()
        assert ids_of(box) == [first, second]
        alarm = committer.append_alarm("alarm", b"bell")
        assert ids_of(box)[0] == alarm
        third = committer.append(Lane.VIDEO, "video", b"c")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ids_of(box)[-1] == third  # committed on the way out
        assert committer.commits >= 2
        box.close()

    asyncio.run(scenario())


def test_group_committer_commits_early_at_max_pending(tmp_path: Path) -> None:
    async def scenario() -> None:
        box = Outbox(tmp_path / "o.db")
        committer = GroupCommitter(box, policy=CommitPolicy(interval_s=60, max_pending=10))
        task = asyncio.create_task(committer.run())
        for _ in range(10):
            committer.append(Lane.VIDEO, "video", b"v")
        await asyncio.sleep(0.05)
        assert box.pending_count == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        box.close()

    asyncio.run(scenario())


def test_flush_raises_outbox_full_when_events_cannot_be_made_durable(tmp_path: Path) -> None:
    async def scenario() -> None:
        box = Outbox(tmp_path / "o.db")
        box.commit()
        pages = box._db.execute("PRAGMA page_count").fetchone()[0]
        box._db.execute(f"PRAGMA max_page_count = {pages}")
        committer = GroupCommitter(box, policy=CommitPolicy(interval_s=60))
        task = asyncio.create_task(committer.run())
        committer.append(Lane.EVENT, "event", bytes(5000))
        with pytest.raises(OutboxFull) as full:
            await committer.flush()
        assert full.value.lane is Lane.EVENT
        assert not full.value.durable
        assert box.pending_count == 1  # kept in memory, retried
        box._db.execute("PRAGMA max_page_count = 1000000")
        await committer.flush()
        assert box.pending_count == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        box.close()

    asyncio.run(scenario())


# --- crash safety -----------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from edge.outbox import GroupCommitter, Lane, Outbox, CommitPolicy

    async def main() -> None:
        box = Outbox(sys.argv[1])
        committer = GroupCommitter(box, policy=CommitPolicy(interval_s=0.1))
        task = asyncio.create_task(committer.run())
        print("ready", flush=True)
        n = 0
        while True:
            n += 1
            if n % 5 == 0:
                print(committer.append_alarm("alarm", b"bell %d" % n), flush=True)
                continue
            events = [committer.append(Lane.EVENT, "event", b"door %d" % n) for _ in range(3)]
            committer.append(Lane.VIDEO, "video", bytes(200))  # never flushed: may be lost
            await committer.flush()
            for record_id in events:
                print(record_id, flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_every_id_printed_as_durable_survives_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    path = tmp_path / "crash.db"
    durable: list[int] = []
    deadline = time.monotonic() + 20
    runs = 0
    while runs < 20 and time.monotonic() < deadline:
        runs += 1
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.3))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=10)
        durable += [int(line) for line in out.split()]
        with sqlite3.connect(path) as db:
            present = {row[0] for row in db.execute("SELECT id FROM record")}
        db.close()
        missing = set(durable) - present
        assert not missing, (
            f"run {runs}: {len(missing)} ids reported durable are gone: {sorted(missing)[:10]}"
        )
    assert runs >= 5
    assert len(durable) > 100


# --- a model of ordering and the bound --------------------------------------------------------

MAX_RECORDS = 6


class OutboxModel(RuleBasedStateMachine):
    """The outbox against a list per lane: same order, same drops, alarms and events kept."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"outbox-model-{os.getpid()}-{id(self)}.db"
        self.limits = OutboxLimits(max_records=MAX_RECORDS)
        self.box: Outbox
        self.lanes: dict[Lane, list[int]] = {lane: [] for lane in Lane}
        self.committed: set[int] = set()
        self.in_flight: set[int] = set()
        self.sent: set[int] = set()
        self.dropped = dict.fromkeys(Lane, 0)

    @initialize()
    def open(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.tmp}{suffix}").unlink(missing_ok=True)
        self.box = Outbox(self.tmp, limits=self.limits)

    def teardown(self) -> None:
        if hasattr(self, "box"):
            self.box.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.tmp}{suffix}").unlink(missing_ok=True)

    def total(self) -> int:
        return sum(len(ids) for ids in self.lanes.values())

    def evict(self, lane: Lane) -> None:
        victim = self.lanes[lane].pop(0)
        self.committed.discard(victim)
        self.in_flight.discard(victim)
        self.dropped[lane] += 1

    @rule(lane=st.sampled_from(Lane))
    def append(self, lane: Lane) -> None:
        refused = False
        while self.total() >= MAX_RECORDS:
            if self.lanes[Lane.VIDEO]:
                self.evict(Lane.VIDEO)
            elif lane != Lane.VIDEO and self.lanes[Lane.TELEMETRY]:
                self.evict(Lane.TELEMETRY)
            elif lane in (Lane.ALARM, Lane.EVENT):
                break
            else:
                refused = True
                break
        if refused:
            with pytest.raises(OutboxFull):
                self.box.append(lane, lane.name.lower(), b"x")
            return
        record_id = self.box.append(lane, lane.name.lower(), b"x")
        self.lanes[lane].append(record_id)
        if lane == Lane.ALARM:
            self.commit_all()

    def commit_all(self) -> None:
        self.committed = {i for ids in self.lanes.values() for i in ids}

    @rule()
    def commit(self) -> None:
        self.box.commit()
        self.commit_all()

    @rule(limit=st.integers(1, 8))
    def publish(self, limit: int) -> None:
        expected = [
            i for lane in Lane for i in self.lanes[lane] if i in self.committed and i not in self.in_flight
        ][:limit]
        batch = self.box.next_batch(limit)
        assert [r.id for r in batch] == expected
        assert [r.replayed for r in batch] == [i in self.sent for i in expected]
        self.box.mark_in_flight([r.id for r in batch])
        self.in_flight |= set(expected)
        self.sent |= set(expected)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def puback(self, data: st.DataObject) -> None:
        acked = data.draw(st.sets(st.sampled_from(sorted(self.in_flight)), min_size=1))
        self.box.delivered(acked)
        self.in_flight -= acked
        for ids in self.lanes.values():
            ids[:] = [i for i in ids if i not in acked]

    @rule()
    def reconnect(self) -> None:
        assert set(self.box.requeue_in_flight()) == self.in_flight
        self.in_flight.clear()

    @rule()
    def reboot(self) -> None:
        self.box.close()  # commits
        self.commit_all()
        self.in_flight.clear()
        self.box = Outbox(self.tmp, limits=self.limits)

    @invariant()
    def alarms_and_events_are_never_dropped_and_drops_are_counted(self) -> None:
        if not hasattr(self, "box"):
            return
        assert self.dropped[Lane.ALARM] == self.dropped[Lane.EVENT] == 0
        assert self.box.counters["dropped_video"] == self.dropped[Lane.VIDEO]
        assert self.box.counters["dropped_telemetry"] == self.dropped[Lane.TELEMETRY]
        usage = self.box.usage()
        assert usage.records == {lane: len(ids) for lane, ids in self.lanes.items()}


OutboxModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestOutboxModel = OutboxModel.TestCase
