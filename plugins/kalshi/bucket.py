"""The read budget and the 429 back-off. Pure: no I/O, the caller passes the time in.

Kalshi meters reads with token buckets: most calls cost 10 tokens, the basic
tier refills 200 tokens/s with room for a burst. ``TokenBucket`` (``northstard.core.tokenbucket``) mirrors that
on our side so that we never spend more than the configured budget; ``Backoff``
spaces out retries after a 429 (Kalshi sends no Retry-After) exponentially,
with "equal jitter" drawn from a number in [0, 1) the caller supplies.
"""

from __future__ import annotations

from dataclasses import dataclass

from northstard.core.tokenbucket import TokenBucket

__all__ = ["Backoff", "TokenBucket"]


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
