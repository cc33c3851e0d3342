"""HTTP/1.1 requests as ASGI scopes and ASGI responses as h11 events, with no I/O.

    h11.Request  ─▶ http_scope   ─▶ the ``scope`` of ``await app(scope, receive, send)``
    "http.response.start"  ─▶ response_event ─▶ h11.Response (h11 frames the body:
                                                Content-Length if the app gave one,
                                                else chunked, or close-delimited for HTTP/1.0)

The ASGI server that uses them (``appserver.py``) owns the socket; h11 is the
parser and the framer, through its public API (``h11.Connection`` and its events).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11

from northstard.errors import RequestError

__all__ = ["ASGI_VERSION", "Asgi", "Message", "Receive", "Scope", "Send", "http_scope",
           "response_event"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]
Address = tuple[str, int] | None
ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


def http_scope(request: h11.Request, *, scheme: str, client: Address, server: Address,
               state: Mapping[str, Any]) -> Scope:
    """The ASGI ``http`` scope of ``request`` (its target in origin form: ``/path?query``)."""
    raw_path, _, query = bytes(request.target).partition(b"?")
    return {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": request.http_version.decode("ascii"),
        "method": request.method.decode("ascii"),
        "scheme": scheme,
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(bytes(name), bytes(value)) for name, value in request.headers],
        "client": client,
        "server": server,
        "state": dict(state),  # the lifespan's state, a shallow copy per request (ASGI 2.3)
        "extensions": {},
    }


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def response_event(message: Message, extra: Iterable[tuple[bytes, bytes]] = ()) -> h11.Response:
    """The h11 response of an ``http.response.start`` message, with ``extra`` headers the
    app did not set (e.g. ``date``); RequestError (500) when the message is not one."""
    if message.get("type") != "http.response.start":
        raise RequestError("internal_error", "the app answered without http.response.start", 500)
    headers = [(bytes(name).lower(), bytes(value)) for name, value in message.get("headers", ())]
    present = {name for name, _ in headers}
    headers += [(name, value) for name, value in extra if name not in present]
    try:
        status = int(message["status"])
        return h11.Response(status_code=status, headers=headers, reason=_reason(status))
    except (h11.LocalProtocolError, KeyError, TypeError, ValueError) as exc:
        raise RequestError("internal_error", f"the app's response start is invalid: {exc}", 500) from None
