"""Alert persistence (tables of store migration 3), in plain functions run in a worker thread.

- ``alert_state``: each rule's status and what its window needs (one row per rule);
- ``alert_events``: every transition, newest ``keep`` kept (oldest deleted first);
- ``alert_outbox``: one row per (firing/resolved event, notifier) until it is
  acknowledged (deleted) or has used its attempts (``dead = 1``, a dead letter
  shown by ``/api/alerts``). At most ``outbox_max`` live rows: past it the
  oldest live rows become dead letters ("outbox full"), so nothing is dropped
  unseen; dead letters beyond ``outbox_max`` are deleted oldest first.

The transition, its event row and its outbox rows commit in one transaction:
an alert is either recorded and queued for every notifier, or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from northstard.core.alertrules import RuleState, Transition

__all__ = [
    "OutboxRow",
    "ack",
    "dead_letters",
    "event_body",
    "history",
    "load_states",
    "outbox_size",
    "pending",
    "postpone",
    "record",
    "save_states",
]


def explain_link(epoch: str, seq: int) -> str:
    """The link to what moved in the change ``epoch:seq``."""
    return f"/api/pnl/explain?from={epoch}:{max(seq - 1, 0)}&to={epoch}:{seq}"


def event_body(t: Transition) -> dict[str, object]:
    """The wire and storage form of a transition (amounts as decimal strings)."""
    rule = t.rule
    body: dict[str, object] = {
        "alert": rule.name, "event": t.event, "severity": rule.severity, "kind": rule.kind,
        "ts": t.ts_ms, "epoch": t.epoch, "seq": t.seq, "description": rule.describe(),
        "explain": explain_link(t.epoch, t.seq),
    }
    if t.value is not None:
        body["value"] = str(t.value)
    if rule.threshold is not None:
        body["threshold"] = str(rule.threshold)
    verb = {"firing": "FIRING", "resolved": "resolved", "pending": "pending", "cleared": "cleared"}
    shown = f" (value {body['value']})" if "value" in body else ""
    body["text"] = f"[{rule.severity}] {rule.name} {verb[t.event]}: {rule.describe()}{shown}"
    return body


def _state_body(state: RuleState) -> str:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return json.dumps({"value": text(state.value), "period_ms": state.period_ms,
                       "baseline": text(state.baseline), "shown": text(state.shown)})


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def load_states(conn: sqlite3.Connection) -> dict[str, RuleState]:
    states = {}
    for rule, status, since_ms, body in conn.execute(
        "SELECT rule, status, since_ms, body FROM alert_state"
    ):
        data = json.loads(body)
        states[rule] = RuleState(status=status, since_ms=since_ms, value=_decimal(data["value"]),
                                 period_ms=data["period_ms"], baseline=_decimal(data["baseline"]),
                                 shown=_decimal(data["shown"]))
    return states


def save_states(conn: sqlite3.Connection, states: Mapping[str, RuleState]) -> None:
    with conn:
        _upsert_states(conn, states)


def _upsert_states(conn: sqlite3.Connection, states: Mapping[str, RuleState]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO alert_state (rule, status, since_ms, body) VALUES (?, ?, ?, ?)",
        [(name, s.status, s.since_ms, _state_body(s)) for name, s in states.items()],
    )


def record(
    conn: sqlite3.Connection, transitions: Sequence[Transition], states: Mapping[str, RuleState],
    notifiers: Iterable[str], now_ms: int, keep: int, outbox_max: int,
) -> list[dict[str, Any]]:
    """Persist transitions, the states they moved and their outbox rows; the bodies, with ids."""
    known = set(notifiers)
    bodies = []
    with conn:
        for t in transitions:
            body = event_body(t)
            cursor = conn.execute(
                "INSERT INTO alert_events (rule, event, severity, ts_ms, epoch, seq, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (t.rule.name, t.event, t.rule.severity, t.ts_ms, t.epoch, t.seq, json.dumps(body)),
            )
            body["id"] = cursor.lastrowid
            bodies.append(body)
            if t.notifies:
                conn.executemany(
                    "INSERT INTO alert_outbox (event_id, notifier, next_ms) VALUES (?, ?, ?)",
                    [(body["id"], name, now_ms) for name in t.rule.notify if name in known],
                )
        _upsert_states(conn, {t.rule.name: states[t.rule.name] for t in transitions})
        conn.execute("DELETE FROM alert_events WHERE id <= (SELECT MAX(id) FROM alert_events) - ?",
                     (keep,))
        _bound_outbox(conn, outbox_max)
    return bodies


def _bound_outbox(conn: sqlite3.Connection, outbox_max: int) -> None:
    conn.execute(
        "UPDATE alert_outbox SET dead = 1, last_error = 'outbox full' WHERE dead = 0 AND id IN"
        " (SELECT id FROM alert_outbox WHERE dead = 0 ORDER BY id DESC LIMIT -1 OFFSET ?)",
        (outbox_max,),
    )
    conn.execute(
        "DELETE FROM alert_outbox WHERE dead = 1 AND id IN"
        " (SELECT id FROM alert_outbox WHERE dead = 1 ORDER BY id DESC LIMIT -1 OFFSET ?)",
        (outbox_max,),
    )


def history(conn: sqlite3.Connection, before: int | None, limit: int) -> list[dict[str, Any]]:
    """Transitions newest first, ids below ``before`` (a page), each with its id."""
    rows = conn.execute(
        "SELECT id, body FROM alert_events WHERE id < ? ORDER BY id DESC LIMIT ?",
        (before if before is not None else 2**62, limit),
    ).fetchall()
    return [{**json.loads(body), "id": row_id} for row_id, body in rows]


@dataclass(frozen=True)
class OutboxRow:
    id: int
    notifier: str
    attempts: int
    next_ms: int
    body: dict[str, Any]


def pending(conn: sqlite3.Connection, limit: int) -> list[OutboxRow]:
    """Live outbox rows, oldest first (the delivery order), due or not."""
    rows = conn.execute(
        "SELECT o.id, o.notifier, o.attempts, o.next_ms, e.id, e.body FROM alert_outbox o"
        " JOIN alert_events e ON e.id = o.event_id WHERE o.dead = 0 ORDER BY o.id LIMIT ?",
        (limit,),
    ).fetchall()
    return [OutboxRow(i, n, a, t, {**json.loads(b), "id": eid}) for i, n, a, t, eid, b in rows]


def next_due_ms(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT MIN(next_ms) FROM alert_outbox WHERE dead = 0").fetchone()
    return None if row[0] is None else int(row[0])


def ack(conn: sqlite3.Connection, row_id: int) -> None:
    with conn:
        conn.execute("DELETE FROM alert_outbox WHERE id = ?", (row_id,))


def postpone(conn: sqlite3.Connection, row_id: int, next_ms: int | None, error: str) -> None:
    """One more failed attempt: retry at ``next_ms``, or a dead letter when None."""
    with conn:
        conn.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, next_ms = ?, dead = ?"
            " WHERE id = ?",
            (error[:300], next_ms or 0, 1 if next_ms is None else 0, row_id),
        )


def outbox_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM alert_outbox WHERE dead = 0").fetchone()[0])


def dead_letters(conn: sqlite3.Connection, limit: int) -> list[dict[str, object]]:
    rows = conn.execute(
        "SELECT o.id, o.notifier, o.attempts, o.last_error, e.body FROM alert_outbox o"
        " JOIN alert_events e ON e.id = o.event_id WHERE o.dead = 1 ORDER BY o.id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [{"id": i, "notifier": n, "attempts": a, "error": err, "event": json.loads(b)}
            for i, n, a, err, b in rows]
