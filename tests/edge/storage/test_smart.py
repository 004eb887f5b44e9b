"""Reading `smartctl -j` output: real captures from SATA, NVMe and USB-bridged drives, a failing
disk, devices smartctl cannot read, the exit-status bit mask, and input that is not smartctl's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.storage.smart import ExitBit, decode_exit_status, exit_meanings, parse_smartctl
from tests.edge.storage.captures import smartctl_capture

HEALTHS = {"ok", "warning", "failing", "unknown"}


def read(name: str, device: str = "/dev/sdx") -> Any:
    output, status = smartctl_capture(name)
    return parse_smartctl(output, status, device=device)


# --- the exit-status bit mask (smartctl(8), RETURN VALUES) ------------------------------------


@pytest.mark.parametrize(
    ("status", "bits"),
    [
        (0, ExitBit(0)),
        (1, ExitBit.COMMAND_LINE),
        (2, ExitBit.DEVICE_OPEN),
        (4, ExitBit.COMMAND_FAILED),
        (8, ExitBit.DISK_FAILING),
        (16, ExitBit.PREFAIL_AT_THRESHOLD),
        (32, ExitBit.AT_THRESHOLD_IN_PAST),
        (64, ExitBit.ERROR_LOG),
        (128, ExitBit.SELF_TEST_LOG),
        # 216 = 128 + 64 + 16 + 8: the failing Hitachi's status.
        (
            216,
            ExitBit.SELF_TEST_LOG | ExitBit.ERROR_LOG | ExitBit.PREFAIL_AT_THRESHOLD | ExitBit.DISK_FAILING,
        ),
        (68, ExitBit.ERROR_LOG | ExitBit.COMMAND_FAILED),
    ],
)
def test_exit_status_decodes_bit_by_bit(status: int, bits: ExitBit) -> None:
    assert decode_exit_status(status) == bits


def test_exit_meanings_name_each_set_bit_in_order() -> None:
    assert exit_meanings(decode_exit_status(0b1001)) == (
        "bit 0: command line did not parse",
        "bit 3: SMART status check returned DISK FAILING",
    )


def test_a_signal_death_has_no_bits() -> None:
    # asyncio reports a process killed by SIGKILL as returncode -9; -9 & 0xFF would read as 247.
    assert decode_exit_status(-9) == ExitBit(0)


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_any_exit_status_decodes_to_the_eight_documented_bits(status: int) -> None:
    assert 0 <= int(decode_exit_status(status)) <= 0xFF


# --- real captures ------------------------------------------------------------------------------


def test_healthy_sata_disk_is_ok() -> None:
    # WD Red WD20EFRX: smart_status.passed true, attributes 5/197/198 raw 0, exit status 0.
    reading = read("sata_wd_red_ok")
    assert reading.health == "ok"
    assert reading.reasons == ()
    assert reading.passed is True
    assert reading.protocol == "ATA"
    assert reading.model == "WDC WD20EFRX-68EUZN0"
    assert reading.temperature_c == 34
    assert reading.power_on_hours == 47657
    assert (reading.reallocated_sectors, reading.pending_sectors, reading.uncorrectable_sectors) == (0, 0, 0)
    # A spinning disk has no remaining-life attribute: no wear figure rather than a made-up one.
    assert reading.wear_pct is None


def test_failing_disk_behind_usb_bridge_is_failing_and_says_why() -> None:
    # Hitachi HDS721050DLE630 read through a JMicron USB bridge: smart_status.passed false,
    # Reallocated_Sector_Ct normalised 1 against threshold 5 ("when_failed": "now"), raw 1975,
    # 8 pending sectors, 56 errors logged, 3 failed extended self-tests; exit status 216.
    reading = read("usb_jmicron_hitachi_failing", "/dev/sdc")
    assert reading.health == "failing"
    assert reading.device_type == "usbjmicron"
    assert reading.passed is False
    assert reading.reasons[0] == "SMART overall-health self-assessment: FAILED"
    assert reading.reasons[1] == (
        "Reallocated_Sector_Ct (prefail attribute 5) is at or below its threshold now"
        " (value 1, threshold 5, raw 1975)"
    )
    assert reading.attributes_failing_now == ("Reallocated_Sector_Ct",)
    assert reading.reallocated_sectors == 1975
    assert reading.pending_sectors == 8
    assert reading.error_log_count == 56
    assert reading.self_test_errors == 3
    assert reading.temperature_c == 25
    assert reading.power_on_hours == 65592
    assert reading.exit_meanings == (
        "bit 3: SMART status check returned DISK FAILING",
        "bit 4: some prefail attributes are at or below their threshold",
        "bit 6: the device error log contains errors",
        "bit 7: the self-test log contains errors",
    )


def test_nvme_percentage_used_is_the_wear() -> None:
    # Intel 660p: percentage_used 0, critical_warning 0, spare 100 >= threshold 10, no media errors.
    reading = read("nvme_intel_660p_ok", "/dev/nvme0")
    assert reading.health == "ok"
    assert reading.protocol == "NVMe"
    assert reading.wear_pct == 0.0
    assert reading.temperature_c == 36
    assert reading.power_on_hours == 2401


def test_nvme_with_media_errors_is_a_warning_though_smart_passed() -> None:
    # Samsung 970 EVO: passed true and exit 0, but media_errors 7; percentage_used 3.
    reading = read("nvme_samsung_970_evo_media_errors", "/dev/nvme0")
    assert reading.health == "warning"
    assert reading.wear_pct == 3.0
    assert reading.nvme is not None
    assert reading.nvme.media_errors == 7
    assert reading.nvme.available_spare == 99
    assert reading.reasons == ("7 media and data integrity errors",)


def test_device_smartctl_cannot_identify_is_unknown_with_smartctl_s_message() -> None:
    # Captured here on a virtio disk: the same exit 1 and message as an unknown USB bridge or an
    # eMMC ("Unable to detect device type").
    reading = read("virtio_unable_to_detect", "/dev/vda")
    assert reading.health == "unknown"
    assert reading.exit_bits == ExitBit.COMMAND_LINE
    assert reading.messages == ("error: /dev/vda: Unable to detect device type",)
    assert "Unable to detect device type" in reading.reasons[0]


def test_device_that_cannot_be_opened_is_unknown_with_the_open_error() -> None:
    reading = read("virtio_open_failed_as_sat", "/dev/vda")
    assert reading.health == "unknown"
    assert reading.exit_bits == ExitBit.DEVICE_OPEN
    assert reading.reasons == (
        "smartctl could not open the device: error: Smartctl open device: /dev/vda [SAT] failed:"
        " Operation not permitted",
    )


# --- outputs derived from the captures, to pin single rules ---------------------------------


def healthy_nvme_with(**log_changes: int) -> bytes:
    document = json.loads(smartctl_capture("nvme_intel_660p_ok")[0])
    document["nvme_smart_health_information_log"].update(log_changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("changes", "health", "words"),
    [
        ({"critical_warning": 0x08}, "failing", "read-only"),
        ({"critical_warning": 0x04}, "failing", "reliability"),
        ({"critical_warning": 0x02}, "warning", "temperature"),
        ({"available_spare": 5}, "failing", "available spare 5% is below its threshold 10%"),
        ({"percentage_used": 95}, "warning", "95% of rated endurance used"),
    ],
)
def test_nvme_health_log_rules(changes: dict[str, int], health: str, words: str) -> None:
    reading = parse_smartctl(healthy_nvme_with(**changes), 0, device="/dev/nvme0")
    assert reading.health == health
    assert any(words in reason for reason in reading.reasons)


def test_nvme_wear_beyond_the_rating_is_capped_at_100_for_telemetry() -> None:
    reading = parse_smartctl(healthy_nvme_with(percentage_used=140), 0, device="/dev/nvme0")
    assert reading.wear_pct == 100.0
    assert reading.nvme is not None
    assert reading.nvme.percentage_used == 140


def test_exit_bit_3_alone_means_failing() -> None:
    document = json.loads(smartctl_capture("sata_wd_red_ok")[0])
    del document["smart_status"]
    reading = parse_smartctl(json.dumps(document), 8, device="/dev/sdb")
    assert reading.health == "failing"
    assert "DISK FAILING" in reading.reasons[0]


def test_an_old_age_attribute_at_threshold_is_worn_out_not_failing() -> None:
    # Start_Stop_Count (attribute 4) is old-age ("prefailure": false) on the WD Red.
    document = json.loads(smartctl_capture("sata_wd_red_ok")[0])
    start_stop = document["ata_smart_attributes"]["table"][2]
    assert start_stop["name"] == "Start_Stop_Count"
    start_stop["when_failed"] = "now"
    reading = parse_smartctl(json.dumps(document), 0, device="/dev/sdb")
    assert reading.health == "warning"
    assert reading.reasons[0].startswith(
        "Start_Stop_Count (old-age attribute 4) is at or below its threshold now"
    )


def test_a_failed_smart_command_alone_is_a_note_not_a_verdict() -> None:
    output, _ = smartctl_capture("sata_wd_red_ok")
    reading = parse_smartctl(output, 4, device="/dev/sdb")
    assert reading.health == "ok"
    assert "data may be incomplete" in reading.reasons[0]


# --- input that is not smartctl's JSON -----------------------------------------------------


@pytest.mark.parametrize(
    ("output", "words"),
    [
        (b"", "printed nothing"),
        (b"smartctl 7.3 2022-02-28 r5338 [x86_64-linux] (local build)\n", "not JSON"),
        (b"[1, 2]", "not an object (a list)"),
        (b'{"json_format_version": [1, 0]}', "no 'smartctl' object"),
        (b'{"smartctl": {"exit_status": 0}}', "no health data"),
        (b"\xff\xfe{", "not JSON"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_malformed_output_is_unknown_naming_what_was_wrong(output: bytes, words: str) -> None:
    reading = parse_smartctl(output, 0, device="/dev/sda")
    assert reading.health == "unknown"
    assert words in reading.reasons[0]


def test_wrong_types_are_treated_as_absent() -> None:
    document = json.loads(smartctl_capture("usb_jmicron_hitachi_failing")[0])
    document["smart_status"]["passed"] = "no"
    document["temperature"] = {"current": "hot"}
    document["ata_smart_attributes"]["table"][4]["raw"] = {"value": True}
    reading = parse_smartctl(json.dumps(document), 216, device="/dev/sdc")
    assert reading.passed is None
    assert reading.temperature_c is None
    assert reading.reallocated_sectors is None
    # The exit bits and the "now" attribute still say failing.
    assert reading.health == "failing"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=2000), st.integers(min_value=-255, max_value=255))
def test_arbitrary_bytes_never_raise_and_give_unknown_with_a_reason(output: bytes, status: int) -> None:
    reading = parse_smartctl(output, status, device="/dev/sda")
    assert reading.health == "unknown"
    assert reading.reasons
    assert all(reading.reasons)


@given(json_values, st.integers(min_value=0, max_value=255))
def test_arbitrary_json_never_raises_and_gives_unknown_with_a_reason(value: object, status: int) -> None:
    reading = parse_smartctl(json.dumps(value), status, device="/dev/sda")
    assert reading.health == "unknown"
    assert reading.reasons
    assert all(reading.reasons)


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


FAILING = json.loads(smartctl_capture("usb_jmicron_hitachi_failing")[0])
FAILING_PATHS = _paths(FAILING)


@given(st.sampled_from(FAILING_PATHS), json_values, st.integers(min_value=0, max_value=255))
def test_a_real_output_with_any_part_replaced_never_raises(
    path: tuple[str | int, ...], value: object, status: int
) -> None:
    document = json.loads(json.dumps(FAILING))
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    reading = parse_smartctl(json.dumps(document), status, device="/dev/sdc")
    assert reading.health in HEALTHS
    if reading.health != "ok":
        assert reading.reasons
        assert all(reading.reasons)
