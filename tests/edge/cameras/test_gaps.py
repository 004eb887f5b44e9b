"""Recording gap detection (edge.cameras.gaps): segments in order, late, twice, overlapping; real
gaps once settled; cameras that stopped recording. Times are small epoch-ms numbers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cameras.gaps import GapDetector, GapPolicy, RecordingGap
from protocols.messages import RecordingSegment

MINUTE = 60_000


def seg(start: int, end: int, camera_id: str = "cam-1") -> RecordingSegment:
    return RecordingSegment(
        camera_id=camera_id,
        start=start,
        end=end,
        bytes=1,
        codec="h264",
        width=1920,
        height=1080,
        fps=25.0,
        bitrate_kbps=4000.0,
    )


def detector(settle_ms: int = 0, **policy: int) -> GapDetector:
    return GapDetector(["cam-1", "cam-2"], started_at_ms=0, policy=GapPolicy(settle_ms=settle_ms, **policy))


def test_back_to_back_segments_leave_no_gap() -> None:
    gaps = detector()
    found = [gaps.add(seg(i * MINUTE, (i + 1) * MINUTE), now_ms=(i + 1) * MINUTE) for i in range(5)]
    assert found == [[]] * 5
    assert gaps.latest_end("cam-1") == 5 * MINUTE


def test_a_step_within_tolerance_is_not_a_gap() -> None:
    gaps = detector()
    gaps.add(seg(0, MINUTE), now_ms=MINUTE)
    assert gaps.add(seg(MINUTE + 2_000, 2 * MINUTE), now_ms=2 * MINUTE) == []  # exactly the tolerance


def test_a_step_beyond_tolerance_is_a_gap_from_the_latest_end() -> None:
    gaps = detector()
    gaps.add(seg(0, MINUTE), now_ms=MINUTE)
    assert gaps.add(seg(MINUTE + 2_001, 2 * MINUTE), now_ms=2 * MINUTE) == [
        RecordingGap("cam-1", MINUTE, MINUTE + 2_001)
    ]


def test_the_first_segment_after_start_is_never_a_gap() -> None:
    gaps = detector()
    assert gaps.add(seg(10 * MINUTE, 11 * MINUTE), now_ms=11 * MINUTE) == []


def test_duplicates_and_overlaps_are_not_gaps() -> None:
    gaps = detector()
    gaps.add(seg(0, MINUTE), now_ms=MINUTE)
    gaps.add(seg(MINUTE, 2 * MINUTE), now_ms=2 * MINUTE)
    assert gaps.add(seg(MINUTE, 2 * MINUTE), now_ms=2 * MINUTE) == []  # an NVR retry
    assert gaps.add(seg(90_000, 150_000), now_ms=3 * MINUTE) == []  # overlapping
    assert gaps.latest_end("cam-1") == 150_000


def test_an_older_segment_does_not_move_the_latest_end_back() -> None:
    gaps = detector()
    gaps.add(seg(MINUTE, 2 * MINUTE), now_ms=2 * MINUTE)
    assert gaps.add(seg(0, MINUTE), now_ms=2 * MINUTE) == []
    assert gaps.latest_end("cam-1") == 2 * MINUTE
    assert gaps.add(seg(2 * MINUTE, 3 * MINUTE), now_ms=3 * MINUTE) == []


def test_a_late_segment_fills_its_hole_before_it_settles() -> None:
    gaps = detector(settle_ms=MINUTE)
    gaps.add(seg(0, MINUTE), now_ms=MINUTE)
    # The NVR's push of [1, 2) min was refused (503) and comes after [2, 3) min.
    assert gaps.add(seg(2 * MINUTE, 3 * MINUTE), now_ms=3 * MINUTE) == []
    assert gaps.pending("cam-1") == [(MINUTE, 2 * MINUTE)]
    # Cut on a key frame: half a second off at each side, inside the tolerance.
    assert gaps.add(seg(MINUTE + 500, 2 * MINUTE - 500), now_ms=3 * MINUTE + 5_000) == []
    assert gaps.pending("cam-1") == []
    assert gaps.settle(now_ms=10 * MINUTE) == []


def test_a_hole_no_segment_fills_is_reported_once_when_it_settles() -> None:
    gaps = detector(settle_ms=MINUTE)
    gaps.add(seg(0, MINUTE), now_ms=MINUTE)
    gaps.add(seg(2 * MINUTE, 3 * MINUTE), now_ms=3 * MINUTE)
    assert gaps.settle(now_ms=4 * MINUTE - 1) == []
    assert gaps.settle(now_ms=4 * MINUTE) == [RecordingGap("cam-1", MINUTE, 2 * MINUTE)]
    assert gaps.settle(now_ms=5 * MINUTE) == []


def test_a_partly_filled_hole_reports_what_is_left() -> None:
    gaps = detector(settle_ms=MINUTE)
    gaps.add(seg(0, MINUTE), now_ms=MINUTE)
    gaps.add(seg(5 * MINUTE, 6 * MINUTE), now_ms=6 * MINUTE)
    gaps.add(seg(2 * MINUTE, 3 * MINUTE), now_ms=6 * MINUTE)
    assert gaps.settle(now_ms=7 * MINUTE) == [
        RecordingGap("cam-1", MINUTE, 2 * MINUTE),
        RecordingGap("cam-1", 3 * MINUTE, 5 * MINUTE),
    ]


def test_cameras_are_tracked_apart() -> None:
    gaps = detector()
    gaps.add(seg(0, MINUTE, "cam-1"), now_ms=MINUTE)
    assert gaps.add(seg(MINUTE, 2 * MINUTE, "cam-2"), now_ms=2 * MINUTE) == []
    assert gaps.add(seg(MINUTE, 2 * MINUTE, "cam-1"), now_ms=2 * MINUTE) == []
    assert gaps.add(seg(3 * MINUTE, 4 * MINUTE, "cam-2"), now_ms=4 * MINUTE) == [
        RecordingGap("cam-2", 2 * MINUTE, 3 * MINUTE)
    ]


def test_holes_are_bounded_per_camera() -> None:
    gaps = detector(settle_ms=10 * MINUTE, max_holes=2)
    gaps.add(seg(0, 1_000), now_ms=0)
    assert gaps.add(seg(10_000, 11_000), now_ms=1) == []
    assert gaps.add(seg(20_000, 21_000), now_ms=2) == []
    # A third hole pushes out the oldest, reported now rather than kept.
    assert gaps.add(seg(30_000, 31_000), now_ms=3) == [RecordingGap("cam-1", 1_000, 10_000)]
    assert gaps.pending("cam-1") == [(11_000, 20_000), (21_000, 30_000)]


def test_a_segment_for_a_camera_not_watched_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"camera 'cam-9' is not watched for gaps \(watched: 'cam-1', 'cam-2'\)"
    ):
        detector().add(seg(0, 1, "cam-9"), now_ms=0)


def test_a_camera_whose_last_segment_is_old_is_not_recording() -> None:
    gaps = detector(stale_after_ms=5 * MINUTE)
    gaps.add(seg(0, MINUTE, "cam-1"), now_ms=MINUTE)
    gaps.add(seg(3 * MINUTE, 4 * MINUTE, "cam-2"), now_ms=4 * MINUTE)
    assert gaps.not_recording(now_ms=6 * MINUTE) == []  # exactly stale_after_ms is still fine
    assert gaps.not_recording(now_ms=6 * MINUTE + 1) == ["cam-1"]
    assert gaps.not_recording(now_ms=9 * MINUTE + 1) == ["cam-1", "cam-2"]


def test_a_camera_that_never_pushed_counts_from_the_start() -> None:
    gaps = GapDetector(["cam-1"], started_at_ms=100 * MINUTE, policy=GapPolicy(stale_after_ms=5 * MINUTE))
    assert gaps.not_recording(now_ms=105 * MINUTE) == []
    assert gaps.not_recording(now_ms=105 * MINUTE + 1) == ["cam-1"]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("tolerance_ms", -1, "tolerance_ms -1 is not allowed: use 0 or more milliseconds"),
        ("settle_ms", -5, "settle_ms -5 is not allowed: use 0 or more milliseconds"),
        ("stale_after_ms", 0, "stale_after_ms 0 is not allowed: use a positive number of milliseconds"),
        ("max_holes", 0, "max_holes 0 is not allowed: use 1 or more"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_setting(setting: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        GapPolicy(**{setting: value})


@st.composite
def recordings(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[int]]:
    """Back-to-back one-minute segments, some missing, delivered shuffled and some twice."""
    count = draw(st.integers(min_value=1, max_value=30))
    kept = [i for i in range(count) if i in (0, count - 1) or draw(st.booleans())]
    delivered = draw(st.permutations(kept + draw(st.lists(st.sampled_from(kept), max_size=5))))
    return [(i * MINUTE, (i + 1) * MINUTE) for i in delivered], kept


@settings(max_examples=300)
@given(recordings())
def test_reordered_and_repeated_segments_report_exactly_the_missing_minutes(
    case: tuple[list[tuple[int, int]], list[int]],
) -> None:
    delivered, kept = case
    gaps = GapDetector(["cam-1"], started_at_ms=0, policy=GapPolicy(settle_ms=MINUTE, max_holes=64))
    # The first delivered segment is the detector's start: nothing before it can be a gap.
    first = delivered[0][0] // MINUTE
    found: list[RecordingGap] = []
    for start, end in delivered:
        found += gaps.add(seg(start, end), now_ms=0)  # all arrive within the settle time
    found += gaps.settle(now_ms=MINUTE)
    missing = sorted(set(range(first, kept[-1] + 1)) - set(kept))
    reported = sorted(m for gap in found for m in range(gap.gap_start // MINUTE, gap.gap_end // MINUTE))
    assert reported == missing
    assert all(gap.duration_ms > 2_000 for gap in found)
