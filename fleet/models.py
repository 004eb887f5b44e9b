"""Every table of the fleet in one place, for Alembic and the tests: importing this module
registers them all on fleet.db.Base. A new domain's models are added here."""

from fleet.access.models import ApiToken
from fleet.alarms.models import BellAlarmRecord
from fleet.audit.models import AuditEntry, AuditHead
from fleet.escalations.models import EscalationSent
from fleet.faults.store import FaultConditionRow, FaultTicketRow
from fleet.inspections.models import Inspection
from fleet.inventory.models import Camera, Controller, Node, Site, SiteTag, StorageDevice
from fleet.inventory.rollups import TelemetryRollup
from fleet.ota.models import OtaCampaign, OtaCampaignNode, OtaRelease

__all__ = [
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "BellAlarmRecord",
    "Camera",
    "Controller",
    "EscalationSent",
    "FaultConditionRow",
    "FaultTicketRow",
    "Inspection",
    "Node",
    "OtaCampaign",
    "OtaCampaignNode",
    "OtaRelease",
    "Site",
    "SiteTag",
    "StorageDevice",
    "TelemetryRollup",
]
