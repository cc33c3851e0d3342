"""A fake Kalshi Trade API v2 on 127.0.0.1: a real HTTP server and a real WebSocket server.

The HTTP side is a small h11 server (so that it can also misbehave at the
byte level: never answer, cut a body short); the WebSocket side is
trio-websocket's server. Both verify every request's RSA-PSS signature
(SHA-256, MGF1-SHA-256, salt 32) over ``timestamp + METHOD + path`` with the
public key and answer 401 to a missing or wrong one.

It serves the shapes and example rows of api-contracts.md, paginated with
cursors (``page_size`` rows a page), and can be told to fail::

    fake.fail("500")                                   # every endpoint, until cleared
    fake.fail("timeout", "/portfolio/fills", times=1)  # one call never answered
    fake.fail("drift", "/portfolio/positions", mutate=rename("market_exposure_dollars"))

Modes: ``timeout``, ``429``, ``500``, ``malformed`` (invalid JSON),
``truncated`` (Content-Length larger than what is sent, then the connection
closes) and ``drift`` (the body passed through ``mutate``).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from spec_check import example, problems, response_problems

KEY_ID = "6f1c2b7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
REST_PREFIX = "/trade-api/v2"
WS_PATH = "/trade-api/ws/v2"
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

Body = dict[str, Any]

KALSHI_REST = "kalshi-openapi.json"
KALSHI_WS = "kalshi-asyncapi.json"


def problems_of_response(endpoint: str, status: int, body: Any) -> list[str]:
    """Why a body the fake is about to serve (before any deliberate drift) is not one Kalshi documents."""
    return response_problems(KALSHI_REST, endpoint, status, json.dumps(body).encode())


# -- the example rows of api-contracts.md, and a few more of the same shape ----

BALANCE: Body = {"balance": 2065, "balance_dollars": "20.6583", "portfolio_value": 0,
                 "updated_ts": 1787022429,
                 "balance_breakdown": [{"exchange_index": 0, "balance": "20.6583"}]}

POSITIONS: list[Body] = [
    # the documented example row
    {"ticker": "T-A", "position_fp": "9.13", "market_exposure_dollars": "4.8389",
     "realized_pnl_dollars": "0.0", "fees_paid_dollars": "0.1592",
     "total_traded_dollars": "4.8389", "last_updated_ts": "2026-08-08T15:05:18.514462Z",
     "exchange_index": 0},
    # a NO position (negative count)
    {"ticker": "T-B", "position_fp": "-5.00", "market_exposure_dollars": "2.1000",
     "realized_pnl_dollars": "0.5000", "fees_paid_dollars": "0.0700",
     "total_traded_dollars": "3.4000", "last_updated_ts": "2026-08-10T12:00:00Z",
     "exchange_index": 0},
    # closed out: no contracts left, realized P&L only
    {"ticker": "T-C", "position_fp": "0.00", "market_exposure_dollars": "0.0000",
     "realized_pnl_dollars": "1.2500", "fees_paid_dollars": "0.0300",
     "total_traded_dollars": "6.0000", "last_updated_ts": "2026-08-10T12:00:00Z",
     "exchange_index": 0},
]



def market(ticker: str, yes_bid: str, yes_ask: str, last: str, **changes: Any) -> Body:
    """A ``Market`` with every field the OpenAPI requires (specs/kalshi-openapi.json), quotes as given."""
    no_bid, no_ask = f"{1 - Decimal(yes_ask):.4f}", f"{1 - Decimal(yes_bid):.4f}"
    row: Body = {
        "ticker": ticker, "event_ticker": "E-" + ticker, "market_type": "binary",
        "yes_sub_title": "Yes", "no_sub_title": "No", "created_time": "2026-08-01T00:00:00Z",
        "updated_time": "2026-08-16T04:00:00Z", "open_time": "2026-08-01T00:00:00Z",
        "close_time": "2026-09-01T00:00:00Z", "latest_expiration_time": "2026-09-08T00:00:00Z",
        "settlement_timer_seconds": 3600, "status": "active",
        "yes_bid_dollars": yes_bid, "yes_bid_size_fp": "100.00", "yes_ask_dollars": yes_ask,
        "yes_ask_size_fp": "100.00", "no_bid_dollars": no_bid, "no_ask_dollars": no_ask,
        "last_price_dollars": last, "volume_fp": "1000.00", "volume_24h_fp": "100.00", "result": "",
        "can_close_early": True, "open_interest_fp": "500.00", "notional_value_dollars": "1.0000",
        "previous_yes_bid_dollars": yes_bid, "previous_yes_ask_dollars": yes_ask,
        "previous_price_dollars": last, "expiration_value": "", "rules_primary": "Resolves Yes if ...",
        "rules_secondary": "", "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0100", "end": "0.9900", "step": "0.0100"}],
    }
    return {**row, **changes}


MARKETS: dict[str, Body] = {
    "T-A": market("T-A", "0.5600", "0.5800", "0.5700"),
    "T-B": market("T-B", "0.3000", "0.3300", "0.3100"),
    "T-C": market("T-C", "0.9000", "0.9200", "0.9100"),
}

FILLS: list[Body] = [
    # the documented example
    {"action": "buy", "book_side": "bid", "count_fp": "15.00", "created_time": "2026-08-16T03:00:00Z",
     "fee_cost": "0.202100", "fill_id": "f1", "is_taker": True, "no_price_dollars": "0.2600",
     "order_id": "o1", "outcome_side": "yes", "side": "yes", "ticker": "KXUFCFIGHT-X",
     "market_ticker": "KXUFCFIGHT-X", "exchange_index": 0,
     "trade_id": "f1", "ts": 1786849200, "yes_price_dollars": "0.7400"},
    {"action": "buy", "book_side": "bid", "count_fp": "9.13", "created_time": "2026-08-08T15:05:18Z",
     "fee_cost": "0.159200", "fill_id": "f2", "is_taker": True, "no_price_dollars": "0.4700",
     "order_id": "o2", "outcome_side": "yes", "side": "yes", "ticker": "T-A", "market_ticker": "T-A",
     "exchange_index": 0, "trade_id": "f2",
     "ts": 1786201518, "yes_price_dollars": "0.5300"},
    # without the deprecated side/action: book_side and outcome_side only
    {"book_side": "bid", "count_fp": "5.00", "created_time": "2026-08-10T12:00:00Z",
     "fee_cost": "0.070000", "fill_id": "f3", "is_taker": False, "no_price_dollars": "0.4200",
     "order_id": "o3", "outcome_side": "no", "ticker": "T-B", "market_ticker": "T-B",
     "exchange_index": 0, "trade_id": "f3", "ts": 1786363200,
     "yes_price_dollars": "0.5800"},
]

SETTLEMENTS: list[Body] = [
    # the documented example: 15 YES bought for 11.10, won, fee 0.2021 -> +3.6979
    {"event_ticker": "E", "fee_cost": "0.202100", "market_result": "yes", "no_count_fp": "0.00",
     "no_total_cost_dollars": "0.000000", "revenue": 1500, "settled_time": "2026-08-16T04:00:00Z",
     "ticker": "T", "exchange_index": 0, "value": 100, "yes_count_fp": "15.00",
     "yes_total_cost_dollars": "11.100000"},
    # lost: 10 YES for 4.00, fee 0.05 -> -4.05
    {"event_ticker": "E2", "fee_cost": "0.050000", "market_result": "no", "no_count_fp": "0.00",
     "no_total_cost_dollars": "0.000000", "revenue": 0, "settled_time": "2026-08-16T04:00:00Z",
     "ticker": "T-L", "exchange_index": 0, "value": 0, "yes_count_fp": "10.00",
     "yes_total_cost_dollars": "4.000000"},
]

AS_OF = "2026-08-16T04:00:01.250000Z"


# -- WebSocket messages: Kalshi's documented examples (specs/kalshi-asyncapi.json) --


def ws_message(kind: str, **msg: Any) -> Body:
    """The documented ``kind`` message (fill, market_position, ticker), its ``msg`` fields changed."""
    message = example(KALSHI_WS, kind)
    message["msg"].update(msg)
    return message


def ws_fill(**msg: Any) -> Body:
    return ws_message("fill", **msg)


def ws_position(**msg: Any) -> Body:
    return ws_message("market_position", **msg)


def ws_ticker(**msg: Any) -> Body:
    return ws_message("ticker", **msg)


@functools.cache
def signing_key() -> tuple[str, rsa.RSAPublicKey]:
    """A fresh RSA key for this test run: (unencrypted PEM text, public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


@functools.cache
def other_key() -> str:
    """A second key, which the fake does not know."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def rename(old: str, new: str | None = None) -> Callable[[Body], Body]:
    """A drift: field ``old`` of every row renamed (to ``old + '_v2'`` by default)."""
    return _each_row(lambda row: {(new or old + "_v2") if k == old else k: v for k, v in row.items()})


def as_number(name: str) -> Callable[[Body], Body]:
    """A drift: the decimal string ``name`` of every row sent as a JSON number."""
    def change(row: Body) -> Body:
        return {k: (float(v) if k == name else v) for k, v in row.items()}

    return _each_row(change)


def _each_row(change: Callable[[Body], Body]) -> Callable[[Body], Body]:
    """``change`` applied to the body and to every object in its lists."""
    def mutate(body: Body) -> Body:
        return {
            key: [change(v) if isinstance(v, dict) else v for v in value]
            if isinstance(value, list) else value
            for key, value in change(body).items()
        }

    return mutate


@dataclass
class Failure:
    mode: str
    endpoint: str | None = None
    times: int | None = None
    mutate: Callable[[Body], Body] | None = None


@dataclass
class Seen:
    """One request the fake answered."""

    method: str
    endpoint: str
    query: dict[str, str]
    status: int


@dataclass
class KalshiFake:
    public_key: rsa.RSAPublicKey
    key_id: str = KEY_ID
    page_size: int = 2
    balance: Body = field(default_factory=lambda: copy.deepcopy(BALANCE))
    positions: list[Body] = field(default_factory=lambda: copy.deepcopy(POSITIONS))
    markets: dict[str, Body] = field(default_factory=lambda: copy.deepcopy(MARKETS))
    fills: list[Body] = field(default_factory=lambda: copy.deepcopy(FILLS))
    settlements: list[Body] = field(default_factory=lambda: copy.deepcopy(SETTLEMENTS))
    as_of: str = AS_OF
    failures: list[Failure] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    commands: list[Body] = field(default_factory=list)
    subscribed: dict[str, set[str]] = field(default_factory=dict)
    sockets: list[WebSocketConnection] = field(default_factory=list)
    served: list[tuple[str, int, bytes]] = field(default_factory=list)  # (endpoint, status, body)
    pushed: list[str] = field(default_factory=list)  # every WebSocket message sent with push()
    violations: list[str] = field(default_factory=list)  # what the real API could not send (specs/)
    http_url: str = ""
    ws_url: str = ""
    _changed: trio.Event = field(default_factory=trio.Event)
    _sid: int = 0

    def __repr__(self) -> str:
        return (f"<KalshiFake {self.http_url} requests={len(self.seen)} refused={len(self.refused)} "
                f"failures={[f.mode for f in self.failures]} sockets={len(self.sockets)}>")

    # -- control ---------------------------------------------------------

    def fail(self, mode: str, endpoint: str | None = None, *, times: int | None = None,
             mutate: Callable[[Body], Body] | None = None) -> None:
        assert mode in ("timeout", "429", "500", "malformed", "truncated", "drift"), mode
        self.failures.append(Failure(mode, endpoint, times, mutate))

    def clear(self) -> None:
        self.failures.clear()

    def count(self, endpoint: str) -> int:
        return sum(1 for s in self.seen if s.endpoint == endpoint)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (without sleeping) until ``predicate()`` holds after some request or command."""
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def start(self, nursery: trio.Nursery) -> KalshiFake:
        listeners = await nursery.start(trio.serve_tcp, self._http, 0)
        port = listeners[0].socket.getsockname()[1]
        self.http_url = f"http://127.0.0.1:{port}{REST_PREFIX}"
        server = await nursery.start(serve_websocket, self._ws, "127.0.0.1", 0, None)
        self.ws_url = f"ws://127.0.0.1:{server.port}{WS_PATH}"
        return self

    # -- signing ---------------------------------------------------------

    def verify(self, headers: Mapping[bytes, bytes], method: str, path: str) -> str | None:
        """None if the request is signed by our key, else why not."""
        key = headers.get(b"kalshi-access-key")
        stamp = headers.get(b"kalshi-access-timestamp")
        signature = headers.get(b"kalshi-access-signature")
        if key is None or stamp is None or signature is None:
            return "missing KALSHI-ACCESS-* headers"
        if key.decode() != self.key_id:
            return "unknown key id"
        if not stamp.isdigit() or int(stamp) < 10**12:
            return "timestamp is not Unix milliseconds"
        try:
            raw = base64.b64decode(signature, validate=True)
            message = stamp + method.encode() + path.encode()
            self.public_key.verify(raw, message, PSS, hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "invalid signature"
        return None

    # -- HTTP ------------------------------------------------------------

    async def _http(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _next_request(conn, stream)
                if request is None or not await self._respond(conn, stream, request):
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _respond(self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request) -> bool:
        target = urlsplit(request.target.decode())
        query = {k: v[-1] for k, v in parse_qs(target.query).items()}
        endpoint = target.path.removeprefix(REST_PREFIX)
        headers = {k.lower(): v for k, v in request.headers}
        problem = None if target.path.startswith(REST_PREFIX + "/") else "not under /trade-api/v2"
        problem = problem or self.verify(headers, request.method.decode(), target.path)
        if problem:
            self.refused.append(problem)
            return await self._send(conn, stream, endpoint, query, 401,
                                    {"code": "authentication_error", "message": problem})
        failure = self._failure(endpoint)
        mode = failure.mode if failure else None
        if mode == "timeout":
            self._record(endpoint, query, 0)
            await trio.sleep_forever()
        if mode == "429":
            # OpenAPI 3.31.0 components.responses.RateLimitError: an ErrorResponse, no Retry-After
            return await self._send(conn, stream, endpoint, query, 429,
                                    {"code": "too_many_requests", "message": "too many requests"})
        if mode == "500":
            return await self._send(conn, stream, endpoint, query, 500,
                                    {"code": "internal_error", "message": "internal server error"})
        status, body = self._route(endpoint, query)
        self.violations += [f"GET {endpoint}: {p}" for p in problems_of_response(endpoint, status, body)]
        if mode == "drift" and failure and failure.mutate:
            body = failure.mutate(body)
        raw = json.dumps(body).encode()
        if mode == "malformed":
            raw = raw[: len(raw) // 2] + b"<html>oops"
        if mode == "truncated":
            self._record(endpoint, query, status)
            await stream.send_all(conn.send(_response(status, len(raw))))
            await stream.send_all(conn.send(h11.Data(data=raw[: len(raw) // 2])))
            return False
        return await self._send_raw(conn, stream, endpoint, query, status, raw)

    def _failure(self, endpoint: str) -> Failure | None:
        for failure in self.failures:
            if failure.endpoint in (None, endpoint):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                return failure
        return None

    def _route(self, endpoint: str, query: Mapping[str, str]) -> tuple[int, Body]:
        if "limit" in query and not 1 <= int(query["limit"]) <= 1000:
            return 400, {"code": "invalid_parameters", "message": "limit must be 1..1000"}
        if endpoint == "/exchange/user_data_timestamp":
            return 200, {"as_of_time": self.as_of}
        if endpoint == "/portfolio/balance":
            return 200, dict(self.balance)
        if endpoint == "/portfolio/positions":
            return self._page(self.positions, "market_positions", query, event_positions=[])
        if endpoint == "/portfolio/fills":
            since = int(query.get("min_ts", 0))
            return self._page([f for f in self.fills if f["ts"] >= since], "fills", query)
        if endpoint == "/portfolio/settlements":
            since = int(query.get("min_ts", 0))
            rows = [s for s in self.settlements if _unix(s["settled_time"]) >= since]
            return self._page(rows, "settlements", query)
        if endpoint == "/markets":
            tickers = [t for t in query.get("tickers", "").split(",") if t]
            rows = [self.markets[t] for t in tickers if t in self.markets]
            return self._page(rows, "markets", query)
        return 404, {"code": "not_found", "message": f"no route {endpoint}"}

    def _page(self, rows: list[Body], key: str, query: Mapping[str, str], **extra: Any) -> tuple[int, Body]:
        start = int(query.get("cursor") or 0)
        size = min(self.page_size, int(query.get("limit", 100)))
        page = rows[start:start + size]
        body: Body = {key: copy.deepcopy(page), **extra}
        more = start + size < len(rows)
        body["cursor"] = str(start + size) if more else ""  # required (GetXResponse); "" at the end
        return 200, body

    def _record(self, endpoint: str, query: Mapping[str, str], status: int) -> None:
        self.seen.append(Seen("GET", endpoint, dict(query), status))
        self._notify()

    async def _send(self, conn: h11.Connection, stream: trio.SocketStream, endpoint: str,
                    query: Mapping[str, str], status: int, body: Body) -> bool:
        return await self._send_raw(conn, stream, endpoint, query, status, json.dumps(body).encode())

    async def _send_raw(self, conn: h11.Connection, stream: trio.SocketStream, endpoint: str,
                        query: Mapping[str, str], status: int, raw: bytes) -> bool:
        self._record(endpoint, query, status)
        self.served.append((endpoint, status, raw))
        await stream.send_all(conn.send(_response(status, len(raw))))
        await stream.send_all(conn.send(h11.Data(data=raw)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        return True

    # -- WebSocket -------------------------------------------------------

    async def _ws(self, request: WebSocketRequest) -> None:
        headers = {k.lower(): v for k, v in request.headers}
        path = request.path.split("?")[0]
        problem = None if path == WS_PATH else f"no WebSocket at {path}"
        problem = problem or self.verify(headers, "GET", path)
        if problem:
            self.refused.append(f"ws: {problem}")
            self._notify()
            await request.reject(401, body=json.dumps({"code": "authentication_error",
                                                      "message": problem}).encode())
            return
        ws = await request.accept()
        self.sockets.append(ws)
        self._notify()
        try:
            while True:
                await self._command(ws, json.loads(await ws.get_message()))
        except ConnectionClosed:
            pass
        finally:
            self.sockets.remove(ws)
            self._notify()

    async def _command(self, ws: WebSocketConnection, command: Body) -> None:
        self.commands.append(command)
        if command.get("cmd") != "subscribe":
            await ws.send_message(json.dumps({"id": command.get("id"), "type": "error",
                                              "msg": {"code": 5, "msg": "Unknown command"}}))
            return
        params = command["params"]
        for channel in params["channels"]:
            self._sid += 1
            self.subscribed.setdefault(channel, set()).update(params.get("market_tickers", ["*"]))
            await ws.send_message(json.dumps({"id": command["id"], "type": "subscribed",
                                              "msg": {"channel": channel, "sid": self._sid}}))
        self._notify()

    async def push(self, message: Body) -> None:
        """Send one documented-shape message (see ``ws_message``) to every connected client."""
        text = json.dumps(message)
        self.violations += [f"ws {message.get('type')}: {p}"
                            for p in problems(KALSHI_WS, str(message.get("type")), message)]
        self.pushed.append(text)
        await self.push_raw(text)

    async def push_raw(self, text: str) -> None:
        """Send ``text`` as it is to every connected client."""
        for ws in list(self.sockets):
            with contextlib.suppress(ConnectionClosed):
                await ws.send_message(text)


def _unix(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp())


def _response(status: int, length: int) -> h11.Response:
    return h11.Response(status_code=status, headers=[("content-type", "application/json"),
                                                     ("content-length", str(length))])


async def _next_request(conn: h11.Connection, stream: trio.SocketStream) -> h11.Request | None:
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


def options_for(fake: KalshiFake, *, pem: str | None = None, **options: Any) -> dict[str, Any]:
    """The options of a kalshi source pointed at ``fake`` (signed with our test key)."""
    return {"base_url": fake.http_url, "ws_url": fake.ws_url, "key_id": fake.key_id,
            "private_key": pem or signing_key()[0], **options}
