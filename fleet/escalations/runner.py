"""The escalation shell: finds the steps due on open tickets (`fleet.faults.escalation`),
claims each in `escalation_sent`, sends it on every configured channel and records the outcome.

Once only, across restarts and workers sharing one database: a step is claimed by inserting
its row (INSERT ... ON CONFLICT DO NOTHING on the unique key), and only the worker whose insert
went in sends it. A failed attempt is kept with its error and tried again after a backoff,
only on the channels that have not yet taken it; a retry is claimed by locking the row and
taking a lease (`claim_lease_s`), which another worker may take over only once it ran out (the
first worker died mid-send). A step whose clock stopped before a retry got through is moot.
Each notice is claimed, sent and recorded before the next is claimed, so a lease only has to
outlast one notice's sending. Time is passed in or read from the injected clock, never here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet.escalations.errors import SendError, SettingsError
from fleet.escalations.models import Delivery, EscalationSent
from fleet.escalations.notice import Notice, notice_of
from fleet.escalations.senders import EmailSender, Sender, WebhookSender
from fleet.escalations.settings import EscalationSettings
from fleet.faults import store
from fleet.faults.escalation import DueEscalation, due_escalations
from fleet.faults.sla import Clock, SlaPolicy
from fleet.faults.store import FaultTicketRow
from fleet.faults.tickets import Ticket

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def senders_for(settings: EscalationSettings) -> list[Sender]:
    """A sender for each hook configured in `settings`."""
    senders: list[Sender] = []
    if settings.webhook is not None:
        senders.append(WebhookSender(settings.webhook))
    if settings.email is not None:
        senders.append(EmailSender(settings.email))
    return senders


@dataclass(slots=True)
class RunReport:
    """What one run did, by step key."""

    sent: list[str] = field(default_factory=list)  # every channel took it (this run)
    failed: list[str] = field(default_factory=list)  # an attempt failed: retried later
    moot: list[str] = field(default_factory=list)  # given up: its clock stopped meanwhile


@dataclass(frozen=True, slots=True)
class _Claim:
    key: str
    token: str
    notice: Notice
    pending: tuple[str, ...]  # the channels still to send on


class Escalator:
    """`run_once()` sends what is due now; `run(stop)` does so every `settings.every_s` until
    `stop` is set (the fleet server runs it in a thread). Several escalators (fleet workers) may
    share one database: each step still goes out once."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: EscalationSettings,
        *,
        policy: SlaPolicy | None = None,
        senders: Sequence[Sender] | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        chosen = list(senders) if senders is not None else senders_for(settings)
        if not chosen:
            raise SettingsError("webhook", None, "at least one hook (webhook or email) to escalate on")
        self._senders = {sender.channel: sender for sender in chosen}
        if len(self._senders) != len(chosen):
            names = [sender.channel for sender in chosen]
            raise SettingsError("senders", names, "one sender per channel")
        self.engine = engine
        self.settings = settings
        self.policy = policy if policy is not None else SlaPolicy()
        self._clock_ms = clock_ms
        self._channels = ",".join(sorted(self._senders))
        self._lease_ms = round(settings.claim_lease_s * 1000)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def backoff_ms(self, attempts: int) -> int:
        """How long after its `attempts`-th failed attempt a step is tried again: `retry_after_s`,
        doubling per attempt, at most `retry_max_s`."""
        first = round(self.settings.retry_after_s * 1000)
        ceiling = round(self.settings.retry_max_s * 1000)
        return min(ceiling, first << min(max(attempts - 1, 0), 40))

    def run_once(self, now_ms: int | None = None) -> RunReport:
        """Retry the failed steps whose backoff ran out, then send the steps newly due.

        `now_ms` is the time of the whole run (tests pass it); None reads the injected clock
        at each claim and record, so a long run keeps its leases honest."""
        report = RunReport()
        start = self._now(now_ms)
        while (claim := self._claim_retry(self._now(now_ms), report)) is not None:
            self._deliver(claim, now_ms, report)
        for ticket, due in self._due(start):
            claim = self._claim_new(ticket, due, self._now(now_ms))
            if claim is not None:
                self._deliver(claim, now_ms, report)
        return report

    def run(self, stop: threading.Event, every_s: float | None = None) -> None:
        """Run every `every_s` (default: the settings') until `stop` is set. A failing run (the
        database away) is logged and the next one tries again: nothing is lost, the steps stay
        due or recorded."""
        every = every_s if every_s is not None else self.settings.every_s
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("escalation run failed; the next one in %s s tries again", every)
            stop.wait(every)

    # --- steps --------------------------------------------------------------------------------

    def _now(self, now_ms: int | None) -> int:
        return now_ms if now_ms is not None else self._clock_ms()

    def _due(self, now_ms: int) -> list[tuple[Ticket, DueEscalation]]:
        with Session(self.engine) as session:
            rows = store.open_tickets(session)
            claimed = set(
                session.scalars(
                    sa.select(EscalationSent.key)
                    .join(FaultTicketRow, FaultTicketRow.ticket_id == EscalationSent.ticket_id)
                    .where(FaultTicketRow.state.not_in(store.CLOSED_STATES))
                )
            )
        due: list[tuple[Ticket, DueEscalation]] = []
        for ticket in _tickets(rows):
            due.extend(
                (ticket, step) for step in due_escalations(ticket, now_ms, claimed, policy=self.policy)
            )
        return sorted(due, key=lambda pair: pair[1].due_since)

    def _claim_new(self, ticket: Ticket, due: DueEscalation, now_ms: int) -> _Claim | None:
        notice = notice_of(ticket, due)
        token = uuid.uuid4().hex
        values = {
            "key": due.key,
            "ticket_id": ticket.ticket_id,
            "step": due.step.name,
            "clock": due.step.clock.value,
            "channels": self._channels,
            "delivered": "",
            "state": Delivery.SENDING.value,
            "notice": json.dumps(dataclasses.asdict(notice), sort_keys=True),
            "claim_token": token,
            "claimed_at_ms": now_ms,
            "next_attempt_ms": now_ms + self._lease_ms,
            "attempts": 1,
        }
        statement = (
            self._insert(EscalationSent)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(EscalationSent.id)
        )
        with Session(self.engine) as session, session.begin():
            won = session.execute(statement).first() is not None
        if not won:
            return None  # another worker claimed it between our look and our insert
        return _Claim(due.key, token, notice, tuple(self._channels.split(",")))

    def _claim_retry(self, now_ms: int, report: RunReport) -> _Claim | None:
        """Take the next step whose retry (or a dead worker's lease) is due, or None."""
        query = (
            sa.select(EscalationSent)
            .where(
                EscalationSent.state.in_([Delivery.SENDING.value, Delivery.RETRY.value]),
                EscalationSent.next_attempt_ms <= now_ms,
            )
            .order_by(EscalationSent.next_attempt_ms)
            .limit(1)
            .with_for_update()
        )
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # another worker is taking that one
        while True:
            with Session(self.engine) as session, session.begin():
                row = session.scalars(query).one_or_none()
                if row is None:
                    return None
                if not self._still_needed(session, row):
                    row.state = Delivery.MOOT.value
                    row.next_attempt_ms = None
                    report.moot.append(row.key)
                    log.info("escalation %s is moot: its %s clock stopped", row.key, row.clock)
                    continue
                row.state = Delivery.SENDING.value
                row.claim_token = uuid.uuid4().hex
                row.claimed_at_ms = now_ms
                row.next_attempt_ms = now_ms + self._lease_ms
                row.attempts += 1
                done = set(_split(row.delivered))
                pending = tuple(c for c in _split(row.channels) if c not in done)
                return _Claim(row.key, row.claim_token, Notice.from_json(json.loads(row.notice)), pending)

    def _still_needed(self, session: Session, row: EscalationSent) -> bool:
        ticket_row = session.scalars(
            sa.select(FaultTicketRow).where(FaultTicketRow.ticket_id == row.ticket_id)
        ).one_or_none()
        if ticket_row is None:
            return False
        try:
            return ticket_row.ticket().clocks[Clock(row.clock)].running
        except Exception:  # unreadable: better a notice too many than one lost
            log.exception("escalation %s: cannot tell whether its clock still runs", row.key)
            return True

    def _deliver(self, claim: _Claim, now_ms: int | None, report: RunReport) -> None:
        took: list[str] = []
        errors: list[str] = []
        for channel in claim.pending:
            sender = self._senders.get(channel)
            if sender is None:
                errors.append(f"{channel}: no {channel} hook configured on this worker")
                continue
            try:
                sender.send(claim.notice)
            except SendError as exc:
                errors.append(str(exc))
            except Exception as exc:  # a sender's bug must not leave the step unrecorded
                log.exception("escalation %s: the %s sender failed", claim.key, channel)
                errors.append(f"{channel}: {type(exc).__name__}: {exc}")
            else:
                took.append(channel)
        at = self._now(now_ms)
        with Session(self.engine) as session, session.begin():
            row = session.scalars(
                sa.select(EscalationSent)
                .where(EscalationSent.key == claim.key, EscalationSent.claim_token == claim.token)
                .with_for_update()
            ).one_or_none()
            if row is None:
                # Our lease ran out mid-send and another worker took the step over.
                log.warning("escalation %s: the claim was taken over while sending", claim.key)
                return
            delivered = [*_split(row.delivered), *took]
            row.delivered = ",".join(c for c in _split(row.channels) if c in delivered)
            if errors:
                row.state = Delivery.RETRY.value
                row.next_attempt_ms = at + self.backoff_ms(row.attempts)
                row.last_error = "; ".join(errors)
                report.failed.append(claim.key)
                log.warning(
                    "escalation %s: attempt %d failed (%s); next at %d",
                    claim.key,
                    row.attempts,
                    row.last_error,
                    row.next_attempt_ms,
                )
            else:
                row.state = Delivery.SENT.value
                row.sent_at_ms = at
                row.next_attempt_ms = None
                report.sent.append(claim.key)
                log.info("escalation %s sent on %s", claim.key, row.channels)


def _tickets(rows: Iterable[FaultTicketRow]) -> Iterable[Ticket]:
    for row in rows:
        try:
            yield row.ticket()
        except Exception:  # one unreadable record must not hold back every other ticket
            log.exception("ticket %s: its record cannot be read; no escalations for it", row.ticket_id)


def _split(channels: str) -> list[str]:
    return [c for c in channels.split(",") if c]
