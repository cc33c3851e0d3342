"""The one-port web listener: the Quart app and the raw WebSocket/SSE edges behind one front.

Wiring only: it builds the HTTP edge's app (``edges/http``) and the stream
edges (``edges/stream``), which never import each other, and hands them to
the front that routes each connection.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio
from hypercorn.config import Config as HypercornConfig

from northstard.edges.http.app import create_app
from northstard.edges.http.context import WebContext
from northstard.edges.http.guard import edge_authorizer
from northstard.edges.stream.fastsse import SseEdge
from northstard.edges.stream.fastws import WsEdge, WsSettings
from northstard.edges.stream.front import Edge, Front
from northstard.edges.tls import tls_server
from northstard.policy.limits import Limits, LimitSettings

__all__ = ["hypercorn_config", "run_web"]

log = structlog.get_logger("northstard.web")


def hypercorn_config(ctx: WebContext, host: str, port: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.websocket_max_message_size = int(ctx.server["ws_max_message_bytes"])
    config.graceful_timeout = float(ctx.server["shutdown_grace_s"])
    config.accesslog = None
    config.errorlog = None
    config.include_server_header = False
    limits = LimitSettings.from_section(ctx.limits)
    config.keep_alive_timeout = limits.idle_timeout_s  # Hypercorn: from idle until a whole head
    config.read_timeout = math.ceil(float(ctx.server["longpoll_max_s"]) + limits.idle_timeout_s)
    config.backlog = int(ctx.server["backlog"])
    return config


async def run_web(
    ctx: WebContext,
    shutdown: Callable[[], Awaitable[Any]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` returns; ``task_status.started`` gets the bound URLs.

    One port: ``/ws`` and ``/api/pnl/stream`` go to the raw-socket edges, the
    rest to the Quart app through Hypercorn (``front.py``).
    """
    app = create_app(ctx)
    config = hypercorn_config(ctx, str(ctx.server["host"]), int(ctx.server["port"]))
    authorize = edge_authorizer(ctx.auth)
    edges: list[Edge] = [WsEdge(ctx.hub, ctx.metrics, WsSettings.from_server(ctx.server, ctx.max_rate_hz),
                                authorize),
             SseEdge(ctx.hub, ctx.metrics, ctx.server, ctx.max_rate_hz, authorize)]
    limits = Limits(LimitSettings.from_section(ctx.limits), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    log.info("connection caps", max_connections=limits.max_connections,
             max_connections_per_client=limits.settings.max_connections_per_client)
    front = Front(app, config, edges, limits=limits, metrics=ctx.metrics,
                  principal=lambda request: ctx.auth.principal_of(request.headers, request.args))
    front.tls = tls_server(ctx.server)  # None without server.tls_cert
    await front.serve(shutdown, task_status=task_status)
