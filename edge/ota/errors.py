"""The OTA errors: one failure type carrying the reason token the fleet counts by
(`OtaProgress.reason`) and a detail in words; the agent's restart request for systemd."""

from __future__ import annotations


class OtaFailure(Exception):
    """An update refused or failed; `reason` is a short token (docs/edge.md lists them)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RestartRequested(Exception):  # a request, not an error
    """The agent must exit for systemd to start the boot selector again (edge.run maps it to
    EXIT_OTA_RESTART)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why
