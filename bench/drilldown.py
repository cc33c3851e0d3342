"""Drill-down reads on a database of N stored records: records pages, explain, statement.

    python bench/drilldown.py --records 1000000 --db /tmp/drill.db [--json-out FILE]

The database is built once through the real engine and writer (``bench/history.py``'s
``build``: a year of costs, fills and invoices plus a trading book) and reused. Each
figure is the median of ``--repeat`` runs of the blocking read the route runs in its
worker thread (a fresh read-only connection each time, as the route opens one):
``/api/records`` filtered by agent and kind (first page, and a page from mid-year),
``/api/pnl/explain`` over the last change, the last 10, the last day, week and month
(``items_by`` says whether the answer came record by record or, past 2,000 versions,
from the rollup by group key) and a daily statement for the last four weeks (older
boundaries are past the default 30 days of kept deltas: 410). A database built before
the rollup (schema 4) is migrated when the bench first opens it for writing
(``--migrate``: the one-off fill is timed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import build, stored_records

from northstard.actors.hub import Position
from northstard.errors import RequestError
from northstard.store.explain_read import database_epoch, explain, position_at_ms, statement
from northstard.store.record_pages import RecordQuery, read_page
from northstard.store.sqlite import open_reader, open_writer


def timed(db: Path, read: Callable[[Any], Any], repeat: int) -> tuple[float, Any]:
    """Median milliseconds of ``read`` on a fresh read-only connection, and its last answer."""
    times, answer = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        with closing(open_reader(db)) as conn:
            try:
                answer = read(conn)
            except RequestError as exc:
                answer = exc
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1), answer


def explain_since(days: int) -> Callable[[Any], Any]:
    def read(conn: Any) -> Any:
        now = datetime.now(UTC)
        seq = position_at_ms(conn, int((now - timedelta(days=days)).timestamp() * 1000))
        return explain(conn, Position(database_epoch(conn), seq), None, 100)
    return read


def explain_last(changes: int) -> Callable[[Any], Any]:
    def read(conn: Any) -> Any:
        seq = conn.execute("SELECT seq FROM current").fetchone()[0]
        return explain(conn, Position(database_epoch(conn), seq - changes), None, 100)
    return read


def measure(db: Path, repeat: int) -> dict[str, Any]:
    mid = int((datetime.now(UTC) - timedelta(days=180)).timestamp() * 1000)
    today = datetime.now(UTC).date()
    cases: dict[str, Callable[[Any], Any]] = {
        "records_agent_cost_first_page": lambda c: read_page(c, RecordQuery(agent="atlas", kind="cost")),
        "records_agent_cost_mid_year": lambda c: read_page(
            c, RecordQuery(agent="atlas", kind="cost", from_ms=mid)),
        "records_model_1000": lambda c: read_page(c, RecordQuery(model="claude-opus-4", limit=1000)),
        "explain_last_change": explain_last(1),
        "explain_last_10_changes": explain_last(10),
        "explain_day": explain_since(1),
        "explain_week": explain_since(7),
        "explain_month": explain_since(30),
        "statement_days_4_weeks": lambda c: statement(c, "day", today - timedelta(days=28), today),
    }
    out: dict[str, Any] = {}
    for name, read in cases.items():
        ms, answer = timed(db, read, repeat)
        entry: dict[str, Any] = {"ms": ms}
        if isinstance(answer, RequestError):
            entry["answer"] = f"{answer.status} {answer.error}"
        elif isinstance(answer, dict) and "items" in answer:
            entry["items_by"] = answer["items_by"]
            entry["items"] = len(answer["items"])
            entry["groups_agents"] = len(answer["groups"]["agent"])
        elif isinstance(answer, dict) and "rows" in answer:
            entry["rows"] = len(answer["rows"])
        else:
            entry.update(records=len(answer.records), visited=answer.visited)
        out[name] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--migrate", action="store_true",
                        help="open an existing database for writing first (runs due migrations)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"records": args.records}
    if not args.db.exists():
        result["build"] = trio.run(build, args.db, args.records)
    elif args.migrate:
        started = time.perf_counter()
        open_writer(args.db).close()
        result["migrate_s"] = round(time.perf_counter() - started, 1)
    result["stored_records"] = stored_records(args.db)
    result["reads"] = measure(args.db, args.repeat)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
