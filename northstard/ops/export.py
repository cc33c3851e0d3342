"""``northstard export``: records (or a statement) from the database, for an accountant.

Reads through a read-only connection (``store.open_reader``), so it runs
beside a live daemon on the same file; records are read a page at a time
(``record_pages``: 1000 records, at most ``SCAN_BUDGET`` rows visited per
page), so memory stays bounded whatever the range. Records come in the API's
order (time, source, kind, id); with several ``--kind`` flags, one kind after
the other.

    northstard export --from 2026-11-01 --to 2026-12-01 [--format csv|jsonl]
                      [--kind cost ...] [--status current|all] [--statement PERIOD]
                      [--db PATH | --config F] [--output FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from northstard.core.statement import PERIODS, csv_text
from northstard.errors import RequestError, StoreError
from northstard.policy.params import parse_instant
from northstard.store.explain_read import statement
from northstard.store.record_pages import MAX_LIMIT, RecordQuery, read_page
from northstard.store.sqlite import RECORD_KINDS, open_reader

__all__ = ["add_export_arguments", "run_export"]

EXIT_USAGE = 2
RECORD_COLUMNS = ("source", "kind", "id", "time", "status", "net_pnl", "fields", "contributions")


def add_export_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--from", dest="start", required=True,
                         help="records from this time (ISO 8601 UTC or a date), inclusive")
    command.add_argument("--to", dest="end", required=True, help="up to this time, exclusive")
    command.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    command.add_argument("--kind", action="append", choices=RECORD_KINDS,
                         help="only this record kind (repeat for several)")
    command.add_argument("--status", choices=("current", "all"), default="current",
                         help="all: replaced and retracted versions too")
    command.add_argument("--statement", choices=PERIODS,
                         help="write the statement with this period instead of the records")
    command.add_argument("--db", type=Path, default=argparse.SUPPRESS,
                         help="the SQLite file (default: storage.path of the config)")
    command.add_argument("--output", type=Path, help="write here instead of stdout")


def _records(conn: sqlite3.Connection, query: RecordQuery) -> Iterator[dict[str, Any]]:
    while True:
        page = read_page(conn, query)
        yield from page.records
        if page.next_cursor is None:
            return
        query = replace(query, after=page.next_cursor)


def _write_records(conn: sqlite3.Connection, args: argparse.Namespace, out: TextIO) -> None:
    start, end = parse_instant("--from", args.start), parse_instant("--to", args.end)
    writer = csv.writer(out, lineterminator="\r\n")
    if args.format == "csv":
        writer.writerow(RECORD_COLUMNS)
    for kind in args.kind or [None]:
        query = RecordQuery(kind=kind, from_ms=start, to_ms=end, status=args.status, limit=MAX_LIMIT)
        for record in _records(conn, query):
            if args.format == "jsonl":
                out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
                continue
            writer.writerow([record["source"], record["kind"], record["id"], record["time"],
                             record["status"], record["contributions"].get("net_pnl", "0.00"),
                             json.dumps(record["fields"], separators=(",", ":")),
                             json.dumps(record["contributions"], separators=(",", ":"))])


def _day(flag: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RequestError("bad_parameter", f"{flag}: expected YYYY-MM-DD with --statement") from None


def _write_statement(conn: sqlite3.Connection, args: argparse.Namespace, out: TextIO) -> None:
    body = statement(conn, args.statement, _day("--from", args.start), _day("--to", args.end))
    if args.format == "csv":
        out.write(csv_text(body["rows"]))
        return
    for row in body["rows"]:
        out.write(json.dumps({"period": body["period"], "currency": body["currency"], **row},
                             separators=(",", ":")) + "\n")


def run_export(args: argparse.Namespace, db_path: Path) -> int:
    """Write what ``args`` ask for; 2 on a bad flag, 1 when the database cannot be read."""
    try:
        with closing(open_reader(db_path)) as conn:
            out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
            try:
                if args.statement:
                    _write_statement(conn, args, out)
                else:
                    _write_records(conn, args, out)
            finally:
                if out is not sys.stdout:
                    out.close()
    except RequestError as exc:
        print(f"northstard: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, sqlite3.Error) as exc:
        print(f"northstard: cannot read {db_path}: {exc}", file=sys.stderr)
        return 1
    return 0
