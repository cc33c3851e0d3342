"""JSON over HTTP for the built-in sources: time limits, 429 handling, errors, exact decoding.

``JsonClient.get`` does one logical call: it sends the request under a time
limit, retries a 429 (after ``Retry-After`` when the API sends one and the
policy honours it, else exponential backoff with jitter), and returns the
body decoded with every JSON number that has a fraction or exponent as a
``Decimal`` (never a float). Failures are translated here, once, into the
``SourceError`` branch of the tree in ``northstard/errors.py``.

Bounds: a body is read raw and decoded by ``BoundedBody``, so no more than
``max_body_bytes`` (default 8 MiB) is ever held; a ``Retry-After`` is capped
at ``retry_after_max_s`` (default 300 s), and the error says it was.

Error messages name the call (method and URL path) and the status, never a
secret.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
import trio

from northstard.actors.source import scrub
from northstard.config import Field
from northstard.core.bodylimit import ACCEPT_ENCODING, MAX_BODY_BYTES, BoundedBody, too_large
from northstard.core.fieldcheck import FieldLog
from northstard.core.money import DIGITS
from northstard.errors import HttpStatusError, RateLimited, SchemaDriftError, SourceError, Unreachable

__all__ = [
    "HTTP_FIELDS",
    "MAX_BODY_BYTES",
    "MAX_BODY_FIELD",
    "RETRY_AFTER_FIELD",
    "RETRY_AFTER_MAX_S",
    "JsonClient",
    "RetryPolicy",
    "capped_wait",
    "decode_json",
    "read_body",
    "retry_after_s",
]

Params = Sequence[tuple[str, str]]

RETRY_AFTER_MAX_S = 300.0

MAX_BODY_FIELD = Field(
    "max_body_bytes", int, MAX_BODY_BYTES, min=1024,
    help="largest body (or WebSocket message) read from the API, after decompression; "
    "a larger one is refused and the source marked failing")
RETRY_AFTER_FIELD = Field(
    "retry_after_max_s", float, RETRY_AFTER_MAX_S, min=0,
    help="longest pause a 429's Retry-After can ask for; a longer one is capped to this")
HTTP_FIELDS: tuple[Field, ...] = (MAX_BODY_FIELD, RETRY_AFTER_FIELD)


@dataclass(frozen=True)
class RetryPolicy:
    """How a 429 is retried within one call.

    ``attempts`` tries in all; waits grow as ``base_s * 2**n`` capped at
    ``max_wait_s``, half of each wait fixed and half random (jitter). A
    ``Retry-After`` longer than ``max_wait_s`` is not slept through: the call
    fails and the client refuses calls until that time has passed.
    """

    attempts: int = 3
    base_s: float = 1.0
    max_wait_s: float = 30.0
    honour_retry_after: bool = True

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_wait_s, self.base_s * 2.0**attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _refuse_constant(name: str) -> object:
    raise SchemaDriftError(f"JSON constant {name} is not a number")


def decode_json(body: bytes, *, what: str) -> object:
    """Parse JSON with non-integer numbers as Decimal, exactly as written; ints stay int."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise SchemaDriftError(f"{what}: body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise SchemaDriftError(f"{what}: malformed JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise SchemaDriftError(f"{what}: JSON nested too deeply") from None
    except ValueError:  # an integer literal past Python's digit limit
        raise SchemaDriftError(f"{what}: a JSON number is too long") from None


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def capped_wait(asked: float, cap: float) -> tuple[float, str]:
    """``asked`` seconds limited to ``cap`` (inf included), and a note for the error when capped."""
    if asked <= cap:
        return asked, ""
    shown = f"{asked:.0f} s" if asked < 1e15 else "too long"
    return cap, f" (Retry-After {shown} capped by retry_after_max_s = {cap:g} s)"


async def read_body(response: httpx.Response, limit: int, what: str) -> bytes:
    """The decoded body, refused (``BodyTooLarge``) as soon as it passes ``limit`` bytes.

    Reads the raw stream (httpx's public ``aiter_raw``) and decodes it in
    ``BoundedBody``; a declared identity ``Content-Length`` over the limit is
    refused before reading anything.
    """
    encoding = response.headers.get("content-encoding", "")
    declared = response.headers.get("content-length", "")
    if not encoding and DIGITS.fullmatch(declared) and int(declared) > limit:
        raise too_large(what, limit, f" (Content-Length {declared})")
    body = BoundedBody(encoding, limit, what)
    async for chunk in response.aiter_raw():
        body.feed(chunk)
    return body.finish()


def _error_detail(body: bytes) -> str:
    """The message of a JSON error body ({"error": {"message"}} or {"message"}), else ''."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for value in (data.get("message"), error):
        if isinstance(value, str):
            return value
    return ""


class JsonClient:
    """GETs JSON from one API with fixed headers; owns its ``httpx.AsyncClient``."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        secrets: Sequence[str] = (),
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        retry_after_max_s: float = RETRY_AFTER_MAX_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_path = urlsplit(self.base_url).path
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.max_body_bytes = max_body_bytes
        self.retry_after_max_s = retry_after_max_s
        self.calls = 0
        self.fields = FieldLog()  # field names received, for `sources check` (bounded: see fieldcheck)
        self.blocked_until = 0.0
        self._blocked_note = ""
        self._secrets = [s for s in secrets if s]
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            headers={"accept-encoding": ACCEPT_ENCODING, **headers},
            timeout=httpx.Timeout(timeout_s), follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<JsonClient {self.base_url} calls={self.calls}>"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, params: Params = ()) -> object:
        """The decoded JSON body of ``GET base_url + path``; raises a ``SourceError``."""
        what = f"GET {self.base_path}{path}"
        attempt = 0
        while True:
            self._check_not_blocked(what)
            status, headers, body = await self._send(path, params, what)
            if status != 429:
                break
            wait, note = self._rate_limit_wait(headers, attempt)
            attempt += 1
            if attempt >= self.retry.attempts or wait > self.retry.max_wait_s:
                self.blocked_until = trio.current_time() + wait
                self._blocked_note = note
                raise RateLimited(f"{what}: HTTP 429 rate limited; retry in {wait:.0f} s{note}", wait)
            await trio.sleep(wait)
        if not 200 <= status < 300:
            raise self._status_error(what, status, body)
        value = decode_json(body, what=what)
        self.fields.observe(what, value)
        return value

    def _check_not_blocked(self, what: str) -> None:
        left = self.blocked_until - trio.current_time()
        if left > 0:
            raise RateLimited(
                f"{what}: rate limited; not calling for another {left:.0f} s{self._blocked_note}", left)

    def _rate_limit_wait(self, headers: httpx.Headers, attempt: int) -> tuple[float, str]:
        if self.retry.honour_retry_after:
            asked = retry_after_s(headers.get("retry-after"))
            if asked is not None:
                return capped_wait(asked, self.retry_after_max_s)
        return self.retry.backoff_s(attempt, self._rng), ""

    def _status_error(self, what: str, status: int, body: bytes) -> HttpStatusError:
        detail = _error_detail(body)
        reason = httpx.codes.get_reason_phrase(status)
        message = f"{what}: HTTP {status} {reason}" + (f": {detail}" if detail else "")
        return HttpStatusError(scrub(message, self._secrets), status)

    async def _send(self, path: str, params: Params, what: str) -> tuple[int, httpx.Headers, bytes]:
        self.calls += 1
        request = self._http.build_request("GET", self.base_url + path, params=list(params))
        try:
            with trio.fail_after(self.timeout_s):
                response = await self._http.send(request, stream=True)
                try:
                    body = await self._read(response, what)
                finally:
                    await response.aclose()
        except (trio.TooSlowError, httpx.TimeoutException):
            raise Unreachable(f"{what}: no answer within {self.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            message = scrub(f"{what}: {type(exc).__name__}: {exc}", self._secrets)
            if isinstance(exc, httpx.NetworkError | httpx.UnsupportedProtocol | httpx.ProxyError):
                raise Unreachable(message) from exc
            raise SourceError(message) from exc
        return response.status_code, response.headers, body

    async def _read(self, response: httpx.Response, what: str) -> bytes:
        try:
            return await read_body(response, self.max_body_bytes, what)
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise SchemaDriftError(f"{what}: truncated body ({type(exc).__name__})") from exc
