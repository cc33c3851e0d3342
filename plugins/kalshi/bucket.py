"""The read budget and the 429 back-off. Pure: no I/O, the caller passes the time in.

Kalshi meters reads with token buckets: most calls cost 10 tokens, the basic
tier refills 200 tokens/s with room for a burst. ``TokenBucket`` mirrors that
on our side so that we never spend more than the configured budget; ``Backoff``
spaces out retries after a 429 (Kalshi sends no Retry-After) exponentially,
with "equal jitter" drawn from a number in [0, 1) the caller supplies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Backoff", "TokenBucket"]


@dataclass(frozen=True)
class TokenBucket:
    """``capacity`` tokens at most, refilled at ``rate`` tokens per second."""

    rate: float
    capacity: float
    tokens: float
    stamp: float | None = None

    @classmethod
    def full(cls, rate: float, capacity: float) -> TokenBucket:
        """A bucket that starts full."""
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        return cls(rate, capacity, capacity)

    def refill(self, now: float) -> TokenBucket:
        """The bucket at ``now`` (time never runs backwards here)."""
        if self.stamp is None:
            return replace(self, stamp=now)
        elapsed = max(0.0, now - self.stamp)
        return replace(self, tokens=min(self.capacity, self.tokens + elapsed * self.rate),
                       stamp=max(now, self.stamp))

    def wait(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` tokens are available (0 if they are now)."""
        if cost > self.capacity:
            raise ValueError(f"a call costing {cost} tokens never fits a bucket of {self.capacity}")
        missing = cost - self.refill(now).tokens
        return max(0.0, missing / self.rate)

    def take(self, cost: float, now: float) -> TokenBucket:
        """The bucket after spending ``cost`` tokens at ``now``; they must be available."""
        bucket = self.refill(now)
        if bucket.tokens + 1e-9 < cost:
            raise ValueError(f"only {bucket.tokens:.3f} tokens, {cost} needed")
        return replace(bucket, tokens=max(0.0, bucket.tokens - cost))


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``attempt`` (0-based): half fixed, half jitter, capped."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 8.0
    tries: int = 5

    def delay(self, attempt: int, draw: float) -> float:
        """``draw`` is uniform in [0, 1): the delay is in [base/2, base)."""
        if not 0.0 <= draw < 1.0:
            raise ValueError("draw must be in [0, 1)")
        base = min(self.cap, self.initial * self.factor**attempt)
        return base / 2 + base / 2 * draw
