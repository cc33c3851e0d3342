"""The long-poll edge ``/api/pnl/changes``: the merged change since ``EPOCH:SEQ``, or a wait for it.

It reads from the hub through a ``Subscription`` (a position, no queue). The
streaming edges, WebSocket ``/ws`` and SSE ``/api/pnl/stream``, are served on
raw sockets beside this app (``fastws.py``, ``fastsse.py``, ``front.py``).
"""

from __future__ import annotations

from contextlib import suppress

import trio
from quart import Quart, Response, request

from ..change import dumps
from ..errors import RequestError
from ..hub import HubClosed
from .context import WebContext
from .params import parse_since, parse_wait

__all__ = ["add_stream_routes"]


def add_stream_routes(app: Quart, ctx: WebContext) -> None:
    @app.route("/api/pnl/changes")
    async def changes() -> Response:
        since = parse_since(request.args)
        if since is None:
            raise RequestError("bad_parameter", "since: required (EPOCH:SEQ)")
        wait = parse_wait(request.args, float(ctx.server["longpoll_max_s"]))
        with ctx.hub.subscribe("poll", since) as sub:
            message = None
            with trio.move_on_after(wait):
                with suppress(HubClosed):
                    message = sub.hub.catch_up(since) if wait == 0 else await sub.next_message()
        if message is None:
            position = ctx.hub.position
            text = dumps({"type": "unchanged", "epoch": position.epoch, "seq": position.seq})
        else:
            ctx.metrics.messages.labels("poll", message.kind).inc()
            text = message.text
        return Response(text, mimetype="application/json", headers={"Cache-Control": "no-store"})
