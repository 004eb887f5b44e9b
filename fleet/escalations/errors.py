"""Errors of the escalation hooks, with their details as attributes: a setting that cannot
work (raised at start-up) and a notice a channel could not deliver (recorded and retried)."""

from __future__ import annotations


class EscalationError(Exception):
    """Base of everything the escalation hooks raise."""


class SettingsError(EscalationError, ValueError):
    """A hook setting that cannot work: `name` is the setting's key (`email.port`), `value`
    what was given, `accepted` what would have been."""

    def __init__(self, name: str, value: object, accepted: str) -> None:
        super().__init__(f"{name}={value!r} is not accepted: {accepted}")
        self.name = name
        self.value = value
        self.accepted = accepted


class SendError(EscalationError):
    """A channel did not deliver a notice. `channel` is `webhook` or `email`, `reason` a short
    code (`status`, `timeout`, `unreachable`, `refused`, `tls`, `auth`, `protocol`), `detail`
    the words for the operator."""

    def __init__(self, channel: str, reason: str, detail: str) -> None:
        super().__init__(f"{channel}: {detail}")
        self.channel = channel
        self.reason = reason
        self.detail = detail


class WebhookError(SendError):
    """The webhook receiver did not take the notice; `status` is its HTTP status, if it answered."""

    def __init__(self, reason: str, detail: str, *, url: str, status: int | None = None) -> None:
        super().__init__("webhook", reason, detail)
        self.url = url
        self.status = status


class EmailError(SendError):
    """The mail relay did not take the notice; `code` is its SMTP reply code, if it gave one."""

    def __init__(self, reason: str, detail: str, *, host: str, code: int | None = None) -> None:
        super().__init__("email", reason, detail)
        self.host = host
        self.code = code
