"""The monthly SLA report from the database: the month's tickets (FaultTicketRow, with each
node's site class through node → site), its inspections and the site counts, handed to the
pure fleet.reports.sla_month. Time is passed in, never read here."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.faults.store import FaultTicketRow
from fleet.inspections.models import Inspection
from fleet.inspections.schedule import InspectionSchedule, month_bounds, zone
from fleet.inventory.models import Node, Site
from fleet.reports.sla_month import UNASSIGNED, MonthInspection, MonthTicket, SlaMonthReport, build_report

DEFAULT_TIME_ZONE = "Asia/Seoul"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSettings:
    """The city's time zone (months start at its midnight) and the inspection schedule.
    An unknown zone is refused at once, naming `time_zone`."""

    time_zone: str = DEFAULT_TIME_ZONE
    schedule: InspectionSchedule = field(default_factory=InspectionSchedule)

    def __post_init__(self) -> None:
        zone(self.time_zone)


def month_tickets(session: Session, starts_ms: int, ends_ms: int) -> list[MonthTicket]:
    """Tickets opened in [starts_ms, ends_ms), each with its node's site class now."""
    query = (
        sa.select(FaultTicketRow, Site.site_class)
        .outerjoin(Node, Node.node_id == FaultTicketRow.node_id)
        .outerjoin(Site, Site.id == Node.site_pk)
        .where(FaultTicketRow.opened_at_ms >= starts_ms, FaultTicketRow.opened_at_ms < ends_ms)
        .order_by(FaultTicketRow.opened_at_ms, FaultTicketRow.id)
    )
    return [MonthTicket(row.ticket(), site_class or UNASSIGNED) for row, site_class in session.execute(query)]


def month_inspections(session: Session, starts_ms: int, ends_ms: int) -> list[MonthInspection]:
    query = (
        sa.select(Site.site_id, Inspection.kind, Inspection.result, Inspection.done_at_ms)
        .join(Site, Site.id == Inspection.site_pk)
        .where(Inspection.done_at_ms >= starts_ms, Inspection.done_at_ms < ends_ms)
        .order_by(Inspection.done_at_ms, Inspection.id)
    )
    return [MonthInspection(*row) for row in session.execute(query)]


def site_counts(session: Session) -> dict[str, int]:
    """Sites per class, as the inventory stands now (the expected inspections scale with it)."""
    query = sa.select(Site.site_class, sa.func.count()).group_by(Site.site_class)
    return dict(session.execute(query).all())  # a Result has keys(): dict() would take it as a mapping


def sla_month_report(
    session: Session, year: int, month: int, *, now_ms: int, settings: ReportSettings
) -> SlaMonthReport:
    """The report of `year`-`month` as of `now_ms` (see fleet.reports.sla_month for what counts)."""
    if not 1 <= month <= 12:
        raise ValueError(f"month={month}: 1 to 12")
    starts, ends = month_bounds(year, month, zone(settings.time_zone))
    return build_report(
        year=year,
        month=month,
        time_zone=settings.time_zone,
        tickets=month_tickets(session, starts, ends),
        inspections=month_inspections(session, starts, ends),
        site_counts=site_counts(session),
        schedule=settings.schedule,
        as_of_ms=now_ms,
    )
