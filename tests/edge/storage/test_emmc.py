"""eMMC wear from sysfs `life_time` and `pre_eol_info`: the captured healthy part, every JEDEC
value, and garbage, which must give "unknown" naming the file rather than raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.storage.emmc import emmc_wear, life_time_band, parse_life_time, parse_pre_eol_info
from tests.edge.storage.captures import SYSFS

EMMC_DEVICE = SYSFS / "emmc_mmcblk2" / "block" / "mmcblk2" / "device"


def test_captured_healthy_emmc_is_ok_with_up_to_10_percent_worn() -> None:
    # Captured: life_time "0x01 0x01" (0-10% used in both areas), pre_eol_info "0x01" (normal).
    wear = emmc_wear((EMMC_DEVICE / "life_time").read_text(), (EMMC_DEVICE / "pre_eol_info").read_text())
    assert wear.health == "ok"
    assert (wear.life_time_a, wear.life_time_b, wear.pre_eol_info) == (1, 1, 1)
    assert wear.wear_pct == 10.0


@pytest.mark.parametrize(
    ("value", "band"),
    [(0x01, (0, 10)), (0x02, (10, 20)), (0x0A, (90, 100)), (0x0B, (100, 100)), (0x00, None), (0x0C, None)],
)
def test_life_time_bands_follow_jedec(value: int, band: tuple[int, int] | None) -> None:
    assert life_time_band(value) == band


@pytest.mark.parametrize(
    ("life_time", "pre_eol", "health", "wear", "words"),
    [
        ("0x02 0x05\n", "0x01\n", "ok", 50.0, None),
        ("0x01 0x0a\n", "0x01\n", "warning", 100.0, "type B is 0x0a: 90-100% of life used"),
        ("0x0b 0x0b\n", "0x01\n", "warning", 100.0, "past its estimated life"),
        ("0x01 0x03\n", "0x02\n", "warning", 30.0, "pre-EOL warning: 80% of reserved blocks"),
        ("0x01 0x03\n", "0x03\n", "failing", 30.0, "pre-EOL urgent: 90% of reserved blocks"),
        # Type A undefined (no SLC area) while type B is defined: read type B.
        ("0x00 0x04\n", "0x01\n", "ok", 40.0, None),
        ("0x00 0x00\n", "0x01\n", "unknown", None, "no defined estimate"),
        ("0x01 0x01\n", "0x00\n", "unknown", 10.0, "pre_eol_info is 0x00, not defined"),
    ],
)
def test_wear_and_reserved_blocks_decide_health(
    life_time: str, pre_eol: str, health: str, wear: float | None, words: str | None
) -> None:
    result = emmc_wear(life_time, pre_eol)
    assert result.health == health
    assert result.wear_pct == wear
    if words is not None:
        assert any(words in reason for reason in result.reasons), result.reasons


def test_no_files_means_an_sd_card_or_old_emmc() -> None:
    result = emmc_wear(None, None)
    assert result.health == "unknown"
    assert "no life_time or pre_eol_info" in result.reasons[0]


@pytest.mark.parametrize(
    ("life_time", "pre_eol", "words"),
    [
        ("0x01\n", "0x01\n", "life_time holds '0x01\\n'"),
        ("garbage here\n", "0x01\n", "life_time holds 'garbage here\\n'"),
        ("0x01 0x01\n", "", "pre_eol_info holds ''"),
        ("0x01 0x01\n", "0x100\n", "pre_eol_info holds '0x100\\n'"),
        ("0x01 0x01\n", None, "no pre_eol_info"),
    ],
)
def test_garbage_is_unknown_naming_the_file(life_time: str, pre_eol: str | None, words: str) -> None:
    result = emmc_wear(life_time, pre_eol)
    assert result.health == "unknown"
    assert any(words in reason for reason in result.reasons), result.reasons


def test_prefixless_hex_is_read_too() -> None:
    assert parse_life_time("01 0A") == (1, 10)
    assert parse_pre_eol_info("02") == 2


@given(st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.text(max_size=30)))
def test_arbitrary_text_never_raises(life_time: str | None, pre_eol: str | None) -> None:
    result = emmc_wear(life_time, pre_eol)
    assert result.health in {"ok", "warning", "failing", "unknown"}
    if result.health != "ok":
        assert result.reasons
        assert all(result.reasons)
    if life_time is not None and parse_life_time(life_time) is None:
        # Garbage never reads as healthy; a pre-EOL warning beside it may still outrank "unknown".
        assert result.health != "ok"
        assert any(reason.startswith("life_time holds") for reason in result.reasons)
    if result.wear_pct is not None:
        assert 0 <= result.wear_pct <= 100
