"""Opening the Redis client, and telling a Redis failure from a bug.

coredis runs its connections in its own task group, so a lost server surfaces
as an exception group; ``redis_failure`` says whether every exception in it is
a Redis or socket error (then the caller retries) and describes it without
the password (coredis names only host and port). A refused or missing
password is said as such, naming where the password comes from.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import coredis
import trio
from coredis.exceptions import AuthenticationError, RedisError
from coredis.retry import NoRetryPolicy

from northstard.core.backplane.settings import CREDENTIAL, BackplaneSettings
from northstard.errors import ConfigError

__all__ = ["Redis", "open_redis", "read_password", "redis_failure"]

Redis = coredis.Redis[str]
FAILURES = (RedisError, OSError, trio.TooSlowError)


@asynccontextmanager
async def open_redis(settings: BackplaneSettings) -> AsyncIterator[Redis]:
    client: Redis = coredis.Redis.from_url(
        settings.url, decode_responses=True, password=settings.password,
        connect_timeout=settings.timeout_s, retry_policy=NoRetryPolicy(),
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
        return f"{type(exc).__name__}: {exc}"
    return None


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
