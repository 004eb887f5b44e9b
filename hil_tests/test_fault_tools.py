"""Faults only a simulator makes on demand (hil_tests/rig/faults.py), each with the pole's
real processes around it: interference on the controller's serial line while citizens press
the bell, the node's flash running full, and the node's wall clock jumping."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from hil_tests.rig.faults import (
    Nvr,
    Push,
    SerialNoise,
    SmallFlash,
    WallClock,
    installed,
    node_status,
    video_starts,
)
from hil_tests.rig.rig import Rig, wait_until

PRESSES = 3
RELEASE_S = 1.0  # between two presses the thumb lets go for longer than the firmware's debounce
BATCH = 20  # records per metadata push
FLASH_MB = 24  # the node's whole flash, as the agent sees it
MIN_FREE_MB = 8  # the outbox's reserve (docs/edge.md, "Full flash")
LEFT_FREE_MB = 4  # what the stuck download leaves: under the reserve, above nothing
RETRIES = 3  # the NVR's retries of a refused push, Retry-After apart
CLOCK_SLACK_MS = 30_000  # "the node's clock says about this": generous for a loaded machine


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def refusal(nvr: Nvr) -> tuple[Push, list[dict[str, Any]]] | None:
    """Push a new batch; the answer and the batch if the node refused it."""
    records = nvr.segments(BATCH)
    answer = nvr.push(records)
    return None if answer.accepted else (answer, records)


def published_starts(rig: Rig) -> set[int]:
    return {start for start, _ in video_starts(rig)}


def alarms_at_the_centre(rig: Rig) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = rig.lab.fleet.get(f"/alarms?node={rig.node_id}")["items"]
    return items


def calls_at_the_centre(rig: Rig, count: int) -> Callable[[], list[dict[str, Any]] | None]:
    """For wait_until: the node's alarms at the centre, once there are `count`."""

    def check() -> list[dict[str, Any]] | None:
        alarms = alarms_at_the_centre(rig)
        return alarms if len(alarms) >= count else None

    return check


def dated_near(expected_ms: int) -> Callable[[dict[str, Any]], bool]:
    """For wait_sent: a message the node dated `expected_ms`, give or take CLOCK_SLACK_MS."""
    return lambda body: abs(body["ts"] - expected_ms) < CLOCK_SLACK_MS


@pytest.mark.lg_feature("simulated")
@pytest.mark.node_config.with_args(SerialNoise.node_config)
def test_each_press_reaches_the_centre_once_over_a_noisy_serial_line(rig: Rig) -> None:
    noise = installed(rig, SerialNoise)
    noise.noisy()
    for pressed in range(1, PRESSES + 1):
        time.sleep(RELEASE_S)
        # The press's own frame goes out in the spike's wake: the bell's relay switching.
        noise.spike()
        rig.press_bell()
        # One call at a time: a press while the last alarm is unacknowledged folds into the next.
        wait_until(f"call {pressed} at the centre", calls_at_the_centre(rig, pressed))
    noise.quiet()

    # The noise was real: frames were garbled on the wire, the node's decoder threw them away,
    # and the controller's retransmissions got the presses through anyway.
    assert noise.counters.injected > 0, noise.counters
    assert noise.counters.flipped > 0, noise.counters
    link = node_status(rig)["pole"]["link_counters"]
    assert sum(link["decode_errors"].values()) > 0, link
    wait_until(
        "the controller's retransmissions counted",
        lambda: node_status(rig)["pole"]["counters"]["link_retransmits"] > 0,
    )

    alarms = alarms_at_the_centre(rig)
    assert len(alarms) == PRESSES
    assert [a["presses"] for a in alarms] == [1] * PRESSES
    # Exactly once on the wire too: a retransmitted frame was never taken for a new press.
    published = [s.json()["alarm_id"] for s in rig.sent("alarm")]
    assert sorted(published) == sorted(str(a["alarm_id"]) for a in alarms)


@pytest.mark.lg_feature("simulated")
@pytest.mark.skipif(os.geteuid() != 0, reason="the node's flash is a tmpfs, and mounting one needs root")
@pytest.mark.node_config.with_args(SmallFlash.node_config(size_mb=FLASH_MB, min_free_mb=MIN_FREE_MB))
def test_a_full_flash_refuses_video_but_the_calls_still_go_out(rig: Rig) -> None:
    flash = installed(rig, SmallFlash)
    nvr = Nvr(rig.node.diag_url)
    for _ in range(3):
        assert nvr.push(nvr.segments(BATCH)).accepted
    wait_until("the first pushes published", lambda: nvr.accepted <= published_starts(rig))
    births = len(rig.sent("birth"))

    left = flash.fill(leave_bytes=LEFT_FREE_MB * 2**20)
    assert left < MIN_FREE_MB * 2**20
    # The NVR keeps pushing; once the agent has seen the space go, it says no, and why.
    refused, refused_records = wait_until("a push refused", lambda: refusal(nvr))
    assert refused.status == 503
    assert refused.retry_after is not None
    assert refused.body["reason"] == "unavailable"
    assert "not stored" in str(refused.body["error"]), refused.body

    # A citizen's call still goes out, from the same full flash.
    rig.press_bell()
    (alarm,) = wait_until("the call at the centre", lambda: alarms_at_the_centre(rig))
    assert alarm["presses"] == 1

    # The agent never stopped (no new session), tells the technician what it turned away, and
    # lost nothing it had answered 2xx for.
    status = node_status(rig)
    assert status["outbox"]["counters"]["refused_video"] > 0
    assert status["metadata_ingest"]["unavailable"] > 0
    wait_until(
        f"all {len(nvr.accepted)} accepted records published", lambda: nvr.accepted <= published_starts(rig)
    )
    assert len(rig.sent("birth")) == births

    # The technician deletes the stuck download; the NVR retries the refused push at the pace
    # the node asked for (Retry-After), and it is taken.
    flash.free()
    pause_s = float(refused.retry_after)
    for _ in range(RETRIES):
        time.sleep(pause_s)
        if nvr.push(refused_records).accepted:
            break
    else:
        raise AssertionError(
            f"the push refused on a full flash is still refused {RETRIES} retries after it was freed"
        )
    wait_until("the retried push published", lambda: nvr.accepted <= published_starts(rig))
    assert len(rig.sent("birth")) == births


@pytest.mark.lg_feature("simulated")
@pytest.mark.node_config.with_args(WallClock.node_config)
def test_the_node_rides_out_its_wall_clock_jumping(rig: Rig) -> None:
    clock = installed(rig, WallClock)
    births = len(rig.sent("birth"))
    pressed_at: list[int] = []
    for step_s in (+3600, -600):  # NTP steps it an hour forward, then ten minutes back
        offset_ms = clock.jump(step_s) * 1000
        # The agent's own time.time() moved: its status page and its telemetry say so.
        node_time = node_status(rig)["node"]["time_ms"]
        assert abs(node_time - (now_ms() + offset_ms)) < CLOCK_SLACK_MS, (node_time, now_ms(), offset_ms)
        since = now_ms()
        rig.wait_sent("telemetry", dated_near(since + offset_ms))

        rig.press_bell()
        count = len(pressed_at) + 1
        alarms = wait_until(f"call {count} at the centre", calls_at_the_centre(rig, count))
        (new,) = [a for a in alarms if a["pressed_at_ms"] not in pressed_at]
        assert new["presses"] == 1
        assert abs(new["pressed_at_ms"] - (since + offset_ms)) < CLOCK_SLACK_MS  # by the node's clock
        pressed_at.append(new["pressed_at_ms"])

    # The second call is dated before the first (the clock went back), and is still its own call.
    assert pressed_at[1] < pressed_at[0]
    assert len(rig.sent("birth")) == births  # the agent kept running, in the same session
