"""Errors of the inspections package, with their details as attributes; the API edge turns
them into HTTP errors."""

from __future__ import annotations


class InspectionError(Exception):
    """Base of everything the inspections package refuses."""


class ScheduleConfigError(InspectionError, ValueError):
    """A schedule setting that cannot work: `key` is the setting, `value` what was given,
    `accepted` what would have been."""

    def __init__(self, key: str, value: object, accepted: str) -> None:
        super().__init__(f"{key}={value!r} is not accepted: {accepted}")
        self.key = key
        self.value = value
        self.accepted = accepted


class InspectionRefused(InspectionError):
    """An inspection record that cannot be stored as given: `field` names the bad value."""

    def __init__(self, field: str, value: object, accepted: str) -> None:
        super().__init__(f"{field}={value!r} is not accepted: {accepted}")
        self.field = field
        self.value = value
        self.accepted = accepted


class UnknownSite(InspectionError):
    def __init__(self, site_id: str) -> None:
        super().__init__(f"no site {site_id!r}")
        self.site_id = site_id


class UnknownNode(InspectionError):
    """A self-test from a node the inventory does not know, or one not placed at a site."""

    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"node {node_id!r}: {reason}")
        self.node_id = node_id
        self.reason = reason
