"""Errors of the OTA domain, details as attributes; fleet/ota/routes.py turns them into HTTP
errors (the core in campaign.py, the release shelf in releases.py and the store raise them)."""

from __future__ import annotations

from collections.abc import Iterable


class OtaError(Exception):
    """Base of everything the OTA domain refuses."""


class ReleaseRefused(OtaError):
    """An upload that is not a release this fleet will serve: `reason` is a short token
    (`unsigned`, `bad-signature`, `unknown-key`, `artifact-hash-mismatch`, ...) counted per
    reason; the message says what was wrong and what would be accepted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ReleaseExists(OtaError):
    def __init__(self, release_id: str) -> None:
        super().__init__(f"release {release_id} was uploaded already; a release is never replaced")
        self.release_id = release_id


class PlanError(OtaError, ValueError):
    """A campaign that cannot be run as asked: `field` names the request's field (dotted),
    `detail` what is wrong with it and what would be accepted."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class IllegalCampaignTransition(OtaError):
    """A campaign was asked to do something its state does not allow."""

    def __init__(self, campaign_id: str, state: str, action: str, allowed: Iterable[str]) -> None:
        self.campaign_id = campaign_id
        self.state = state
        self.action = action
        self.allowed = tuple(allowed)
        accepted = ", ".join(self.allowed) or "none: the campaign is over"
        super().__init__(f"campaign {campaign_id} is {state}: cannot {action} (allowed: {accepted})")
