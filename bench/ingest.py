"""Ingest benchmark: source records per second through the real engine and writer to SQLite.

    python bench/ingest.py [--records K] [--readings M] [--seconds S]
                           [--synchronous normal|full|both] [--json-out FILE]

In one process (no web edge, no hub): the real engine actor (``run_engine``,
state from ``recover(load_persisted(db))`` with the store's records looked up
by key, as in the daemon) and the real writer actor
(``run_writer``) run on a fresh SQLite file in a temp dir. A feeder pushes M
``Reading``s of K records each (a realistic mix: costs, invoices, positions
with their prices, fills) into the engine's input channel as fast as the
engine takes them; the writer's two output channels (hub and cache in the
daemon) are drained and counted. The clock runs from the first reading to the
moment the writer has committed the last change and closed its outputs. Every
loop is bounded by M and by S seconds (feeding stops at S).

Prints one JSON object per ``synchronous`` mode (a list with ``both``).

The writer's SQLite work runs in its own process (``store/writer_child``):
``cpu_pct`` is this process's (engine, hub and cache drains, the writer actor's
preparing and encoding), ``writer_process_cpu_pct`` the writer process's.

``--stages``: instead, each step alone in one thread, one after the other (the
engine's steps over every reading; the writer actor's preparing and encoding of
each batch; the writer process's decoding and transaction): CPU µs per record
of each, and the rate each process allows alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import marshal
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from northstard.actors.engine import _apply_all, next_change, recover, run_engine
from northstard.actors.writer import WriterSettings, WriterState, run_writer
from northstard.config import CORE, SourceSection
from northstard.core.buckets import BucketSet
from northstard.core.change import Change
from northstard.core.records import Cost, Fill, Invoice, Position, Price, Reading, Record
from northstard.store.batch import Job, prepare
from northstard.store.batch import run as run_job
from northstard.store.gctune import tune_gc
from northstard.store.rollup import RunningTotals
from northstard.store.sqlite import SqliteRecords, load_persisted, open_writer
from northstard.store.writer_child import dumps

SOURCE = "bench"
AGENTS = ("atlas", "beacon", "cinder", "delta")
MODELS = ("claude-opus-4", "claude-sonnet-4", "claude-haiku-4")
TICKERS = tuple(f"BENCH-{n:02d}" for n in range(24))
# One cycle of the mix: 4 costs, 1 invoice, 2 x (position + its price), 1 fill.
MIX = ("cost", "cost", "position", "cost", "invoice", "position", "cost", "fill")
CENT = Decimal("0.01")


def _default(section: str, key: str) -> Any:
    return next(f.default for f in CORE[section] if f.name == key)


def source_section() -> SourceSection:
    """A ``[sources.bench]`` section built by hand (the engine only accepts registered sources)."""
    return SourceSection(
        name=SOURCE, plugin="bench", enabled=True, interval_s=1.0, timeout_s=30.0,
        stale_after_s=3600.0, failure_threshold=3, cooldown_s=30.0, options={},
    )


@dataclass
class Mix:
    """Deterministic record generator: new costs, invoices and fills; updated positions and prices."""

    serial: int = 0

    def _cents(self, modulo: int, offset: int = 1) -> Decimal:
        return (Decimal((self.serial * 7919) % modulo + offset) * CENT).quantize(CENT)

    def record(self, kind: str, ts: datetime) -> Iterator[Record]:
        self.serial += 1
        n = self.serial
        agent = AGENTS[n % len(AGENTS)]
        if kind == "cost":
            yield Cost(id=f"cost-{n}", agent=agent, amount=self._cents(5000), category="ai",
                       model=MODELS[n % len(MODELS)], cost_type="tokens", ts=ts)
        elif kind == "invoice":
            total = self._cents(90000, 1000)
            paid = total if n % 3 else Decimal(0)
            yield Invoice(id=f"inv-{n}", agent=agent, total=total, paid=paid,
                          status="paid" if n % 3 else "open", ts=ts)
        elif kind == "position":
            ticker = TICKERS[n % len(TICKERS)]
            count = Decimal(n % 200 + 1)
            bid = Decimal((n % 97) + 1) * CENT
            yield Position(id=f"pos-{ticker}", agent=agent, ticker=ticker, count=count,
                           cost_basis=(count * Decimal("0.50")).quantize(CENT),
                           realized_pnl=self._cents(1000), fees=self._cents(300))
            yield Price(id=ticker, yes_bid=bid, yes_ask=bid + CENT, no_bid=Decimal(1) - bid - CENT,
                        no_ask=Decimal(1) - bid, last=bid)
        else:
            yield Fill(id=f"fill-{n}", agent=agent, ticker=TICKERS[n % len(TICKERS)],
                       side="yes" if n % 2 else "no", action="buy", count=Decimal(n % 50 + 1),
                       price=Decimal((n % 97) + 1) * CENT, fee=Decimal("0.07"), ts=ts)

    def reading(self, size: int, ts: datetime) -> Reading:
        records: list[Record] = []
        index = 0
        while len(records) < size:
            records.extend(self.record(MIX[index % len(MIX)], ts))
            index += 1
        return Reading(SOURCE, tuple(records[:size]), ts)


def build_readings(count: int, size: int) -> list[Reading]:
    """Every reading up front, so generating them is not timed."""
    mix = Mix()
    start = datetime.now(UTC)
    return [mix.reading(size, start + timedelta(milliseconds=i)) for i in range(count)]


async def _drain(receive: trio.MemoryReceiveChannel[Change], counts: dict[str, int], name: str) -> None:
    async with receive:
        async for change in receive:
            counts[name] += 1
            counts[f"{name}_records"] += len(change.records)


def _children_cpu() -> float:
    """CPU seconds of the ended child processes waited for (the writer's process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def run_once(db: Path, readings: list[Reading], synchronous: str, seconds: float) -> dict[str, Any]:
    open_writer(db, synchronous).close()
    persisted = load_persisted(db)
    store = SqliteRecords(db)
    state = recover(persisted, sources=[source_section()], store=store)
    writer_state = WriterState(buckets=BucketSet(persisted.open_buckets), committed_seq=state.seq)
    settings = WriterSettings(
        path=db, synchronous=synchronous,
        batch_max=_default("storage", "batch_max"),
        batch_deadline_s=_default("storage", "batch_deadline_ms") / 1000,
        snapshot_every=_default("storage", "snapshot_every"),
    )
    # the daemon's channel sizes (northstard/daemon.py)
    source_send, source_receive = trio.open_memory_channel[Any](256)
    change_send, change_receive = trio.open_memory_channel[Change](1024)
    hub_send, hub_receive = trio.open_memory_channel[Change](1024)
    cache_send, cache_receive = trio.open_memory_channel[Change](1024)
    counts = {"hub": 0, "hub_records": 0, "cache": 0, "cache_records": 0}
    fed_readings = fed_records = 0
    cpu0 = time.process_time()
    children0 = _children_cpu()
    started = finished = feeding_done = 0.0
    with trio.fail_after(seconds + 120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, hub_receive, counts, "hub")
            nursery.start_soon(_drain, cache_receive, counts, "cache")
            await nursery.start(run_writer, settings, writer_state, change_receive,
                                [hub_send, cache_send])
            engine = partial(run_engine, committed=lambda: writer_state.committed_seq)
            await nursery.start(engine, state, source_receive, change_send,
                                _default("engine", "max_batch"))
            started = time.perf_counter()
            deadline = started + seconds
            async with source_send:
                for reading in readings:
                    await source_send.send(reading)
                    fed_readings += 1
                    fed_records += len(reading.records)
                    if time.perf_counter() >= deadline:
                        break
            feeding_done = time.perf_counter()
        finished = time.perf_counter()
    store.close()
    cpu = time.process_time() - cpu0
    writer_cpu = _children_cpu() - children0
    elapsed = finished - started
    changes = counts["hub"]
    batches = writer_state.batches
    return {
        "bench": "ingest",
        "synchronous": synchronous,
        "records_per_reading": len(readings[0].records) if readings else 0,
        "readings": fed_readings,
        "records": fed_records,
        "elapsed_s": round(elapsed, 3),
        "feeding_s": round(feeding_done - started, 3),
        "records_per_s": round(fed_records / elapsed, 1),
        "records_per_cpu_s": round(fed_records / cpu, 1),
        "readings_per_s": round(fed_readings / elapsed, 1),
        "changes": changes,
        "changes_per_s": round(changes / elapsed, 1),
        "records_per_change": round(counts["hub_records"] / changes, 1) if changes else 0,
        "writer_batches": batches,
        "mean_batch_changes": round(changes / batches, 2) if batches else 0,
        "mean_batch_records": round(counts["hub_records"] / batches, 1) if batches else 0,
        "final_seq": state.seq,
        "cpu_s": round(cpu, 3),
        "cpu_pct": round(100 * cpu / elapsed, 1),
        "writer_process_cpu_s": round(writer_cpu, 3),
        "writer_process_cpu_pct": round(100 * writer_cpu / elapsed, 1),
        "db_bytes": _file_size(db),
        "wal_bytes": _file_size(db.with_name(db.name + "-wal")),
        "book_records": len(state.book.records),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_stages(db: Path, readings: list[Reading], synchronous: str, per_change: int,
               batch: int) -> dict[str, Any]:
    """Each step alone, one after the other in one thread (no trio, no GIL shared): the
    engine's steps over every reading (``per_change`` readings merged per change, as the
    engine merges what waits for it), then the writer actor's part of each batch (``batch``
    changes: ``store/batch.prepare`` and the encoding), then the writer process's part (the
    decoding and ``store/batch.run``: the transaction). What each costs per record, and so
    the most each process allows: the daemon's (engine + prepare) and the writer's."""
    open_writer(db, synchronous).close()
    persisted = load_persisted(db)
    store = SqliteRecords(db)
    state = recover(persisted, sources=[source_section()], store=store)
    changes: list[Change] = []
    cpu = time.thread_time()
    for i in range(0, len(readings), per_change):
        moment = datetime.now(UTC)
        changed, _ = _apply_all(state, readings[i:i + per_change], moment)
        changes.append(next_change(state, changed, moment))
    engine_s = time.thread_time() - cpu
    buckets = BucketSet(persisted.open_buckets)
    cpu = time.thread_time()
    frames = [dumps(prepare(changes[i:i + batch], buckets, _default("storage", "snapshot_every"),
                            int(time.time() * 1000)).wire())
              for i in range(0, len(changes), batch)]
    prepare_s = time.thread_time() - cpu
    conn = open_writer(db, synchronous)
    totals = RunningTotals()
    writer_s = saved_s = 0.0
    started = time.perf_counter()
    for n, frame in enumerate(frames):
        cpu = time.thread_time()
        run_job(conn, Job(*marshal.loads(frame)), totals)
        middle = time.thread_time()
        state.book.saved(changes[min((n + 1) * batch, len(changes)) - 1].seq)
        writer_s += middle - cpu
        saved_s += time.thread_time() - middle
    wall = time.perf_counter() - started - saved_s
    conn.close()
    store.close()
    records = sum(len(r.records) for r in readings)
    engine_us = (engine_s + saved_s) / records * 1e6
    prepare_us = prepare_s / records * 1e6
    return {
        "bench": "ingest-stages",
        "synchronous": synchronous,
        "records": records,
        "changes": len(changes),
        "engine_cpu_us_per_record": round(engine_us, 2),
        "prepare_cpu_us_per_record": round(prepare_us, 2),
        "writer_process_cpu_us_per_record": round(writer_s / records * 1e6, 2),
        "writer_process_wall_us_per_record": round(wall / records * 1e6, 2),
        "daemon_process_alone_records_per_s": round(1e6 / (engine_us + prepare_us)),
        "writer_process_alone_records_per_s": round(records / wall),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=50, help="records per reading (K)")
    parser.add_argument("--readings", type=int, default=2000, help="readings to feed at most (M)")
    parser.add_argument("--seconds", type=float, default=30.0, help="stop feeding after this long")
    parser.add_argument("--synchronous", choices=("normal", "full", "both"), default="both")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    parser.add_argument("--stages", action="store_true",
                        help="measure the engine's steps and the writer's transactions each alone")
    parser.add_argument("--per-change", type=int, default=2,
                        help="with --stages: readings merged per change (the bench's actors merge ~2)")
    parser.add_argument("--batch", type=int, default=125,
                        help="with --stages: changes per writer transaction (the bench's actors ~125)")
    args = parser.parse_args(argv)
    if args.records < 1 or args.readings < 1 or args.seconds <= 0:
        parser.error("--records, --readings and --seconds must be positive")

    # the actors log at info on drain/flush: keep stdout pure JSON, warnings to stderr
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )

    readings = build_readings(args.readings, args.records)
    # the readings are the bench's own input (in the daemon they arrive over time and go):
    # out of the collector's way, so its full collections do not scan them; and the
    # collector's thresholds as the daemon sets them at start (store/gctune.py)
    tune_gc()
    modes = ("normal", "full") if args.synchronous == "both" else (args.synchronous,)
    results = []
    with tempfile.TemporaryDirectory(prefix="northstard-ingest-") as tmp:
        for mode in modes:
            db = Path(tmp) / f"ingest-{mode}.db"
            if args.stages:
                results.append(run_stages(db, readings, mode, args.per_change, args.batch))
            else:
                results.append(trio.run(run_once, db, readings, mode, args.seconds))
    out: Any = results if len(results) > 1 else results[0]
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
