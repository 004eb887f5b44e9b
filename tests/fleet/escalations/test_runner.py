"""The escalation shell on the embedded SQLite and a real PostgreSQL, sending to a real HTTP
receiver and a real SMTP server, with the time injected: steps go out when due and not before,
each once, through pauses, arrivals, failures, restarts, dead workers and two workers at once.

Expected times come from the default policy: a critical fault opened at 08:00 (T0) has its
response deadline at 10:00 (warning after 09:30), resolution at 11:00 (warning after 10:30)
and report at 08:00 the next day; a step is due once `now` is past deadline + after_ms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.db import make_engine
from fleet.escalations.models import EscalationSent
from fleet.escalations.notice import Notice
from fleet.escalations.runner import Escalator
from fleet.escalations.settings import EmailSettings, EscalationSettings, WebhookSettings
from fleet.faults import store, tickets
from fleet.faults.rules import FaultKey, FaultRulesConfig, Observation
from fleet.faults.sla import SlaPolicy
from fleet.faults.tickets import Action, Ticket, Verification
from tests.fleet.escalations.conftest import SmtpServer, WebhookReceiver

T0 = int(datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
HOUR = 60 * MINUTE
DOOR = FaultKey("pole-0412", "cabinet", "door")
POLICY = SlaPolicy()
RULES = FaultRulesConfig()

RESPONSE_WARNING_DUE = T0 + 90 * MINUTE + 1  # 2 h - 30 min, then strictly past it
RESPONSE_BREACH_DUE = T0 + 2 * HOUR + 1
RESOLUTION_WARNING_DUE = T0 + 150 * MINUTE + 1  # critical: 3 h - 30 min
RESOLUTION_BREACH_DUE = T0 + 3 * HOUR + 1
REPORT_BREACH_DUE = T0 + 24 * HOUR + 1


def open_ticket(engine: sa.Engine, key: FaultKey = DOOR) -> str:
    with Session(engine) as session, session.begin():
        (outcome,) = store.observe(
            session, Observation(key, raised=True, at=T0, severity="critical"), config=RULES, policy=POLICY
        )
    assert outcome.ticket_id is not None
    return outcome.ticket_id


def change(engine: sa.Engine, ticket_id: str, step: Callable[[Ticket], Ticket]) -> None:
    """Move a stored ticket on, as the fleet's ticket routes do."""
    with Session(engine) as session, session.begin():
        row = store.ticket_for_update(session, ticket_id)
        store.save_ticket(row, step(row.ticket()))


def arrive(at: int) -> Callable[[Ticket], Ticket]:
    return lambda t: tickets.transition(
        t, Action.ARRIVE, at=at, by="tech-7", verification=Verification.SELF_REPORTED
    )


def escalator(
    engine: sa.Engine, webhook: WebhookReceiver | None = None, smtp: SmtpServer | None = None
) -> Escalator:
    settings = EscalationSettings(
        webhook=WebhookSettings(url=webhook.url, timeout_s=5) if webhook else None,
        email=EmailSettings(
            host=smtp.host,
            port=smtp.port,
            from_addr="fleet@city.example",
            to_addrs=("ops@city.example",),
            timeout_s=5,
        )
        if smtp
        else None,
        retry_after_s=60,
        retry_max_s=3600,
        claim_lease_s=300,
    )
    return Escalator(engine, settings, policy=POLICY)


def record(engine: sa.Engine, key: str) -> EscalationSent:
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(sa.select(EscalationSent).where(EscalationSent.key == key)).one()


def steps(ticket_id: str, *names: str) -> list[str]:
    return [f"{ticket_id}/{name}" for name in names]


def test_steps_go_out_when_due_and_not_before(
    fleet_engine: sa.Engine, webhook: WebhookReceiver, smtp: SmtpServer
) -> None:
    t = open_ticket(fleet_engine)
    hooks = escalator(fleet_engine, webhook, smtp)
    timeline = [
        (RESPONSE_WARNING_DUE - 1, []),
        (RESPONSE_WARNING_DUE, ["response-warning"]),
        (RESPONSE_BREACH_DUE - 1, ["response-warning"]),
        (RESPONSE_BREACH_DUE, ["response-warning", "response-breach"]),
        (RESOLUTION_WARNING_DUE - 1, ["response-warning", "response-breach"]),
        (RESOLUTION_WARNING_DUE, ["response-warning", "response-breach", "resolution-warning"]),
        (RESOLUTION_BREACH_DUE - 1, ["response-warning", "response-breach", "resolution-warning"]),
        (
            RESOLUTION_BREACH_DUE,
            ["response-warning", "response-breach", "resolution-warning", "resolution-breach"],
        ),
    ]
    for now, expected in timeline:
        hooks.run_once(now)
        assert webhook.accepted_keys() == steps(t, *expected), now - T0
        assert smtp.sink.keys() == steps(t, *expected), now - T0
    breach = record(fleet_engine, f"{t}/response-breach")
    assert (breach.state, breach.sent_at_ms, breach.attempts) == ("sent", RESPONSE_BREACH_DUE, 1)
    assert (breach.channels, breach.delivered, breach.last_error) == ("email,webhook", "email,webhook", None)
    resolution = webhook.accepted()[3]
    assert (resolution["deadline_ms"], resolution["due_since_ms"]) == (T0 + 3 * HOUR, RESOLUTION_BREACH_DUE)
    assert smtp.sink.mails[3].message["Subject"] == (
        f"[watchpost] SLA breach: resolution-breach, ticket {t}, door at pole-0412"
    )


def test_a_restart_sends_nothing_twice(fleet_engine: sa.Engine, webhook: WebhookReceiver) -> None:
    t = open_ticket(fleet_engine)
    escalator(fleet_engine, webhook).run_once(RESOLUTION_BREACH_DUE)
    assert len(webhook.accepted()) == 4
    restarted = escalator(fleet_engine, webhook)  # a new process, the same database
    assert restarted.run_once(RESOLUTION_BREACH_DUE).sent == []
    assert restarted.run_once(REPORT_BREACH_DUE - 1).sent == []
    assert restarted.run_once(REPORT_BREACH_DUE).sent == steps(t, "report-breach")
    assert webhook.accepted_keys() == steps(
        t, "response-warning", "response-breach", "resolution-warning", "resolution-breach", "report-breach"
    )
    assert len(webhook.posts) == 5


def test_a_pause_moves_the_deadlines_and_nothing_falls_due_during_it(
    fleet_engine: sa.Engine, webhook: WebhookReceiver
) -> None:
    t = open_ticket(fleet_engine)
    hooks = escalator(fleet_engine, webhook)
    change(fleet_engine, t, lambda x: tickets.pause(x, at=T0 + HOUR, by="op-1", reason="power utility"))
    # Ten hours in, unpaused, four steps would be due; paused, the remaining time is frozen.
    assert hooks.run_once(T0 + 10 * HOUR).sent == []
    change(fleet_engine, t, lambda x: tickets.resume(x, at=T0 + 10 * HOUR, by="op-1"))
    # Nine paused hours: the response deadline moves from 10:00 to 19:00, its warning to 18:30.
    assert hooks.run_once(T0 + 10 * HOUR + 30 * MINUTE).sent == []
    assert hooks.run_once(T0 + 10 * HOUR + 30 * MINUTE + 1).sent == steps(t, "response-warning")
    (warning,) = webhook.accepted()
    assert warning["deadline_ms"] == T0 + 11 * HOUR
    assert "(2026-01-05 19:00 UTC)" in warning["text"]


def test_an_arrival_and_a_resolve_stop_their_steps(fleet_engine: sa.Engine, webhook: WebhookReceiver) -> None:
    t = open_ticket(fleet_engine)
    hooks = escalator(fleet_engine, webhook)
    hooks.run_once(RESPONSE_WARNING_DUE)
    change(fleet_engine, t, arrive(T0 + 100 * MINUTE))
    assert hooks.run_once(RESPONSE_BREACH_DUE).sent == []  # the technician is there
    assert hooks.run_once(RESOLUTION_WARNING_DUE).sent == steps(t, "resolution-warning")
    change(
        fleet_engine,
        t,
        lambda x: tickets.transition(
            x, Action.RESOLVE, at=T0 + 160 * MINUTE, by="tech-7", verification=Verification.SELF_REPORTED
        ),
    )
    assert hooks.run_once(RESOLUTION_BREACH_DUE).sent == []  # fixed in time
    # Resolved is not reported: the report clock still runs and its breach still goes out.
    assert hooks.run_once(REPORT_BREACH_DUE).sent == steps(t, "report-breach")
    assert webhook.accepted_keys() == steps(t, "response-warning", "resolution-warning", "report-breach")


def test_a_cancelled_ticket_escalates_nothing(fleet_engine: sa.Engine, webhook: WebhookReceiver) -> None:
    t = open_ticket(fleet_engine)
    change(fleet_engine, t, lambda x: tickets.transition(x, Action.CANCEL, at=T0 + MINUTE, by="fleet"))
    assert escalator(fleet_engine, webhook).run_once(REPORT_BREACH_DUE).sent == []
    assert webhook.posts == []


def test_a_failed_webhook_is_retried_with_backoff_and_sent_once(
    fleet_engine: sa.Engine, webhook: WebhookReceiver, smtp: SmtpServer
) -> None:
    t = open_ticket(fleet_engine)
    key = f"{t}/response-warning"
    hooks = escalator(fleet_engine, webhook, smtp)
    webhook.statuses = [500, 500]  # then 200
    first = RESPONSE_WARNING_DUE
    assert hooks.run_once(first).failed == [key]
    row = record(fleet_engine, key)
    assert (row.state, row.attempts, row.delivered) == ("retry", 1, "email")  # the mail went out
    assert row.next_attempt_ms == first + 60_000  # retry_after_s
    assert row.last_error is not None
    assert "webhook: " in row.last_error
    assert "answered 500" in row.last_error
    assert len(webhook.posts) == 1

    assert hooks.run_once(first + 59_999).failed == []  # not yet
    assert len(webhook.posts) == 1
    second = first + 60_000
    assert hooks.run_once(second).failed == [key]
    row = record(fleet_engine, key)
    assert (row.attempts, row.next_attempt_ms) == (2, second + 120_000)  # doubled

    assert len(webhook.posts) == 2
    third = second + 120_000
    assert hooks.run_once(third - 1).sent == []
    assert hooks.run_once(third).sent == [key]
    row = record(fleet_engine, key)
    assert (row.state, row.attempts, row.sent_at_ms, row.next_attempt_ms) == ("sent", 3, third, None)
    assert row.delivered == "email,webhook"

    hooks.run_once(third + HOUR)  # and later: the response breach is due now, the warning is done
    assert [p.status for p in webhook.posts if p.body["key"] == key] == [500, 500, 200]
    assert smtp.sink.keys().count(key) == 1  # the mail was not repeated by the webhook's retries


def test_the_backoff_doubles_up_to_its_ceiling(fleet_engine: sa.Engine, webhook: WebhookReceiver) -> None:
    hooks = escalator(fleet_engine, webhook)  # 60 s, doubling, at most 3600 s
    assert [hooks.backoff_ms(n) for n in range(1, 9)] == [
        60_000,
        120_000,
        240_000,
        480_000,
        960_000,
        1_920_000,
        3_600_000,
        3_600_000,
    ]


def test_a_retry_is_moot_once_its_clock_stopped(fleet_engine: sa.Engine, webhook: WebhookReceiver) -> None:
    t = open_ticket(fleet_engine)
    key = f"{t}/response-warning"
    hooks = escalator(fleet_engine, webhook)
    webhook.statuses = [503]
    assert hooks.run_once(RESPONSE_WARNING_DUE).failed == [key]
    change(fleet_engine, t, arrive(RESPONSE_WARNING_DUE + 1000))
    report = hooks.run_once(RESPONSE_WARNING_DUE + 60_000)
    assert (report.moot, report.sent, report.failed) == ([key], [], [])
    row = record(fleet_engine, key)
    assert (row.state, row.next_attempt_ms, row.sent_at_ms) == ("moot", None, None)
    assert [p.status for p in webhook.posts] == [503]
    assert hooks.run_once(RESPONSE_WARNING_DUE + HOUR).moot == []  # decided once


class Crash(BaseException):
    """The worker dies (power cut) in the middle of sending."""


class DyingWebhook:
    channel = "webhook"

    def send(self, notice: Notice) -> None:
        raise Crash(notice.key)


def test_a_worker_that_died_mid_send_is_taken_over_once_its_lease_ran_out(
    fleet_engine: sa.Engine, webhook: WebhookReceiver
) -> None:
    t = open_ticket(fleet_engine)
    key = f"{t}/response-warning"
    dying = Escalator(
        fleet_engine, escalator(fleet_engine, webhook).settings, policy=POLICY, senders=[DyingWebhook()]
    )
    with pytest.raises(Crash):
        dying.run_once(RESPONSE_WARNING_DUE)
    row = record(fleet_engine, key)
    assert (row.state, row.next_attempt_ms) == ("sending", RESPONSE_WARNING_DUE + 300_000)  # the lease

    survivor = escalator(fleet_engine, webhook)
    assert survivor.run_once(RESPONSE_WARNING_DUE + 299_999).sent == []  # the claim still holds
    assert webhook.posts == []
    assert survivor.run_once(RESPONSE_WARNING_DUE + 300_000).sent == [key]
    assert webhook.accepted_keys() == [key]
    assert record(fleet_engine, key).attempts == 2


def test_two_workers_at_once_send_each_step_exactly_once(
    fleet_engine: sa.Engine, webhook: WebhookReceiver, smtp: SmtpServer
) -> None:
    ids = [open_ticket(fleet_engine, FaultKey(f"pole-{n:04}", "cabinet", "door")) for n in range(12)]
    names = ("response-warning", "response-breach", "resolution-warning", "resolution-breach")
    expected = sorted(key for t in ids for key in steps(t, *names))
    engines = [make_engine(fleet_engine.url.render_as_string(hide_password=False)) for _ in range(2)]
    workers = [escalator(engine, webhook, smtp) for engine in engines]
    start = threading.Barrier(len(workers))
    sent: list[list[str]] = [[] for _ in workers]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait(10)
            for _ in range(3):  # and again, as the loop would
                sent[n].extend(workers[n].run_once(RESOLUTION_BREACH_DUE).sent)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert sorted(webhook.accepted_keys()) == expected  # 48 steps, none twice
    assert sorted(smtp.sink.keys()) == expected
    assert sorted(sent[0] + sent[1]) == expected  # each claimed by exactly one worker
    assert len(webhook.posts) == 48


def test_the_run_loop_sends_on_its_clock_until_stopped(
    fleet_engine: sa.Engine, webhook: WebhookReceiver
) -> None:
    t = open_ticket(fleet_engine)
    ticks: list[int] = []

    def clock() -> int:
        ticks.append(RESPONSE_WARNING_DUE)
        return RESPONSE_WARNING_DUE

    hooks = Escalator(fleet_engine, escalator(fleet_engine, webhook).settings, policy=POLICY, clock_ms=clock)
    stop = threading.Event()
    loop = threading.Thread(target=hooks.run, args=(stop, 0.01))
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while len(ticks) < 20:  # many runs, each reading the injected clock
            assert time.monotonic() < deadline, len(ticks)
            time.sleep(0.01)
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
    assert webhook.accepted_keys() == [f"{t}/response-warning"]  # one post however many runs
