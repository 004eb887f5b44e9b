"""The firmware's parts on their own (scenarios/units.py), on the real MicroPython unix port."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import run_scenario

pytestmark = pytest.mark.micropython


@pytest.fixture(scope="module")
def checks() -> dict[str, dict[str, Any]]:
    return {line["check"]: line for line in run_scenario("units.py")}


def test_conversions_follow_the_rp2040_datasheet(checks: dict[str, dict[str, Any]]) -> None:
    c = checks["conversions"]
    assert c["temp_27"] == pytest.approx(27.0, abs=0.05)  # 0.706 V is 27 degC
    assert c["temp_raw_0"] == pytest.approx(27 + 0.706 / 0.001721, abs=0.01)
    assert c["supply_12"] == pytest.approx(12.0, abs=0.01)
    assert c["volts_full"] == pytest.approx(3.3)


def test_bell_bounce_is_one_press_and_a_long_hold_one_stuck_fault(checks: dict[str, dict[str, Any]]) -> None:
    bell = checks["bell"]
    # Bounce on press and on release, across the 2**30 wrap of ticks_ms(): one press.
    assert bell["events"] == ["pressed"]
    # Held 25 s: one press, one stuck fault (not a stream), cleared on release.
    assert bell["hold"] == ["pressed", "stuck", "stuck-cleared"]
    assert 19_900 <= bell["stuck_after"] <= 20_100
    # A 20 ms blip is shorter than the 30 ms debounce.
    assert bell["glitch"] == []
    assert bell["presses"] == 2
    # Held while the controller boots: a call, not silence (a stuck button then says so).
    assert bell["at_boot"] == ["pressed"]


def test_bell_circuit_confirms_changes_and_holds_faults_with_hysteresis(
    checks: dict[str, dict[str, Any]],
) -> None:
    circuit = checks["circuit"]
    assert circuit["noise"] == []  # readings flapping across the open edge: no event
    assert circuit["events"] == ["open", "normal", "short", "normal"]
    assert circuit["still_open"] == "open"
    assert circuit["still_short"] == "short"


def test_door_debounced_open_and_closed(checks: dict[str, dict[str, Any]]) -> None:
    assert checks["door"]["events"] == ["open", "closed"]
    assert checks["door"]["openings"] == 1


def test_thresholds_fire_once_per_crossing(checks: dict[str, dict[str, Any]]) -> None:
    t = checks["thresholds"]
    # 70 degC limit, 5 degC hysteresis: 69/66/65.1 do not clear, 65.0 does.
    assert t["temp"] == [None, None, "high", None, None, None, None, None, "normal", None, "high"]
    # 10.5 V limit, 0.5 V hysteresis: 10.9/10.99 do not clear, 11.0 does.
    assert t["supply"] == [None, None, "low", None, None, None, "normal", None]


def test_sensors_sample_on_their_period(checks: dict[str, dict[str, Any]]) -> None:
    s = checks["sensors"]
    assert s["samples"] == [True, False, True]
    assert s["temp_c"] == pytest.approx(75.0, abs=0.1)
    assert s["supply_v"] == pytest.approx(10.0, abs=0.01)
    assert (s["temp_event"], s["supply_event"]) == ("high", "low")


def test_lamp_duration_and_buzzer(checks: dict[str, dict[str, Any]]) -> None:
    lamp = checks["lamp"]
    assert lamp["lit"] == [1, 1, True]
    assert lamp["off_early"] is False
    assert lamp["off"] is True
    assert lamp["after"] == [0, 0]
    assert lamp["kept"] == [False, 1, 0]  # no duration: stays lit, buzzer only when asked


def test_largest_payloads_fit_a_frame(checks: dict[str, dict[str, Any]]) -> None:
    sizes = checks["payload_sizes"]
    assert max(sizes["telemetry"]) <= sizes["max"]
    assert max(sizes["results"]) <= sizes["max"]
    assert sizes["parses"] == ["tel", "cnt", True, True, False]


def test_an_idle_tick_allocates_next_to_nothing(checks: dict[str, dict[str, Any]]) -> None:
    # Polling pins and ADCs builds no lists or strings; what remains is the 1 Hz sensor
    # sample's float arithmetic (about 256 bytes a second on the 64-bit unix port).
    # LinkSession.poll() builds its result list on every call: that churn is link.py's and
    # is not held against the controller here.
    assert checks["allocation"]["tick"] <= 4
