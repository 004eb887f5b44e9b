"""The channels against real receivers on loopback: the webhook's JSON and its failures by
reason, the mail as it arrives at a real SMTP server, with STARTTLS and a login too."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime

import pytest

from fleet.escalations.errors import EmailError, WebhookError
from fleet.escalations.notice import Notice
from fleet.escalations.senders import EmailSender, WebhookSender
from fleet.escalations.settings import EmailSettings, WebhookSettings
from tests.fleet.escalations.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, WebhookReceiver
from watchpost.broker import free_port

T0 = int(datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
HOUR = 60 * MINUTE

# A critical door fault opened at 08:00: a technician is due on site by 10:00 (2 h), so the
# 30-minute warning fell due just after 09:30.
WARNING = Notice(
    key="t-1/response-warning",
    ticket_id="t-1",
    step="response-warning",
    clock="response",
    after_ms=-30 * MINUTE,
    node_id="pole-0412",
    component="cabinet",
    fault_kind="door",
    severity="critical",
    opened_at_ms=T0,
    deadline_ms=T0 + 2 * HOUR,
    due_since_ms=T0 + 90 * MINUTE + 1,
)
WARNING_TEXT = (
    "Ticket t-1, critical door fault at pole-0412 (cabinet): 30 min left to have a technician on "
    "site by the response deadline (2026-01-05 10:00 UTC)."
)


def mail_settings(server: SmtpServer, **changes: object) -> EmailSettings:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "from_addr": "fleet@watchpost.example",
        "to_addrs": ("ops@city.example", "dispatch@contractor.example"),
        "timeout_s": 5.0,
    }
    values.update(changes)
    return EmailSettings(**values)  # type: ignore[arg-type]


def test_the_webhook_posts_the_notice_as_json(webhook: WebhookReceiver) -> None:
    WebhookSender(WebhookSettings(url=webhook.url)).send(WARNING)
    (post,) = webhook.posts
    assert post.path == "/hooks/watchpost"
    assert post.headers["Content-Type"] == "application/json; charset=utf-8"
    assert post.headers["Idempotency-Key"] == "t-1/response-warning"
    body = post.body
    assert (body["ticket_id"], body["node_id"], body["component"]) == ("t-1", "pole-0412", "cabinet")
    assert (body["fault_kind"], body["severity"], body["clock"]) == ("door", "critical", "response")
    assert (body["step"], body["after_ms"]) == ("response-warning", -1_800_000)
    assert body["deadline_ms"] == T0 + 7_200_000
    assert body["deadline"] == "2026-01-05T10:00:00+00:00"
    assert body["text"] == WARNING_TEXT


def test_the_breach_sentence_says_the_deadline_passed() -> None:
    breach = _replace(WARNING, step="response-breach", after_ms=0)
    assert breach.sentence() == (
        "Ticket t-1, critical door fault at pole-0412 (cabinet): the response deadline passed without "
        "a technician on site (2026-01-05 10:00 UTC)."
    )
    late = _replace(WARNING, step="response-late", after_ms=90 * MINUTE)
    assert "1 h 30 min past the response deadline without a technician on site" in late.sentence()
    assert breach.subject() == "[watchpost] SLA breach: response-breach, ticket t-1, door at pole-0412"


def _replace(notice: Notice, **changes: object) -> Notice:
    return dataclasses.replace(notice, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [500, 404, 307])
def test_a_webhook_answer_other_than_2xx_is_an_error_naming_the_status(
    webhook: WebhookReceiver, status: int
) -> None:
    webhook.statuses = [status]
    with pytest.raises(WebhookError) as caught:
        WebhookSender(WebhookSettings(url=webhook.url)).send(WARNING)
    assert (caught.value.reason, caught.value.status, caught.value.channel) == ("status", status, "webhook")
    assert f"answered {status}" in str(caught.value)
    assert "receiver says no" in str(caught.value)  # the receiver's own words, for the operator
    assert len(webhook.posts) == 1  # a redirect is not followed


def test_a_webhook_nobody_listens_on_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(WebhookError) as caught:
        WebhookSender(WebhookSettings(url=url, timeout_s=5)).send(WARNING)
    assert (caught.value.reason, caught.value.status, caught.value.url) == ("unreachable", None, url)


def test_a_webhook_that_does_not_answer_in_time_times_out(webhook: WebhookReceiver) -> None:
    webhook.hold = threading.Event()  # the receiver keeps the request until the test is done
    try:
        with pytest.raises(WebhookError) as caught:
            WebhookSender(WebhookSettings(url=webhook.url, timeout_s=0.3)).send(WARNING)
    finally:
        webhook.hold.set()
    assert caught.value.reason == "timeout"


def test_the_mail_arrives_with_its_subject_and_body(smtp: SmtpServer) -> None:
    EmailSender(mail_settings(smtp)).send(WARNING)
    (mail,) = smtp.sink.mails
    assert mail.mail_from == "fleet@watchpost.example"
    assert mail.rcpt_tos == ["ops@city.example", "dispatch@contractor.example"]
    message = mail.message
    assert message["Subject"] == "[watchpost] SLA warning: response-warning, ticket t-1, door at pole-0412"
    assert message["To"] == "ops@city.example, dispatch@contractor.example"
    assert message["X-Watchpost-Key"] == "t-1/response-warning"
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert body.splitlines()[0] == WARNING_TEXT
    assert "deadline:  2026-01-05 10:00 UTC" in body
    assert "opened:    2026-01-05 08:00 UTC" in body


def test_the_mail_goes_over_starttls_with_a_login(smtp_tls: SmtpServer) -> None:
    settings = mail_settings(
        smtp_tls, starttls=True, username=SMTP_USER, password=SMTP_PASSWORD, ca_file=str(smtp_tls.ca)
    )
    EmailSender(settings).send(WARNING)
    assert smtp_tls.sink.logins == [SMTP_USER]
    assert smtp_tls.sink.keys() == ["t-1/response-warning"]


def test_a_wrong_password_is_an_auth_error(smtp_tls: SmtpServer) -> None:
    settings = mail_settings(
        smtp_tls, starttls=True, username=SMTP_USER, password="not-the-one", ca_file=str(smtp_tls.ca)
    )
    with pytest.raises(EmailError) as caught:
        EmailSender(settings).send(WARNING)
    assert (caught.value.reason, caught.value.code, caught.value.channel) == ("auth", 535, "email")
    assert smtp_tls.sink.mails == []


def test_a_relay_certificate_nobody_vouches_for_is_a_tls_error(smtp_tls: SmtpServer) -> None:
    settings = mail_settings(smtp_tls, starttls=True, username=SMTP_USER, password=SMTP_PASSWORD)
    with pytest.raises(EmailError) as caught:
        EmailSender(settings).send(WARNING)  # the system's CAs do not know the test CA
    assert caught.value.reason == "tls"
    assert smtp_tls.sink.logins == []  # the password never went out


def test_a_relay_nobody_listens_on_is_unreachable() -> None:
    server = SmtpServer("127.0.0.1", free_port(), sink=None)  # type: ignore[arg-type]
    with pytest.raises(EmailError) as caught:
        EmailSender(mail_settings(server)).send(WARNING)
    assert (caught.value.reason, caught.value.host) == ("unreachable", "127.0.0.1")
