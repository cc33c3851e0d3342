"""The Quart (trio) application: pages, login, REST, long-polling, errors as JSON."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import structlog
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from northstard.core.change import dumps
from northstard.edges.http.alertsapi import add_alert_routes
from northstard.edges.http.context import WebContext
from northstard.edges.http.drill import add_drill_routes
from northstard.edges.http.guard import add_cors, add_guard
from northstard.edges.http.login import add_login_routes
from northstard.edges.http.pagefiles import PageFiles, accepts_gzip
from northstard.edges.http.rest import add_rest_routes
from northstard.edges.http.streams import add_stream_routes
from northstard.errors import RequestError

__all__ = ["create_app"]

log = structlog.get_logger("northstard.web")

STATIC = Path(str(resources.files("northstard.edges.http") / "static"))
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

    add_cors(app, ctx.server.cors_allowed_origins)  # preflights before the guard
    add_guard(app, ctx.auth)
    add_login_routes(app, ctx.auth)

    pages = PageFiles.read(STATIC)

    @app.route("/")
    async def index() -> Response:
        return _page(pages, "index.html")

    @app.route("/static/<path:name>")
    async def static_file(name: str) -> Response:
        return _page(pages, name)

    add_rest_routes(app, ctx)
    add_drill_routes(app, ctx)
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


def _page(pages: PageFiles, name: str) -> Response:
    """A page file from memory: 304 when the browser has it, gzip when it asks (pagefiles.py)."""
    found = pages.get(name)
    if found is None:
        return Response(dumps({"error": "not_found", "message": f"no page file {name!r}"}), status=404,
                        content_type="application/json")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if found.etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    if found.gzipped is not None and accepts_gzip(request.headers.get("Accept-Encoding", "")):
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped, headers=headers, content_type=found.content_type)
    return Response(found.body, headers=headers, content_type=found.content_type)
