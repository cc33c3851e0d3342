"""History benchmark: start-up time and memory of the real daemon on a database of N records.

    python bench/history.py --records N --db PATH [--build-only] [--seconds S]
                            [--rate R] [--json-out FILE]

1. Build (skipped when PATH already holds a northstard database): N stored
   records of a desk's realistic mix go through the real engine and writer
   actors (in process, ``synchronous = full``): per round of 600 records, 400
   AI costs from ``anthropic_costs``, 100 fills from ``kalshi`` and 100
   invoices from ``stripe``, the rounds spread over the past 365 days (the
   engine's clock is the round's time, so the history buckets cover a year).
   ``kalshi`` also holds 40 open and 20 closed positions, the prices of their
   60 markets and a balance: what stays hot does not grow with N.
   ``--build-only`` stops here, so an outside script can time the start itself.
2. Start ``python -m northstard`` on it as a deployment would: the same three
   sources configured (no credentials here, so each is marked failing and its
   stored records stay; nothing leaves the machine) plus ``[sources.demo]``
   polled R times a second (default 10: R changes/s; the demo withdraws only
   records of its own source name).
3. Print JSON: seconds from process start to the first served snapshot
   (``GET /api/pnl/current`` answering 200) and the daemon's CPU time by
   then (steadier than wall time on a shared machine), its RSS then and after
   S seconds at R changes/s, and the time of ``GET /api/pnl/history`` for 30
   days at 1h and for one year at 1d.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import structlog
import trio

from northstard.actors.engine import recover, run_engine
from northstard.actors.writer import WriterSettings, WriterState, run_writer
from northstard.config import SourceSection
from northstard.core.buckets import BucketSet
from northstard.core.change import Change
from northstard.core.records import Balance, Cost, Fill, Invoice, Position, Price, Reading, Record
from northstard.store.sqlite import SqliteRecords, load_persisted, open_writer

REPO = Path(__file__).resolve().parent.parent
READY = "northstard dashboard: "
ROUND = (("anthropic_costs", "cost", 400), ("kalshi", "fill", 100), ("stripe", "invoice", 100))
PER_ROUND = sum(count for _, _, count in ROUND)
AGENTS = ("atlas", "beacon", "cinder", "delta", "echo")
MODELS = ("claude-opus-4", "claude-sonnet-4", "claude-haiku-4")
CENT = Decimal("0.01")
OPEN_POSITIONS, CLOSED_POSITIONS = 40, 20
YEAR = timedelta(days=365)


def sections() -> list[SourceSection]:
    return [
        SourceSection(name=name, plugin=name, enabled=True, interval_s=60.0, timeout_s=30.0,
                      stale_after_s=3600.0, failure_threshold=3, cooldown_s=30.0, options={})
        for name, _, _ in ROUND
    ]


def _cents(n: int, modulo: int, offset: int = 1) -> Decimal:
    return Decimal((n * 7919) % modulo + offset) * CENT


def record(kind: str, n: int, ts: datetime) -> Record:
    agent = AGENTS[n % len(AGENTS)]
    if kind == "cost":
        return Cost(id=f"cost-{n}", agent=agent, amount=_cents(n, 5000), category="ai",
                    model=MODELS[n % len(MODELS)], cost_type="tokens", ts=ts,
                    estimated=n % 50 == 0)
    if kind == "invoice":
        total = _cents(n, 90000, 1000)
        paid = n % 4 != 0
        return Invoice(id=f"in_{n}", agent=agent, total=total, paid=total if paid else Decimal(0),
                       status="paid" if paid else "open", ts=ts)
    return Fill(id=f"fill-{n}", agent=agent, ticker=f"MKT-{n % 500}", side="yes" if n % 2 else "no",
                action="buy", count=Decimal(n % 50 + 1), price=Decimal(n % 97 + 1) * CENT,
                fee=Decimal("0.07"), ts=ts)


def trading_book(ts: datetime) -> Reading:
    """Kalshi's working set: open and closed positions, their markets' prices, a balance."""
    records: list[Record] = [Balance(id="cash", cash=Decimal("25000.00"), ts=ts)]
    for i in range(OPEN_POSITIONS + CLOSED_POSITIONS):
        ticker = f"MKT-{i}"
        count = Decimal(i % 30 + 1) if i < OPEN_POSITIONS else Decimal(0)
        records.append(Position(id=ticker, agent=AGENTS[i % len(AGENTS)], ticker=ticker,
                                count=count, cost_basis=(count * Decimal("0.45")).quantize(CENT),
                                realized_pnl=_cents(i, 4000), fees=_cents(i, 300)))
        bid = Decimal(i % 90 + 5) * CENT
        records.append(Price(id=ticker, yes_bid=bid, yes_ask=bid + CENT, no_bid=1 - bid - CENT,
                             no_ask=1 - bid, last=bid))
    return Reading("kalshi", tuple(records), ts)


def rounds(total: int, start: datetime) -> Iterator[tuple[datetime, list[Reading]]]:
    count = max(1, -(-total // PER_ROUND))
    step = YEAR / count
    n = 0
    for index in range(count):
        ts = start + step * index
        readings = []
        for source, kind, size in ROUND:
            size = min(size, total - n)
            if size <= 0:
                break
            records = tuple(record(kind, n + i, ts) for i in range(size))
            n += size
            readings.append(Reading(source, records, ts))
        yield ts, readings


async def build(db: Path, total: int) -> dict[str, Any]:
    """N records through the real engine and writer; the clock is the rounds' time."""
    open_writer(db, "full").close()
    persisted = load_persisted(db)
    store = SqliteRecords(db)
    clock = [datetime.now(UTC) - YEAR]
    state = recover(persisted, sections(), now=clock[0], store=store)
    writer_state = WriterState(buckets=BucketSet(persisted.open_buckets), committed_seq=state.seq)
    settings = WriterSettings(path=db, synchronous="full")
    source_send, source_receive = trio.open_memory_channel[Any](256)
    change_send, change_receive = trio.open_memory_channel[Change](1024)
    out_send, out_receive = trio.open_memory_channel[Change](1024)
    started = time.perf_counter()

    async def drain() -> None:
        async with out_receive:
            async for _ in out_receive:
                pass

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            await nursery.start(run_writer, settings, writer_state, change_receive, [out_send])
            # one round per change: a change every ~5 h over the year, like a quiet desk's history
            engine = partial(run_engine, committed=lambda: writer_state.committed_seq)
            await nursery.start(engine, state, source_receive, change_send, len(ROUND),
                                lambda: clock[0])
            async with source_send:
                await source_send.send(trading_book(clock[0]))
                for ts, readings in rounds(total, clock[0]):
                    clock[0] = ts
                    for reading in readings:
                        await source_send.send(reading)
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    return {"build_s": round(elapsed, 1), "build_records_per_s": round(total / elapsed),
            "changes": state.seq}


def stored_records(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rec_%'")]
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


def write_config(directory: Path, db: Path, rate: float) -> Path:
    port = "port = 0"
    text = f"""[server]
host = "127.0.0.1"
{port}
shutdown_grace_s = 1.0

[storage]
path = "{db}"

[log]
format = "json"
level = "warning"

[grpc]
enabled = false

[sources.demo]
plugin = "demo"
interval_s = {1 / rate}
seed = 1

[sources.kalshi]
plugin = "kalshi"

[sources.anthropic_costs]
plugin = "anthropic_costs"

[sources.stripe]
plugin = "stripe"
"""
    path = directory / "northstard.toml"
    path.write_text(text)
    return path


def _clean_env() -> dict[str, str]:
    """No credentials reach the daemon: these sources stay off, nothing leaves the machine."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("NORTHSTARD_") and k != "CREDENTIALS_DIRECTORY"}


def _wait_url(process: subprocess.Popen[bytes], limit: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if not line:
            raise RuntimeError("the daemon exited before listening")
        if line.startswith(READY):
            return line[len(READY):].strip().rstrip("/")
    raise RuntimeError("the daemon did not listen in time")


def _first_snapshot(client: httpx.Client, url: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if client.get(f"{url}/api/pnl/current").status_code == 200:
            return
        time.sleep(0.005)
    raise RuntimeError("no snapshot served in time")


def _timed_history(client: httpx.Client, url: str, resolution: str, span: timedelta) -> dict[str, Any]:
    end = datetime.now(UTC)
    params = {"resolution": resolution, "from": (end - span).isoformat().replace("+00:00", "Z"),
              "to": end.isoformat().replace("+00:00", "Z")}
    started = time.perf_counter()
    response = client.get(f"{url}/api/pnl/history", params=params)
    elapsed = time.perf_counter() - started
    body = response.json()
    count = len(body["buckets"]) if isinstance(body, dict) and "buckets" in body else (
        len(body) if isinstance(body, list) else None)
    return {"status": response.status_code, "seconds": round(elapsed, 4), "buckets": count,
            "bytes": len(response.content)}


def _rss_mib(process: psutil.Process) -> float:
    return round(process.memory_info().rss / 2**20, 1)


def run_daemon(db: Path, seconds: float, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="northstard-history-") as tmp:
        config = write_config(Path(tmp), db, rate)
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as errors:
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "northstard", "--config", str(config)],
                stdout=subprocess.PIPE, stderr=errors, env=_clean_env(), cwd=str(REPO))
        try:
            url = _wait_url(process, 600)
            with httpx.Client(timeout=60) as client:
                _first_snapshot(client, url, 600)
                first = time.perf_counter() - started
                proc = psutil.Process(process.pid)
                cpu = proc.cpu_times()
                rss_start = _rss_mib(proc)
                seq0 = client.get(f"{url}/api/pnl/current").json().get("seq")
                time.sleep(seconds)  # the daemon runs at R changes/s meanwhile
                rss_after = _rss_mib(proc)
                seq1 = client.get(f"{url}/api/pnl/current").json().get("seq")
                month = _timed_history(client, url, "1h", timedelta(days=30))
                year = _timed_history(client, url, "1d", YEAR)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return {
            "first_snapshot_s": round(first, 3),
            "first_snapshot_cpu_s": round(cpu.user + cpu.system, 3),  # less noisy on a busy host
            "rss_start_mib": rss_start,
            "rss_after_mib": rss_after,
            "run_s": seconds,
            "changes_during_run": (seq1 - seq0) if isinstance(seq0, int) and isinstance(seq1, int)
            else None,
            "history_30d_1h": month,
            "history_1y_1d": year,
            "exit_code": process.returncode,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, required=True, help="stored records to build (N)")
    parser.add_argument("--db", type=Path, required=True, help="the database (reused if it exists)")
    parser.add_argument("--build-only", action="store_true", help="build, then stop")
    parser.add_argument("--seconds", type=float, default=60.0, help="run time after start")
    parser.add_argument("--rate", type=float, default=10.0, help="changes/s while running")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.records < 1 or args.seconds < 0 or args.rate <= 0:
        parser.error("--records and --rate must be positive, --seconds not negative")
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    out: dict[str, Any] = {"bench": "history", "records": args.records, "db": str(args.db)}
    if not args.db.exists():
        out.update(trio.run(build, args.db, args.records))
    out["stored_records"] = stored_records(args.db)
    wal = args.db.with_name(args.db.name + "-wal")
    out["db_mib"] = round((args.db.stat().st_size + (wal.stat().st_size if wal.exists() else 0))
                          / 2**20, 1)
    if not args.build_only:
        out.update(run_daemon(args.db, args.seconds, args.rate))
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
