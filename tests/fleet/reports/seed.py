"""A seeded November 2026 in Seoul (UTC+9, no daylight saving), shared by the pure and the
database tests of the monthly SLA report. Every ticket is scripted in minutes after it opened;
the expected figures are worked out by hand in test_sla_month_figures.py.

Default policy: on site within 120 min; fixed within 180 (critical), 240 (major), 480 (minor).
The report is made at AS_OF = 1 Dec 01:00 KST, an hour after the month ended.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.faults import tickets
from fleet.faults.rules import FaultKey
from fleet.faults.sla import FaultSeverity, SlaPolicy
from fleet.faults.store import FaultTicketRow, key_text
from fleet.faults.tickets import Action, Ticket, Verification
from fleet.inspections import service as inspections
from fleet.inspections.schedule import InspectionSchedule
from fleet.inventory.models import Node, Site
from fleet.reports.service import ReportSettings
from protocols import messages as m

KST: Final = ZoneInfo("Asia/Seoul")
MIN: Final = 60_000
POLICY: Final = SlaPolicy()
SCHEDULE: Final = InspectionSchedule(field_every_days=30)  # 4 field sites x 30 days / 30 = 4 a month
SETTINGS: Final = ReportSettings(time_zone="Asia/Seoul", schedule=SCHEDULE)


def kst(day: int, hour: int, minute: int = 0, *, month: int = 11) -> int:
    return int(datetime(2026, month, day, hour, minute, tzinfo=KST).timestamp()) * 1000


AS_OF: Final = kst(1, 1, 0, month=12)

# node -> (site, site class)
NODES: Final = {
    "pole-f1": ("site-f1", "field"),
    "pole-f2": ("site-f2", "field"),
    "pole-c1": ("site-c1", "centre"),
}
SITES: Final = {
    "site-f1": "field",
    "site-f2": "field",
    "site-f3": "field",
    "site-f4": "field",
    "site-c1": "centre",
    "site-c2": "centre",
}

Script = tuple[tuple[str, int], ...]

# ticket id, node, kind (category), severity, opened at, script (action, minutes after opening)
TICKETS: Final[tuple[tuple[str, str, str, FaultSeverity, int, Script], ...]] = (
    # A: on time, fixed in time.
    ("a", "pole-f1", "camera", "major", kst(2, 9),
     (("acknowledge", 10), ("dispatch", 15), ("arrive", 90), ("resolve", 180), ("report", 300))),
    # B: arrived late (150 > 120), fixed in time (360 <= 480).
    ("b", "pole-f2", "camera", "minor", kst(4, 14),
     (("acknowledge", 20), ("dispatch", 25), ("arrive", 150), ("resolve", 360))),
    # C: paused 30..120 (90 min) waiting for the utility: response due 120+90=210, arrive 180 met;
    # resolution due 180+90=270, resolve 240 met. Without the pause both would be late.
    ("c", "pole-f1", "supply", "critical", kst(7, 1),
     (("acknowledge", 5), ("dispatch", 10), ("pause", 30), ("resume", 120),
      ("arrive", 180), ("resolve", 240))),
    # D: on time (110), fixed late (300 > 240).
    ("d", "pole-f2", "supply", "major", kst(12, 10),
     (("acknowledge", 30), ("dispatch", 40), ("arrive", 110), ("resolve", 300))),
    # E: auto-cleared after 20 min, nobody sent: both clocks void.
    ("e", "pole-f1", "door", "minor", kst(15, 8), (("cancel", 20),)),
    # F: a check-in straight from open (no acknowledge: not in the MTTA).
    ("f", "pole-f2", "door", "minor", kst(18, 22), (("arrive", 60), ("resolve", 120))),
    # G: opened 30 Nov 23:00, still open at month end; arrived 00:30 (90 <= 120, met);
    # resolution due 03:00 (240), pending at AS_OF.
    ("g", "pole-f1", "offline", "major", kst(30, 23),
     (("acknowledge", 15), ("dispatch", 20), ("arrive", 90))),
    # H: opened 30 Nov 21:00, nobody on site by AS_OF: response (23:00) and resolution (00:00)
    # both past: breached while still running.
    ("h", "pole-f2", "camera", "critical", kst(30, 21), (("acknowledge", 10), ("dispatch", 20))),
    # I: centre; arrived late (130 > 120), fixed late (270 > 240).
    ("i", "pole-c1", "storage", "major", kst(9, 13),
     (("acknowledge", 45), ("dispatch", 50), ("arrive", 130), ("resolve", 270))),
    # J: centre; all in time.
    ("j", "pole-c1", "storage", "minor", kst(21, 16), (("acknowledge", 5), ("arrive", 40), ("resolve", 60))),
    # K: centre; arrived 50 (met), then paused 60..180 (120 min) for a spare part: resolution due
    # 180+120=300, resolve 270 met (late without the pause).
    ("k", "pole-c1", "system", "critical", kst(25, 11),
     (("acknowledge", 10), ("dispatch", 20), ("arrive", 50), ("pause", 60), ("resume", 180),
      ("resolve", 270))),
    # L: 31 Oct 23:59 KST, the last minute of October locally: not November's.
    ("l", "pole-f1", "camera", "major", kst(31, 23, 59, month=10),
     (("acknowledge", 10), ("arrive", 60), ("resolve", 120))),
    # M: 1 Nov 00:05 KST = 31 Oct 15:05 UTC: November's locally.
    ("m", "pole-f2", "link", "minor", kst(1, 0, 5), (("acknowledge", 10), ("arrive", 60), ("resolve", 120))),
    # N: 1 Dec 00:00 KST exactly: the month's end is exclusive, so December's.
    ("n", "pole-c1", "storage", "major", kst(1, 0, 0, month=12), (("acknowledge", 5),)),
    # O: nobody came; auto-cleared at 180: the response breach (120) stays, the resolution is void.
    ("o", "pole-f1", "temperature", "minor", kst(26, 6), (("cancel", 180),)),
)  # fmt: skip


def build_ticket(
    ticket_id: str, node_id: str, kind: str, severity: FaultSeverity, opened_at: int, script: Script
) -> Ticket:
    ticket = tickets.open_ticket(
        # A component per ticket: the store allows one open ticket per fault key.
        ticket_id,
        FaultKey(node_id, f"unit-{ticket_id}", kind),
        severity,
        at=opened_at,
        policy=POLICY,
    )
    for action, after in script:
        at = opened_at + after * MIN
        if action == "pause":
            ticket = tickets.pause(ticket, at=at, by="op-1", reason="waiting for the power utility")
        elif action == "resume":
            ticket = tickets.resume(ticket, at=at, by="op-1")
        else:
            step = Action(action)
            verified = Verification.SELF_REPORTED if step in (Action.ARRIVE, Action.RESOLVE) else None
            ticket = tickets.transition(ticket, step, at=at, by="tech-7", verification=verified)
    return ticket


def seeded_tickets() -> list[Ticket]:
    return [build_ticket(*entry) for entry in TICKETS]


# site, kind, result, done at
INSPECTIONS: Final = (
    ("site-f1", "field", "pass", kst(3, 10)),
    ("site-f2", "field", "partial", kst(10, 11)),
    ("site-f1", "field", "pass", kst(28, 9)),  # a second one at the same pole
    ("site-f3", "field", "pass", kst(31, 23, 30, month=10)),  # October's (local time)
    ("site-f4", "field", "fail", kst(1, 0, 10, month=12)),  # December's
    ("site-c1", "centre", "pass", kst(15, 14)),
    ("site-c2", "centre", "pass", kst(20, 10, month=10)),  # October's: c2 missed November
)


def seed_database(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        sites = {
            site_id: Site(site_id=site_id, name=site_id, site_class=cls) for site_id, cls in SITES.items()
        }
        session.add_all(sites.values())
        session.add_all(Node(node_id=node_id, site=sites[site_id]) for node_id, (site_id, _) in NODES.items())
        for ticket in seeded_tickets():
            session.add(
                FaultTicketRow(
                    ticket_id=ticket.ticket_id,
                    node_id=ticket.fault.node_id,
                    component=ticket.fault.component,
                    kind=ticket.fault.kind,
                    severity=ticket.severity,
                    state=ticket.state.value,
                    open_key=None if ticket.closed else key_text(ticket.fault),
                    opened_at_ms=ticket.opened_at,
                    response_deadline_ms=ticket.response_deadline,
                    resolution_deadline_ms=ticket.resolution_deadline,
                    record=json.dumps(tickets.to_record(ticket)),
                )
            )
        session.flush()
        for site_id, kind, result, at in INSPECTIONS:
            inspections.record_inspection(
                session, site_id=site_id, kind=kind, done_at_ms=at, by="tech-7", result=result, now_ms=AS_OF
            )
        self_tests = [
            ("pole-f1", "st-1", "ok", {"ok": True, "loop": "normal", "v": 12.1}, kst(5, 3)),
            ("pole-f2", "st-2", "ok", {"ok": True, "loop": "open"}, kst(6, 3)),
            ("pole-f2", "st-3", "failed", {}, kst(20, 3)),
            ("pole-c1", "st-4", "rejected", {}, kst(21, 3)),  # no test ran: not an inspection
            ("pole-f1", "st-1", "ok", {"ok": True, "loop": "normal", "v": 12.1}, kst(5, 3)),  # duplicate
        ]
        for node_id, command_id, status, output, at in self_tests:
            result = m.CommandResult(ts=at, seq=7, command_id=command_id, status=status, output=output)
            inspections.record_self_test(session, node_id, result, at + 2_000)
