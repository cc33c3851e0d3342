"""History buckets: open/close/min/max of net P&L and its parts. Pure, no I/O.

Resolutions are 1m, 5m, 1h and 1d, aligned to UTC. The writer keeps the
open bucket of each resolution in a ``BucketSet`` and persists the buckets a
batch touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from northstard.core.money import format_money

__all__ = ["DEFAULT_SPAN_MS", "MAX_BUCKETS", "RESOLUTIONS", "Bucket", "BucketSet", "bucket_start",
           "components", "history_range"]

RESOLUTIONS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
SERIES = ("net", "trading", "revenue", "costs")
MAX_BUCKETS = 5000  # the most buckets one history answer holds (REST and gRPC)
DEFAULT_SPAN_MS = 3_600_000  # a history request without ``from`` covers the hour before ``to``


def bucket_start(ts_ms: int, resolution: str) -> int:
    width = RESOLUTIONS[resolution]
    return ts_ms - ts_ms % width


def history_range(resolution: str | None, from_ms: int | None, to_ms: int | None, now_ms: int,
                  names: tuple[str, str] = ("from", "to")) -> tuple[str, int, int]:
    """(resolution, from_ms, to_ms) of a history request, the one rule of every edge.

    Defaults: 1m, ``to`` just after ``now_ms``, ``from`` an hour before ``to``;
    ``from`` is aligned down to its bucket; at most MAX_BUCKETS buckets. ValueError
    names the bad field, with ``names`` the edge's words for from and to.
    """
    resolution = "1m" if resolution is None else resolution
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution: one of {', '.join(RESOLUTIONS)}")
    to_ms = now_ms + 1 if to_ms is None else to_ms
    from_ms = to_ms - DEFAULT_SPAN_MS if from_ms is None else from_ms
    if from_ms >= to_ms:
        raise ValueError(f"{names[0]}: must be before {names[1]}")
    if (to_ms - from_ms) // RESOLUTIONS[resolution] > MAX_BUCKETS:
        raise ValueError(f"range too long: at most {MAX_BUCKETS} buckets of {resolution}")
    return resolution, bucket_start(from_ms, resolution), to_ms


def components(doc: Mapping[str, object]) -> dict[str, Decimal]:
    """The series a bucket tracks, read from a snapshot document."""
    trading = doc["trading"]
    revenue = doc["revenue"]
    costs = doc["costs"]
    assert isinstance(trading, dict) and isinstance(revenue, dict) and isinstance(costs, dict)
    return {
        "net": Decimal(str(doc["net_pnl"])),
        "trading": Decimal(trading["total"]),
        "revenue": Decimal(revenue[revenue["basis"]]),
        "costs": Decimal(costs["total"]),
    }


@dataclass(frozen=True)
class Ohlc:
    open: Decimal
    close: Decimal
    min: Decimal
    max: Decimal

    def add(self, value: Decimal) -> Ohlc:
        return Ohlc(self.open, value, min(self.min, value), max(self.max, value))

    def document(self) -> dict[str, str]:
        return {k: format_money(getattr(self, k)) for k in ("open", "close", "min", "max")}


@dataclass(frozen=True)
class Bucket:
    resolution: str
    start_ms: int
    series: Mapping[str, Ohlc]

    @classmethod
    def first(cls, resolution: str, start_ms: int, values: Mapping[str, Decimal]) -> Bucket:
        return cls(resolution, start_ms, {k: Ohlc(v, v, v, v) for k, v in values.items()})

    def add(self, values: Mapping[str, Decimal]) -> Bucket:
        series = {
            k: (self.series[k].add(v) if k in self.series else Ohlc(v, v, v, v))
            for k, v in values.items()
        }
        return Bucket(self.resolution, self.start_ms, series)

    def body(self) -> str:
        return json.dumps({k: v.document() for k, v in self.series.items()}, sort_keys=True)

    @classmethod
    def from_body(cls, resolution: str, start_ms: int, body: str) -> Bucket:
        raw = json.loads(body)
        series = {
            k: Ohlc(*(Decimal(v[f]) for f in ("open", "close", "min", "max")))
            for k, v in raw.items()
        }
        return cls(resolution, start_ms, series)


class BucketSet:
    """The open bucket of each resolution."""

    def __init__(self, open_buckets: Mapping[str, Bucket] | None = None) -> None:
        self.open: dict[str, Bucket] = dict(open_buckets or {})

    def add(self, ts_ms: int, values: Mapping[str, Decimal]) -> list[Bucket]:
        """Fold one observation in; returns the buckets it touched."""
        touched = []
        for resolution in RESOLUTIONS:
            start = bucket_start(ts_ms, resolution)
            current = self.open.get(resolution)
            if current is None or current.start_ms != start:
                bucket = Bucket.first(resolution, start, values)
                if current is not None and current.start_ms > start:
                    continue  # a late observation never reopens a closed bucket
            else:
                bucket = current.add(values)
            self.open[resolution] = bucket
            touched.append(bucket)
        return touched
