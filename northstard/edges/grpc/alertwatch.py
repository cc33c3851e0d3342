"""``WatchAlerts`` on the gRPC loop: the alerts actor's events, encoded once, to every stream.

    AlertFeed (trio) ──feeder, call_soon_threadsafe──▶ AlertBoard (loop) ──▶ N streams, each an id

The board holds the alerts firing or pending now and a ring of the last
``RING`` events, each as ``AlertEvent`` bytes built once for every stream. A
stream keeps no queue: it is the id of the last event it sent, and
``context.write`` waits while the client's HTTP/2 window is full. A slow
stream that falls further behind than the ring drops to the latest state:
it gets the current alerts again (``current = true``) and goes on from the
newest event. Held per stream: one event in flight; shared: ``RING`` events
and one per rule at most in ``current``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.edges.grpc.convert import timestamp_from_ms

__all__ = ["RING", "AlertBoard", "alert_event", "watch"]

RING = 256


def alert_event(body: Mapping[str, Any], current: bool = False) -> bytes:
    """The ``AlertEvent`` bytes of an alert event body (``northstard.store.alertstore``)."""
    event = pb.AlertEvent(
        id=int(body["id"]), alert=body["alert"], event=body["event"], severity=body["severity"],
        kind=body["kind"], ts=timestamp_from_ms(int(body["ts"])), epoch=body["epoch"],
        seq=int(body["seq"]), description=body["description"], text=body["text"],
        explain=body["explain"], current=current)
    if "value" in body:
        event.value = body["value"]
    if "threshold" in body:
        event.threshold = body["threshold"]
    return event.SerializeToString()


class AlertBoard:
    """The alerts' state on the loop; ``publish`` is scheduled here by the trio feeder."""

    def __init__(self, size: int = RING) -> None:
        self.ring: deque[tuple[int, bytes]] = deque(maxlen=size)
        self.current: list[bytes] = []  # the alerts firing or pending, oldest first
        self.last_id = 0
        self.floor = 0  # events up to this id are no longer in the ring
        self.closing = False
        self.changed = asyncio.Event()  # set (and replaced) at each publish

    def __repr__(self) -> str:
        return f"<AlertBoard last_id={self.last_id} current={len(self.current)} ring={len(self.ring)}>"

    def publish(self, bodies: Sequence[Mapping[str, Any]], current: Iterable[Mapping[str, Any]],
                gap: bool = False) -> None:
        """New events (oldest first) and the alerts current after them; ``gap``: events before
        ``bodies`` were lost on the way (every stream drops to the latest state)."""
        if gap and bodies:
            self.floor = max(self.floor, int(bodies[0]["id"]) - 1)
        for body in bodies:
            if len(self.ring) == self.ring.maxlen:
                self.floor = self.ring[0][0]
            self.ring.append((int(body["id"]), alert_event(body)))
            self.last_id = max(self.last_id, int(body["id"]))
        ordered = sorted(current, key=lambda b: int(b["id"]))
        self.current = [alert_event(b, current=True) for b in ordered]
        self._wake()

    def close(self) -> None:
        """Every stream ends (with OK) at its next step."""
        self.closing = True
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def after(self, last_id: int) -> list[bytes] | None:
        """The events past ``last_id``, oldest first; None when some are no longer held."""
        if last_id < self.floor:
            return None
        return [data for event_id, data in self.ring if event_id > last_id]


async def watch(board: AlertBoard, write: Callable[[bytes], Awaitable[None]]) -> None:
    """Send the current alerts, then every event as it comes, until the board closes."""
    last_id: int | None = None
    while not board.closing:
        changed = board.changed
        events = board.after(last_id) if last_id is not None else None
        if events is None:  # a new stream, or one that fell behind the ring
            last_id = board.last_id
            events = list(board.current)
        elif not events:
            await changed.wait()
            continue
        else:
            last_id = board.last_id
        for data in events:
            await write(data)
