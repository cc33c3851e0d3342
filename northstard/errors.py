"""Every error northstard raises on purpose.

    NorthstardError
    ├── ConfigError          a bad config file or environment override (exit code 2)
    ├── ListenError          a listener cannot bind its address (exit code 2 for the web edge)
    ├── PluginError          a plugin failed to load, or two plugins share a name
    ├── SourceError          a source poll failed (network, HTTP status, auth)
    │   ├── NotConfigured    no credentials: the source is off       (authenticated = False)
    │   ├── Unreachable      no answer: connect failure, time limit  (reachable = False)
    │   ├── HttpStatusError  an answer with a status we refuse       (status = 401, 500, ...)
    │   │   └── RateLimited  429 after the retries, or still inside a Retry-After
    │   ├── SchemaDriftError a source answered with a shape we do not accept (or malformed JSON)
    │   └── BodyTooLarge     a source's body passed its max_body_bytes (after decompression)
    ├── StoreError           SQLite failed (disk full, read-only, corrupt)
    ├── WriterGone           the writer's process crashed or ended (the actor is restarted)
    └── RequestError         a client sent a bad request or frame (a 4xx)

Foreign errors (httpx, sqlite3, grpc) are translated once, at the boundary
where they happen, with ``raise XError(...) from exc``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

__all__ = [
    "BodyTooLarge",
    "ConfigError",
    "HttpStatusError",
    "LifespanError",
    "ListenError",
    "NorthstardError",
    "NotConfigured",
    "PluginError",
    "RateLimited",
    "RequestError",
    "SchemaDriftError",
    "SourceError",
    "StoreError",
    "Unreachable",
    "WriterGone",
    "leaf",
]


class NorthstardError(Exception):
    """Base of every error northstard raises on purpose."""


class ConfigError(NorthstardError):
    """A config key is unknown, mistyped or impossible. ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config error: {key}: {problem}")
        self.key = key
        self.problem = problem


class ListenError(NorthstardError):
    """A listener cannot bind: one line naming the address and the key to change."""

    def __init__(self, address: str, key: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address} ({key}): {reason}")
        self.address = address
        self.key = key
        self.reason = reason

    @classmethod
    def from_os_error(cls, address: str, section: str, exc: OSError) -> ListenError:
        """``exc`` from ``bind``: the host is to blame for an address this machine lacks, else the port."""
        unknown_host = isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
        reason = (exc.strerror or str(exc)).lower()
        return cls(address, f"{section}.{'host' if unknown_host else 'port'}", reason)


class LifespanError(NorthstardError):
    """The web app's ASGI lifespan start-up (or shutdown) failed."""


class PluginError(NorthstardError):
    """A plugin could not be loaded or registered."""


class SourceError(NorthstardError):
    """One poll of a source failed; the source is marked failing, nothing else stops."""


class SchemaDriftError(SourceError):
    """A source answered with a field missing, renamed or of the wrong type."""


class BodyTooLarge(SourceError):
    """An upstream body (or WebSocket message) grew past its limit; it was refused unread."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class NotConfigured(SourceError):
    """The source has no credentials: it is off and never calls its API."""

    reachable = False
    authenticated = False


class Unreachable(SourceError):
    """The API did not answer (connect failure or time limit)."""

    reachable = False


class HttpStatusError(SourceError):
    """The API answered with a status we do not accept."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(HttpStatusError):
    """429: the API asked us to slow down; ``retry_in_s`` is how long, when known."""

    def __init__(self, message: str, retry_in_s: float) -> None:
        super().__init__(message, 429)
        self.retry_in_s = retry_in_s


class StoreError(NorthstardError):
    """The SQLite store failed."""


class WriterGone(NorthstardError):
    """The writer's process (``store/writer_child``) crashed or ended before answering."""


class RequestError(NorthstardError):
    """A client request or frame is invalid: answer ``status`` with a JSON ``{error, detail}`` body.

    ``headers`` go with the answer (``Allow`` for a 405, ``WWW-Authenticate`` for a 401).
    """

    def __init__(self, error: str, detail: str, status: int = 400,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail
        self.status = status
        self.headers = tuple(headers)


def leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups (trio nurseries)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
