"""What smartctl said when asked to start a SMART short self-test (`smartctl -j -t short`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.storage.selftest import parse_self_test_start
from tests.edge.storage.captures import smartctl_capture


def test_device_smartctl_cannot_identify_does_not_start_and_says_why() -> None:
    # Captured: `smartctl -j -t short /dev/vda`, exit 1.
    start = parse_self_test_start(*smartctl_capture("selftest_virtio_unable_to_detect"), device="/dev/vda")
    assert start.started is False
    assert start.summary == (
        "the short self-test was not started (bit 0: command line did not parse):"
        " error: /dev/vda: Unable to detect device type"
    )


@pytest.mark.parametrize("status", [1, 2, 4, 2 | 64])
def test_command_bits_mean_not_started(status: int) -> None:
    output, _ = smartctl_capture("sata_wd_red_ok")
    assert parse_self_test_start(output, status, device="/dev/sdb").started is False


def test_clean_exit_with_smartctl_s_envelope_means_started() -> None:
    # No drive here accepts a self-test, so this reuses a real -j envelope with exit 0; the
    # drive-state bits (3..7) do not stop a test from starting.
    output, _ = smartctl_capture("sata_wd_red_ok")
    start = parse_self_test_start(output, 0, device="/dev/sdb")
    assert start.started is True
    assert start.polling_minutes is None
    failing, _ = smartctl_capture("usb_jmicron_hitachi_failing")
    start = parse_self_test_start(failing, 216, device="/dev/sdc")
    assert start.started is True
    assert start.polling_minutes == 1  # the Hitachi's ata_smart_data.self_test.polling_minutes.short
    assert "1 min" in start.summary


def test_killed_smartctl_did_not_start_a_test() -> None:
    start = parse_self_test_start(b"", -9, device="/dev/sda")
    assert start.started is False
    assert start.summary == "smartctl was killed by signal 9"


@given(st.binary(max_size=500), st.integers(min_value=-64, max_value=255))
def test_arbitrary_output_never_raises_or_claims_a_start(output: bytes, status: int) -> None:
    start = parse_self_test_start(output, status, device="/dev/sda")
    assert start.summary
    # Without smartctl's JSON envelope nothing says the drive took the command.
    assert start.started is False
