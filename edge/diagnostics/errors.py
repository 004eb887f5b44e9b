"""Errors of edge.diagnostics, details as attributes. The PIN gate (edge.diagnostics.auth) raises
them without knowing about HTTP; edge.diagnostics.server turns each into a JSON answer with a
status and a short `reason` code it counts."""

from __future__ import annotations

from collections.abc import Sequence


class DiagnosticsError(Exception):
    """Base of every refusal by the technicians' diagnostics."""


class WrongPin(DiagnosticsError):
    """The PIN given at login is not the node's; `attempts_left` before login locks."""

    def __init__(self, *, attempts_left: int, lockout_s: int) -> None:
        super().__init__(
            f"wrong PIN: {attempts_left} tries left before login locks for {lockout_s // 60} minutes"
        )
        self.attempts_left = attempts_left
        self.lockout_s = lockout_s


class LockedOut(DiagnosticsError):
    """Too many wrong PINs in a row: login is refused, even with the right PIN, for
    `retry_after_s` more seconds. `just_now` is true for the wrong PIN that locked it."""

    def __init__(self, *, retry_after_s: int, just_now: bool = False) -> None:
        cause = "wrong PIN, too many in a row" if just_now else "too many wrong PINs in a row"
        super().__init__(f"{cause}: login is locked, try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s
        self.just_now = just_now


class NotAuthorized(DiagnosticsError):
    """An API call without a usable session token. `reason` is "no-token", "unknown-token" or
    "expired-token"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class InvalidRequest(DiagnosticsError):
    """A request refused for what it carries: `status` 400, 413, 415 or 422; `reason` a short
    code ("bad-json", "invalid-field", ...); `field` names the JSON field at fault, if one is."""

    def __init__(self, status: int, reason: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.field = field


class UnknownSelfTest(DiagnosticsError):
    """No self-test by that name on this node; `accepted` lists the ones it has."""

    def __init__(self, name: str, accepted: Sequence[str]) -> None:
        super().__init__(f"unknown self-test {name!r}; accepted: {', '.join(accepted) or 'none'}")
        self.name = name
        self.accepted = tuple(accepted)


class SelfTestBusy(DiagnosticsError):
    """The same self-test is already running (someone pressed twice)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"self-test {name!r} is already running: wait for its result")
        self.name = name
