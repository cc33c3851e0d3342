"""The feed of alert events the edges read: the firing alerts and a bounded ring of recent events.

The alerts actor publishes each persisted transition here; readers (``GET
/api/alerts`` long-polls) wait for an id past the one they have. The ring
holds at most ``size`` events (oldest go first); older ones are read from
SQLite (``alertstore.history``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

__all__ = ["AlertFeed"]


class AlertFeed:
    def __init__(self, size: int = 256) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=size)
        self.current: dict[str, dict[str, Any]] = {}  # firing (and pending) alerts by rule name
        self.last_id = 0
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return f"<AlertFeed last_id={self.last_id} current={sorted(self.current)}>"

    def publish(self, body: dict[str, Any]) -> None:
        """One persisted transition: into the ring, and the current set updated."""
        self.recent.append(body)
        self.last_id = max(self.last_id, int(body["id"]))
        if body["event"] in ("firing", "pending"):
            self.current[body["alert"]] = body
        else:
            self.current.pop(body["alert"], None)
        self._changed.set()
        self._changed = trio.Event()

    def after(self, last_id: int) -> list[dict[str, object]]:
        """Events with an id past ``last_id`` still in the ring, oldest first."""
        return [b for b in self.recent if b["id"] > last_id]

    async def wait_after(self, last_id: int) -> None:
        """Return once an event past ``last_id`` is published."""
        while self.last_id <= last_id:
            await self._changed.wait()
