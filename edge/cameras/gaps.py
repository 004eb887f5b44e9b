"""Recording gaps, per camera, from the segments the cameras or the NVR pushed: pure, fed with
segments and the agent's clock (epoch ms) by edge.cameras.ingest, which hands each gap to the
agent (a "camera" event).

Segments may come late (an NVR retrying a push the outbox refused) or twice (a retry whose
202 was lost), so a hole is not reported the moment it is seen: it waits `settle_ms` for the
segment that fills it. The state is a high-water mark and at most `max_holes` holes per camera.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from protocols.messages import RecordingSegment


@dataclass(frozen=True, slots=True, kw_only=True)
class GapPolicy:
    """From config. `tolerance_ms`: a step between segments up to this long is not a gap (NVRs
    cut segments on key frames, not on the millisecond). `settle_ms`: how long a hole may
    still be filled by a late segment before it is reported (0: report at once).
    `stale_after_ms`: a camera whose last segment ended longer ago than this is not
    recording; it must exceed the NVR's segment length plus its push delay."""

    tolerance_ms: int = 2_000
    settle_ms: int = 60_000
    stale_after_ms: int = 10 * 60_000
    max_holes: int = 16

    def __post_init__(self) -> None:
        for name in ("tolerance_ms", "settle_ms"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} {value} is not allowed: use 0 or more milliseconds")
        if self.stale_after_ms < 1:
            raise ValueError(
                f"stale_after_ms {self.stale_after_ms} is not allowed: use a positive number of milliseconds"
            )
        if self.max_holes < 1:
            raise ValueError(f"max_holes {self.max_holes} is not allowed: use 1 or more")


@dataclass(frozen=True, slots=True)
class RecordingGap:
    """No footage from `gap_start` to `gap_end` (epoch ms, the cameras' clock)."""

    camera_id: str
    gap_start: int
    gap_end: int

    @property
    def duration_ms(self) -> int:
        return self.gap_end - self.gap_start


@dataclass(slots=True)
class _Hole:
    start: int
    end: int
    found_at_ms: int  # agent clock: when the segment after it arrived


@dataclass(slots=True)
class _Track:
    latest_end: int | None = None  # end of the latest segment seen; None: none since start
    holes: list[_Hole] = field(default_factory=list)  # ordered by start, all before latest_end


class GapDetector:
    """One per agent, for the cameras in its config. `add` each stored segment; call `settle`
    now and then (the agent's tick) so a hole is reported even when no segment follows."""

    def __init__(
        self, camera_ids: Iterable[str], *, started_at_ms: int, policy: GapPolicy | None = None
    ) -> None:
        self.policy = policy or GapPolicy()
        self.started_at_ms = started_at_ms
        self._tracks = {camera_id: _Track() for camera_id in camera_ids}

    def add(self, segment: RecordingSegment, now_ms: int) -> list[RecordingGap]:
        """Take one stored segment; return every gap that is due by `now_ms` (any camera)."""
        track = self._tracks.get(segment.camera_id)
        if track is None:
            known = ", ".join(repr(c) for c in sorted(self._tracks)) or "none"
            raise ValueError(f"camera {segment.camera_id!r} is not watched for gaps (watched: {known})")
        tolerance = self.policy.tolerance_ms
        track.holes = _fill(track.holes, segment.start, segment.end, tolerance)
        overflow: list[RecordingGap] = []
        if track.latest_end is not None and segment.start > track.latest_end + tolerance:
            track.holes.append(_Hole(track.latest_end, segment.start, now_ms))
            if len(track.holes) > self.policy.max_holes:
                # Bounded: the oldest hole is reported now rather than kept waiting.
                oldest = min(track.holes, key=lambda hole: hole.found_at_ms)
                track.holes.remove(oldest)
                overflow.append(RecordingGap(segment.camera_id, oldest.start, oldest.end))
        if track.latest_end is None or segment.end > track.latest_end:
            track.latest_end = segment.end
        return overflow + self.settle(now_ms)

    def settle(self, now_ms: int) -> list[RecordingGap]:
        """Holes no late segment filled within `settle_ms`: gaps, reported once."""
        due: list[RecordingGap] = []
        for camera_id, track in self._tracks.items():
            waiting: list[_Hole] = []
            for hole in track.holes:
                if now_ms - hole.found_at_ms >= self.policy.settle_ms:
                    due.append(RecordingGap(camera_id, hole.start, hole.end))
                else:
                    waiting.append(hole)
            track.holes = waiting
        return due

    def not_recording(self, now_ms: int) -> list[str]:
        """Cameras whose last segment ended more than `stale_after_ms` before `now_ms`; a camera
        with no segment since the agent started counts from the start."""
        stale = []
        for camera_id, track in self._tracks.items():
            since = self.started_at_ms if track.latest_end is None else track.latest_end
            if now_ms - since > self.policy.stale_after_ms:
                stale.append(camera_id)
        return sorted(stale)

    def latest_end(self, camera_id: str) -> int | None:
        """End of the latest segment seen for the camera (epoch ms), None if none yet."""
        return self._tracks[camera_id].latest_end

    def pending(self, camera_id: str) -> list[tuple[int, int]]:
        """Holes still waiting to be filled or reported, as (start, end)."""
        return [(hole.start, hole.end) for hole in self._tracks[camera_id].holes]


def _fill(holes: list[_Hole], start: int, end: int, tolerance: int) -> list[_Hole]:
    """The holes left once [start, end] is recorded; what remains of a hole at either side is
    kept only while it is longer than the tolerance."""
    kept: list[_Hole] = []
    for hole in holes:
        if end <= hole.start or start >= hole.end:
            kept.append(hole)
            continue
        if start - hole.start > tolerance:
            kept.append(_Hole(hole.start, start, hole.found_at_ms))
        if hole.end - end > tolerance:
            kept.append(_Hole(end, hole.end, hole.found_at_ms))
    return kept
