"""The long-poll edge ``/api/pnl/changes``: the merged change since ``EPOCH:SEQ``, or a wait for it.

It reads from the hub through a ``Subscription`` (a position, no queue). A
``since`` more than ``hub.RECENT_CHANGES`` behind (a resume, not a poller's
step) spends the connection's resume budget (``hub.ResumeBudget``; connections
keyed by client address and port in an LRU of ``[limits] max_tracked_clients``):
past it, a 429 ``too_many_resumes`` with ``Retry-After``. The
streaming edges, WebSocket ``/ws`` and SSE ``/api/pnl/stream``, are served on
raw sockets beside this app (``fastws.py``, ``fastsse.py``, ``front.py``).
"""

from __future__ import annotations

from contextlib import suppress

import trio
from quart import Quart, Response, request

from northstard.actors.hub import HubClosed
from northstard.core.change import dumps
from northstard.edges.http.context import WebContext
from northstard.errors import RequestError
from northstard.policy.limits import RateLimiter
from northstard.policy.params import parse_since, parse_wait
from northstard.policy.ratelimit import retry_after

__all__ = ["add_stream_routes"]


def _too_many_resumes(wait: float) -> Response:
    seconds = retry_after(wait)
    body = dumps({"error": "too_many_resumes",
                  "detail": f"too many resumes on this connection; retry in {seconds} s"})
    return Response(body, status=429, mimetype="application/json",
                    headers={"Retry-After": str(seconds), "Cache-Control": "no-store"})


def add_stream_routes(app: Quart, ctx: WebContext) -> None:
    budget = ctx.hub.budget
    tracked = ctx.limits.max_tracked_clients
    resumes = RateLimiter(budget.rate_per_s, budget.burst, tracked)

    @app.route("/api/pnl/changes")
    async def changes() -> Response:
        since = parse_since(request.args)
        if since is None:
            raise RequestError("bad_parameter", "since: required (EPOCH:SEQ)")
        wait = parse_wait(request.args, ctx.server.longpoll_max_s)
        if ctx.hub.is_resume(since):
            host, port = request.scope.get("client") or ("", 0)
            refused = resumes.take(f"{host}:{port}", trio.current_time())
            if refused:
                ctx.metrics.refused.labels("resumes").inc()
                return _too_many_resumes(refused)
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
