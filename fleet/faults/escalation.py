"""Which escalation steps of a ticket are due at `now`: the shell sends each one, records its
key, and passes the recorded keys back as `already_sent`, so every step goes out once per ticket
however often (or after however many restarts) it asks. Steps are `SlaPolicy.escalations`."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from fleet.faults.sla import Clock, EscalationStep, SlaPolicy, effective_deadline
from fleet.faults.tickets import Ticket


@dataclass(frozen=True, slots=True)
class DueEscalation:
    key: str  # "<ticket_id>/<step name>": the idempotency key to record once sent
    ticket_id: str
    step: EscalationStep
    deadline: int  # the clock's deadline at `now` (epoch ms)
    due_since: int  # the moment the step became due, had the clocks stayed as they are


def escalation_key(ticket_id: str, step: EscalationStep) -> str:
    return f"{ticket_id}/{step.name}"


def due_escalations(
    ticket: Ticket, now: int, already_sent: Set[str], *, policy: SlaPolicy | None = None
) -> list[DueEscalation]:
    """The steps due at `now` and not in `already_sent`, earliest first.

    A step is due while its clock runs and `now` is past the clock's deadline + `after_ms`
    (so a step at 0 is due exactly when the clock is breached). A stopped clock makes its
    steps moot: nobody needs chasing once the technician is there. A pause freezes the
    remaining time, so nothing new falls due during one. A step already sent stays sent if a
    pause later moves the deadline out: warnings do not repeat."""
    steps = (policy if policy is not None else SlaPolicy()).escalations
    due = []
    for step in steps:
        key = escalation_key(ticket.ticket_id, step)
        if key in already_sent or not ticket.clocks[step.clock].running:
            continue
        deadline = effective_deadline(ticket.clocks, step.clock, now)
        if now > deadline + step.after_ms:
            due.append(DueEscalation(key, ticket.ticket_id, step, deadline, deadline + step.after_ms + 1))
    return sorted(due, key=lambda d: (d.due_since, list(Clock).index(d.step.clock)))
