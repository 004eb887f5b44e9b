"""Pure parsers for what the node's kernel and firmware print about its health: text in, a value
or an Unreadable (with the reason) out, never an exception, whatever the text. edge.system.read
fetches the text; the fixtures under tests/edge/system are real outputs."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The wire's bounds (protocols.messages.Celsius): a reading outside them is a broken sensor or
# a misread file, not a temperature.
MIN_CELSIUS = -60.0
MAX_CELSIUS = 150.0

_THROTTLE_NOW_MASK = 0xF
_THROTTLE_SINCE_BOOT_SHIFT = 16
_THROTTLE_CONDITIONS = ("under-voltage", "arm-frequency-capped", "throttled", "soft-temperature-limit")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Why a value could not be had; goes to the diagnostics, the value is sent as absent."""

    reason: str


def _snippet(text: str, limit: int = 40) -> str:
    # Enough of the offending text to recognise it in a diagnostics list, bounded.
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def parse_thermal_millidegrees(text: str) -> float | Unreadable:
    """A /sys/class/thermal zone's `temp`: millidegrees Celsius, such as "44388\\n"."""
    match = re.fullmatch(r"\s*(-?[0-9]{1,7})\s*", text)
    if match is None:
        return Unreadable(f"not millidegrees Celsius: {_snippet(text)}")
    celsius = int(match.group(1)) / 1000
    if not MIN_CELSIUS <= celsius <= MAX_CELSIUS:
        return Unreadable(f"{celsius:g} °C is outside {MIN_CELSIUS:g}..{MAX_CELSIUS:g} °C: a sensor fault")
    return celsius


@dataclass(frozen=True, slots=True)
class Throttling:
    """The Raspberry Pi firmware's throttling bit field (`get_throttled`).

    Bits 0-3 are conditions now: under-voltage, ARM frequency capped, throttled, soft
    temperature limit; bits 16-19 the same conditions "has occurred since boot"."""

    raw: int

    @property
    def under_voltage(self) -> bool:
        return bool(self.raw & 0x1)

    @property
    def arm_frequency_capped(self) -> bool:
        return bool(self.raw & 0x2)

    @property
    def throttled(self) -> bool:
        return bool(self.raw & 0x4)

    @property
    def soft_temperature_limit(self) -> bool:
        return bool(self.raw & 0x8)

    @property
    def active(self) -> bool:
        """Any condition now: what Readings.throttled reports. Under-voltage counts, because
        it is why a Pi throttles and it corrupts SD cards whether or not the clock is capped."""
        return bool(self.raw & _THROTTLE_NOW_MASK)

    def now(self) -> list[str]:
        return self._named(self.raw)

    def since_boot(self) -> list[str]:
        return self._named(self.raw >> _THROTTLE_SINCE_BOOT_SHIFT)

    @staticmethod
    def _named(bits: int) -> list[str]:
        return [name for bit, name in enumerate(_THROTTLE_CONDITIONS) if bits & (1 << bit)]


def _throttling(hex_digits: str, text: str) -> Throttling | Unreadable:
    value = int(hex_digits, 16)
    if value > 0xFFFFFFFF:
        return Unreadable(f"get_throttled is a 32-bit field, got {_snippet(text)}")
    return Throttling(value)


def parse_throttled_sysfs(text: str) -> Throttling | Unreadable:
    """The firmware driver's sysfs file `get_throttled`: bare hex, such as "50005\\n"."""
    match = re.fullmatch(r"\s*(?:0[xX])?([0-9a-fA-F]{1,16})\s*", text)
    if match is None:
        return Unreadable(f"not a hex bit field: {_snippet(text)}")
    return _throttling(match.group(1), text)


def parse_vcgencmd_throttled(text: str) -> Throttling | Unreadable:
    """`vcgencmd get_throttled` output, such as "throttled=0x50005\\n"."""
    match = re.fullmatch(r"\s*throttled=0[xX]([0-9a-fA-F]{1,16})\s*", text)
    if match is None:
        return Unreadable(f"not `throttled=0x...`: {_snippet(text)}")
    return _throttling(match.group(1), text)


@dataclass(frozen=True, slots=True)
class MemoryUse:
    total_kib: int
    available_kib: int

    @property
    def used_pct(self) -> float:
        # "Used" as the kernel means it: what could not be had without swapping, so page cache
        # does not count against the node.
        return 100.0 * (self.total_kib - self.available_kib) / self.total_kib


def parse_meminfo(text: str) -> MemoryUse | Unreadable:
    """/proc/meminfo; needs MemTotal and MemAvailable (Linux 3.14 and later)."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(MemTotal|MemAvailable):\s*([0-9]{1,19})\s*kB\s*", line)
        if match is not None:
            fields.setdefault(match.group(1), int(match.group(2)))
    missing = [name for name in ("MemTotal", "MemAvailable") if name not in fields]
    if missing:
        return Unreadable(f"no {' or '.join(missing)} line in meminfo")
    total, available = fields["MemTotal"], fields["MemAvailable"]
    if total == 0 or available > total:
        return Unreadable(f"meminfo is inconsistent: MemTotal {total} kB, MemAvailable {available} kB")
    return MemoryUse(total_kib=total, available_kib=available)


def parse_uptime(text: str) -> float | Unreadable:
    """/proc/uptime: seconds since boot, then idle seconds, such as "254.54 454.39\\n"."""
    match = re.match(r"\s*([0-9]{1,12}(?:\.[0-9]{1,9})?)(?:\s|$)", text)
    if match is None:
        return Unreadable(f"not seconds since boot: {_snippet(text)}")
    return float(match.group(1))


def parse_timedatectl_synced(text: str) -> bool | Unreadable:
    """`timedatectl show -p NTPSynchronized --value`: "yes" or "no"."""
    answer = text.strip()
    if answer in ("yes", "no"):
        return answer == "yes"
    return Unreadable(f"timedatectl said {_snippet(text)}, not yes or no")
