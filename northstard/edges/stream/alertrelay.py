"""Alert events on the streams: each event the alerts actor publishes, to every WebSocket and SSE
client, as it happens.

    WebSocket: {"type":"alert","id":ID,"alert":NAME,"event":"firing",...,"epoch":E,"seq":N,"explain":URL}
    SSE:       event: alert / data: {same JSON}   (no id: line, so Last-Event-ID stays a position)

An alert message moves no stream position and is not replayed on resume (``GET /api/alerts``
holds the history); clients ignore message types they do not know (docs/protocol.md). It goes to
the live clients as a ping does (``Broadcaster.offer``): no queue of its own.
"""

from __future__ import annotations

import socket

import trio

from northstard.core.change import dumps
from northstard.core.http1 import Request
from northstard.core.wsframes import text_frame
from northstard.edges.stream.fastsse import SseEdge, chunk
from northstard.edges.stream.fastws import WsEdge
from northstard.status.alertfeed import AlertFeed

__all__ = ["AlertRelay", "alert_message"]


def alert_message(body: dict[str, object]) -> str:
    return dumps({"type": "alert", **body})


class AlertRelay:
    """A background task beside the edges (no paths of its own)."""

    paths: tuple[str, ...] = ()

    def __init__(self, feed: AlertFeed, ws: WsEdge, sse: SseEdge) -> None:
        self.feed = feed
        self.ws = ws
        self.sse = sse

    def __repr__(self) -> str:
        return f"<AlertRelay {self.feed!r}>"

    def offer(self, body: dict[str, object]) -> None:
        text = alert_message(body)
        self.ws.broadcaster.offer(text_frame(text))
        event = f"event: alert\ndata: {text}\n\n".encode()
        self.sse.chunked.offer(chunk(event))
        self.sse.plain.offer(event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        seen = self.feed.last_id
        task_status.started()
        while True:
            await self.feed.wait_after(seen)
            for body in self.feed.after(seen):
                self.offer(body)
            seen = self.feed.last_id

    async def serve(self, sock: socket.socket, request: Request, rest: bytes) -> None:
        raise AssertionError("AlertRelay takes no path")  # Front routes only the edges' paths

    def close_all(self) -> None:
        """The WS and SSE edges close their own clients."""
