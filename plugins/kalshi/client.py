"""The signed Kalshi REST client: read budget, 429 back-off, per-call time limit.

Every failure leaves as a ``SourceError`` saying which call failed and why,
translated once here: HTTP 401/403 (authentication), 429 after the last
retry, 5xx, other 4xx, time-outs, connection errors; a body that is
truncated, not UTF-8, not JSON or not an object is a ``SchemaDriftError``.
No message carries a key, a signature or a response body beyond Kalshi's own
``code``/``message``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from typing import Any

import httpx
import trio

from northstard.core.bodylimit import ACCEPT_ENCODING, MAX_BODY_BYTES
from northstard.core.fieldcheck import FieldLog
from northstard.errors import SourceError
from northstard.http import read_body

from .bucket import Backoff, TokenBucket
from .errors import KalshiError
from .fields import drift, loads, rows
from .signing import Signer

__all__ = ["CALL_COST", "KalshiClient"]

CALL_COST = 10.0
PAGE_LIMIT = 1000  # the maximum of every list we read (OpenAPI 3.31.0 LimitQuery, PositionsLimitQuery, ...)
MAX_PAGES = 10_000
_DETAIL_MAX = 160


def _detail(body: bytes) -> str:
    """Kalshi's ``{"code","message"}`` of an error body, short; "" if there is none."""
    try:
        parsed = loads(body.decode("utf-8"), "error body")
    except (SourceError, UnicodeDecodeError):
        return ""
    error = parsed.get("error")
    inner = error if isinstance(error, dict) else parsed
    parts = [str(inner[k]) for k in ("code", "message") if isinstance(inner.get(k), str)]
    if not parts and isinstance(error, str):
        parts = [error]
    return (": " + " - ".join(parts))[:_DETAIL_MAX] if parts else ""


async def _read(response: httpx.Response, where: str, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes decoded; a connection cut before its end is truncated."""
    try:
        return await read_body(response, limit, f"kalshi: {where}")
    except httpx.HTTPError:
        raise drift(where, f"truncated response body (HTTP {response.status_code})") from None
    finally:
        with contextlib.suppress(httpx.HTTPError):
            await response.aclose()


class KalshiClient:
    """GETs on the Kalshi REST API, signed, metered and translated."""

    def __init__(
        self,
        base_url: str,
        signer: Signer,
        *,
        rate: float = 200.0,
        burst: float = 400.0,
        call_timeout_s: float = 10.0,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.bucket = TokenBucket.full(rate, burst)
        self.call_timeout_s = call_timeout_s
        self.rng = rng or random.Random()
        self.backoff = backoff or Backoff()
        self.calls = 0
        self.rate_limited = 0
        self.fields = FieldLog()  # field names received, for `sources check` (bounded: see fieldcheck)
        self.max_body_bytes = max_body_bytes
        self._http = httpx.AsyncClient(
            timeout=None, transport=transport, follow_redirects=False,
            headers={"accept": "application/json", "accept-encoding": ACCEPT_ENCODING,
                     "user-agent": "northstard-kalshi"},
        )

    def __repr__(self) -> str:
        return (
            f"<KalshiClient {self.base_url} calls={self.calls} rate_limited={self.rate_limited} "
            f"tokens={self.bucket.tokens:.0f}/{self.bucket.capacity:.0f}>"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, endpoint: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON object at ``endpoint`` (``/portfolio/balance``), retrying 429s."""
        where = f"GET {endpoint}"
        for attempt in range(self.backoff.tries + 1):
            await self._spend()
            status, body = await self._call(endpoint, params or {}, where)
            if status != 429:
                value = self._decode(status, body, where)
                self.fields.observe(where, value)
                return value
            self.rate_limited += 1
            if attempt < self.backoff.tries:
                await trio.sleep(self.backoff.delay(attempt, self.rng.random()))
        raise KalshiError(
            f"kalshi: {where}: rate limited (HTTP 429) {self.backoff.tries + 1} times in a row",
            status=429,
        )

    async def pages(
        self, endpoint: str, key: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every row of the list ``key`` over all pages (``cursor`` until empty or absent)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            query = {**(params or {}), "limit": PAGE_LIMIT}
            if cursor:
                query["cursor"] = cursor
            body = await self.get(endpoint, query)
            where = f"GET {endpoint} (page {page + 1})"
            out.extend(dict(row) for row in rows(body, key, where))
            cursor = body.get("cursor")
            if cursor is None or cursor == "":
                return out
            if not isinstance(cursor, str):
                raise drift(where, "cursor: expected a string")
            if cursor in seen:
                raise drift(where, "cursor repeats: pagination would never end")
            seen.add(cursor)
        raise drift(f"GET {endpoint}", f"more than {MAX_PAGES} pages")

    async def _spend(self) -> None:
        wait = self.bucket.wait(CALL_COST, trio.current_time())
        if wait > 0:
            await trio.sleep(wait)
        self.bucket = self.bucket.take(CALL_COST, trio.current_time())

    async def _call(self, endpoint: str, params: Mapping[str, Any], where: str) -> tuple[int, bytes]:
        url = self.base_url + endpoint
        request = self._http.build_request(
            "GET", url, params=params, headers=self.signer.headers("GET", url)
        )
        self.calls += 1
        try:
            with trio.fail_after(self.call_timeout_s):
                response = await self._http.send(request, stream=True)
                body = await _read(response, where, self.max_body_bytes)
        except trio.TooSlowError:
            raise KalshiError(f"kalshi: {where}: timed out after {self.call_timeout_s:g} s",
                              reachable=False) from None
        except httpx.HTTPError as exc:
            raise KalshiError(f"kalshi: {where}: {type(exc).__name__}: {exc}"[:300],
                              reachable=not isinstance(exc, httpx.TransportError)) from exc
        return response.status_code, body

    def _decode(self, status: int, body: bytes, where: str) -> dict[str, Any]:
        if status in (401, 403):
            raise KalshiError(
                f"kalshi: {where}: authentication refused (HTTP {status}{_detail(body)}); "
                "check key_id and private_key, and that env matches the key's environment",
                status=status,
            )
        if status >= 500:
            raise KalshiError(f"kalshi: {where}: server error (HTTP {status}{_detail(body)})",
                              status=status)
        if not 200 <= status < 300:
            raise KalshiError(f"kalshi: {where}: HTTP {status}{_detail(body)}", status=status)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise drift(where, "response body is not UTF-8") from None
        return loads(text, where)
