"""Typed errors for the MQTT payloads, topics and OTA manifests.

Decoders return these as values (never raise them, never raise anything else), so a caller
counts `error.reason` and logs `str(error)`. The serial link has its own, MicroPython-friendly
set in `protocols.link`.
"""

from __future__ import annotations

from typing import ClassVar


class ContractError(Exception):
    """Something on the wire that the contract does not allow.

    `reason` is a stable short code for counters and metrics; `detail` says what was wrong
    and what would have been accepted; `path` points into the payload (`$.readings.fps`)
    when the problem is one field.
    """

    reason: ClassVar[str] = "invalid"

    def __init__(self, detail: str, *, path: str | None = None) -> None:
        super().__init__(detail if path is None else f"{detail} (at {path})")
        self.detail = detail
        self.path = path

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and isinstance(other, ContractError)
            and (self.detail, self.path) == (other.detail, other.path)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.detail, self.path))


class TopicError(ContractError):
    reason = "bad-topic"


class PayloadTooLarge(ContractError):
    reason = "too-large"


class InvalidUtf8(ContractError):
    reason = "bad-utf8"


class InvalidJson(ContractError):
    reason = "bad-json"


class WrongType(ContractError):
    reason = "wrong-type"


class MissingField(ContractError):
    reason = "missing-field"


class OutOfRange(ContractError):
    reason = "out-of-range"


class InvalidValue(ContractError):
    reason = "invalid-value"


class UnknownVersion(ContractError):
    reason = "unknown-version"


class UnknownMessageType(ContractError):
    reason = "unknown-type"


class BadSignature(ContractError):
    reason = "bad-signature"


class UnknownKey(ContractError):
    reason = "unknown-key"


ALL_ERRORS: tuple[type[ContractError], ...] = (
    TopicError,
    PayloadTooLarge,
    InvalidUtf8,
    InvalidJson,
    WrongType,
    MissingField,
    OutOfRange,
    InvalidValue,
    UnknownVersion,
    UnknownMessageType,
    BadSignature,
    UnknownKey,
)
