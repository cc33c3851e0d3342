"""Thirty days of plausible history, so that charts in screenshots have a shape to show.

A fresh database has one day of buckets; a person judging the charts needs
more. ``seed_history`` writes closed buckets (never the open ones the
writer holds) of a seeded random walk that ends at the daemon's current
figures, so the live value continues the seeded line.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import httpx

from northstard.core.buckets import RESOLUTIONS, Bucket, Ohlc, bucket_start

MINUTE = 60_000
KEEP_MS = {"1m": 2 * 3_600_000, "5m": 2 * 86_400_000, "1h": 31 * 86_400_000, "1d": 31 * 86_400_000}


def current_figures(base: str) -> dict[str, Decimal]:
    """The daemon's net and its parts once it has published a first change (long-polls, no sleep)."""
    health = httpx.get(f"{base}/api/health", timeout=10).json()
    if health["seq"] == 0:
        since = {"since": f"{health['epoch']}:0", "wait": 10}
        httpx.get(f"{base}/api/pnl/changes", params=since, timeout=20)
    doc = httpx.get(f"{base}/api/pnl/current", timeout=10).json()["data"]
    return {
        "trading": Decimal(doc["trading"]["total"]),
        "revenue": Decimal(doc["revenue"][doc["revenue"]["basis"]]),
        "costs": Decimal(doc["costs"]["total"]),
    }


def _walk(end: Mapping[str, Decimal], minutes: int, seed: int) -> list[dict[str, int]]:
    """Cents per minute, oldest first, ending at ``end``.

    Revenue comes in lumps, costs accrue steadily, trading wanders.
    """
    rng = random.Random(seed)
    cents = {k: int(v * 100) for k, v in end.items()}
    revenue_rate = max(cents["revenue"], 10_000) * 0.8 / minutes
    costs_rate = max(cents["costs"], 5_000) * 0.8 / minutes
    swing = revenue_rate * 1440 / 4 / 1440**0.5  # a day's trading moves about a quarter of its revenue
    values = [dict(cents)]
    for i in range(minutes - 1):
        busy = 1.6 if (minutes - i) % 1440 > 480 else 0.4  # a day and a quieter night
        step = {
            "revenue": int(rng.random() < 0.04 * busy and rng.uniform(0.3, 1.7) * revenue_rate / 0.04),
            "costs": int(rng.uniform(0.2, 1.8) * costs_rate * busy),
            "trading": int(rng.gauss(0, swing)),
        }
        values.append({k: values[-1][k] - step[k] for k in cents})
    values.reverse()
    for v in values:
        v["net"] = v["trading"] + v["revenue"] - v["costs"]
    return values


def seed_history(db: Path, end: Mapping[str, Decimal], now_ms: int, days: int = 30, seed: int = 7) -> int:
    """Write closed buckets of every resolution for ``days`` before now; returns how many."""
    last = bucket_start(now_ms, "1m")
    minutes = days * 1440
    walk = _walk(end, minutes, seed)
    starts = [last - (minutes - i) * MINUTE for i in range(minutes)]
    rows = []
    for resolution in RESOLUTIONS:
        open_start = bucket_start(now_ms, resolution)
        groups: dict[int, list[dict[str, int]]] = {}
        prev = walk[0]
        for start, value in zip(starts, walk, strict=True):
            bucket = bucket_start(start, resolution)
            if bucket < open_start and now_ms - bucket <= KEEP_MS[resolution]:
                groups.setdefault(bucket, [prev]).append(value)
            prev = value
        for bucket, values in groups.items():
            series = {
                k: Ohlc(*(Decimal(c) / 100 for c in (values[0][k], values[-1][k],
                                                     min(v[k] for v in values), max(v[k] for v in values))))
                for k in ("net", "trading", "revenue", "costs")
            }
            rows.append((resolution, bucket, Bucket(resolution, bucket, series).body()))
    with closing(sqlite3.connect(db, timeout=10)) as conn, conn:
        conn.executemany("INSERT OR IGNORE INTO buckets (resolution, start_ms, body) VALUES (?, ?, ?)", rows)
    return len(rows)
