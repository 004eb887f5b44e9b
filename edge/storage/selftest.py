"""Pure reading of what `smartctl -j -t short DEV` said when a technician started a SMART short
self-test from diagnostics. The result shows up later in the self-test log (`smartctl -a`),
which `edge.storage.smart` reads; `edge.storage.probe.start_short_self_test` runs the command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge.storage.smart import ExitBit, decode_exit_status, exit_meanings, smartctl_messages

# These exit bits mean smartctl did not get the test to the drive; the higher bits describe
# the drive's state and logs, not the command.
_NOT_SENT = ExitBit.COMMAND_LINE | ExitBit.DEVICE_OPEN | ExitBit.COMMAND_FAILED
_NO_BITS = ExitBit(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfTestStart:
    """Whether the drive accepted the self-test, and what smartctl said."""

    device: str
    started: bool
    summary: str
    exit_status: int | None = None
    exit_bits: ExitBit = _NO_BITS
    messages: tuple[str, ...] = ()
    polling_minutes: int | None = None  # the drive's own estimate of the test's duration

    @property
    def exit_meanings(self) -> tuple[str, ...]:
        return exit_meanings(self.exit_bits)


def parse_self_test_start(output: str | bytes, exit_status: int, *, device: str) -> SelfTestStart:
    """Read smartctl's answer to `-j -t short`. Never raises."""
    bits = decode_exit_status(exit_status)
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else output
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    envelope = document.get("smartctl") if isinstance(document, dict) else None
    messages = smartctl_messages(document)
    polling = _polling_minutes(document)
    said = f": {'; '.join(messages)}" if messages else ""

    if exit_status < 0:
        return SelfTestStart(
            device=device,
            started=False,
            summary=f"smartctl was killed by signal {-exit_status}",
            exit_status=exit_status,
            exit_bits=bits,
        )
    if bits & _NOT_SENT:
        first = exit_meanings(bits & _NOT_SENT)[0]
        return SelfTestStart(
            device=device,
            started=False,
            summary=f"the short self-test was not started ({first}){said}",
            exit_status=exit_status,
            exit_bits=bits,
            messages=messages,
        )
    if not isinstance(envelope, dict):
        return SelfTestStart(
            device=device,
            started=False,
            summary="smartctl's answer is not smartctl -j output; whether the test started is unknown",
            exit_status=exit_status,
            exit_bits=bits,
        )
    duration = f"; the drive expects it to take {polling} min" if polling is not None else ""
    return SelfTestStart(
        device=device,
        started=True,
        summary=f"the drive accepted the short self-test{duration}; the result goes to its log{said}",
        exit_status=exit_status,
        exit_bits=bits,
        messages=messages,
        polling_minutes=polling,
    )


def _polling_minutes(document: object) -> int | None:
    node: object = document
    for key in ("ata_smart_data", "self_test", "polling_minutes", "short"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, int) and not isinstance(node, bool) else None
