"""The Quart (trio) application and its Hypercorn server task."""

from __future__ import annotations

import math
import resource
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from quart import Response, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from northstard.core.change import dumps
from northstard.edges.http.alertsapi import add_alert_routes
from northstard.edges.http.context import WebContext
from northstard.edges.http.guard import add_cors, add_guard, edge_authorizer
from northstard.edges.http.login import add_login_routes
from northstard.edges.http.rest import add_rest_routes
from northstard.edges.http.streams import add_stream_routes
from northstard.edges.stream.alertrelay import AlertRelay
from northstard.edges.stream.fastsse import SseEdge
from northstard.edges.stream.fastws import WsEdge, WsSettings
from northstard.edges.stream.front import Edge, Front
from northstard.edges.tls import tls_server
from northstard.errors import RequestError
from northstard.policy.limits import Limits, LimitSettings

__all__ = ["create_app", "run_web"]

log = structlog.get_logger("northstard.web")

STATIC = Path(str(resources.files("northstard.web") / "static"))
PAGE_HEADERS = {  # no inline script or style anywhere (tests/test_auth_web.py checks the pages)
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self';"
    " connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _json_error(error: str, detail: str, status: int) -> Response:
    return Response(dumps({"error": error, "detail": detail}), status=status,
                    mimetype="application/json")


def create_app(ctx: WebContext) -> QuartTrio:
    app = QuartTrio("northstard", static_folder=None)
    # No redirect built from the request's Host: "/a//b" is not merged into an absolute
    # Location (werkzeug's default 308), and a missing or extra final slash is a 404.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.redirect_defaults = False
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    # Page files are revalidated (ETag/Last-Modified -> 304) on every load, so
    # an upgrade never leaves a browser mixing old and new dashboard modules.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 0

    add_cors(app, tuple(ctx.server.get("cors_allowed_origins", ())))  # preflights before the guard
    add_guard(app, ctx.auth)
    add_login_routes(app, ctx.auth)

    @app.route("/")
    async def index() -> Response:
        return await send_from_directory(STATIC, "index.html")

    @app.route("/static/<path:name>")
    async def static_file(name: str) -> Response:
        return await send_from_directory(STATIC, name)

    add_rest_routes(app, ctx)
    add_alert_routes(app, ctx)
    add_stream_routes(app, ctx)

    @app.errorhandler(RequestError)
    async def request_error(exc: RequestError) -> Response:
        response = _json_error(exc.error, exc.detail, exc.status)
        for header, value in exc.headers:
            response.headers[header] = value
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        name = (exc.name or "error").lower().replace(" ", "_")
        response = _json_error(name, exc.description or name, exc.code or 500)
        for header, value in exc.get_headers():
            if header.lower() != "content-type":
                response.headers[header] = value  # e.g. Allow on a 405
        return response

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.error("request failed", path=request.path, error=f"{type(exc).__name__}: {exc}")
        return _json_error("internal_error", "the request failed; see the daemon log", 500)

    @app.after_request
    async def headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.mimetype == "text/html":
            response.headers.update(PAGE_HEADERS)
        return response

    return app


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
    ws = WsEdge(ctx.hub, ctx.metrics, WsSettings.from_server(ctx.server, ctx.max_rate_hz), authorize)
    sse = SseEdge(ctx.hub, ctx.metrics, ctx.server, ctx.max_rate_hz, authorize)
    edges: list[Edge] = [ws, sse]
    if ctx.alerts is not None:
        edges.append(AlertRelay(ctx.alerts, ws, sse))
    limits = Limits(LimitSettings.from_section(ctx.limits), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    log.info("connection caps", max_connections=limits.max_connections,
             max_connections_per_client=limits.settings.max_connections_per_client)
    front = Front(app, config, edges, limits=limits, metrics=ctx.metrics,
                  principal=lambda request: ctx.auth.principal_of(request.headers, request.args))
    front.tls = tls_server(ctx.server)  # None without server.tls_cert
    await front.serve(shutdown, task_status=task_status)
