"""Faults in the database: the debounced condition per fault key and the tickets, driven by
the pure rules (fleet.faults.rules) and lifecycle (fleet.faults.tickets).

Concurrency: every observation of a key first locks that key's condition row (inserted if
new, then SELECT ... FOR UPDATE), so fleet workers sharing one subscription handle one key one
at a time; a partial "one open ticket per key" is also enforced by a unique `open_key` column
(NULL once the ticket closes). Time is passed in, never read here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from fleet.db import Base
from fleet.faults import rules, tickets
from fleet.faults.errors import FaultError
from fleet.faults.rules import Condition, FaultKey, FaultRulesConfig, Observation, Phase, Verdict
from fleet.faults.sla import SlaPolicy

Ms = sa.BigInteger


class FaultConditionRow(Base):
    """The fleet's debounced belief about one fault key (rules.Condition)."""

    __tablename__ = "fault_condition"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)  # node|component|kind
    node_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    component: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(32))
    phase: Mapped[str] = mapped_column(sa.String(16), default=Phase.CLEAR.value)
    since_ms: Mapped[int] = mapped_column(Ms, default=0)
    severity: Mapped[str | None] = mapped_column(sa.String(16))
    next_check_ms: Mapped[int | None] = mapped_column(Ms, index=True)  # for the settle timer


class FaultTicketRow(Base):
    """A fault ticket: the pure tickets.Ticket as JSON, plus columns to query and sort by."""

    __tablename__ = "fault_ticket"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    node_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    component: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)
    severity: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    open_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)  # NULL once closed
    opened_at_ms: Mapped[int] = mapped_column(Ms, index=True)
    response_deadline_ms: Mapped[int | None] = mapped_column(Ms, index=True)
    resolution_deadline_ms: Mapped[int | None] = mapped_column(Ms)
    fault_cleared_at_ms: Mapped[int | None] = mapped_column(Ms)
    assignee: Mapped[str | None] = mapped_column(sa.String(128), index=True)  # the technician sent
    record: Mapped[str] = mapped_column(sa.Text)  # tickets.to_record(), JSON

    def ticket(self) -> tickets.Ticket:
        return tickets.from_record(json.loads(self.record))


class UnknownTicket(FaultError, LookupError):
    """No ticket has the id `ticket_id` (a mistyped id, or a visit naming another fleet's)."""

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"no fault ticket {ticket_id!r}")
        self.ticket_id = ticket_id


def key_text(key: FaultKey) -> str:
    return f"{key.node_id}|{key.component}|{key.kind}"


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    ticket_id: str | None = None


def observe(
    session: Session, observation: Observation, *, config: FaultRulesConfig, policy: SlaPolicy
) -> list[Outcome]:
    """Feed one raw observation of the pole; returns what it did to tickets."""
    row = _locked_condition(session, observation.key)
    condition, settled = rules.track(_condition(row), observation, config)
    _store_condition(row, condition, config)
    return [_apply(session, settled_one, policy, config) for settled_one in settled]


def settle_due(
    session: Session, now_ms: int, *, config: FaultRulesConfig, policy: SlaPolicy
) -> list[Outcome]:
    """Let time pass: conditions whose debounce ends by `now_ms` open or clear their faults.
    Rows another worker is settling are skipped (it will have done them)."""
    query = sa.select(FaultConditionRow).where(FaultConditionRow.next_check_ms <= now_ms).with_for_update()
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    outcomes = []
    for row in session.scalars(query).all():
        current = _condition(row)
        if current is None:
            continue
        condition, observation = rules.settle(current, now_ms, config)
        _store_condition(row, condition, config)
        if observation is not None:
            outcomes.append(_apply(session, observation, policy, config))
    return outcomes


CLOSED_STATES: Final = tuple(state.value for state in tickets.CLOSED)


def open_tickets(session: Session) -> list[FaultTicketRow]:
    """Tickets not yet closed (a resolved one still owes its report), the nearest response
    deadline first."""
    return list(
        session.scalars(
            sa.select(FaultTicketRow)
            .where(FaultTicketRow.state.not_in(CLOSED_STATES))
            .order_by(FaultTicketRow.response_deadline_ms)
        )
    )


def open_fault_counts() -> sa.Subquery:
    """Per node, how many faults are being worked (`node_id`, `n`): for node listings."""
    return (
        sa.select(FaultTicketRow.node_id, sa.func.count().label("n"))
        .where(FaultTicketRow.open_key.is_not(None))
        .group_by(FaultTicketRow.node_id)
        .subquery()
    )


def ticket_for_update(session: Session, ticket_id: str) -> FaultTicketRow:
    """The ticket's row, locked until the caller's transaction ends; UnknownTicket if none."""
    row = session.scalars(
        sa.select(FaultTicketRow).where(FaultTicketRow.ticket_id == ticket_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise UnknownTicket(ticket_id)
    return row


def apply_step(
    session: Session,
    ticket_id: str,
    action: tickets.Action,
    *,
    at: int,
    by: str,
    verification: tickets.Verification | None = None,
    note: str = "",
) -> FaultTicketRow:
    """Move one ticket by one step (`tickets.transition`) and store it, under the row's lock so
    two workers (or an operator and a site visit) cannot both move it from the same state.
    Raises UnknownTicket, IllegalTransition or StepRefused, leaving the ticket as it was."""
    row = ticket_for_update(session, ticket_id)
    ticket = tickets.transition(row.ticket(), action, at=at, by=by, verification=verification, note=note)
    save_ticket(row, ticket)
    return row


def _locked_condition(session: Session, key: FaultKey) -> FaultConditionRow:
    values = {"key": key_text(key), "node_id": key.node_id, "component": key.component, "kind": key.kind}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(FaultConditionRow).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return session.scalars(
        sa.select(FaultConditionRow).where(FaultConditionRow.key == values["key"]).with_for_update()
    ).one()


def _condition(row: FaultConditionRow) -> Condition | None:
    if row.phase == Phase.CLEAR.value and row.since_ms == 0:
        return None  # never observed
    key = FaultKey(row.node_id, row.component, row.kind)
    return Condition(key, Phase(row.phase), row.since_ms, row.severity)  # type: ignore[arg-type]


def _store_condition(row: FaultConditionRow, condition: Condition, config: FaultRulesConfig) -> None:
    row.phase = condition.phase.value
    row.since_ms = condition.since
    row.severity = condition.severity
    row.next_check_ms = rules.next_check_at(condition, config)


def _repeats(session: Session, observation: Observation, config: FaultRulesConfig) -> str | None:
    """The ticket this new fault repeats: the same key's last one, if it was resolved within
    the repeat window before (the fix did not hold)."""
    key = observation.key
    last = session.scalars(
        sa.select(FaultTicketRow)
        .where(
            FaultTicketRow.node_id == key.node_id,
            FaultTicketRow.component == key.component,
            FaultTicketRow.kind == key.kind,
        )
        .order_by(FaultTicketRow.opened_at_ms.desc(), FaultTicketRow.id.desc())
        .limit(1)
    ).one_or_none()
    if last is None:
        return None
    resolved = last.ticket().step_of(tickets.Action.RESOLVE)
    at = resolved.at if resolved is not None else None
    return (
        last.ticket_id
        if rules.is_repeat(previous_resolved_at=at, opened_at=observation.at, config=config)
        else None
    )


def _apply(
    session: Session, observation: Observation, policy: SlaPolicy, config: FaultRulesConfig
) -> Outcome:
    key = key_text(observation.key)
    # Locked: an operator's step (apply_step) on the same ticket must not be overwritten.
    open_row = session.scalars(
        sa.select(FaultTicketRow).where(FaultTicketRow.open_key == key).with_for_update()
    ).one_or_none()
    verdict = rules.decide(observation, {observation.key} if open_row is not None else set())
    if verdict is Verdict.OPEN:
        assert observation.severity is not None
        ticket = tickets.open_ticket(
            uuid.uuid4().hex[:16],
            observation.key,
            observation.severity,
            at=observation.at,
            policy=policy,
            repeat_of=_repeats(session, observation, config),
        )
        row = FaultTicketRow(
            ticket_id=ticket.ticket_id,
            node_id=observation.key.node_id,
            component=observation.key.component,
            kind=observation.key.kind,
            severity=ticket.severity,
            open_key=key,
            opened_at_ms=ticket.opened_at,
        )
        save_ticket(row, ticket)
        session.add(row)
        session.flush()
        return Outcome(verdict, ticket.ticket_id)
    if verdict is Verdict.AUTO_CLEAR and open_row is not None:
        open_row.fault_cleared_at_ms = observation.at
        ticket = open_row.ticket()
        if tickets.Action.CANCEL in tickets.allowed_actions(ticket.state):
            # Cleared before anyone was sent: closed as auto-cleared, kept for the record.
            ticket = tickets.transition(
                ticket,
                tickets.Action.CANCEL,
                at=max(observation.at, ticket.opened_at),
                by="fleet/auto-clear",
                note="auto-cleared",
            )
            save_ticket(open_row, ticket)
        return Outcome(verdict, open_row.ticket_id)
    return Outcome(verdict, open_row.ticket_id if open_row is not None else None)


def save_ticket(row: FaultTicketRow, ticket: tickets.Ticket) -> None:
    """Write `ticket` (what `tickets.transition` returned) into its row: the JSON record and the
    columns queried by (state, deadlines, `open_key`, NULL once the fault is fixed). The caller
    holds the row's lock (`ticket_for_update`)."""
    record = tickets.to_record(ticket)
    row.record = json.dumps(record, sort_keys=True)
    row.state = ticket.state.value
    # The fault is being worked until it is fixed: after that, the same condition raised again
    # is a new fault (a repeat of this one), though this ticket still owes its report.
    worked = not ticket.closed and ticket.state is not tickets.TicketState.RESOLVED
    row.open_key = key_text(ticket.fault) if worked else None
    row.response_deadline_ms = ticket.clocks.response.due_at
    row.resolution_deadline_ms = ticket.clocks.resolution.due_at
