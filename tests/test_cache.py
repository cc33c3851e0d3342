"""The history cache: closed chunks shared by sliding ranges, bounded in bytes.

Unit tests drive ``Cache`` directly (pure: the times are given); the daemon
tests send a dashboard's requests to the real daemon over HTTP, against a real
SQLite file seeded with closed buckets, and read ``/api/cache/stats``.
"""

from __future__ import annotations

import random
import sqlite3
import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from northstard.actors.cache import (
    CHUNK_BUCKETS,
    Cache,
    Chunk,
    SizedChunk,
    chunk_bytes,
    chunk_starts,
    chunk_width,
)
from northstard.core.buckets import RESOLUTIONS, Bucket, Ohlc, bucket_start
from northstard.core.change import Change
from northstard.store.sqlite import open_reader, read_buckets

HOUR = 3_600_000
DAY = 24 * HOUR
NOW = 1_786_881_722_123  # 2026-08-16T12:02:02.123Z
# what chart.js asks: span and resolution of each range, and the 30-day trend at 1d
DASHBOARD = (("1m", HOUR), ("5m", DAY), ("1h", 7 * DAY), ("1h", 30 * DAY), ("1d", 30 * DAY))


def change(seq: int, ts_ms: int) -> Change:
    return Change("e1", seq, ts_ms, {"net_pnl": "1.00"}, {"net_pnl": "1.00"})


def rows_for(resolution: str, start: int, size: int = 400) -> Chunk:
    step = RESOLUTIONS[resolution]
    return tuple((start + i * step, b"x" * size) for i in range(CHUNK_BUCKETS))


def sized(chunk: Chunk) -> SizedChunk:
    return chunk, chunk_bytes(chunk)


def ask(cache: Cache, resolution: str, from_ms: int, to_ms: int) -> tuple[int, int]:
    """One request as the REST route makes it (reads fabricated); (hits, misses) it added."""
    hits, misses = cache.hits, cache.misses
    plan = cache.plan(resolution, from_ms, to_ms)
    cache.fill(plan, {start: sized(rows_for(resolution, start)) for start in plan.read})
    return cache.hits - hits, cache.misses - misses


def test_a_dashboards_sliding_requests_hit_the_closed_chunks() -> None:
    cache = Cache(8 << 20)
    cache.update(change(1, NOW))
    first = [ask(cache, r, NOW - span, NOW) for r, span in DASHBOARD]
    shared = len(chunk_starts("1h", NOW - 7 * DAY, NOW)) - 1  # 30d at 1h reuses 7d's closed chunks
    assert [hits for hits, _ in first] == [0, 0, 0, shared, 0] and shared == 3
    later = NOW + 30_000  # the reload 30 s later: every range differs from the first
    cache.update(change(2, later))
    second = [ask(cache, r, later - span, later) for r, span in DASHBOARD]
    for (resolution, span), (hits, misses) in zip(DASHBOARD, second, strict=True):
        assert misses == 1, resolution  # only the open chunk is read again
        assert hits == len(chunk_starts(resolution, later - span, later)) - 1, resolution
    hits = sum(h for h, _ in second)
    assert hits / (hits + len(DASHBOARD)) > 0.75  # 16 of 21 chunks from memory on a reload


def test_a_chunk_is_kept_only_once_it_is_closed() -> None:
    cache = Cache(8 << 20)
    cache.update(change(1, NOW))
    open_start = NOW - NOW % chunk_width("1m")
    assert ask(cache, "1m", open_start, NOW) == (0, 1)
    assert ask(cache, "1m", open_start, NOW) == (0, 1)  # still open: read again
    cache.update(change(2, open_start + chunk_width("1m")))  # the next hour's first change
    assert ask(cache, "1m", open_start, NOW) == (0, 1)  # now closed: read once more and kept
    assert ask(cache, "1m", open_start, NOW) == (1, 0)


def test_bytes_held_stay_under_the_limit_after_many_distinct_queries() -> None:
    limit = 256 * 1024
    cache = Cache(limit)
    cache.update(change(1, NOW))
    rng = random.Random(11)
    most = 0
    for _ in range(300):
        resolution = rng.choice(list(RESOLUTIONS))
        to_ms = NOW - rng.randrange(0, 5000) * RESOLUTIONS[resolution]
        ask(cache, resolution, to_ms - rng.randrange(1, 5000) * RESOLUTIONS[resolution], to_ms)
        most = max(most, cache.bytes)
        assert cache.bytes == sum(size for _, size in cache.chunks.values())
    assert 0 < most <= limit
    assert cache.stats()["history_bytes"] == cache.bytes <= limit
    one = chunk_bytes(rows_for("1m", 0))
    assert len(cache.chunks) == limit // one  # full: as many 60-row chunks as fit


def test_chunks_past_the_bucket_retention_are_always_read() -> None:
    cache = Cache(8 << 20, keep_ms=DAY)
    cache.update(change(1, NOW))
    assert ask(cache, "1m", NOW - DAY - 2 * HOUR, NOW - DAY + 2 * HOUR) == (0, 5)
    assert ask(cache, "1m", NOW - DAY - 2 * HOUR, NOW - DAY + 2 * HOUR) == (2, 3)  # kept: after the cutoff


def test_a_chunk_larger_than_the_limit_is_not_kept_and_zero_turns_it_off() -> None:
    for limit in (1000, 0):
        cache = Cache(limit)
        cache.update(change(1, NOW))
        ask(cache, "1m", NOW - 3 * HOUR, NOW - 2 * HOUR)
        assert cache.chunks == {} and cache.bytes == 0


def test_a_change_behind_the_frontier_drops_what_it_touches_and_a_read_in_flight() -> None:
    cache = Cache(8 << 20)
    cache.update(change(1, NOW))
    ask(cache, "1m", NOW - 5 * HOUR, NOW)
    plan = cache.plan("1m", NOW - 8 * HOUR, NOW - 5 * HOUR)  # a read starts...
    held = len(cache.chunks)
    cache.update(change(2, NOW - 2 * HOUR - 1))  # ...and a clock stepped back lands before it ends
    assert len(cache.chunks) == held - 2  # the chunks of the last two closed hours
    assert cache.fill(plan, {start: sized(rows_for("1m", start)) for start in plan.read}) == 0
    assert cache.latest_ms == NOW


# -- the daemon --------------------------------------------------------------------------------


def seed(db: Path, now_ms: int, days: int = 31) -> None:
    """Closed buckets of every resolution for ``days`` before now (one value per bucket)."""
    rows = []
    for resolution, width in RESOLUTIONS.items():
        open_start = bucket_start(now_ms, resolution)
        for i in range(1, min(days * DAY // width, 6000)):
            value = Decimal(i) / 100
            series = {k: Ohlc(value, value, value, value) for k in ("net", "trading", "revenue", "costs")}
            rows.append((resolution, open_start - i * width, Bucket(resolution, 0, series).body()))
    with closing(sqlite3.connect(db, timeout=10)) as conn, conn:
        conn.executemany("INSERT OR IGNORE INTO buckets (resolution, start_ms, body) VALUES (?, ?, ?)", rows)


def wall_ms() -> int:
    return int(time.time() * 1000)


async def next_change(client: httpx.AsyncClient, base: str) -> None:
    """Long-poll until the daemon publishes its next change (no sleep)."""
    health = (await client.get(f"{base}/api/health")).json()
    since = {"since": f"{health['epoch']}:{health['seq']}", "wait": 10}
    assert (await client.get(f"{base}/api/pnl/changes", params=since)).status_code == 200


async def dashboard_round(client: httpx.AsyncClient, base: str, now_ms: int, db: Path, seeded: int) -> None:
    """Every range chart.js asks for, each answer's closed buckets checked against SQLite."""
    for resolution, span in DASHBOARD:
        params = {"resolution": resolution, "from": str(now_ms - span), "to": str(now_ms)}
        body = (await client.get(f"{base}/api/pnl/history", params=params)).json()
        start = bucket_start(now_ms - span, resolution)
        with closing(open_reader(db)) as conn:
            stored = read_buckets(conn, resolution, start, bucket_start(seeded, resolution))
        closed = [b for b in body["buckets"] if b["start_ms"] < bucket_start(seeded, resolution)]
        assert [b["start_ms"] for b in closed] == [r["start_ms"] for r in stored]
        assert [b["net"] for b in closed] == [r["net"] for r in stored]
        assert len(closed) >= min(span // RESOLUTIONS[resolution], 30 * DAY // RESOLUTIONS[resolution]) - 2


async def test_e2e_the_dashboards_requests_hit(start_daemon: Any, tmp_path: Path) -> None:
    daemon = await start_daemon()
    db = tmp_path / "northstard.db"
    async with httpx.AsyncClient(timeout=10) as client:
        await next_change(client, daemon.url)  # the cache has seen a change: older chunks are closed
        now_ms = wall_ms()
        seed(db, now_ms)
        await dashboard_round(client, daemon.url, now_ms, db, now_ms)
        first = (await client.get(f"{daemon.url}/api/cache/stats")).json()
        await dashboard_round(client, daemon.url, now_ms + 30_000, db, now_ms)
        second = (await client.get(f"{daemon.url}/api/cache/stats")).json()
    assert first["history_entries"] > 0  # the closed chunks read by the first round are kept
    assert second["hits"] - first["hits"] >= 10
    assert second["misses"] - first["misses"] <= len(DASHBOARD) + 2  # the open chunks (+ an hour turning)
    assert second["history_bytes"] <= second["history_max_bytes"] == 8 << 20


async def test_e2e_many_distinct_queries_keep_the_cache_under_its_bytes(
    start_daemon: Any, tmp_path: Path
) -> None:
    limit = 512 * 1024
    daemon = await start_daemon(cache={"history_bytes": limit})
    db = tmp_path / "northstard.db"
    rng = random.Random(5)
    async with httpx.AsyncClient(timeout=10) as client:
        await next_change(client, daemon.url)
        now_ms = wall_ms()
        seed(db, now_ms)
        for _ in range(50):
            to_ms = now_ms - rng.randrange(0, 3000) * 60_000
            params = {"resolution": "1m", "from": str(to_ms - 999 * 60_000), "to": str(to_ms)}
            response = await client.get(f"{daemon.url}/api/pnl/history", params=params)
            assert response.status_code == 200
            assert len(response.content) < 1000 * 520  # the answer's own bound (docs/protocol.md, Endpoints)
        stats = (await client.get(f"{daemon.url}/api/cache/stats")).json()
    assert 0 < stats["history_bytes"] <= limit == stats["history_max_bytes"]
    assert stats["hits"] > 0
