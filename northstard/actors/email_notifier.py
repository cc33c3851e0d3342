"""The email notifier: one message per alert event over SMTP, with STARTTLS and a login.

stdlib ``smtplib`` in a worker thread (one connection per message, closed after it), under
``timeout_s`` per socket operation. STARTTLS verifies the server's certificate (the system's
CAs, or ``ca_file``); without ``starttls`` nothing is encrypted, so a login is refused unless
STARTTLS is on. The password is a secret (environment, ``password_file`` or credentials) and
never appears in a log line or an error: failures name the notifier and the error's type.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trio

__all__ = ["Email", "message_for"]


def message_for(event: Mapping[str, object], sender: str, to: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = str(event["text"])[:200]
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["X-Northstard-Event"] = f"{event['id']}"
    message.set_content(f"{event['text']}\n\nWhat moved: {event.get('explain', '')}\n\n"
                        f"{json.dumps(dict(event), indent=2)}\n")
    return message


@dataclass(frozen=True)
class Email:
    name: str
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    ca_file: Path | None = None
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0

    @classmethod
    def from_section(cls, name: str, s: Mapping[str, Any]) -> Email:
        return cls(name, s["smtp_host"], s["smtp_port"], s["from"], tuple(s["to"]), s.get("username"),
                   s.get("password"), s["starttls"], s.get("ca_file"), s["timeout_s"],
                   s["max_attempts"], s["backoff_initial_s"], s["backoff_max_s"])

    async def send(self, client: object, event: Mapping[str, Any]) -> str | None:
        """Deliver one event; None when the server accepted it, else why not."""
        return await trio.to_thread.run_sync(self._send, event)

    def _send(self, event: Mapping[str, object]) -> str | None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    context = ssl.create_default_context(
                        cafile=str(self.ca_file) if self.ca_file else None)
                    smtp.starttls(context=context)
                if self.username and self.password is not None:
                    smtp.login(self.username, self.password)
                smtp.send_message(message_for(event, self.sender, self.to))
        except smtplib.SMTPResponseException as exc:
            return f"{self.name}: SMTP {exc.smtp_code}"
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            return f"{self.name}: {type(exc).__name__}"
        return None
