"""Real receivers for the escalation hooks, each on a free loopback port of its own: an HTTP
server for the webhook (answering with scripted statuses) and aiosmtpd's SMTP server for mail,
optionally with STARTTLS and a login."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.pki import make_pki
from watchpost.broker import free_port


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered


class WebhookReceiver:
    """Records every POST and answers with the next status of `statuses` (then 200). With
    `hold` set to an unset Event, it keeps each request waiting until the event is set."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.statuses: list[int] = []
        self.hold: threading.Event | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append(Post(self.path, dict(self.headers), body, status))
                answer = b'{"ok": true}' if status < 300 else b"receiver says no"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (the timeout test): nobody to answer

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/watchpost"

    def accepted(self) -> list[dict[str, Any]]:
        """The bodies answered 2xx, in arrival order."""
        with self._lock:
            return [post.body for post in self.posts if post.status < 300]

    def accepted_keys(self) -> list[str]:
        return [body["key"] for body in self.accepted()]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class MailSink:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def keys(self) -> list[str]:
        return [str(mail.message["X-Watchpost-Key"]) for mail in self.mails]


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sink: MailSink
    ca: Path | None = None  # the CA to trust, when it offers STARTTLS


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server (no TLS, no login), like a control centre's internal relay."""
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, sink)
    finally:
        controller.stop()


SMTP_USER = "watchpost"
SMTP_PASSWORD = "s3cret-relay-pass"


@pytest.fixture
def smtp_tls(tmp_path: Path) -> Iterator[SmtpServer]:
    """An SMTP server that offers STARTTLS (certificate of a throwaway CA) and accepts one
    login, only over TLS."""
    pki = make_pki(tmp_path / "pki", client_name="unused")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    sink = MailSink()

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            sink.logins.append(SMTP_USER)
        return AuthResult(success=ok, handled=False)  # False: the server answers 535 itself

    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, sink, ca=pki.ca)
    finally:
        controller.stop()
