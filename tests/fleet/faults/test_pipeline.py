"""The pure pieces in the order the fleet's shell will call them: node events in, one fault and
one ticket out, the fault clearing by itself before dispatch, and coming back as a repeat."""

from __future__ import annotations

from fleet.faults import rules, tickets
from fleet.faults.rules import Condition, FaultKey, FaultRulesConfig, Verdict
from fleet.faults.sla import HOUR_MS, SlaPolicy
from fleet.faults.tickets import Action, Ticket, TicketState
from protocols import messages as m

T0 = 1_760_000_000_000
S = 1000
CONFIG = FaultRulesConfig()  # supply: raise after 60 s, clear after 600 s
POLICY = SlaPolicy()


def supply(state: m.EventState, ts: int) -> m.Event:
    return m.Event(ts=ts, seq=1, event_id=f"supply.{ts}", category="supply", state=state, severity="major")


class Shell:
    """A stand-in for the fleet's consumer: keeps conditions, open keys and tickets in memory."""

    def __init__(self) -> None:
        self.conditions: dict[FaultKey, Condition] = {}
        self.open: dict[FaultKey, Ticket] = {}
        self.closed: list[Ticket] = []
        self.verdicts: list[Verdict] = []

    def settled(self, observation: rules.Observation) -> None:
        verdict = rules.decide(observation, set(self.open))
        self.verdicts.append(verdict)
        if verdict is Verdict.OPEN:
            assert observation.severity is not None
            previous = next((t for t in reversed(self.closed) if t.fault == observation.key), None)
            resolved = previous.step_of(Action.RESOLVE) if previous else None
            repeat = rules.is_repeat(
                previous_resolved_at=resolved.at if resolved else None,
                opened_at=observation.at,
                config=CONFIG,
            )
            self.open[observation.key] = tickets.open_ticket(
                f"t-{len(self.closed) + len(self.open) + 1}",
                observation.key,
                observation.severity,
                at=observation.at,
                policy=POLICY,
                repeat_of=previous.ticket_id if repeat and previous else None,
            )
        elif verdict is Verdict.AUTO_CLEAR:
            ticket = self.open.pop(observation.key)
            if tickets.Action.CANCEL in tickets.allowed_actions(ticket.state):
                ticket = tickets.transition(
                    ticket, Action.CANCEL, at=observation.at, by="fleet", note="auto-cleared"
                )
            self.closed.append(ticket)

    def event(self, node_id: str, event: m.Event) -> None:
        observation = rules.observe_event(node_id, event)
        if observation is None:
            return
        condition, settled = rules.track(self.conditions.get(observation.key), observation, CONFIG)
        self.conditions[observation.key] = condition
        for change in settled:
            self.settled(change)

    def tick(self, now: int) -> None:
        for key, condition in list(self.conditions.items()):
            self.conditions[key], change = rules.settle(condition, now, CONFIG)
            if change is not None:
                self.settled(change)


def test_flapping_supply_opens_one_ticket_that_auto_clears_and_then_repeats() -> None:
    shell = Shell()
    for i in range(10):  # the supply flaps every 90 s for 15 minutes
        shell.event("pole-1", supply("raised" if i % 2 == 0 else "cleared", T0 + i * 90 * S))
    shell.tick(T0 + 10 * 90 * S)
    assert list(shell.open) == [FaultKey("pole-1", "pole", "supply")]
    (ticket,) = shell.open.values()
    assert ticket.opened_at == T0 + 60 * S
    assert ticket.response_deadline == T0 + 60 * S + 2 * HOUR_MS

    shell.tick(T0 + 9 * 90 * S + 600 * S)  # quiet for the clear window: auto-cleared
    assert shell.open == {}
    (cancelled,) = shell.closed
    assert cancelled.state is TicketState.CANCELLED
    assert cancelled.steps[-1].note == "auto-cleared"
    assert shell.verdicts == [Verdict.OPEN, Verdict.AUTO_CLEAR]

    # Cancelled, never resolved: a new raise is a new ticket, not a repeat.
    shell.event("pole-1", supply("raised", T0 + 2 * HOUR_MS))
    shell.tick(T0 + 3 * HOUR_MS)
    (again,) = shell.open.values()
    assert again.ticket_id == "t-2"
    assert again.repeat_of is None


def test_a_fault_back_soon_after_its_fix_is_a_new_ticket_marked_repeat() -> None:
    shell = Shell()
    key = FaultKey("pole-1", "pole", "supply")
    shell.event("pole-1", supply("raised", T0))
    shell.tick(T0 + 60 * S)
    ticket = shell.open[key]
    for action, at in [
        (Action.ACKNOWLEDGE, 5),
        (Action.DISPATCH, 6),
        (Action.ARRIVE, 60),
        (Action.RESOLVE, 120),
    ]:
        verification = (
            tickets.Verification.SELF_REPORTED if action in (Action.ARRIVE, Action.RESOLVE) else None
        )
        ticket = tickets.transition(
            ticket, action, at=T0 + at * 60 * S, by="tech-3", verification=verification
        )
    shell.open[key] = ticket
    shell.event("pole-1", supply("cleared", T0 + 120 * 60 * S))
    shell.tick(T0 + 130 * 60 * S)
    assert shell.closed[-1].state is TicketState.RESOLVED  # a fixed ticket is not cancelled by the clear

    shell.event("pole-1", supply("raised", T0 + 10 * HOUR_MS))
    shell.tick(T0 + 11 * HOUR_MS)
    repeat = shell.open[key]
    assert (repeat.ticket_id, repeat.repeat_of) == ("t-2", "t-1")
    assert repeat.response_deadline == T0 + 10 * HOUR_MS + 60 * S + 2 * HOUR_MS  # fresh clocks
