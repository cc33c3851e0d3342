"""Bearer-token auth for the gRPC server: ``authorization: Bearer <token>`` metadata.

The accepted tokens are those of ``[auth] tokens`` (the same tokens the web
edges take) plus the older ``grpc.tokens``, which only gRPC accepts; the
daemon hands their sha256 hex digests to ``GrpcSettings.tokens``. A presented
token is hashed and compared with every digest in constant time
(``hmac.compare_digest``, ``northstard.policy.auth``). No digest configured: every
call is accepted. Health checks stay open (load balancers probe without
credentials).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import grpc
import grpc.aio

from northstard.policy.auth import bearer, digest

__all__ = ["BearerAuth", "check_digests", "digest"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
REFUSAL = "missing or wrong bearer token (authorization: Bearer <token>)"


def check_digests(value: list[object]) -> str | None:
    """Config check: every entry is a sha256 hex digest."""
    for entry in value:
        if not isinstance(entry, str) or len(entry) != 64 or not _is_hex(entry):
            return "expected sha256 hex digests of the tokens (64 hex characters each)"
    return None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        token = bearer(value) if key.lower() == "authorization" and isinstance(value, str) else None
        if token:
            return token
    return None


class BearerAuth(grpc.aio.ServerInterceptor):
    """Refuses calls without an accepted bearer token with UNAUTHENTICATED."""

    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = tuple(d.lower() for d in digests)

    def __repr__(self) -> str:
        return f"<BearerAuth tokens={len(self._digests)}>"

    def accepts(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        token = _bearer(metadata)
        if token is None:
            return False
        presented = digest(token)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(presented, known)
        return matched

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if not self._digests or handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if self.accepts(handler_call_details.invocation_metadata):
            return handler
        return _refusing(handler)


async def _refuse(request: object, context: grpc.aio.ServicerContext[object, object]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


async def _refuse_stream(requests: AsyncIterator[object],
                         context: grpc.aio.ServicerContext[object, object]) -> None:
    """Take the first request before refusing: aborting a stream the client is still opening
    races in grpc core (about 1 call in 200 then ends INTERNAL instead of UNAUTHENTICATED)."""
    async for _ in requests:
        break
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


def _refusing(handler: grpc.RpcMethodHandler[Req, Resp]) -> grpc.RpcMethodHandler[Req, Resp]:
    """A handler of the same shape as ``handler`` that refuses the call."""
    shape = (handler.request_streaming, handler.response_streaming)
    build = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[shape]
    refused: grpc.RpcMethodHandler[Req, Resp] = build(
        _refuse_stream if handler.request_streaming else _refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return refused
