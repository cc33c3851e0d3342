"""The delivery actor: drains the alert outbox (SQLite) to the notifiers, in order, at least once.

Each outbox row is one (event, notifier). Rows go oldest first; a notifier
whose row fails is not sent its later rows until that one goes through (or
dies), so each receiver sees events in order. A failed row is retried after
``backoff_s`` (exponential, jittered); after ``max_attempts`` it is a dead
letter, shown by ``/api/alerts``. A row is deleted only after a 2xx: a crash
in between sends it again with the same ``Idempotency-Key``. At most
``BATCH`` rows are read per round; the outbox's own bound is in
``alertstore``.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import structlog
import trio

from northstard.actors.alerts import wall_ms
from northstard.actors.email_notifier import Email
from northstard.actors.webhook import Webhook, backoff_s
from northstard.config import Config
from northstard.status.alertfeed import AlertFeed
from northstard.store import alertstore
from northstard.store.sqlite import open_writer

__all__ = ["Notifier", "notifiers_of", "run_delivery"]

Notifier = Webhook | Email


def notifiers_of(config: Config) -> dict[str, Notifier]:
    """Each ``[notifiers.NAME]`` built by its type."""
    return {name: (Email.from_section(name, s) if s["type"] == "email" else Webhook.from_section(name, s))
            for name, s in config.notifiers.items()}

log = structlog.get_logger("northstard.delivery")

BATCH = 100
IDLE_S = 5.0


async def _round(conn: sqlite3.Connection, client: httpx.AsyncClient,
                 notifiers: Mapping[str, Notifier], rng: random.Random, now_ms: Callable[[], int]) -> None:
    rows = await trio.to_thread.run_sync(alertstore.pending, conn, BATCH)
    blocked: set[str] = set()
    for row in rows:
        notifier = notifiers.get(row.notifier)
        if row.notifier in blocked or row.next_ms > now_ms():
            blocked.add(row.notifier)  # in order: its later rows wait for this one
            continue
        error = await notifier.send(client, row.body) if notifier else f"no notifier {row.notifier!r}"
        if error is None:
            await trio.to_thread.run_sync(alertstore.ack, conn, row.id)
            log.info("alert delivered", notifier=row.notifier, event_id=row.body["id"])
            continue
        blocked.add(row.notifier)
        attempts = row.attempts + 1
        limit = notifier.max_attempts if notifier else 1
        retry = None
        if attempts < limit and notifier is not None:
            wait = backoff_s(attempts, notifier.backoff_initial_s, notifier.backoff_max_s, rng)
            retry = now_ms() + int(wait * 1000)
        await trio.to_thread.run_sync(alertstore.postpone, conn, row.id, retry, error)
        log.warning("alert delivery failed", notifier=row.notifier, event_id=row.body["id"],
                    attempts=attempts, error=error, dead=retry is None)


async def run_delivery(
    path: Path,
    notifiers: Mapping[str, Notifier],
    feed: AlertFeed,
    rng: random.Random | None = None,
    now_ms: Callable[[], int] = wall_ms,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Deliver until cancelled: at start (what a previous run left), on each new event, when a
    retry falls due."""
    rng = rng or random.Random()
    conn = await trio.to_thread.run_sync(open_writer, path, "full")
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            task_status.started()
            while True:
                seen = feed.last_id
                await _round(conn, client, notifiers, rng, now_ms)
                due = await trio.to_thread.run_sync(alertstore.next_due_ms, conn)
                wait = IDLE_S if due is None else max(0.0, min(IDLE_S, (due - now_ms()) / 1000))
                with trio.move_on_after(wait):
                    await feed.wait_after(seen)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(conn.close)
