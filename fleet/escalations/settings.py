"""Settings of the escalation hooks, validated when they are made: a bad value fails the
fleet's start-up with the key named (`email.port=0 is not accepted: ...`), not the first
breach. `EscalationSettings` is what the fleet server's settings embed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from fleet.escalations.errors import SettingsError

# Secrets copied from an example file must not reach production.
PLACEHOLDER_SECRETS: Final = frozenset({"changethis", "changeme", "password", "secret"})


def _seconds(name: str, value: object, *, above: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingsError(name, value, f"a number of seconds above {above:g}")
    if value <= above:
        raise SettingsError(name, value, f"a number of seconds above {above:g}")


def _address(name: str, value: object) -> None:
    ok = (
        isinstance(value, str)
        and value.count("@") == 1
        and all(value.split("@"))
        and not any(c.isspace() or c in "<>,;" for c in value)
    )
    if not ok:
        raise SettingsError(name, value, "a plain e-mail address like ops@example.org")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    """POST each notice as JSON to `url` (http or https), giving up on an attempt after
    `timeout_s`."""

    url: str
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError("webhook.url", self.url, "an http:// or https:// URL with a host")
        _seconds("webhook.timeout_s", self.timeout_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailSettings:
    """Send each notice as a plain-text mail through the relay at `host`:`port`, from
    `from_addr` to every address of `to_addrs`. With `starttls` the connection is encrypted
    before anything else (verified against the system's CAs, or `ca_file` for a private CA);
    a login (`username` + `password`) needs it, so a password never crosses the wire in clear."""

    host: str
    port: int = 587
    from_addr: str
    to_addrs: tuple[str, ...]
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # kept out of logs
    ca_file: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip() or any(c.isspace() for c in self.host):
            raise SettingsError("email.host", self.host, "a host name or address of the mail relay")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise SettingsError("email.port", self.port, "a TCP port from 1 to 65535")
        _address("email.from_addr", self.from_addr)
        given: object = self.to_addrs  # from a config file: a lone string is a mistake here
        if not isinstance(given, tuple | list) or not given:
            raise SettingsError("email.to_addrs", given, "a list of one or more addresses")
        addresses = tuple(given)
        for n, address in enumerate(addresses):
            _address(f"email.to_addrs[{n}]", address)
        object.__setattr__(self, "to_addrs", addresses)
        if not isinstance(self.starttls, bool):
            raise SettingsError("email.starttls", self.starttls, "true or false")
        if (self.username is None) != (self.password is None):
            raise SettingsError(
                "email.password" if self.password is None else "email.username",
                None,
                "username and password together, or neither",
            )
        if self.username is not None:
            if not self.username.strip():
                raise SettingsError("email.username", self.username, "a non-empty user name")
            if not self.starttls:
                raise SettingsError("email.starttls", self.starttls, "true when logging in (username)")
            if not self.password or self.password.lower() in PLACEHOLDER_SECRETS:
                raise SettingsError("email.password", "***", "the relay's real password, not a placeholder")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise SettingsError("email.ca_file", self.ca_file, "an existing PEM file of CA certificates")
        _seconds("email.timeout_s", self.timeout_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationSettings:
    """The hooks (none configured: escalations are off), how often the fleet looks for due
    steps (`every_s`), and how a failed send is retried: after `retry_after_s`, doubling per
    attempt up to `retry_max_s`. `claim_lease_s` is how long a worker's claim on a step holds
    before another worker may take it over (the first died mid-send); it must outlast one
    notice's sending on every channel, or two workers could both send."""

    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None
    every_s: float = 30.0
    retry_after_s: float = 60.0
    retry_max_s: float = 3600.0
    claim_lease_s: float = 300.0

    def __post_init__(self) -> None:
        if self.webhook is not None and not isinstance(self.webhook, WebhookSettings):
            raise SettingsError("webhook", self.webhook, "WebhookSettings or none")
        if self.email is not None and not isinstance(self.email, EmailSettings):
            raise SettingsError("email", self.email, "EmailSettings or none")
        _seconds("every_s", self.every_s)
        _seconds("retry_after_s", self.retry_after_s)
        _seconds("retry_max_s", self.retry_max_s)
        if self.retry_max_s < self.retry_after_s:
            raise SettingsError(
                "retry_max_s", self.retry_max_s, f"at least retry_after_s ({self.retry_after_s})"
            )
        sending = (self.webhook.timeout_s if self.webhook else 0.0) + (
            self.email.timeout_s if self.email else 0.0
        )
        _seconds("claim_lease_s", self.claim_lease_s)
        if self.claim_lease_s <= sending:
            raise SettingsError(
                "claim_lease_s",
                self.claim_lease_s,
                f"more than the channels' timeouts together ({sending:g} s)",
            )

    @property
    def enabled(self) -> bool:
        """True when at least one hook is configured."""
        return self.webhook is not None or self.email is not None
