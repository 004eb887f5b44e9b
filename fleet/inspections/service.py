"""Inspections in the database: record a manual one, record a node's self-test as a remote
one, and list each site's next inspection. The decisions are the pure `schedule` and
`remote`; time is passed in, never read here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet.inspections.errors import InspectionRefused, UnknownNode, UnknownSite
from fleet.inspections.models import Inspection
from fleet.inspections.remote import judge_self_test
from fleet.inspections.schedule import (
    INSPECTION_RESULTS,
    Due,
    DueState,
    InspectionSchedule,
    due,
    zone,
)
from fleet.inventory.models import SITE_CLASSES, Node, Site, SiteClass
from protocols import messages as m


def record_inspection(
    session: Session,
    *,
    site_id: str,
    kind: str,
    done_at_ms: int,
    by: str,
    result: str,
    now_ms: int,
    notes: str = "",
    details: Mapping[str, Any] | None = None,
) -> Inspection:
    """A manual inspection of `site_id`: `kind` is the site's class ("field" at a pole,
    "centre" in the control centre). Refused, naming the value: an unknown site, a kind that
    is not the site's class, a result other than pass/fail/partial, no inspector, or a time
    after `now_ms` (an inspection is recorded once done)."""
    site = session.scalars(sa.select(Site).where(Site.site_id == site_id)).one_or_none()
    if site is None:
        raise UnknownSite(site_id)
    if kind != site.site_class:
        accepted = f"{site.site_class!r}, the class of site {site_id} (remote ones come from nodes)"
        raise InspectionRefused("kind", kind, accepted)
    if result not in INSPECTION_RESULTS:
        raise InspectionRefused("result", result, f"one of {', '.join(INSPECTION_RESULTS)}")
    if not by.strip():
        raise InspectionRefused("by", by, "who inspected (a technician or engineer id)")
    if not 0 <= done_at_ms <= now_ms:
        raise InspectionRefused("done_at_ms", done_at_ms, f"epoch ms, not after now ({now_ms})")
    inspection = Inspection(
        inspection_id=uuid.uuid4().hex[:16],
        site_pk=site.id,
        kind=kind,
        done_at_ms=done_at_ms,
        recorded_at_ms=now_ms,
        by=by,
        result=result,
        notes=notes,
        details=json.dumps(dict(details or {}), sort_keys=True),
    )
    session.add(inspection)
    session.flush()
    return inspection


def record_self_test(
    session: Session, node_id: str, result: m.CommandResult, received_ms: int
) -> Inspection | None:
    """Store a node's "self-test" command result as a remote inspection of the node's site.

    The caller (ingest) knows the result answers a self-test command; `judge_self_test` says
    pass/fail/partial, or None when no test ran (rejected, expired): then nothing is stored
    and None returned. Done at the node's `ts`, unless that is after `received_ms` (a clock
    running ahead). Idempotent per (node, command id): a duplicate delivery returns the row
    already stored. Raises UnknownNode for a node the inventory lacks or that has no site."""
    verdict = judge_self_test(result)
    if verdict is None:
        return None
    node = session.scalars(sa.select(Node).where(Node.node_id == node_id)).one_or_none()
    if node is None:
        raise UnknownNode(node_id, "not in the inventory")
    if node.site_pk is None:
        raise UnknownNode(node_id, "not placed at a site")
    details = dict(verdict.details)
    if verdict.findings:
        details["findings"] = list(verdict.findings)
    values = {
        "inspection_id": uuid.uuid4().hex[:16],
        "site_pk": node.site_pk,
        "kind": "remote",
        "done_at_ms": min(result.ts, received_ms),
        "recorded_at_ms": received_ms,
        "by": f"node/{node_id}",
        "result": verdict.result,
        "notes": "; ".join(verdict.findings),
        "details": json.dumps(details, sort_keys=True),
        "node_id": node_id,
        "command_id": result.command_id,
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # Two workers may take the same duplicate delivery at once: the unique key decides.
    session.execute(
        insert(Inspection).values(**values).on_conflict_do_nothing(index_elements=["node_id", "command_id"])
    )
    return session.scalars(
        sa.select(Inspection).where(Inspection.node_id == node_id, Inspection.command_id == result.command_id)
    ).one()


@dataclass(frozen=True, slots=True)
class SiteDue:
    site_id: str
    name: str
    due: Due


def due_by_site(
    session: Session,
    now_ms: int,
    *,
    schedule: InspectionSchedule,
    time_zone: str,
    states: frozenset[DueState] = frozenset({DueState.NEVER, DueState.DUE, DueState.OVERDUE}),
) -> list[SiteDue]:
    """Each site's next inspection at `now_ms`, keeping those in `states` (by default what
    needs doing: never inspected, due, overdue): never inspected first, then by due time.
    Only an inspection of the site's own class counts; a remote self-test does not replace a
    visit. A failed inspection was still done: what it found is a fault's business."""
    tz = zone(time_zone)
    latest = {
        (site_pk, kind): done_at
        for site_pk, kind, done_at in session.execute(
            sa.select(Inspection.site_pk, Inspection.kind, sa.func.max(Inspection.done_at_ms))
            .where(Inspection.kind.in_(SITE_CLASSES))
            .group_by(Inspection.site_pk, Inspection.kind)
        )
    }
    result = []
    for site in session.scalars(sa.select(Site).where(Site.site_class.in_(SITE_CLASSES))):
        site_class: SiteClass = "centre" if site.site_class == "centre" else "field"
        next_one = due(site_class, latest.get((site.id, site_class)), now_ms, schedule=schedule, tz=tz)
        if next_one.state in states:
            result.append(SiteDue(site.site_id, site.name, next_one))
    result.sort(key=lambda s: (s.due.due_at is not None, s.due.due_at or 0, s.site_id))
    return result
