"""Opening the Redis client, and telling a Redis failure from a bug.

coredis runs its connections in its own task group, so a lost server surfaces
as an exception group; ``redis_failure`` says whether every exception in it is
a Redis or socket error (then the caller retries) and describes it without
the password (coredis names only host and port). A refused or missing
password is said as such, naming where the password comes from.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import coredis
import trio
from coredis.exceptions import AuthenticationError, RedisError
from coredis.retry import NoRetryPolicy

from northstard.core.backplane.settings import CREDENTIAL, BackplaneSettings
from northstard.errors import ConfigError

__all__ = ["Redis", "open_redis", "read_password", "read_tls", "redis_failure"]

Redis = coredis.Redis[str]
FAILURES = (RedisError, OSError, trio.TooSlowError)


@asynccontextmanager
async def open_redis(settings: BackplaneSettings) -> AsyncIterator[Redis]:
    tls: dict[str, Any] = {"ssl_context": settings.tls} if settings.tls is not None else {}
    client: Redis = coredis.Redis.from_url(
        settings.url, decode_responses=True, password=settings.password,
        connect_timeout=settings.timeout_s, retry_policy=NoRetryPolicy(), **tls,
    )
    async with client:
        yield client


def redis_failure(exc: BaseException) -> str | None:
    """``Type: message`` when ``exc`` (or every leaf of its group) is a Redis/socket failure."""
    if isinstance(exc, BaseExceptionGroup):
        parts = [redis_failure(inner) for inner in exc.exceptions]
        return "; ".join(p for p in parts if p) if all(parts) else None
    if isinstance(exc, AuthenticationError):
        return (f"Redis refused to authenticate ({type(exc).__name__}): check backplane.password_file"
                f" or $CREDENTIALS_DIRECTORY/{CREDENTIAL}")
    if isinstance(exc, FAILURES):
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"{type(exc).__name__}: {exc}: TLS: certificate verify failed:"
                    f" {cause.verify_message}: the Redis server's certificate is not trusted"
                    " (backplane.ca_file)")
        if isinstance(cause, ssl.SSLError):
            return f"{type(exc).__name__}: {exc}: TLS: {cause.reason or cause}"
        return f"{type(exc).__name__}: {exc}"
    return None


def read_tls(url: str, ca_file: Path | None) -> ssl.SSLContext | None:
    """The TLS context of a rediss:// URL with ``ca_file`` (verifying against it: the server's
    certificate and its name); None without one (coredis verifies with the system's CAs)."""
    if ca_file is None:
        return None
    if urlsplit(url).scheme != "rediss":
        raise ConfigError("backplane.ca_file", "only with a rediss:// url (TLS)")
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("backplane.ca_file", f"cannot read CA certificates: {reason}") from None


def read_password(path: Path | None) -> str | None:
    """From ``password_file``, else ``$CREDENTIALS_DIRECTORY/backplane.password``, else none."""
    if path is None:
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        candidate = Path(credentials) / CREDENTIAL if credentials else None
        if candidate is None or not candidate.exists():
            return None
        path = candidate
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise ConfigError("backplane.password_file", f"cannot read: {exc.strerror}") from None
