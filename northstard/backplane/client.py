"""Opening the Redis client, and telling a Redis failure from a bug.

coredis runs its connections in its own task group, so a lost server surfaces
as an exception group; ``redis_failure`` says whether every exception in it is
a Redis or socket error (then the caller retries) and describes it without
the password (coredis names only host and port).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import trio
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy

from northstard.backplane.settings import BackplaneSettings

__all__ = ["Redis", "open_redis", "redis_failure"]

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
    if isinstance(exc, FAILURES):
        return f"{type(exc).__name__}: {exc}"
    return None
