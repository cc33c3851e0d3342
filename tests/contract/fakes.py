"""Fake APIs for the contract tests: real HTTP/1.1 servers on 127.0.0.1, port 0.

``FakeServer`` is a tiny raw trio server (one request per connection,
``Connection: close``) so that a test controls every byte: it can hang, cut
a body short against its ``Content-Length``, or close a body early with no
length at all. Faults are queued with ``fail_next`` (used once each, optionally
only for one path) or set with ``fail_always``; ``drift`` rewrites a good
answer's data before it is encoded. Every request is kept in ``requests``.

The API fakes serve the shapes of ``api-contracts.md``, with its example
rows: ``FakeAnthropic`` (cost and usage reports, paginated by ``page``),
``FakeStripe`` (invoices and balance transactions, newest first, paginated by
``starting_after``) and ``FakeRevenue`` (one JSON text, served verbatim).
"""

from __future__ import annotations

import json
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, partial
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio

__all__ = [
    "MALFORMED",
    "TIMEOUT",
    "TRUNCATED",
    "TRUNCATED_NO_LENGTH",
    "FakeAnthropic",
    "FakeRevenue",
    "FakeServer",
    "FakeStripe",
    "Reply",
    "Request",
    "closed_port_url",
    "cost_row",
    "gzip_bomb",
    "invoice",
    "json_reply",
    "rate_limited",
    "secret_file",
    "server_error",
    "transaction",
    "usage_row",
    "wait_for_doc",
]

MAX_HEAD = 65536
E2E_LIMIT_S = 15.0  # a guard against a hang, never reached when the test passes


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]

    def arg(self, name: str) -> str | None:
        values = self.args(name)
        return values[0] if values else None

    def args(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_at: int | None = None  # send only this many body bytes, then close
    declare_length: bool = True  # False: a close-delimited body
    hang: bool = False  # never answer


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(data).encode(), dict(headers or {}))


def rate_limited(retry_after: str | None = None) -> Reply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return json_reply({"error": "too many requests"}, 429, headers)


def server_error(status: int = 500) -> Reply:
    return json_reply({"error": {"type": "api_error", "message": "Internal server error"}}, status)


@cache
def gzip_bomb(expanded: int = 1 << 30) -> bytes:
    """A valid gzip body of ``expanded`` zero bytes (a multiple of 1 MiB): about expanded / 1030.

    Built from one compressed 1 MiB block repeated (after a full flush each block
    compresses the same), so 1 GiB takes milliseconds rather than seconds.
    """
    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    repeated = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    blocks = expanded >> 20
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    trailer = b"\x03\x00" + struct.pack("<II", crc, expanded & 0xFFFFFFFF)  # empty final block
    return first + repeated * (blocks - 1) + trailer


TIMEOUT = Reply(hang=True)
MALFORMED = Reply(200, b'{"data": [{"starting_at": "2026-08-16T00:00:00Z", "results": [}')
TRUNCATED = Reply(200, b'{"data": [], "has_more": false, "next_page": null, "object": "list"}', cut_at=12)
TRUNCATED_NO_LENGTH = Reply(200, TRUNCATED.body, cut_at=20, declare_length=False)

Fault = Reply | Callable[[Request], Reply]


def closed_port_url() -> str:
    """The URL of a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def secret_file(tmp_path: Path, name: str, value: str) -> str:
    """A credential file (for ``<key>_file`` config keys); its path as text."""
    path = tmp_path / f"{name}.secret"
    path.write_text(value + "\n")
    return str(path)


async def wait_for_doc(daemon: Any, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The daemon's published document once ``predicate`` holds (waits on the hub, no sleeps)."""
    with trio.fail_after(E2E_LIMIT_S), daemon.hub.subscribe("test", daemon.hub.position) as sub:
        while not predicate(daemon.hub.doc):
            await sub.next_message()
    doc: dict[str, Any] = daemon.hub.doc
    return doc


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk or len(data) > MAX_HEAD:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def _parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    parts = urlsplit(target)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, parts.path, parse_qsl(parts.query, keep_blank_values=True), headers)


def _encode(reply: Reply) -> bytes:
    reason = HTTPStatus(reply.status).phrase
    headers = {"content-type": "application/json", "connection": "close", **reply.headers}
    if reply.declare_length:
        headers["content-length"] = str(len(reply.body))
    head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    body = reply.body if reply.cut_at is None else reply.body[: reply.cut_at]
    return head.encode("latin-1") + b"\r\n" + body


class FakeServer:
    """A loopback HTTP server calling ``handle(request) -> Reply``, with faults on demand."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Request] = []
        self.faults: list[tuple[str | None, Fault]] = []
        self.always: Fault | None = None
        self.drift: Callable[[str, Any], Any] | None = None
        self.served: list[tuple[str, int, bytes]] = []  # (path, status, body) of every answer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} requests={len(self.requests)} faults={len(self.faults)}>"

    async def start(self, nursery: trio.Nursery) -> FakeServer:
        listeners = await nursery.start(partial(trio.serve_tcp, self._connection, 0, host="127.0.0.1"))
        self.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        return self

    def fail_next(self, *faults: Fault, path: str | None = None) -> None:
        """The next requests (to ``path``, or any) get these faults, one each."""
        self.faults.extend((path, fault) for fault in faults)

    def fail_always(self, fault: Fault | None) -> None:
        self.always = fault

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def handle(self, request: Request) -> Reply:  # pragma: no cover - overridden
        return json_reply({})

    def answer(self, path: str, data: Any, status: int = 200) -> Reply:
        """A JSON reply of ``data``, drifted first if a drift is set."""
        if self.drift is not None and status == 200:
            data = self.drift(path, data)
        return json_reply(data, status)

    def _reply(self, request: Request) -> Reply:
        fault: Fault | None = self.always
        for index, (path, _) in enumerate(self.faults):
            if path is None or request.path.endswith(path):
                fault = self.faults.pop(index)[1]
                break
        if fault is None:
            return self.handle(request)
        return fault if isinstance(fault, Reply) else fault(request)

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                head = await _read_head(stream)
                if head is None:
                    return
                request = _parse_head(head)
                self.requests.append(request)
                reply = self._reply(request)
                if reply.hang:
                    await trio.sleep_forever()
                self.served.append((request.path, reply.status, reply.body))
                await stream.send_all(_encode(reply))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


# -- Anthropic Admin API ------------------------------------------------------

COST_EXAMPLE = {
    "amount": "123.78912", "context_window": "0-200k", "cost_type": "tokens", "currency": "USD",
    "description": "Claude Sonnet 4 Usage - Input Tokens", "inference_geo": "global",
    "model": "claude-sonnet-4", "service_tier": "standard", "token_type": "uncached_input_tokens",
    "workspace_id": "wrkspc_01",
}


def cost_row(amount: Any = "123.78912", **changes: Any) -> dict[str, Any]:
    """A cost report row: the documented example with ``amount`` and ``changes``."""
    return {**COST_EXAMPLE, "amount": amount, **changes}


def usage_row(model: str, *, uncached: int = 0, output: int = 0, cache_read: int = 0,
              cache_5m: int = 0, cache_1h: int = 0, searches: int = 0) -> dict[str, Any]:
    """A usage report row grouped by model only: the other dimensions are null (as documented)."""
    return {
        "uncached_input_tokens": uncached,
        "cache_creation": {"ephemeral_1h_input_tokens": cache_1h, "ephemeral_5m_input_tokens": cache_5m},
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
        "server_tool_use": {"web_search_requests": searches},
        "api_key_id": None, "workspace_id": None, "model": model, "service_tier": None,
        "context_window": None,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def anthropic_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """Anthropic's documented error: ``{"type": "error", "error": {type, message}, "request_id"}``."""
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake0001"}
    return json_reply(body, status, {"request-id": "req_fake0001", **(headers or {})})


class FakeAnthropic(FakeServer):
    """Cost report (1d buckets up to ``reported_until``) and usage report (to ``clock()``)."""

    VERSION = "2023-06-01"

    @staticmethod
    def rate_limited(retry_after: str | None = None) -> Reply:
        """A documented 429: rate_limit_error, ``retry-after`` and the ``anthropic-ratelimit-*`` headers."""
        headers = {"anthropic-ratelimit-requests-limit": "60",
                   "anthropic-ratelimit-requests-remaining": "0",
                   "anthropic-ratelimit-requests-reset": "2026-08-16T10:31:00Z"}
        if retry_after is not None:
            headers["retry-after"] = retry_after
        return anthropic_error(429, "rate_limit_error", "Your account has hit a rate limit.", headers)

    @staticmethod
    def server_error(status: int = 500) -> Reply:
        kind = "overloaded_error" if status == 529 else "api_error"
        return anthropic_error(status, kind, "Internal server error")

    def __init__(self, *, admin_key: str | None = "sk-ant-admin01-test-key-0000",
                 oauth_token: str | None = None, clock: Callable[[], datetime] | None = None,
                 page_size: int = 1000) -> None:
        super().__init__()
        self.admin_key = admin_key
        self.oauth_token = oauth_token
        self.clock = clock or (lambda: datetime.now(UTC))
        self.page_size = page_size
        self.costs: dict[date, list[dict[str, Any]]] = {}
        self.usage: dict[datetime, list[dict[str, Any]]] = {}
        self.reported_until: date | None = None  # None: days before clock()'s day

    def _authorized(self, request: Request) -> bool:
        key, auth = request.headers.get("x-api-key"), request.headers.get("authorization")
        if self.admin_key and key == self.admin_key:
            return True
        return bool(self.oauth_token) and auth == f"Bearer {self.oauth_token}"

    def handle(self, request: Request) -> Reply:
        if request.headers.get("anthropic-version") != self.VERSION:
            return anthropic_error(400, "invalid_request_error", "anthropic-version required")
        if not self._authorized(request):
            given = request.headers.get("x-api-key", "")
            message = f"invalid x-api-key {given}"  # echoes the key: the client must scrub it
            return anthropic_error(401, "authentication_error", message)
        if request.path == "/v1/organizations/cost_report":
            return self._paged(request, self._cost_buckets(request))
        if request.path == "/v1/organizations/usage_report/messages":
            return self._paged(request, self._usage_buckets(request))
        return anthropic_error(404, "not_found_error", "Not found")

    def _cost_buckets(self, request: Request) -> list[dict[str, Any]]:
        assert request.arg("bucket_width") == "1d"
        start = _time(request.arg("starting_at"))
        assert start is not None, "starting_at is required"
        end = _time(request.arg("ending_at")) or start + timedelta(days=int(request.arg("limit") or 7))
        until = self.reported_until or self.clock().date()
        buckets = []
        day = start.date()
        while day < end.date() and day < until:
            begin = datetime.combine(day, time(0), tzinfo=UTC)
            buckets.append({"starting_at": _iso(begin), "ending_at": _iso(begin + timedelta(days=1)),
                            "results": list(self.costs.get(day, []))})
            day += timedelta(days=1)
        return buckets

    def _usage_buckets(self, request: Request) -> list[dict[str, Any]]:
        width = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
        step = width[request.arg("bucket_width") or "1d"]
        moment = _time(request.arg("starting_at"))
        assert moment is not None, "starting_at is required"
        now = self.clock()
        buckets = []
        while moment < now:
            buckets.append({"starting_at": _iso(moment), "ending_at": _iso(moment + step),
                            "results": list(self.usage.get(moment, []))})
            moment += step
        return buckets

    def _paged(self, request: Request, buckets: list[dict[str, Any]]) -> Reply:
        size = min(int(request.arg("limit") or 7), self.page_size)
        page = request.arg("page")
        offset = int(page.removeprefix("page_")) if page else 0
        chunk = buckets[offset: offset + size]
        more = offset + size < len(buckets)
        data = {"data": chunk, "has_more": more, "next_page": f"page_{offset + size}" if more else None}
        return self.answer(request.path, data)


# -- Stripe ------------------------------------------------------------------


def invoice(id: str, status: str, total: int, *, paid: int | None = None, currency: str = "usd",
            created: int = 1786849200, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """A Stripe invoice with every field Stripe's schema requires (specs/stripe-openapi.json)."""
    amount_paid = paid if paid is not None else (total if status == "paid" else 0)
    return {
        "id": id, "object": "invoice", "account_country": "US", "account_name": "Northstar Inc.",
        "account_tax_ids": None, "amount_due": total, "amount_overpaid": 0, "amount_paid": amount_paid,
        "amount_remaining": total - amount_paid, "amount_shipping": 0, "application": None,
        "attempt_count": 1 if status == "paid" else 0, "attempted": status == "paid",
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None,
                          "status": None},
        "automatically_finalizes_at": None, "billing_reason": "manual",
        "collection_method": "send_invoice", "created": created, "currency": currency,
        "custom_fields": None, "customer": "cus_NeZwdNtLEOXuvB", "customer_account": None,
        "customer_address": None, "customer_email": "jennyrosen@example.com",
        "customer_name": "Jenny Rosen", "customer_phone": None, "customer_shipping": None,
        "customer_tax_exempt": "none", "default_payment_method": None, "default_source": None,
        "default_tax_rates": [], "description": None, "discounts": [], "due_date": created + 30 * 86400,
        "effective_at": None if status == "draft" else created, "ending_balance": None, "footer": None,
        "from_invoice": None, "issuer": {"type": "self"}, "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{id}/lines"},
        "livemode": False, "metadata": metadata or {}, "next_payment_attempt": None,
        "number": None if status == "draft" else f"NS-{id}", "on_behalf_of": None, "parent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": created, "period_start": created, "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "receipt_number": None, "rendering": None,
        "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
        "statement_descriptor": None, "status": status,
        "status_transitions": {"finalized_at": None if status == "draft" else created,
                               "marked_uncollectible_at": None,
                               "paid_at": created + 60 if status == "paid" else None,
                               "voided_at": None},
        "subtotal": total, "subtotal_excluding_tax": total, "test_clock": None, "total": total,
        "total_discount_amounts": [], "total_excluding_tax": total, "total_pretax_credit_amounts": [],
        "total_taxes": [], "webhooks_delivered_at": created,
    }


def transaction(id: str, type: str, amount: int, *, currency: str = "usd", created: int = 1786849200,
                fee: int = 0) -> dict[str, Any]:
    """A Stripe balance transaction with every field Stripe's schema requires."""
    return {
        "id": id, "object": "balance_transaction", "type": type, "amount": amount, "fee": fee,
        "net": amount - fee, "currency": currency, "created": created,
        "available_on": created + 86400 * 2, "status": "pending", "balance_type": "payments",
        "description": None, "exchange_rate": None,
        "fee_details": [{"amount": fee, "application": None, "currency": currency,
                         "description": "Stripe processing fees", "type": "stripe_fee"}] if fee else [],
        "reporting_category": type, "source": None,
    }


class FakeStripe(FakeServer):
    """``/v1/invoices`` and ``/v1/balance_transactions``, newest first, ``page_size`` per page."""

    @staticmethod
    def rate_limited(retry_after: str | None = None) -> Reply:
        """Stripe's documented 429 (code ``rate_limit``; ``Retry-After`` only when given)."""
        headers = {"request-id": "req_fake0002"}
        if retry_after is not None:
            headers["retry-after"] = retry_after
        error = {"type": "invalid_request_error", "code": "rate_limit",
                 "message": "Too many requests hit the API too quickly.",
                 "doc_url": "https://stripe.com/docs/error-codes/rate-limit"}
        return json_reply({"error": error}, 429, headers)

    @staticmethod
    def server_error(status: int = 500) -> Reply:
        error = {"type": "api_error", "message": "Something went wrong on Stripe's end."}
        return json_reply({"error": error}, status, {"request-id": "req_fake0003"})

    def __init__(self, *, api_key: str = "sk_test_fake_0123456789", page_size: int = 100) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_size = page_size
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"invoices": {}, "balance_transactions": {}}

    def add(self, kind: str, *objects: dict[str, Any]) -> None:
        for obj in objects:
            self.objects[kind][obj["id"]] = obj

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Invalid API Key provided: {given}"  # the real one masks it; this one does not
            return json_reply({"error": {"message": message, "type": "invalid_request_error",
                                         "code": "api_key_invalid",
                                         "doc_url": "https://stripe.com/docs/error-codes/api-key-invalid"}},
                              401, {"request-id": "req_fake0001"})
        kind = request.path.removeprefix("/v1/")
        if kind not in self.objects:
            return json_reply({"error": {"message": "Unrecognized request URL",
                                         "type": "invalid_request_error"}}, 404)
        return self._list(request, kind)

    def _list(self, request: Request, kind: str) -> Reply:
        items = list(self.objects[kind].values())
        order = {obj["id"]: index for index, obj in enumerate(items)}
        items.sort(key=lambda o: (o["created"], order[o["id"]]), reverse=True)
        if (gte := request.arg("created[gte]")) is not None:
            items = [o for o in items if o["created"] >= int(gte)]
        if (lt := request.arg("created[lt]")) is not None:
            items = [o for o in items if o["created"] < int(lt)]
        if (after := request.arg("starting_after")) is not None:
            ids = [o["id"] for o in items]
            if after not in ids:
                error = {"message": f"No such object: '{after}'", "param": "starting_after",
                         "type": "invalid_request_error", "code": "resource_missing"}
                return json_reply({"error": error}, 400)
            items = items[ids.index(after) + 1:]
        limit = int(request.arg("limit") or 10)
        assert 1 <= limit <= 100, limit
        size = min(limit, self.page_size)
        data = {"object": "list", "url": request.path, "has_more": len(items) > size,
                "data": items[:size]}
        return self.answer(request.path, data)


# -- the in-house revenue endpoint --------------------------------------------


class FakeRevenue(FakeServer):
    """``GET /api/revenue``: serves ``body`` (JSON text, verbatim); checks the token if set."""

    def __init__(self, body: str = '{"invoiced": 1234.56, "collected": "1000.10"}',
                 *, token: str | None = None, path: str = "/api/revenue") -> None:
        super().__init__()
        self.body = body
        self.token = token
        self.path = path

    def handle(self, request: Request) -> Reply:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return json_reply({"message": "unauthorized"}, 401)
        if request.path != self.path:
            return json_reply({"message": "not found"}, 404)
        return Reply(200, self.body.encode())
