"""The email notifier against a real SMTP server on 127.0.0.1 (aiosmtpd, the fake of the outside
world): STARTTLS with a certificate the notifier verifies, a login, the message received; the
daemon delivers a firing alert by email through the outbox."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from northstard.actors.email_notifier import Email
from northstard.core.records import Cost

from certs import self_signed
from scripted import FEEDS

PASSWORD = "smtp-pass-93ad"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.notify: Any = None  # called (from the server's thread) after each message


    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if self.notify is not None:
            self.notify()
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd's start() connects to its port: it needs a real one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=inbox.authenticate,
                            auth_require_tls=True)
    controller.start()
    try:
        yield inbox, port, cert
    finally:
        controller.stop()


EVENT = {"id": 7, "alert": "budget", "event": "firing", "severity": "critical", "ts": 0,
         "epoch": "e", "seq": 3, "text": "[critical] budget FIRING: costs.total (value) above 10",
         "explain": "/api/pnl/explain?from=e:2&to=e:3"}


async def test_starttls_login_and_the_message(smtp: tuple[Inbox, int, Path]) -> None:
    inbox, port, cert = smtp
    email = Email("mail", "127.0.0.1", port, "northstard@example.com", ("ops@example.com",),
                  "northstard", PASSWORD, ca_file=cert, timeout_s=5)
    assert await email.send(None, EVENT) is None
    ((sender, rcpts, content),) = inbox.messages
    assert (sender, rcpts, inbox.logins) == ("northstard@example.com", ["ops@example.com"], ["northstard"])
    message = message_from_bytes(content, policy=policy.default)
    assert message["Subject"] == EVENT["text"]
    assert "/api/pnl/explain?from=e:2&to=e:3" in message.get_content()
    wrong = Email("mail", "127.0.0.1", port, "n@example.com", ("o@example.com",), "northstard", "nope",
                  ca_file=cert, timeout_s=5)
    error = await wrong.send(None, EVENT)
    assert error in ("mail: SMTP 535", "mail: SMTPServerDisconnected")  # refused; the password not shown
    untrusted = Email("mail", "127.0.0.1", port, "n@example.com", ("o@example.com",), timeout_s=5)
    assert await untrusted.send(None, EVENT) == "mail: SSLCertVerificationError"
    assert len(inbox.messages) == 1


async def test_the_daemon_mails_a_firing_alert(
    smtp: tuple[Inbox, int, Path], start_daemon: Any, tmp_path: Path
) -> None:
    inbox, port, cert = smtp
    arrived = trio.Event()
    token = trio.lowlevel.current_trio_token()
    inbox.notify = lambda: trio.from_thread.run_sync(arrived.set, trio_token=token)
    (tmp_path / "mail.password").write_text(PASSWORD)
    notifiers = {"mail": {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
                          "from": "northstard@example.com", "to": ["ops@example.com"],
                          "username": "northstard", "ca_file": str(cert),
                          "password_file": str(tmp_path / "mail.password")}}
    await start_daemon({"feed": {"plugin": "scripted"}}, notifiers=notifiers,
                       alerts={"budget": {"metric": "costs.total", "above": "10.00", "notify": ["mail"]}})
    await FEEDS["feed"].push([Cost(id="c1", amount=Decimal("12.00"), category="ai", model="m",
                                   ts=datetime.now(UTC))])
    with trio.fail_after(30):
        await arrived.wait()
    subject = message_from_bytes(inbox.messages[0][2], policy=policy.default)["Subject"]
    assert subject.strip().startswith("[warning] budget FIRING"), subject
