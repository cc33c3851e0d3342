"""Who may open a stream: the auth hook the raw edges call, and the Origin rule.

Shared by the WebSocket and SSE edges (the hook, the Origin check of the
upgrade) and the login route (a cross-site form post is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from northstard.core.http1 import Request

__all__ = ["Authorize", "allow_all", "origin_allowed"]

Authorize = Callable[[Request], None]
"""The auth hook: returns to accept, raises ``RequestError(..., 401 or 403)`` to refuse."""


def allow_all(request: Request) -> None:
    """The default auth hook: every client is accepted."""


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser), the page's own host, or one of ``allowed`` (``*``: any)."""
    if origin is None or "*" in allowed or origin.lower() in (a.lower() for a in allowed):
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()
