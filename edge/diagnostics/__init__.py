"""The technicians' handheld diagnostics of an edge node: a phone page and a JSON API on the
node's local HTTP, behind a PIN; `watchpost diag` (watchpost.diag) is the laptop's client.

Mount with `add_diagnostics_routes(router, agent, pin=pin)` on the agent's edge.http Router; the
agent is the DiagnosticsTarget.
"""

from .errors import (
    DiagnosticsError,
    InvalidRequest,
    LockedOut,
    NotAuthorized,
    SelfTestBusy,
    UnknownSelfTest,
    WrongPin,
)
from .server import Diagnostics, DiagnosticsCounters, DiagnosticsTarget, add_diagnostics_routes

__all__ = [
    "Diagnostics",
    "DiagnosticsCounters",
    "DiagnosticsError",
    "DiagnosticsTarget",
    "InvalidRequest",
    "LockedOut",
    "NotAuthorized",
    "SelfTestBusy",
    "UnknownSelfTest",
    "WrongPin",
    "add_diagnostics_routes",
]
