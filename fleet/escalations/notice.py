"""What an escalation says: a due step of a ticket (`fleet.faults.escalation.DueEscalation`)
worded for people and laid out for machines. Pure; the senders carry it, the runner stores it
with its claim so a retry sends exactly the same notice."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fleet.faults.escalation import DueEscalation
from fleet.faults.sla import MINUTE_MS, Clock
from fleet.faults.tickets import Ticket

# What each clock waits for, in the contract's words.
_WAITING_FOR: Final = {
    Clock.RESPONSE: "a technician on site",
    Clock.RESOLUTION: "the fault fixed",
    Clock.REPORT: "the work report in",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One escalation step of one ticket. Times are epoch ms; `deadline_ms` is the clock's
    deadline when the step fell due, `due_since_ms` when it did."""

    key: str  # "<ticket_id>/<step>": sent once; receivers may deduplicate by it
    ticket_id: str
    step: str
    clock: str
    after_ms: int  # negative: a warning before the deadline; 0: the breach; positive: past it
    node_id: str
    component: str
    fault_kind: str
    severity: str
    opened_at_ms: int
    deadline_ms: int
    due_since_ms: int

    @property
    def breach(self) -> bool:
        return self.after_ms >= 0

    def subject(self) -> str:
        what = "breach" if self.breach else "warning"
        where = f"ticket {self.ticket_id}, {self.fault_kind} at {self.node_id}"
        return f"[watchpost] SLA {what}: {self.step}, {where}"

    def sentence(self) -> str:
        """One line for a person: which ticket, what fault where, which deadline and how it stands."""
        waiting_for = _WAITING_FOR.get(Clock(self.clock), self.clock)
        fault = f"{self.severity} {self.fault_kind} fault at {self.node_id} ({self.component})"
        deadline = utc_text(self.deadline_ms)
        if self.after_ms < 0:
            stands = (
                f"{duration_text(-self.after_ms)} left to have {waiting_for} by the {self.clock} deadline"
            )
        elif self.after_ms == 0:
            stands = f"the {self.clock} deadline passed without {waiting_for}"
        else:
            stands = f"{duration_text(self.after_ms)} past the {self.clock} deadline without {waiting_for}"
        return f"Ticket {self.ticket_id}, {fault}: {stands} ({deadline})."

    def to_json(self) -> dict[str, Any]:
        """The webhook's body: every field, the deadline also as ISO 8601, and the sentence."""
        body = dataclasses.asdict(self)
        body["deadline"] = datetime.fromtimestamp(self.deadline_ms / 1000, UTC).isoformat()
        body["text"] = self.sentence()
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Notice:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in body.items() if name in fields})


def notice_of(ticket: Ticket, due: DueEscalation) -> Notice:
    return Notice(
        key=due.key,
        ticket_id=ticket.ticket_id,
        step=due.step.name,
        clock=due.step.clock.value,
        after_ms=due.step.after_ms,
        node_id=ticket.fault.node_id,
        component=ticket.fault.component,
        fault_kind=ticket.fault.kind,
        severity=ticket.severity,
        opened_at_ms=ticket.opened_at,
        deadline_ms=due.deadline,
        due_since_ms=due.due_since,
    )


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration_text(ms: int) -> str:
    """`30 min`, `2 h`, `1 h 30 min` (whole minutes, rounded down; under a minute: `0 min`)."""
    hours, minutes = divmod(ms // MINUTE_MS, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"
