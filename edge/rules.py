"""The node's local rules, as pure functions and one small state holder fed with values:

- a bell press becomes a `BellAlarm` at once (the agent commits it and the uplink sends it
  ahead of any backlog);
- the pole's video metadata within ±`window` of a press is tagged with the alarm's id as a
  bookmark, so the centre finds the footage of the call; records that came in before the press
  are sent again, tagged (the fleet merges segments by camera and start);
- pole faults and door changes become `Event`s that open and close faults in the fleet.

The lamp on an operator's acknowledgement is the agent's (edge.agent): it needs the pole.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import msgspec

from edge.pole import BellPress, ControllerRestarted, DoorChange, InputFault
from protocols import messages as m

# Severity of a raised fault, by category: what the maintenance contract's clocks start on.
SEVERITY: dict[str, m.Severity] = {
    "bell-circuit": "critical",  # the emergency bell cannot be relied on
    "bell-stuck": "major",
    "link": "major",
    "controller": "major",
    "supply": "major",
    "temperature": "minor",
    "door": "minor",
    "storage": "major",
    "camera": "major",
    "system": "minor",
}

VideoRecord = m.RecordingSegment | m.VideoEvent


def alarm_id(node_id: str, press: BellPress) -> str:
    return f"{node_id}.{press.bell_id}.{press.pressed_at_ms}"[:64]


def alarm_for(node_id: str, press: BellPress) -> m.BellAlarm:
    return m.BellAlarm(
        ts=press.pressed_at_ms,
        seq=0,
        alarm_id=alarm_id(node_id, press),
        bell_id=press.bell_id,
        pressed_at=press.pressed_at_ms,
        source=press.source,
        presses=min(press.presses, 10_000),
    )


def event_for(event: InputFault | DoorChange | ControllerRestarted) -> m.Event:
    """The protocol event for a pole fault, a door change or a controller restart."""
    match event:
        case DoorChange(open=is_open, at_ms=at):
            state: m.EventState = "raised" if is_open else "cleared"
            return _event(
                "door", state, at, component="cabinet", detail="door open" if is_open else "door closed"
            )
        case ControllerRestarted(cause=cause, firmware=firmware, at_ms=at):
            # A watchdog or brown-out reset is a fault to look at; a power-on is news only.
            bad = cause in ("watchdog", "brown-out")
            return _event(
                "controller",
                "info",
                at,
                severity="major" if bad else "info",
                component="controller",
                detail=f"pole controller restarted ({cause}), firmware {firmware}",
            )
        case InputFault() as fault:
            return _event(
                fault.category,
                "raised" if fault.raised else "cleared",
                fault.at_ms,
                component=fault.component,
                value=fault.value,
                detail=fault.detail,
            )


def _event(
    category: m.EventCategory,
    state: m.EventState,
    at_ms: int,
    *,
    severity: m.Severity | None = None,
    component: str | None = None,
    value: float | None = None,
    detail: str = "",
) -> m.Event:
    return m.Event(
        ts=at_ms,
        seq=0,
        event_id=f"{category}.{component or 'pole'}.{at_ms}"[:64],
        category=category,
        state=state,
        severity=severity or SEVERITY.get(category, "minor"),
        component=component,
        value=value,
        detail=detail[:2000],
    )


def storage_event(
    device: str, before: str | None, after: str, at_ms: int, reasons: list[str]
) -> m.Event | None:
    """A storage device's health changed: raised when it turns warning/failing, cleared when it
    is ok again. "unknown" (smartctl missing, a timeout) changes nothing: it is not news about
    the disk, and the diagnostics page shows why."""
    if after in ("unknown", before or "ok"):
        return None
    if after == "ok":
        return _event(
            "storage", "cleared", at_ms, component=_component(device), detail=f"{device} healthy again"
        )
    return _event(
        "storage",
        "raised",
        at_ms,
        severity="critical" if after == "failing" else "major",
        component=_component(device),
        detail=f"{device} {after}: " + "; ".join(reasons),
    )


def camera_event(camera_id: str, reachable: bool, at_ms: int, detail: str) -> m.Event:
    """A camera stopped (or started again) answering its probe."""
    state: m.EventState = "cleared" if reachable else "raised"
    return _event("camera", state, at_ms, component=camera_id, detail=detail)


def gap_event(camera_id: str, gap_start: int, gap_end: int, at_ms: int) -> m.Event:
    """A hole in a camera's recordings: news for the footage index, not a fault by itself."""
    seconds = (gap_end - gap_start) / 1000
    return _event(
        "camera",
        "info",
        at_ms,
        severity="minor",
        component=camera_id,
        detail=f"recording gap of {seconds:.1f} s from {gap_start} to {gap_end} (epoch ms)",
    )


def _component(device: str) -> str:
    return device.removeprefix("/dev/").replace("/", "-")[:64] or "disk"


@dataclass(frozen=True, slots=True)
class Bookmark:
    alarm_id: str
    start_ms: int
    end_ms: int


def _span(record: VideoRecord) -> tuple[int, int]:
    if isinstance(record, m.RecordingSegment):
        return record.start, record.end
    return record.at, record.at


class Bookmarks:
    """Bookmarks of recent bell alarms, and a short memory of recent video metadata."""

    def __init__(self, *, window_ms: int = 60_000, remember: int = 2_000) -> None:
        self.window_ms = window_ms
        self._active: list[Bookmark] = []
        self._recent: deque[VideoRecord] = deque(maxlen=remember)

    def on_alarm(self, alarm: m.BellAlarm) -> list[VideoRecord]:
        """Open a bookmark around the press; returns the remembered records it covers, tagged,
        to be sent again."""
        mark = Bookmark(alarm.alarm_id, alarm.pressed_at - self.window_ms, alarm.pressed_at + self.window_ms)
        self._active.append(mark)
        return [_tag(r, [mark.alarm_id]) for r in self._recent if _overlaps(r, mark)]

    def on_records(self, records: list[VideoRecord], now_ms: int) -> list[VideoRecord]:
        """Tag incoming records that fall in an open bookmark; remember them for later alarms."""
        # A bookmark stays open a while past its end: NVRs push a segment when it closes.
        self._active = [b for b in self._active if b.end_ms + 10 * self.window_ms > now_ms]
        tagged = []
        for record in records:
            ids = [b.alarm_id for b in self._active if _overlaps(record, b)]
            kept = _tag(record, ids) if ids else record
            tagged.append(kept)
            self._recent.append(kept)
        return tagged


def _overlaps(record: VideoRecord, mark: Bookmark) -> bool:
    start, end = _span(record)
    return start <= mark.end_ms and end >= mark.start_ms


def _tag(record: VideoRecord, alarm_ids: list[str]) -> VideoRecord:
    merged = list(dict.fromkeys([*record.bookmarks, *alarm_ids]))[:16]
    return msgspec.structs.replace(record, bookmarks=merged)
