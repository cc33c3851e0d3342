"""The REST rate limit: an ASGI middleware in front of the Quart app (``[limits]`` rest_*).

Each HTTP request takes a token of its client address's bucket
(``limits.RateLimiter``); with none left it is answered here, before the app
runs: ``429`` with ``Retry-After`` and ``{"error": "rate_limited", ...}``.
Loopback is exempt when ``limits.exempt_loopback`` (a local reverse proxy
sends everything from 127.0.0.1: limit per client there). Lifespan and
WebSocket scopes pass through.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from northstard.core.change import dumps
from northstard.policy.limits import Limits
from northstard.status.metrics import Metrics

__all__ = ["RateLimited", "retry_after"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, object]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def retry_after(wait: float) -> int:
    """Whole seconds for ``Retry-After``: at least 1."""
    return max(1, math.ceil(wait))


class RateLimited:
    """``app`` behind the per-address REST token buckets of ``limits``."""

    def __init__(self, app: Asgi, limits: Limits, metrics: Metrics | None = None) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics

    def __repr__(self) -> str:
        return f"<RateLimited {self.limits.rest!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client") or ("", 0)
            host = str(client[0])
            if not self.limits.exempt(host):
                wait = self.limits.rest.take(host, trio.current_time())
                if wait:
                    await self._refuse(send, retry_after(wait))
                    return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, seconds: int) -> None:
        if self.metrics is not None:
            self.metrics.refused.labels("request_rate").inc()
        rate = self.limits.settings.rest_rate_per_s
        body = dumps({"error": "rate_limited",
                      "detail": f"over {rate:g} requests/s from this address; retry in {seconds} s"}).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", str(seconds).encode()),
                   (b"content-length", str(len(body)).encode()), (b"x-content-type-options", b"nosniff")]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
