"""The pure parsers of edge.system.parse on real captured outputs (fixtures/README.md says
where each came from), on the ways they go wrong, and on arbitrary text, which must never raise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.system.clock import STA_UNSYNC, TIME_ERROR, KernelClock
from edge.system.parse import (
    MemoryUse,
    Throttling,
    Unreadable,
    parse_meminfo,
    parse_thermal_millidegrees,
    parse_throttled_sysfs,
    parse_timedatectl_synced,
    parse_uptime,
    parse_vcgencmd_throttled,
)

FIXTURES = Path(__file__).parent / "fixtures"
PI = FIXTURES / "raspberry-pi"
VM = FIXTURES / "vm-x86_64"
COMMANDS = FIXTURES / "commands"


def fixture(path: Path) -> str:
    return path.read_text(encoding="ascii")


def meminfo_field(text: str, name: str) -> int:
    # Read independently of the parser: the line's second word.
    (line,) = [line for line in text.splitlines() if line.startswith(name + ":")]
    return int(line.split()[1])


def test_a_pi_thermal_zone_reads_in_degrees() -> None:
    assert parse_thermal_millidegrees(fixture(PI / "sys/class/thermal/thermal_zone0/temp")) == 44.388


@pytest.mark.parametrize(("text", "celsius"), [("-5250\n", -5.25), ("0", 0.0), ("150000\n", 150.0)])
def test_thermal_values_within_the_wire_bounds(text: str, celsius: float) -> None:
    assert parse_thermal_millidegrees(text) == celsius


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not millidegrees"),
        ("44.388\n", "not millidegrees"),  # degrees, not millidegrees: another driver's format
        ("temp=44.3'C\n", "not millidegrees"),
        ("-273150\n", "outside -60..150"),  # a sensor that reports absolute zero is broken
        ("200000\n", "outside -60..150"),
    ],
)
def test_thermal_garbage_is_unreadable_with_a_reason(text: str, reason: str) -> None:
    result = parse_thermal_millidegrees(text)
    assert isinstance(result, Unreadable)
    assert reason in result.reason


def test_the_sysfs_throttled_file_is_bare_hex() -> None:
    throttling = parse_throttled_sysfs(fixture(PI / "sys/devices/platform/soc/soc:firmware/get_throttled"))
    assert throttling == Throttling(0x50000)
    assert isinstance(throttling, Throttling)
    assert not throttling.active
    assert throttling.now() == []
    assert throttling.since_boot() == ["under-voltage", "throttled"]


def test_vcgencmd_under_voltage_and_throttled_now() -> None:
    throttling = parse_vcgencmd_throttled(fixture(COMMANDS / "vcgencmd-get_throttled-0x50005.stdout"))
    assert isinstance(throttling, Throttling)
    assert throttling.raw == 0x50005
    assert (throttling.under_voltage, throttling.arm_frequency_capped) == (True, False)
    assert (throttling.throttled, throttling.soft_temperature_limit) == (True, False)
    assert throttling.active
    assert throttling.now() == ["under-voltage", "throttled"]
    assert throttling.since_boot() == ["under-voltage", "throttled"]


@pytest.mark.parametrize(("name", "raw"), [("0x50000", 0x50000), ("0x0", 0)])
def test_vcgencmd_nothing_now(name: str, raw: int) -> None:
    throttling = parse_vcgencmd_throttled(fixture(COMMANDS / f"vcgencmd-get_throttled-{name}.stdout"))
    assert throttling == Throttling(raw)
    assert isinstance(throttling, Throttling)
    assert not throttling.active


@pytest.mark.parametrize("raw", [0x2, 0x8, 0xF])
def test_any_condition_now_is_active(raw: int) -> None:
    assert Throttling(raw).active


def test_each_throttled_format_refuses_the_other() -> None:
    assert isinstance(parse_vcgencmd_throttled("50005\n"), Unreadable)
    assert isinstance(parse_throttled_sysfs("throttled=0x50005\n"), Unreadable)
    # What vcgencmd prints when it cannot reach the firmware (no /dev/vchiq access).
    failed = parse_vcgencmd_throttled("VCHI initialization failed\n")
    assert isinstance(failed, Unreadable)
    assert "VCHI" in failed.reason


def test_a_throttled_field_wider_than_32_bits_is_unreadable() -> None:
    assert isinstance(parse_throttled_sysfs("100000000\n"), Unreadable)


def test_meminfo_of_a_real_machine() -> None:
    text = fixture(VM / "proc/meminfo")
    memory = parse_meminfo(text)
    assert memory == MemoryUse(
        total_kib=meminfo_field(text, "MemTotal"), available_kib=meminfo_field(text, "MemAvailable")
    )
    assert isinstance(memory, MemoryUse)
    assert 0.0 <= memory.used_pct <= 100.0


def test_meminfo_without_mem_available_names_what_is_missing() -> None:
    text = "\n".join(line for line in fixture(VM / "proc/meminfo").splitlines() if "MemAvailable" not in line)
    result = parse_meminfo(text)
    assert result == Unreadable("no MemAvailable line in meminfo")


def test_inconsistent_meminfo_is_unreadable() -> None:
    assert isinstance(parse_meminfo("MemTotal: 100 kB\nMemAvailable: 200 kB\n"), Unreadable)
    assert isinstance(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), Unreadable)


def test_uptime_of_a_real_machine() -> None:
    text = fixture(VM / "proc/uptime")
    assert parse_uptime(text) == float(text.split()[0])


@pytest.mark.parametrize("text", ["", "up 3 days\n", "-4.0 1.0\n"])
def test_uptime_garbage_is_unreadable(text: str) -> None:
    assert isinstance(parse_uptime(text), Unreadable)


def test_timedatectl_answers() -> None:
    assert parse_timedatectl_synced("yes\n") is True
    assert parse_timedatectl_synced("no\n") is False
    # A container without systemd prints nothing on stdout (fixtures/commands).
    assert isinstance(
        parse_timedatectl_synced(fixture(COMMANDS / "timedatectl-no-systemd.stdout")), Unreadable
    )


@pytest.mark.parametrize(
    ("state", "status", "synced"),
    [
        (0, 0x2001, True),  # TIME_OK, STA_PLL | STA_NANO: an NTP client is disciplining the clock
        (1, 0x0001, True),  # TIME_INS: a leap second is coming, still synchronised
        (TIME_ERROR, STA_UNSYNC, False),  # what a never-synchronised kernel says
        (0, STA_UNSYNC, False),
        (TIME_ERROR, 0, False),
    ],
)
def test_kernel_clock_sync(state: int, status: int, synced: bool) -> None:
    assert KernelClock(state=state, status=status).synced is synced


# -- arbitrary text never raises

PARSERS = [
    parse_thermal_millidegrees,
    parse_throttled_sysfs,
    parse_vcgencmd_throttled,
    parse_meminfo,
    parse_uptime,
    parse_timedatectl_synced,
]
# Text near the real formats reaches deeper than random unicode does.
NEAR_MISSES = st.text(alphabet="0123456789abcdefxX=-.: \n\tkBMemTotalAvailablethrottledyesno")


@pytest.mark.parametrize("parse", PARSERS, ids=lambda parse: parse.__name__)
@given(text=st.text() | NEAR_MISSES)
def test_arbitrary_text_never_raises(parse: Callable[[str], object], text: str) -> None:
    result = parse(text)
    assert result is not None
    if isinstance(result, Unreadable):
        assert result.reason
