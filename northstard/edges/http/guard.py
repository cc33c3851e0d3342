"""Who may ask what: the token check in front of every route and stream, and CORS.

With ``[auth] tokens`` set, a request needs an accepted token (``Authorization:
Bearer``, the session cookie, or ``?token=``) except for the login page and
its assets, and ``/api/health`` / ``/metrics`` when ``auth.open`` lists them.
Without one: ``/`` redirects to ``/login``, anything else is a JSON 401 with
``WWW-Authenticate: Bearer``. The API (``/api/...``, ``/metrics``,
``/openapi.json``) takes ``?token=`` like a header and answers with the data,
so a client without a cookie jar can use it. A page ``GET`` carrying
``?token=`` trades it for the session cookie and is redirected (303) to the
same URL without it, so the token leaves the address bar and the history. The raw-socket edges
(``/ws``, ``/api/pnl/stream``) get the same check through ``edge_authorizer``,
answered before the upgrade or the stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from quart import Quart, Response, request

from northstard.core.change import dumps
from northstard.core.http1 import Request
from northstard.edges.http.login import LOGIN_ASSETS, request_head, see_other, start_session
from northstard.errors import RequestError
from northstard.policy.access import Authorize
from northstard.policy.auth import QUERY_PARAM, Authenticator
from northstard.policy.cors import cors_headers, is_preflight, preflight_headers

__all__ = ["OPENABLE", "add_cors", "add_guard", "edge_authorizer"]

PUBLIC = frozenset({"/login", "/logout", *LOGIN_ASSETS})
OPENABLE = {"/api/health": "health", "/metrics": "metrics"}
PAGES = ("/", "/login")
DATA = ("/api/", "/metrics", "/openapi.json")
REALM = 'Bearer realm="northstard"'
MISSING = "send Authorization: Bearer <token>, or sign in at /login"
WRONG = "the token is not accepted"


def _challenge(presented: bool) -> str:
    return f'{REALM}, error="invalid_token"' if presented else REALM


def edge_authorizer(auth: Authenticator) -> Authorize:
    """The WebSocket/SSE hook: RequestError(401) unless the request carries an accepted token."""

    def authorize(request: Request) -> None:
        if auth.enabled and auth.identify(request.headers, request.args) is None:
            presented = "authorization" in request.headers or QUERY_PARAM in request.args
            raise RequestError("unauthorized", WRONG if presented else MISSING, 401,
                               [("www-authenticate", _challenge(presented))])

    return authorize


def unauthorized(presented: bool) -> Response:
    body = dumps({"error": "unauthorized", "detail": WRONG if presented else MISSING})
    return Response(body, status=401, mimetype="application/json",
                    headers={"WWW-Authenticate": _challenge(presented)})


def _without_token() -> str:
    """This URL without ``token``; always a path on this host (``//evil.example`` is not one)."""
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != QUERY_PARAM]
    return "/" + request.path.lstrip("/") + (f"?{urlencode(rest)}" if rest else "")


def _exchange(auth: Authenticator) -> Response:
    """``?token=``: a session cookie and the same URL without it; or the login page's error."""
    entry = auth.check_token(request.args.get(QUERY_PARAM))
    if entry is not None:
        return start_session(see_other(_without_token()), auth, entry)
    if request.path in PAGES:
        return see_other("/login?error=link")
    return unauthorized(presented=True)


def _is_data(path: str) -> bool:
    """An API path: ``?token=`` there is a credential like a header, never traded for a cookie."""
    return path.startswith(DATA)


def _public(path: str, auth: Authenticator) -> bool:
    return path in PUBLIC or (path in OPENABLE and auth.is_open(OPENABLE[path]))


def add_guard(app: Quart, auth: Authenticator) -> None:
    @app.before_request
    async def guard() -> Response | None:
        if not auth.enabled:
            return None
        presented = QUERY_PARAM in request.args
        if request.method == "GET" and presented and not _is_data(request.path):
            return _exchange(auth)
        if _public(request.path, auth) or auth.identify(request_head(), request.args):
            return None
        if request.method in ("GET", "HEAD") and request.path == "/":
            return see_other("/login")
        return unauthorized(presented or "Authorization" in request.headers)


def add_cors(app: Quart, allowed: Sequence[str]) -> None:
    """Answer preflights (before the guard: register this first) and label every answer."""

    @app.before_request
    async def preflight() -> Response | None:
        if not is_preflight(request.method, request_head()):
            return None
        headers = preflight_headers(request.headers.get("Origin"), allowed)
        return Response("", status=204, headers=dict(headers))

    @app.after_request
    async def label(response: Response) -> Response:
        if is_preflight(request.method, request_head()):
            return response  # answered with its headers by preflight()
        for name, value in cors_headers(request.headers.get("Origin"), allowed):
            if name == "Vary":
                response.vary.add(value)
            else:
                response.headers[name] = value
        return response
