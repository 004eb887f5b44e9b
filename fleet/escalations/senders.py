"""The channels an escalation goes out on: a webhook (JSON over HTTP POST, stdlib urllib) and
e-mail (plain text over SMTP, stdlib smtplib). The only modules of the fleet that speak HTTP
out or SMTP. Each `send` blocks until the notice was taken or raises a `SendError` saying why;
the runner records the outcome and retries, so nothing here retries on its own."""

from __future__ import annotations

import email.policy
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from fleet.escalations.errors import EmailError, WebhookError
from fleet.escalations.notice import Notice, utc_text
from fleet.escalations.settings import EmailSettings, WebhookSettings

log = logging.getLogger(__name__)

_UNFOLDED = email.policy.default.clone(max_line_length=998)  # RFC 5322: at most 998

WEBHOOK = "webhook"
EMAIL = "email"


class Sender(Protocol):
    """One channel: `channel` names it in the records (`webhook`, `email`)."""

    @property
    def channel(self) -> str: ...

    def send(self, notice: Notice) -> None:
        """Deliver `notice` or raise a `SendError`."""
        ...


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would arrive elsewhere as a GET without its body: call it a failure.
    def redirect_request(self, *_: object, **__: object) -> None:
        return None


class WebhookSender:
    """POSTs the notice's JSON (`Notice.to_json`) with an `Idempotency-Key` header carrying the
    step's key, so a receiver can drop the rare repeat after a worker died mid-send."""

    channel = WEBHOOK

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    def send(self, notice: Notice) -> None:
        url = self.settings.url
        request = urllib.request.Request(
            url,
            data=json.dumps(notice.to_json()).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Idempotency-Key": notice.key,
                "User-Agent": "watchpost-fleet",
            },
        )
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as response:
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                excerpt = _excerpt(exc.read())
            raise WebhookError(
                "status", f"{url} answered {exc.code} {exc.reason}{excerpt}", url=url, status=exc.code
            ) from exc
        except urllib.error.URLError as exc:
            raise _connection_error(url, exc.reason) from exc
        except OSError as exc:  # a timeout or reset while reading the answer
            raise _connection_error(url, exc) from exc
        if not 200 <= status < 300:
            raise WebhookError("status", f"{url} answered {status}, not 2xx", url=url, status=status)


def _connection_error(url: str, reason: object) -> WebhookError:
    if isinstance(reason, TimeoutError):
        return WebhookError("timeout", f"{url} did not answer within the timeout", url=url)
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return WebhookError("tls", f"{url}: TLS failed: {reason}", url=url)
    return WebhookError("unreachable", f"{url} is unreachable: {reason}", url=url)


def _excerpt(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


class EmailSender:
    """Sends the notice as a plain-text mail through one relay, to every configured address."""

    channel = EMAIL

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    def message(self, notice: Notice) -> EmailMessage:
        s = self.settings
        # Unfolded headers: the stdlib folds a subject of 70-odd characters right after
        # `Subject:`, and many readers then show it with a leading space.
        mail = EmailMessage(policy=_UNFOLDED)
        mail["Subject"] = notice.subject()
        mail["From"] = s.from_addr
        mail["To"] = ", ".join(s.to_addrs)
        mail["Date"] = formatdate(usegmt=True)
        # The sender's domain, not socket.getfqdn(): that can wait on DNS for seconds.
        mail["Message-ID"] = make_msgid(domain=s.from_addr.rpartition("@")[2])
        mail["X-Watchpost-Key"] = notice.key
        lines = [
            notice.sentence(),
            "",
            f"ticket:    {notice.ticket_id}",
            f"node:      {notice.node_id}",
            f"component: {notice.component}",
            f"fault:     {notice.fault_kind} ({notice.severity})",
            f"opened:    {utc_text(notice.opened_at_ms)}",
            f"clock:     {notice.clock}",
            f"deadline:  {utc_text(notice.deadline_ms)}",
            f"step:      {notice.step}",
            "",
            f"Sent once per ticket and step (key {notice.key}).",
        ]
        mail.set_content("\n".join(lines) + "\n")
        return mail

    def send(self, notice: Notice) -> None:
        s = self.settings
        relay = f"{s.host}:{s.port}"
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=s.ca_file))
                if s.username is not None and s.password is not None:
                    smtp.login(s.username, s.password)
                refused = smtp.send_message(self.message(notice))
        except smtplib.SMTPAuthenticationError as exc:
            raise EmailError(
                "auth", f"{relay} refused the login: {_reply(exc)}", host=s.host, code=exc.smtp_code
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise EmailError("tls", f"{relay} does not offer STARTTLS", host=s.host) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise EmailError(
                "refused", f"{relay} refused every recipient: {exc.recipients}", host=s.host
            ) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise EmailError(
                "refused",
                f"{relay} refused the sender {exc.sender}: {_reply(exc)}",
                host=s.host,
                code=exc.smtp_code,
            ) from exc
        except smtplib.SMTPConnectError as exc:
            raise EmailError(
                "unreachable", f"{relay} refused the connection: {_reply(exc)}", host=s.host
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise EmailError(
                "protocol", f"{relay} answered {_reply(exc)}", host=s.host, code=exc.smtp_code
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise EmailError("unreachable", f"{relay} closed the connection: {exc}", host=s.host) from exc
        except smtplib.SMTPException as exc:
            raise EmailError("protocol", f"{relay}: {exc}", host=s.host) from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise EmailError("tls", f"{relay}: TLS failed: {exc}", host=s.host) from exc
        except TimeoutError as exc:
            raise EmailError("timeout", f"{relay} did not answer within the timeout", host=s.host) from exc
        except OSError as exc:
            raise EmailError("unreachable", f"{relay} is unreachable: {exc}", host=s.host) from exc
        if refused:
            # The others have it; sending again would repeat it to them. Say so and go on.
            log.warning("escalation %s: %s refused some recipients: %s", notice.key, relay, refused)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return f"{exc.smtp_code} {text}"
