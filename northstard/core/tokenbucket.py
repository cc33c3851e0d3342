"""A token bucket, pure: ``capacity`` tokens at most, refilled at ``rate`` a second; the caller passes
the time in. Kalshi's read budget (plugins/kalshi) and the web edge's per-client limits (web/limits.py)
both spend from one."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["TokenBucket"]


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
