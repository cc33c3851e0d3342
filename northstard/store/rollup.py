"""The explain rollup: per group key, the running sum of every change's contribution.

A group key is (source, kind, agent, model, ticker) of an explain item
(``core.explain.group_key``). For each change the engine sums the change's
per-record items per group key from what it holds in memory
(``explain.change_groups``: the same sums as the items a one-change
``explain`` answers from the log, ``change_items.items_between(seq - 1, seq)``),
and the writer stores, for each group the change touched, the group's running
total since the start of the record log: ``rollup (group_id, seq, total)``,
``total`` a JSON object of exact decimal strings per figure path. It is written
in the same transaction as the record log, so it covers exactly what the log
covers.

The contribution of a group to the change from position S to E is its running
total at E minus at S (the newest row at or before each). The per-change items
sum exactly to each change's difference of the documents, so these sums do too,
over any range (the differences telescope): tests/test_explain_rollup.py.

Bounds. Read: two index seeks per group key that changed after S (the groups a
range touches; 641 in the 1M-record bench), whatever the range's length.
Write: per change, one row per group it touches; a group the writer does not
hold (``RunningTotals``, at most 4,096 kept between batches) costs two index
seeks once. Growth: at most one row per group
per change (at most one per stored version); not pruned, like the log.

Migration 5 fills it once for an existing database: every change since the
start of the log, one at a time, with the revenue basis of the current
document (a one-off pass over the log: about 80 s for 1M versions).
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal

from northstard.core.contributions import Figures, add_into, subtract
from northstard.core.explain import GroupKey, by_group
from northstard.core.mergepatch import Doc
from northstard.core.pnl import RevenueBasis
from northstard.store.change_items import items_between
from northstard.store.record_log import log_from

__all__ = ["SUMS", "RunningTotals", "basis_of", "group_sums", "migration_5"]


def migration_5(conn: sqlite3.Connection) -> None:
    """The rollup tables, filled from the record log (one pass, once)."""
    conn.execute(
        "CREATE TABLE rollup_group (id INTEGER PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL,"
        " agent TEXT NOT NULL, model TEXT NOT NULL, ticker TEXT NOT NULL, last_seq INTEGER NOT NULL,"
        " UNIQUE (source, kind, agent, model, ticker))"
    )
    conn.execute("CREATE INDEX rollup_group_last ON rollup_group (last_seq)")
    conn.execute("CREATE INDEX rec_log_open_position ON rec_log (ticker, source)"
                 " WHERE ended_seq IS NULL AND kind = 'position'")  # a market's open positions
    conn.execute("CREATE TABLE rollup (group_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
                 " total TEXT NOT NULL, PRIMARY KEY (group_id, seq)) WITHOUT ROWID")
    row = conn.execute("SELECT seq, doc FROM current WHERE id = 1").fetchone()
    if row is None:
        return
    basis = basis_of(json.loads(row[1]))
    totals = RunningTotals()
    for seq in range(log_from(conn) + 1, row[0] + 1):
        totals.add(conn, seq, by_group(items_between(conn, seq - 1, seq, basis)))
        if seq % 1000 == 0:
            totals.flush(conn)
    totals.flush(conn)


def basis_of(doc: Doc) -> RevenueBasis:
    """The revenue basis a document was computed with."""
    section = doc.get("revenue")
    basis = section.get("basis") if isinstance(section, dict) else None
    return "collected" if basis == "collected" else "invoiced"


def _loads(text: str | None) -> Figures:
    return {} if text is None else {path: Decimal(amount) for path, amount in json.loads(text).items()}


def _dumps(figures: Mapping[str, Decimal]) -> str:
    return json.dumps({path: str(amount) for path, amount in sorted(figures.items()) if amount})


class RunningTotals:
    """The writer's side of the rollup: each group's id and running total, kept for the groups
    it touched lately, so a change costs one row per group it touches and no read.

    ``add`` queues a change's rows (a group not held is read once: two index seeks, or added);
    ``flush`` writes the queued rows and each group's newest ``last_seq`` in the open transaction,
    then trims the held groups to ``limit`` (least recently used out first; ~1 KB each: 4 MiB at
    the default). ``forget`` after a transaction that did not commit: what is held may be ahead
    of the database, so all of it goes and is read again. Groups are never dropped mid-batch
    (their totals would be read back before their rows are written): one batch may hold more.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.held: OrderedDict[GroupKey, tuple[int, Figures]] = OrderedDict()
        self.rows: list[tuple[int, int, str]] = []
        self.last: dict[int, int] = {}

    def add(self, conn: sqlite3.Connection, seq: int,
            groups: Mapping[GroupKey, Mapping[str, Decimal]]) -> None:
        """Queue the change at ``seq``: its contribution per group key (``explain.change_groups``)."""
        for key, figures in groups.items():
            group_id, total = self._group(conn, key, seq)
            add_into(total, figures)
            self.rows.append((group_id, seq, _dumps(total)))
            self.last[group_id] = seq

    def _group(self, conn: sqlite3.Connection, key: GroupKey, seq: int) -> tuple[int, Figures]:
        held = self.held.get(key)
        if held is not None:
            self.held.move_to_end(key)
            return held
        found = conn.execute(
            "SELECT id, last_seq FROM rollup_group WHERE source = ? AND kind = ? AND agent = ?"
            " AND model = ? AND ticker = ?", key).fetchone()
        if found is None:
            group_id = conn.execute(
                "INSERT INTO rollup_group (source, kind, agent, model, ticker, last_seq)"
                " VALUES (?, ?, ?, ?, ?, ?)", (*key, seq)).lastrowid
            assert group_id is not None
            total: Figures = {}
        else:
            group_id = found[0]
            previous = conn.execute("SELECT total FROM rollup WHERE group_id = ? AND seq = ?",
                                    found).fetchone()
            total = _loads(previous[0] if previous is not None else None)
        held = self.held[key] = (group_id, total)
        return held

    def flush(self, conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT OR REPLACE INTO rollup (group_id, seq, total) VALUES (?, ?, ?)",
                         self.rows)
        conn.executemany("UPDATE rollup_group SET last_seq = ? WHERE id = ?",
                         [(seq, group_id) for group_id, seq in self.last.items()])
        self.rows.clear()
        self.last.clear()
        while len(self.held) > self.limit:
            self.held.popitem(last=False)

    def forget(self) -> None:
        self.held.clear()
        self.rows.clear()
        self.last.clear()


SUMS = (
    "SELECT g.source, g.kind, g.agent, g.model, g.ticker,"
    " (SELECT total FROM rollup r WHERE r.group_id = g.id AND r.seq <= :start"
    "  ORDER BY r.seq DESC LIMIT 1),"
    " (SELECT total FROM rollup r WHERE r.group_id = g.id AND r.seq <= :end"
    "  ORDER BY r.seq DESC LIMIT 1)"
    " FROM rollup_group g WHERE g.last_seq > :start"
)


def group_sums(conn: sqlite3.Connection, start: int, end: int) -> dict[GroupKey, Figures]:
    """Per group key, its contribution to the change from ``start`` to ``end`` (non-zero only)."""
    sums: dict[GroupKey, Figures] = {}
    for source, kind, agent, model, ticker, before, after in conn.execute(
        SUMS, {"start": start, "end": end}
    ):
        figures = subtract(_loads(after), _loads(before))
        if figures:
            sums[source, kind, agent, model, ticker] = figures
    return sums
