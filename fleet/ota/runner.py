"""The campaign runner: the I/O shell around fleet.ota.campaign.next_actions. Every `tick_s` it
takes each active campaign in turn, locks its row (skipping one another worker or ingest holds:
it comes round again next tick), asks the core what to do now, and applies it in the same
transaction: timeouts, the campaign's own steps (a wave opens, approval awaited, abort,
completed; each in the audit log), and the offers, each sent to its node (OtaOffer, through the
ingest's NodeLink) before the node is marked notified.

Sending inside the transaction makes an offer at-least-once: if the commit fails after the
send, the node is still queued and is offered again at the next tick (a node takes an offer of
a campaign it already has as the same job). Several fleet workers on one PostgreSQL never tick
one campaign at the same time (the row lock), so a node is not offered twice by two workers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.api.deps import NodeLink
from fleet.audit import log as audit_log
from fleet.ota import campaign as core
from fleet.ota import store
from fleet.ota.campaign import NodeState
from fleet.ota.releases import OtaConfig
from protocols import messages as m

log = logging.getLogger(__name__)

ACTOR = "fleet/ota-runner"  # in the audit log, for the steps the fleet takes itself
NO_LINK = "no-link"  # a node's hold when its offer could not be handed to the broker


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class TickReport:
    """What one tick did, over every campaign it could take."""

    offered: list[tuple[str, str]] = field(default_factory=list)  # (campaign id, node id)
    timed_out: list[tuple[str, str]] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (campaign id, action)
    skipped: list[str] = field(default_factory=list)  # campaigns locked elsewhere this tick


class CampaignRunner:
    """`run_once(now_ms)` ticks every active campaign; `run(stop)` does so every `every_s` until
    `stop` is set (the fleet server runs it in a thread)."""

    def __init__(
        self,
        engine: sa.Engine,
        link: NodeLink,
        config: OtaConfig,
        *,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.engine = engine
        self.link = link
        self.config = config
        self._clock_ms = clock_ms

    def run_once(self, now_ms: int | None = None) -> TickReport:
        now = now_ms if now_ms is not None else self._clock_ms()
        report = TickReport()
        with Session(self.engine) as session:
            active = store.active_campaigns(session)
        for campaign_pk in active:
            self._tick(campaign_pk, now, report)
        return report

    def run(self, stop: threading.Event, every_s: float) -> None:
        """Tick every `every_s` until `stop` is set. A failing tick (the database away) is
        logged and the next one tries again: everything it decides is in the database."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("ota campaign tick failed; the next one in %s s tries again", every_s)
            stop.wait(every_s)

    def _tick(self, campaign_pk: int, now: int, report: TickReport) -> None:
        with Session(self.engine) as session, session.begin():
            row = store.lock_for_tick(session, campaign_pk)
            if row is None:
                report.skipped.append(str(campaign_pk))
                return
            campaign = store.core_of(row)
            if campaign.state in core.OVER:
                return  # finished by another worker since the listing
            rows = store.node_rows(session, row)
            by_id = {r.node_id: r for r in rows}
            nodes = [store.core_node(r) for r in rows]
            decision = core.next_actions(campaign, nodes, now, store.conditions(session))

            for node_id in decision.time_out:
                node_row = by_id[node_id]
                store.save_node(
                    node_row, core.timed_out(store.core_node(node_row), now, campaign.node_timeout_ms), now
                )
                report.timed_out.append((campaign.campaign_id, node_id))

            after = campaign
            if decision.opened_waves != campaign.opened_waves:
                for wave in range(campaign.opened_waves, decision.opened_waves):
                    self._audit(session, row.campaign_id, "ota.campaign.wave-open", now, wave=wave)
                after = dataclasses.replace(after, opened_waves=decision.opened_waves)
            if decision.action is not None:
                after = core.transition(after, decision.action, reason=decision.reason)
                report.steps.append((campaign.campaign_id, decision.action.value))
                self._audit(
                    session,
                    row.campaign_id,
                    f"ota.campaign.{decision.action.value}",
                    now,
                    reason=decision.reason,
                    state=after.state.value,
                )
                log.info("ota campaign %s: %s (%s)", row.campaign_id, after.state, decision.reason)
            store.save_core(row, after, now)

            for node_row in rows:
                if node_row.state == NodeState.QUEUED.value:
                    hold = decision.held.get(node_row.node_id)
                    node_row.hold = hold.value if hold is not None else None
            if not decision.offer:
                return
            release = store.release_of(session, row)
            offer = m.OtaOffer(
                ts=now,
                campaign_id=row.campaign_id,
                release=release.release,
                manifest_url=self.config.manifest_url(release.release_id),
                manifest_sha256=release.manifest_sha256,
                expires_at=now + self.config.offer_ttl_ms,
            )
            for node_id in decision.offer:
                node_row = by_id[node_id]
                try:
                    self.link.send(node_id, offer)
                except ConnectionError as error:
                    node_row.hold = NO_LINK  # still queued: offered again at the next tick
                    log.warning("ota campaign %s: no offer to %s: %s", row.campaign_id, node_id, error)
                    continue
                store.save_node(node_row, core.offered(store.core_node(node_row), now), now)
                node_row.offers += 1
                node_row.offered_at_ms = now
                report.offered.append((row.campaign_id, node_id))

    def _audit(self, session: Session, campaign_id: str, action: str, now: int, **detail: object) -> None:
        audit_log.record(
            session,
            at_ms=now,
            actor=ACTOR,
            role="fleet",
            action=action,
            target=f"ota-campaign/{campaign_id}",
            detail=dict(detail),
        )
