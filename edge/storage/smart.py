"""Pure reading of `smartctl -j` output and its exit status into a verdict on one drive.

No I/O here: `edge.storage.probe` runs smartctl and hands over the text and the exit status;
`edge.storage.report` joins the verdict with what sysfs and the mount table say.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, replace
from typing import Any

from edge.storage.verdict import WEAR_WARNING_PCT, Finding, Health, decide


class ExitBit(enum.IntFlag):
    """smartctl(8), RETURN VALUES: each bit of the exit status says one thing."""

    COMMAND_LINE = 0x01
    DEVICE_OPEN = 0x02
    COMMAND_FAILED = 0x04
    DISK_FAILING = 0x08
    PREFAIL_AT_THRESHOLD = 0x10
    AT_THRESHOLD_IN_PAST = 0x20
    ERROR_LOG = 0x40
    SELF_TEST_LOG = 0x80


EXIT_BIT_MEANING: dict[ExitBit, str] = {
    ExitBit.COMMAND_LINE: "command line did not parse",
    ExitBit.DEVICE_OPEN: "device open failed, or device is in a low-power mode",
    ExitBit.COMMAND_FAILED: "a SMART or other command to the disk failed, or a SMART checksum was wrong",
    ExitBit.DISK_FAILING: "SMART status check returned DISK FAILING",
    ExitBit.PREFAIL_AT_THRESHOLD: "some prefail attributes are at or below their threshold",
    ExitBit.AT_THRESHOLD_IN_PAST: "some attributes were at or below their threshold in the past",
    ExitBit.ERROR_LOG: "the device error log contains errors",
    ExitBit.SELF_TEST_LOG: "the self-test log contains errors",
}

# ATA attribute ids (smartmontools drivedb names vary by vendor; the ids do not).
REALLOCATED_SECTORS = 5
REPORTED_UNCORRECTABLE = 187
PENDING_SECTORS = 197
OFFLINE_UNCORRECTABLE = 198
# Attributes whose normalised value counts the remaining life down from 100, by drivedb name.
REMAINING_LIFE_ATTRIBUTES = frozenset(
    {
        "Wear_Leveling_Count",
        "Media_Wearout_Indicator",
        "SSD_Life_Left",
        "Percent_Lifetime_Remain",
        "Remaining_Lifetime_Perc",
    }
)

# NVMe SMART/Health log, Critical Warning bits (NVMe base specification, Log Page 02h).
NVME_CRITICAL_WARNING: dict[int, tuple[Health, str]] = {
    0x01: ("failing", "available spare is below its threshold"),
    0x02: ("warning", "temperature is outside its thresholds"),
    0x04: ("failing", "NVM subsystem reliability is degraded by media or internal errors"),
    0x08: ("failing", "media has been placed in read-only mode"),
    0x10: ("warning", "volatile memory backup device has failed"),
    0x20: ("warning", "persistent memory region has become read-only"),
}


def decode_exit_status(status: int) -> ExitBit:
    """The bits set in a smartctl exit status. A negative status (killed by a signal) has none."""
    if status < 0:
        return ExitBit(0)
    return ExitBit(status & 0xFF)


def exit_meanings(bits: ExitBit) -> tuple[str, ...]:
    """What each set bit means, lowest bit first, as "bit N: meaning"."""
    return tuple(f"bit {index}: {EXIT_BIT_MEANING[bit]}" for index, bit in enumerate(ExitBit) if bit in bits)


@dataclass(frozen=True, slots=True, kw_only=True)
class NvmeHealthLog:
    """The fields of the NVMe SMART/Health log that say something about health."""

    critical_warning: int | None = None
    percentage_used: int | None = None
    available_spare: int | None = None
    available_spare_threshold: int | None = None
    media_errors: int | None = None
    error_log_entries: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SmartReading:
    """What one `smartctl -j` run said about one drive, and the verdict drawn from it."""

    device: str
    exit_status: int | None  # None when smartctl did not run to completion
    exit_bits: ExitBit
    health: Health
    reasons: tuple[str, ...]
    messages: tuple[str, ...] = ()  # smartctl.messages, as "severity: text"
    protocol: str | None = None  # "ATA", "NVMe", "SCSI"
    device_type: str | None = None  # smartctl's -d type, e.g. "sat", "usbjmicron", "nvme"
    model: str | None = None
    passed: bool | None = None  # smart_status.passed
    temperature_c: int | None = None
    power_on_hours: int | None = None
    wear_pct: float | None = None  # share of rated life used, 0..100
    reallocated_sectors: int | None = None
    pending_sectors: int | None = None
    uncorrectable_sectors: int | None = None
    attributes_failing_now: tuple[str, ...] = ()
    attributes_failed_in_past: tuple[str, ...] = ()
    error_log_count: int | None = None
    self_test_errors: int | None = None
    nvme: NvmeHealthLog | None = None

    @property
    def exit_meanings(self) -> tuple[str, ...]:
        return exit_meanings(self.exit_bits)


def parse_smartctl(output: str | bytes, exit_status: int, *, device: str) -> SmartReading:
    """Read `smartctl -j` output and the process's exit status. Never raises: output that is
    not smartctl's JSON gives health "unknown" with a reason naming what was wrong."""
    bits = decode_exit_status(exit_status)
    document, problem = _load(output)
    if document is None:
        return _unknown(device, exit_status, bits, problem)
    envelope = document.get("smartctl")
    if not isinstance(envelope, dict):
        return _unknown(device, exit_status, bits, "output has no 'smartctl' object: not smartctl -j output")
    messages = smartctl_messages(document)
    if ExitBit.COMMAND_LINE in bits:
        return _unknown(
            device,
            exit_status,
            bits,
            _with_messages(
                "smartctl stopped before reading the device (bit 0: command line or device type refused)",
                messages,
            ),
            messages,
        )
    if ExitBit.DEVICE_OPEN in bits:
        return _unknown(
            device,
            exit_status,
            bits,
            _with_messages("smartctl could not open the device", messages),
            messages,
        )

    attributes = _attributes(document)
    nvme = _nvme_log(document)
    passed = _bool(_path(document, "smart_status", "passed"))
    if passed is None and not attributes and nvme is None:
        reason = _with_messages(
            "smartctl reported no health data (no smart_status, ATA attributes or NVMe health log)",
            messages,
        )
        return _unknown(device, exit_status, bits, reason, messages)

    by_id = {attribute.id: attribute for attribute in attributes}
    reading = SmartReading(
        device=device,
        exit_status=exit_status,
        exit_bits=bits,
        health="unknown",
        reasons=(),
        messages=messages,
        protocol=_str(_path(document, "device", "protocol")),
        device_type=_str(_path(document, "device", "type")),
        model=_str(document.get("model_name")) or _str(document.get("scsi_model_name")),
        passed=passed,
        temperature_c=_int(_path(document, "temperature", "current")),
        power_on_hours=_int(_path(document, "power_on_time", "hours")),
        wear_pct=_wear_pct(attributes, nvme),
        reallocated_sectors=_raw(by_id, REALLOCATED_SECTORS),
        pending_sectors=_raw(by_id, PENDING_SECTORS),
        uncorrectable_sectors=_raw(by_id, OFFLINE_UNCORRECTABLE),
        attributes_failing_now=tuple(a.name for a in attributes if a.when_failed == "now"),
        attributes_failed_in_past=tuple(a.name for a in attributes if a.when_failed == "past"),
        error_log_count=_int(_path(document, "ata_smart_error_log", "summary", "count")),
        self_test_errors=_int(_path(document, "ata_smart_self_test_log", "standard", "error_count_total")),
        nvme=nvme,
    )
    health, reasons = decide(_findings(reading, attributes, _raw(by_id, REPORTED_UNCORRECTABLE)))
    return replace(reading, health=health, reasons=reasons)


def smartctl_messages(document: object) -> tuple[str, ...]:
    """smartctl's own messages (`smartctl.messages`) of a parsed -j document, as "severity: text"."""
    found = _path(document, "smartctl", "messages") if isinstance(document, dict) else None
    if not isinstance(found, list):
        return ()
    texts = []
    for message in found:
        text = _str(message.get("string")) if isinstance(message, dict) else None
        if text is not None:
            severity = _str(message.get("severity")) or "info"
            texts.append(f"{severity}: {text}")
    return tuple(texts)


def smartctl_not_run(device: str, reason: str) -> SmartReading:
    """The reading when smartctl could not be run or did not finish: health "unknown"."""
    return _unknown(device, None, ExitBit(0), reason)


# --- the verdict -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Attribute:
    id: int
    name: str
    value: int | None
    thresh: int | None
    raw: int | None
    when_failed: str
    prefailure: bool


def _findings(
    reading: SmartReading, attributes: list[_Attribute], reported_uncorrectable: int | None
) -> list[Finding]:
    findings: list[Finding] = []
    bits = reading.exit_bits
    if reading.passed is False:
        findings.append(Finding("failing", "SMART overall-health self-assessment: FAILED"))
    elif ExitBit.DISK_FAILING in bits:
        findings.append(Finding("failing", "smartctl exit status says DISK FAILING (bit 3)"))

    for attribute in attributes:
        if attribute.when_failed == "now":
            # A prefail attribute at threshold predicts failure; an old-age one, worn-out life.
            kind = "prefail" if attribute.prefailure else "old-age"
            findings.append(
                Finding(
                    "failing" if attribute.prefailure else "warning",
                    f"{attribute.name} ({kind} attribute {attribute.id}) is at or below its threshold now"
                    f" (value {attribute.value}, threshold {attribute.thresh}, raw {attribute.raw})",
                )
            )
        elif attribute.when_failed == "past":
            findings.append(
                Finding(
                    "warning",
                    f"{attribute.name} (attribute {attribute.id}) was at or below its threshold in the past",
                )
            )
    prefail_now = any(a.prefailure and a.when_failed == "now" for a in attributes)
    if ExitBit.PREFAIL_AT_THRESHOLD in bits and not prefail_now:
        findings.append(
            Finding(
                "failing", "smartctl exit status says a prefail attribute is at or below threshold (bit 4)"
            )
        )
    if ExitBit.AT_THRESHOLD_IN_PAST in bits and not reading.attributes_failed_in_past:
        findings.append(
            Finding(
                "warning",
                "smartctl exit status says an attribute was at or below threshold in the past (bit 5)",
            )
        )

    for count, what in (
        (reading.reallocated_sectors, "reallocated sectors"),
        (reading.pending_sectors, "sectors pending reallocation"),
        (reading.uncorrectable_sectors, "offline uncorrectable sectors"),
        (reported_uncorrectable, "reported uncorrectable errors"),
    ):
        if count is not None and count > 0:
            findings.append(Finding("warning", f"{count} {what}"))

    if ExitBit.ERROR_LOG in bits:
        logged = f" ({reading.error_log_count} errors)" if reading.error_log_count else ""
        findings.append(Finding("warning", f"the device error log contains errors{logged}"))
    if ExitBit.SELF_TEST_LOG in bits:
        failed = f" ({reading.self_test_errors} failed)" if reading.self_test_errors else ""
        findings.append(Finding("warning", f"the self-test log records failed self-tests{failed}"))
    if ExitBit.COMMAND_FAILED in bits:
        # Common on healthy drives behind some bridges (one log page unsupported): a note only.
        findings.append(
            Finding(
                "ok", "some SMART commands failed or a checksum was wrong (bit 2): data may be incomplete"
            )
        )

    if reading.nvme is not None:
        findings.extend(_nvme_findings(reading.nvme))
    if reading.wear_pct is not None and reading.wear_pct >= WEAR_WARNING_PCT:
        findings.append(Finding("warning", f"{reading.wear_pct:.0f}% of rated endurance used"))
    return findings


def _nvme_findings(log: NvmeHealthLog) -> list[Finding]:
    findings: list[Finding] = []
    warning_bits = log.critical_warning or 0
    for bit, (health, text) in NVME_CRITICAL_WARNING.items():
        if warning_bits & bit:
            findings.append(Finding(health, f"NVMe critical warning 0x{bit:02x}: {text}"))
    spare, threshold = log.available_spare, log.available_spare_threshold
    if spare is not None and threshold is not None and spare < threshold and not warning_bits & 0x01:
        findings.append(Finding("failing", f"available spare {spare}% is below its threshold {threshold}%"))
    if log.media_errors:
        findings.append(Finding("warning", f"{log.media_errors} media and data integrity errors"))
    return findings


def _wear_pct(attributes: list[_Attribute], nvme: NvmeHealthLog | None) -> float | None:
    if nvme is not None and nvme.percentage_used is not None:
        # The NVMe field may exceed 100 (a drive past its rating); telemetry caps at 100.
        return float(min(nvme.percentage_used, 100))
    for attribute in attributes:
        # A normalised value above 100 is on a vendor scale we cannot read as a percentage.
        if (
            attribute.name in REMAINING_LIFE_ATTRIBUTES
            and attribute.value is not None
            and attribute.value <= 100
        ):
            return float(100 - attribute.value)
    return None


# --- lenient extraction: a wrong type is "absent", never an exception --------------------------


def _load(output: str | bytes) -> tuple[dict[str, Any] | None, str]:
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else output
    if not text.strip():
        return None, "smartctl printed nothing"
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, f"smartctl output is not JSON ({_short(str(exc))})"
    if not isinstance(document, dict):
        return None, f"smartctl output is JSON but not an object (a {type(document).__name__})"
    return document, ""


def _path(document: dict[str, Any], *keys: str) -> object:
    node: object = document
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _int(value: object) -> int | None:
    # bool is an int in Python; smartctl never means a count by true/false.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _attributes(document: dict[str, Any]) -> list[_Attribute]:
    table = _path(document, "ata_smart_attributes", "table")
    if not isinstance(table, list):
        return []
    attributes = []
    for row in table:
        if not isinstance(row, dict):
            continue
        attribute_id = _int(row.get("id"))
        if attribute_id is None:
            continue
        attributes.append(
            _Attribute(
                id=attribute_id,
                name=_str(row.get("name")) or f"attribute {attribute_id}",
                value=_int(row.get("value")),
                thresh=_int(row.get("thresh")),
                raw=_int(_path(row, "raw", "value")),
                when_failed=_str(row.get("when_failed")) or "",
                prefailure=_bool(_path(row, "flags", "prefailure")) is True,
            )
        )
    return attributes


def _raw(by_id: dict[int, _Attribute], attribute_id: int) -> int | None:
    attribute = by_id.get(attribute_id)
    return attribute.raw if attribute is not None else None


def _nvme_log(document: dict[str, Any]) -> NvmeHealthLog | None:
    log = document.get("nvme_smart_health_information_log")
    if not isinstance(log, dict):
        return None
    return NvmeHealthLog(
        critical_warning=_int(log.get("critical_warning")),
        percentage_used=_int(log.get("percentage_used")),
        available_spare=_int(log.get("available_spare")),
        available_spare_threshold=_int(log.get("available_spare_threshold")),
        media_errors=_int(log.get("media_errors")),
        error_log_entries=_int(log.get("num_err_log_entries")),
    )


def _with_messages(reason: str, messages: tuple[str, ...]) -> str:
    return f"{reason}: {'; '.join(messages)}" if messages else reason


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(
    device: str, exit_status: int | None, bits: ExitBit, reason: str, messages: tuple[str, ...] = ()
) -> SmartReading:
    return SmartReading(
        device=device,
        exit_status=exit_status,
        exit_bits=bits,
        health="unknown",
        reasons=(reason,),
        messages=messages,
    )
