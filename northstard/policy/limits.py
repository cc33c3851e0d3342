"""What one client may take: request rates and concurrent streams, with no I/O.

    RateLimiter   a token bucket per key: ``rate`` tokens a second, at most ``burst``;
                  ``take(key, now)`` is 0.0 when allowed, else the seconds until a token
    Concurrency   open streams (or connections) per key and in total; ``acquire(key)`` is None
                  when allowed, else which cap was reached ("total" or "client")
    connection_cap  the total of concurrent connections: the configured cap, and always
                  below the open-files limit by a reserve (SQLite, gRPC, sources, logs)
    OncePer       yes once per key per interval (log a refusal once a minute, not per attempt)
    Limits        the daemon's set of them, built from the ``[limits]`` section

Every per-key table is a bounded LRU: a flood from many addresses evicts the
least recently seen keys (their buckets start full again) instead of growing
memory. ``Concurrency`` keeps only keys with an open stream, so it is bounded
by the streams themselves. The clock is passed in: ``trio.current_time()`` in
the daemon, any number in tests.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Generic, Literal, TypeVar

from northstard.config import default
from northstard.core.hosts import is_loopback
from northstard.core.tokenbucket import TokenBucket
from northstard.settings import LimitsSection

__all__ = ["Concurrency", "LimitSettings", "Limits", "OncePer", "RateLimiter", "connection_cap"]

Cap = Literal["total", "client"]
V = TypeVar("V")


class _Lru(Generic[V]):
    """A dict of at most ``size`` keys; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.items: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


class RateLimiter:
    """A token bucket per key; ``rate`` 0 allows everything and keeps no state."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10000) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._buckets: _Lru[TokenBucket] = _Lru(max_keys)

    def __repr__(self) -> str:
        return f"<RateLimiter {self.rate:g}/s burst={self.burst:g} keys={len(self._buckets.items)}>"

    def __len__(self) -> int:
        return len(self._buckets.items)

    def take(self, key: str, now: float) -> float:
        """Spend one token of ``key``: 0.0 if there was one, else the seconds until there is."""
        if self.rate <= 0:
            return 0.0
        bucket = (self._buckets.get(key) or TokenBucket.full(self.rate, self.burst)).refill(now)
        wait = bucket.wait(1.0, now)
        self._buckets.put(key, bucket if wait else bucket.take(1.0, now))
        return wait


class Concurrency:
    """Open streams per key and in total; a cap of 0 is no cap."""

    def __init__(self, total: int = 0, per_key: int = 0) -> None:
        self.total = total
        self.per_key = per_key
        self.open = 0
        self._by_key: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Concurrency open={self.open}/{self.total} keys={len(self._by_key)}>"

    def count(self, key: str) -> int:
        return self._by_key.get(key, 0)

    def acquire(self, key: str | None, *, over_total: bool = False) -> Cap | None:
        """Take a slot for ``key`` (None: counted in the total only); the cap reached, if any.
        ``over_total``: a slot that is being freed makes room (the total is not checked)."""
        if self.total and self.open >= self.total and not over_total:
            return "total"
        if key is not None:
            held = self._by_key.get(key, 0)
            if self.per_key and held >= self.per_key:
                return "client"
            self._by_key[key] = held + 1
        self.open += 1
        return None

    def release(self, key: str | None) -> None:
        """Give back a slot that ``acquire(key)`` took."""
        self.open -= 1
        if key is None:
            return
        held = self._by_key.pop(key) - 1
        if held:
            self._by_key[key] = held


class OncePer:
    """``due(key, now)`` is true once per ``interval`` per key (bounded like RateLimiter)."""

    def __init__(self, interval: float, max_keys: int = 10000) -> None:
        self.interval = interval
        self._last: _Lru[float] = _Lru(max_keys)

    def due(self, key: str, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last.put(key, now)
        return True


def connection_cap(configured: int, open_files: int, reserve: int) -> int:
    """Concurrent connections to admit (0: no cap): ``configured`` (0: none), at most the
    open-files limit less ``reserve`` (at least half the limit); an unlimited one adds nothing."""
    if open_files < 0:  # RLIM_INFINITY
        return configured
    room = max(open_files - reserve, open_files // 2)
    return min(configured, room) if configured else room


@dataclass(frozen=True)
class LimitSettings:
    """The ``[limits]`` section; its defaults are the schema's (``config.py``)."""

    rest_rate_per_s: float = default("limits", "rest_rate_per_s", float)
    rest_burst: int = default("limits", "rest_burst", int)
    connect_rate_per_s: float = default("limits", "connect_rate_per_s", float)
    connect_burst: int = default("limits", "connect_burst", int)
    max_streams: int = default("limits", "max_streams", int)
    max_streams_per_client: int = default("limits", "max_streams_per_client", int)
    header_timeout_s: float = default("limits", "header_timeout_s", float)
    idle_timeout_s: float = default("limits", "idle_timeout_s", float)
    exempt_loopback: bool = default("limits", "exempt_loopback", bool)
    max_tracked_clients: int = default("limits", "max_tracked_clients", int)
    stream_send_buffer_bytes: int = default("limits", "stream_send_buffer_bytes", int)
    max_connections: int = default("limits", "max_connections", int)
    max_connections_per_client: int = default("limits", "max_connections_per_client", int)
    open_files_reserve: int = default("limits", "open_files_reserve", int)

    @classmethod
    def from_section(cls, section: LimitsSection) -> LimitSettings:
        return cls(**{f.name: getattr(section, f.name) for f in fields(cls)})


class Limits:
    """The limiters of one listener; every method is synchronous and takes the time."""

    LOG_EVERY_S = 60.0

    def __init__(self, settings: LimitSettings, open_files: int = -1) -> None:
        self.settings = settings
        self.max_connections = connection_cap(settings.max_connections, open_files,
                                              settings.open_files_reserve)
        self.open_connections = Concurrency(self.max_connections, settings.max_connections_per_client)
        size = settings.max_tracked_clients
        self.rest = RateLimiter(settings.rest_rate_per_s, settings.rest_burst, size)
        self.connections = RateLimiter(settings.connect_rate_per_s, settings.connect_burst, size)
        self.streams = Concurrency(settings.max_streams, settings.max_streams_per_client)
        self.refusal_log = OncePer(self.LOG_EVERY_S, size)

    def __repr__(self) -> str:
        return (f"<Limits rest={self.rest!r} connections={self.connections!r} "
                f"open_connections={self.open_connections!r} streams={self.streams!r}>")

    def exempt(self, host: str) -> bool:
        """Per-address limits do not apply to ``host`` (loopback, when so configured).

        A Unix socket peer has no address (``host`` is empty): it is local too.
        """
        return self.settings.exempt_loopback and (not host or is_loopback(host))

    def stream_key(self, host: str, principal: str | None) -> str | None:
        """Whose streams to count: the token's, else the address's (None: the total only)."""
        if principal is not None:
            return f"token:{principal}"
        return None if self.exempt(host) else f"ip:{host}"

    def connection_refusal(self, cap: Cap) -> tuple[int, str, str]:
        """The status, error and detail of a connection refused at ``cap``."""
        if cap == "total":
            return (503, "server_busy",
                    f"the server has too many connections open (max {self.max_connections})")
        return (429, "too_many_connections",
                f"too many connections from this address (max {self.settings.max_connections_per_client})")

    def stream_refusal(self, cap: Cap, key: str | None) -> str:
        """The detail of a 429 / RESOURCE_EXHAUSTED for ``cap``."""
        if cap == "total":
            return f"the server has too many streams open (max {self.settings.max_streams})"
        whose = "this token" if key is not None and key.startswith("token:") else "this address"
        return f"too many streams for {whose} (max {self.settings.max_streams_per_client})"
