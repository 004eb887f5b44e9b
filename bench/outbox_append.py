"""Edge outbox append throughput: records/s through Outbox.append with group commit, on flash.

The issue's target is at least 50,000 records/s of typical ~200-byte video metadata, durable
(journal_mode=WAL, synchronous=FULL) within 100 ms. The figure appends with `Outbox.append`
and commits whenever `policy.commit_due` says so (100 ms or 5,000 pending, as the committer
does), on a fresh file each run. The reference is raw sqlite3 on the same schema (table and lane
index) with the same durability: `executemany` of prepared rows, one transaction per 5,000 rows
(100 ms worth at the target), no bookkeeping. Bytes written per record are counted from the
process's write() calls (/proc/self/io wchar: WAL, checkpoints and the database), beside the
same count for the reference.

    python bench/outbox_append.py [--quick]
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench._report import Figure, print_figures, print_header, quick_flag, time_runs
from edge.outbox import CommitPolicy, Lane, Outbox
from edge.outbox.policy import commit_due
from protocols import messages

RECORDS, RUNS = 200_000, 3
QUICK_RECORDS, QUICK_RUNS = 2_000, 2
TARGET = 50_000  # records/s, from the issue
GROUP = 5_000  # rows per transaction in the reference: 100 ms worth at the target

APPEND = "Outbox.append + group commit (WAL, synchronous=FULL)"
RAW = f"sqlite3 executemany, {GROUP:,} rows per commit (WAL, synchronous=FULL)"
APPEND_BYTES = "bytes written per record, Outbox"
RAW_BYTES = "bytes written per record, raw sqlite3"


def payload() -> bytes:
    """One recording segment as the cameras report it: about 200 bytes of JSON."""
    segment = messages.RecordingSegment(
        camera_id="cam-north",
        start=1_734_000_000_000,
        end=1_734_000_060_000,
        bytes=31_457_280,
        codec="h264",
        width=1920,
        height=1080,
        fps=25.0,
        bitrate_kbps=4096.0,
        bookmarks=["motion-7781"],
    )
    return msgspec.json.encode(segment)


def written_bytes() -> int | None:
    """Bytes this process passed to write() so far (Linux), else None."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def append_run(directory: Path, data: bytes, count: int) -> None:
    box = Outbox(directory / "outbox.db")
    policy = CommitPolicy()
    append, clock = box.append, time.monotonic
    first_pending = clock()
    pending = 0
    for _ in range(count):
        append(Lane.VIDEO, "video", data)
        pending += 1
        now = clock()
        if commit_due(pending, now - first_pending, flush_requested=False, policy=policy):
            box.commit()
            pending, first_pending = 0, clock()
    box.close()


def raw_run(directory: Path, data: bytes, count: int) -> None:
    db = sqlite3.connect(str(directory / "raw.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE record (id INTEGER PRIMARY KEY AUTOINCREMENT, lane INTEGER NOT NULL, "
        "kind TEXT NOT NULL, payload BLOB NOT NULL, created_at REAL NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("CREATE INDEX record_by_lane ON record (lane, id)")
    now = time.time()
    for start in range(0, count, GROUP):
        rows = [(start + i + 1, 3, "video", data, now) for i in range(min(GROUP, count - start))]
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO record (id, lane, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)", rows
        )
        db.execute("COMMIT")
    db.close()


def measured(
    work: Callable[[Path, bytes, int], None], data: bytes, count: int, runs: int
) -> tuple[list[float], list[float], list[float]]:
    """(seconds, bytes written per record, file bytes per record) of each run on a fresh file."""
    seconds: list[float] = []
    per_record: list[float] = []
    file_per_record: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="outbox-bench-", dir=Path.cwd()) as name:
            directory = Path(name)
            before = written_bytes()
            seconds += time_runs(lambda: work(directory, data, count), 1)  # noqa: B023
            after = written_bytes()
            files = sum(p.stat().st_size for p in directory.iterdir())
            file_per_record.append(files / count)
            if before is not None and after is not None:
                per_record.append((after - before) / count)
    return seconds, per_record, file_per_record


def counts(quick: bool) -> tuple[int, int]:
    """(records appended per run, runs)"""
    return (QUICK_RECORDS, QUICK_RUNS) if quick else (RECORDS, RUNS)


def _bytes_figure(ours: list[float], reference: list[float]) -> Figure:
    # Lower is better here; "best" is the smallest count.
    return Figure(
        APPEND_BYTES,
        min(ours),
        statistics.median(ours),
        "B/record",
        RAW_BYTES,
        min(reference),
        statistics.median(reference),
    )


_last_file_sizes: dict[str, float] = {}


def run(quick: bool) -> list[Figure]:
    count, runs = counts(quick)
    data = payload()
    append_s, append_written, append_files = measured(append_run, data, count, runs)
    raw_s, raw_written, raw_files = measured(raw_run, data, count, runs)
    _last_file_sizes.update(outbox=min(append_files), raw=min(raw_files))
    figures = [Figure.from_runs(APPEND, append_s, RAW, raw_s, amount=count, unit="records/s", target=TARGET)]
    if append_written and raw_written:
        figures.append(_bytes_figure(append_written, raw_written))
    return figures


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    count, runs = counts(quick)
    data = payload()
    print_header(
        "Edge outbox append throughput (edge.outbox, group commit)",
        [
            ("sqlite", sqlite3.sqlite_version),
            ("payload", f"video metadata, {len(data)} bytes: {data.decode()}"),
            ("runs", f"{runs} of {count:,} appends each, a fresh file in {Path.cwd()} per run"),
            ("commit", "every 100 ms or 5,000 pending records (CommitPolicy defaults), one fsync each"),
        ],
        quick=quick,
    )
    figures = run(quick)
    print_figures(figures)
    print(
        f"file size per record after close (db + wal): Outbox {_last_file_sizes['outbox']:,.0f} B, "
        f"raw sqlite3 {_last_file_sizes['raw']:,.0f} B; payload {len(data)} B"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
