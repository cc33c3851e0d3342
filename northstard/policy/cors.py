"""CORS for the REST API and SSE (``server.cors_allowed_origins``), with no I/O.

An Origin in the list gets ``Access-Control-Allow-Origin`` echoing it, with
``Access-Control-Allow-Credentials: true`` and ``Vary: Origin``; ``"*"`` in
the list lets any other Origin read without credentials
(``Access-Control-Allow-Origin: *``, never with credentials); any other
Origin gets no CORS header at all, so its page cannot read the answer. A
preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered
204 before any auth check: browsers never send credentials with one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["cors_headers", "is_preflight", "preflight_headers"]

Headers = list[tuple[str, str]]

ALLOW_METHODS = "GET, HEAD, OPTIONS"
ALLOW_HEADERS = "Authorization, Cache-Control, Content-Type, If-None-Match, Last-Event-ID"
EXPOSE_HEADERS = "ETag"
MAX_AGE_S = "600"


def _explicit(origin: str, allowed: Sequence[str]) -> bool:
    return origin.lower() in (a.lower().rstrip("/") for a in allowed if a != "*")


def cors_headers(origin: str | None, allowed: Sequence[str]) -> Headers:
    """The headers that let a page from ``origin`` read this answer (none if it may not)."""
    vary: Headers = [("Vary", "Origin")] if any(a != "*" for a in allowed) else []
    if not origin:
        return vary
    if _explicit(origin, allowed):
        return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Expose-Headers", EXPOSE_HEADERS), *vary]
    if "*" in allowed:
        return [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", EXPOSE_HEADERS),
                *vary]
    return vary


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


def preflight_headers(origin: str | None, allowed: Sequence[str]) -> Headers:
    """The answer to a preflight: the CORS headers plus what may be sent, if ``origin`` may."""
    headers = cors_headers(origin, allowed)
    if not any(name == "Access-Control-Allow-Origin" for name, _ in headers):
        return headers
    return [*headers, ("Access-Control-Allow-Methods", ALLOW_METHODS),
            ("Access-Control-Allow-Headers", ALLOW_HEADERS), ("Access-Control-Max-Age", MAX_AGE_S)]
