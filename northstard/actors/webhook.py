"""The webhook notifier: one signed JSON POST per alert event.

Body: ``{"text": "...", "alert": EVENT}`` (``text`` makes it a valid Slack
incoming-webhook message). Headers: ``X-Northstard-Signature:
sha256=<hex HMAC-SHA256 of the body with the notifier's secret>`` (when a
secret is set) and ``Idempotency-Key: <event id>-<notifier>``, the same on
every attempt, so a receiver can drop a repeat sent after a crash between
its 2xx and our acknowledgement. A 2xx is delivered; anything else (another
status, a time-out, a refused connection) is a failed attempt. The URL (which
may carry a token) never appears in a log line or an error: the notifier's
name does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Webhook", "backoff_s", "signature"]


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Wait after ``attempts`` failures: initial × 2^(attempts-1), capped; jittered in its upper half."""
    base = min(maximum, initial * 2.0 ** max(attempts - 1, 0))
    return base / 2 + rng.random() * base / 2


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0

    @classmethod
    def from_section(cls, name: str, section: Mapping[str, Any]) -> Webhook:
        return cls(name, section["url"], section.get("secret"), section["timeout_s"],
                   section["max_attempts"], section["backoff_initial_s"], section["backoff_max_s"])

    def request(self, event: Mapping[str, object]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"text": event["text"], "alert": dict(event)}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json",
                   "Idempotency-Key": f"{event['id']}-{self.name}"}
        if self.secret:
            headers["X-Northstard-Signature"] = signature(self.secret, body)
        return body, headers

    async def send(self, client: httpx.AsyncClient, event: Mapping[str, object]) -> str | None:
        """Deliver one event; None when delivered, else why not (without the URL)."""
        body, headers = self.request(event)
        try:
            response = await client.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            return f"{self.name}: timed out after {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return f"{self.name}: {type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"{self.name}: HTTP {response.status_code}"
