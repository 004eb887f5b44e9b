"""Errors of the fault core, with their details as attributes; the API edge turns them into
HTTP errors (`fleet.faults.tickets`, `fleet.faults.sla` and `fleet.faults.rules` raise them)."""

from __future__ import annotations

from collections.abc import Iterable


class FaultError(Exception):
    """Base of everything the fault core refuses."""


class ConfigError(FaultError, ValueError):
    """A policy or rules setting that cannot work: `name` is the setting, `value` what was given,
    `accepted` what would have been."""

    def __init__(self, name: str, value: object, accepted: str) -> None:
        super().__init__(f"{name}={value!r} is not accepted: {accepted}")
        self.name = name
        self.value = value
        self.accepted = accepted


class IllegalTransition(FaultError):
    """A ticket was asked to do something its state does not allow."""

    def __init__(self, ticket_id: str, state: str, action: str, allowed: Iterable[str]) -> None:
        self.ticket_id = ticket_id
        self.state = state
        self.action = action
        self.allowed = tuple(allowed)
        accepted = ", ".join(self.allowed) or "none: the ticket is closed"
        super().__init__(f"ticket {ticket_id} is {state}: cannot {action} (allowed: {accepted})")


class StepRefused(FaultError):
    """A ticket step, pause or resume whose details are wrong for a legal action: a time before
    the ticket opened, a missing verification, a pause inside a pause. `reason` is a short code."""

    def __init__(self, ticket_id: str, reason: str, detail: str) -> None:
        super().__init__(f"ticket {ticket_id}: {detail}")
        self.ticket_id = ticket_id
        self.reason = reason
        self.detail = detail


class ClockError(FaultError):
    """An SLA clock operation that would corrupt the clocks (`reason` is a short code:
    `already-paused`, `not-paused`, `before-open`, `out-of-order`, `not-running`, `stopped`)."""

    def __init__(self, reason: str, detail: str, *, at: int) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.at = at
