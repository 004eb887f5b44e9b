"""Roles and what each may do. The API asks `allowed(role, permission)` on every route; the
matrix lives here, in one table a contract manager can read, and a test walks all of it.

- viewer: sees the fleet, faults, alarms and reports; changes nothing.
- technician: a viewer who works tickets in the field (check in, resolve, report, pause).
- operator: the control centre; acknowledges bell alarms, handles and dispatches tickets.
- admin: all of it, plus the inventory, OTA releases, tokens and the audit log.

OTA has permissions of its own rather than borrowing `inventory:write` and `node:command`: what
may be installed on every pole and who may roll it out are decisions a contract assigns apart
from editing the inventory or pinging a node.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    VIEWER = "viewer"
    TECHNICIAN = "technician"
    OPERATOR = "operator"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # inventory, node state, faults, alarms, reports
    ALARM_HANDLE = "alarm:handle"  # acknowledge / clear a bell alarm (lights the pole's lamp)
    TICKET_DISPATCH = "ticket:dispatch"  # acknowledge, assign and dispatch tickets
    TICKET_FIELD = "ticket:field"  # check in, resolve, report, pause / resume the clocks
    INSPECTION_RECORD = "inspection:record"  # a field or centre inspection was done
    INVENTORY_WRITE = "inventory:write"  # import sites, set a camera's purpose
    NODE_COMMAND = "node:command"  # send a command to a node (ping, self-test, ...)
    OTA_RELEASE = "ota:release"  # upload a signed release (what may be installed)
    OTA_CAMPAIGN = "ota:campaign"  # start, pause, resume, cancel a campaign; approve its next wave
    TOKEN_ADMIN = "token:admin"  # issue and revoke API tokens
    AUDIT_READ = "audit:read"  # read the audit log


PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.TECHNICIAN: frozenset({Permission.READ, Permission.TICKET_FIELD, Permission.INSPECTION_RECORD}),
    Role.OPERATOR: frozenset(
        {
            Permission.READ,
            Permission.ALARM_HANDLE,
            Permission.TICKET_DISPATCH,
            Permission.TICKET_FIELD,
            Permission.INSPECTION_RECORD,
            Permission.NODE_COMMAND,
            Permission.OTA_CAMPAIGN,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]
