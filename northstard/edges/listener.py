"""The one-port web listener: the Quart app and the raw WebSocket/SSE edges behind one front.

Wiring only: it builds the HTTP edge's app (``edges/http``) and the stream
edges (``edges/stream``), which never import each other, and hands them to
the front that routes each connection.
"""

from __future__ import annotations

import resource
from collections.abc import Awaitable, Callable
from typing import cast

import structlog
import trio

from northstard.edges.asgi import Asgi
from northstard.edges.http.app import create_app
from northstard.edges.http.context import WebContext
from northstard.edges.http.guard import edge_authorizer
from northstard.edges.stream.alertrelay import AlertRelay
from northstard.edges.stream.fastsse import SseEdge
from northstard.edges.stream.fastws import WsEdge, WsSettings
from northstard.edges.stream.front import Edge, Front, ListenSettings
from northstard.edges.tls import tls_server
from northstard.policy.limits import Limits

__all__ = ["listen_settings", "run_web"]

log = structlog.get_logger("northstard.web")


def listen_settings(ctx: WebContext) -> ListenSettings:
    server = ctx.server
    return ListenSettings(host=server.host, port=server.port, backlog=server.backlog,
                          grace_s=server.shutdown_grace_s)


async def run_web(
    ctx: WebContext,
    shutdown: Callable[[], Awaitable[object]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` returns; ``task_status.started`` gets the bound URLs.

    One port: ``/ws`` and ``/api/pnl/stream`` go to the raw-socket edges, the
    rest to the Quart app as an ASGI app over h11 (``stream/front.py``, ``appserver.py``).
    """
    app = create_app(ctx)
    authorize = edge_authorizer(ctx.auth)
    ws = WsEdge(ctx.hub, ctx.metrics, WsSettings.from_server(ctx.server, ctx.max_rate_hz), authorize)
    sse = SseEdge(ctx.hub, ctx.metrics, ctx.server, ctx.max_rate_hz, authorize)
    edges: list[Edge] = [ws, sse]
    if ctx.alerts is not None:
        edges.append(AlertRelay(ctx.alerts, ws, sse))
    limits = Limits(ctx.limits, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    log.info("connection caps", max_connections=limits.max_connections,
             max_connections_per_client=limits.settings.max_connections_per_client)
    asgi = cast(Asgi, app)  # the same ASGI callable, typed by Quart with its own TypedDicts
    front = Front(asgi, listen_settings(ctx), edges, limits=limits, metrics=ctx.metrics,
                  principal=lambda request: ctx.auth.principal_of(request.headers, request.args))
    front.tls = tls_server(ctx.server)  # None without server.tls_cert
    await front.serve(shutdown, task_status=task_status)
