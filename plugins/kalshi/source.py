"""The kalshi ``Source``: polls the portfolio, and streams it when asked to.

``poll`` reads, in order: the user-data timestamp (the reading's as-of
time), the balance, settlements since the last seen one, every page of
positions, fills since the last seen one, and the prices of the markets
held (``/markets?tickers=``, batched). Deposits and withdrawals are cash
movements, never P&L, and are not fetched.

``KalshiStreamingSource.stream`` adds the WebSocket: fills, position changes
and the tickers of held markets, one ``Reading`` per message that changes
something, so trading P&L moves within a second; polling stays the
reconciling backstop (and the only path while the stream is down).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
import trio

from northstard.core.fieldcheck import drift
from northstard.core.records import Price, Reading, Record
from northstard.errors import SourceError

from . import parse
from .client import KalshiClient
from .errors import KalshiError
from .portfolio import Portfolio
from .settings import Settings
from .signing import Signer, load_signer
from .spec_fields import SHAPES
from .stream import ASSUMPTION, PRIVATE_CHANNELS, TICKER_CHANNEL, Messages, subscribe
from .ws import WsClient

__all__ = ["MARKETS_BATCH", "KalshiSource", "KalshiStreamingSource", "make_source"]

log = structlog.get_logger("northstard_plugins.kalshi")

# GET /markets?tickers= documents no maximum (OpenAPI 3.31.0 TickersQuery); 100 is the limit Kalshi
# documents for its other multi-ticker calls (candlesticks, orderbooks): an assumption, kept.
MARKETS_BATCH = 100
RECHECK_S = 1.0
SILENCE_LIMIT_S = 60.0


class KalshiSource:
    """One ``[sources.NAME]`` instance of the kalshi plugin (polling)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.polls = 0
        self.portfolio = Portfolio(settings.mark, settings.realized_includes_fees, settings.agent)
        self.problem: str | None = None
        self.signer: Signer | None = None
        self.client: KalshiClient | None = None
        try:
            self.signer = load_signer(settings.key_id, settings.private_key, wall)
        except SourceError as exc:
            self.problem = str(exc)
            return
        self.client = KalshiClient(
            settings.rest_url, self.signer, rate=settings.read_rate, burst=settings.burst,
            call_timeout_s=settings.call_timeout_s, rng=rng, transport=transport,
            max_body_bytes=settings.max_body_bytes,
        )

    def __repr__(self) -> str:
        state = self.problem or f"polls={self.polls}"
        return f"<{type(self).__name__} {self.name!r} {self.settings.env} {state} {self.portfolio!r}>"

    @property
    def _balance_id(self) -> str:
        sub = self.settings.subaccount
        return "balance" if sub is None else f"balance:{sub}"

    def _params(self, **extra: Any) -> dict[str, Any]:
        if self.settings.subaccount is not None:
            extra["subaccount"] = self.settings.subaccount
        return extra

    def _refuse(self) -> KalshiError:
        """Why this source is off, as a fresh error (the credentials were not usable)."""
        return KalshiError(self.problem or "kalshi: not configured", reachable=False,
                           authenticated=False)

    def _client(self) -> KalshiClient:
        if self.client is None:
            raise self._refuse()
        return self.client

    async def poll(self) -> Reading:
        """One full reading of the portfolio (nothing changes unless every call succeeds)."""
        client = self._client()
        book = self.portfolio
        agent = self.settings.agent
        as_of = parse.as_of(await client.get("/exchange/user_data_timestamp"))
        balance = parse.balance(await client.get("/portfolio/balance"), as_of, self._balance_id, agent)
        # min_ts, limit, cursor, subaccount: as OpenAPI 3.31.0 GetSettlements, GetPositions, GetFills
        since = {} if book.settlements_since is None else {"min_ts": book.settlements_since}
        settlements = parse.each(
            await client.pages("/portfolio/settlements", "settlements", self._params(**since)),
            "GET /portfolio/settlements: settlements", lambda row, at: parse.settlement(row, at, agent))
        positions = parse.each(
            await client.pages("/portfolio/positions", "market_positions", self._params()),
            "GET /portfolio/positions: market_positions",
            lambda row, at: parse.position(row, at, book.mark, book.includes_fees, agent))
        since = {} if book.fills_since is None else {"min_ts": book.fills_since}
        fills = parse.each(
            await client.pages("/portfolio/fills", "fills", self._params(**since)),
            "GET /portfolio/fills: fills", lambda row, at: parse.fill(row, at, agent))
        prices = await self._prices(client, book.would_hold(positions, settlements))
        records: list[Record] = [balance]
        records += book.apply_settlements(settlements)
        records += book.apply_positions(positions)
        records += book.apply_fills(fills)
        records += book.apply_prices(prices)
        self.polls += 1
        self._held_changed()
        notes = {"env": self.settings.env, "held": str(len(book.held())),
                 "positions": str(len(book.positions))}
        return Reading(self.name, tuple(records), as_of, complete=False, notes=notes)

    async def _prices(self, client: KalshiClient, held: list[str]) -> list[Price]:
        out: list[Price] = []
        agent = self.settings.agent
        for start in range(0, len(held), MARKETS_BATCH):
            batch = ",".join(held[start:start + MARKETS_BATCH])
            rows = await client.pages("/markets", "markets", {"tickers": batch})
            out += parse.each(rows, "GET /markets: markets", lambda row, at: parse.price(row, at, agent))
        return out

    def _held_changed(self) -> None:
        """A hook for the stream: the set of held markets may have changed."""

    def field_drift(self) -> dict[str, dict[str, list[str]]]:
        """Fields received that the provider's published schema does not know, and required ones not
        received, per response kind (``northstard sources check`` reports them)."""
        return drift(self.client.fields, SHAPES) if self.client is not None else {}

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


class KalshiStreamingSource(KalshiSource):
    """A kalshi source that also streams over the WebSocket."""

    _ws: WsClient | None = None
    _pinged: float = float("-inf")
    recheck_s: float = RECHECK_S  # how often a quiet stream looks for new markets and silence

    def _held_changed(self) -> None:
        # wake the stream so that it subscribes the tickers of new markets at once
        if self._ws is not None:
            self._ws.interrupt()

    async def stream(self) -> AsyncIterator[Reading]:
        """Readings as the exchange pushes them; raises ``SourceError`` when the stream breaks.

        The connection is pinged after 30 s without data and given up after 60 s.
        """
        if self.signer is None:
            raise self._refuse()
        url = self.settings.websocket_url
        limit = self.settings.call_timeout_s
        try:
            with trio.fail_after(limit):
                ws = await WsClient.connect(url, self.signer.headers("GET", url),
                                            max_message=self.settings.max_body_bytes)
        except trio.TooSlowError:
            raise KalshiError(f"kalshi: stream: handshake timed out after {limit:g} s",
                              reachable=False) from None
        log.info("kalshi stream connected", source=self.name, assumption=ASSUMPTION)
        messages = Messages(self.portfolio, self.name)
        self._ws = ws
        try:
            await ws.send_json(subscribe(1, PRIVATE_CHANNELS))
            command = 2
            subscribed: set[str] = set()
            while True:
                new = [t for t in self.portfolio.held() if t not in subscribed]
                if new:
                    await ws.send_json(subscribe(command, [TICKER_CHANNEL], new))
                    command += 1
                    subscribed.update(new)
                text = await ws.receive(self.recheck_s)
                if text is None:
                    await self._check_alive(ws)
                    continue
                records = messages.records(text)
                if records:
                    yield Reading(self.name, tuple(records), datetime.now(UTC))
        finally:
            self._ws = None
            with trio.CancelScope(shield=True):
                await ws.aclose()


    async def _check_alive(self, ws: WsClient) -> None:
        """Ping after half the silence limit; a connection silent for all of it is dead."""
        silent = trio.current_time() - ws.last_data
        if silent > SILENCE_LIMIT_S:
            raise KalshiError(f"kalshi: stream silent for {SILENCE_LIMIT_S:g} s", reachable=False)
        if silent > SILENCE_LIMIT_S / 2 and trio.current_time() - self._pinged > SILENCE_LIMIT_S / 2:
            self._pinged = trio.current_time()
            await ws.ping()


def make_source(name: str, settings: Settings, **kwargs: Any) -> KalshiSource:
    """The source for ``settings``: streaming unless ``stream = false`` or credentials lack."""
    if not settings.has_credentials:
        log.warning("kalshi source off: key_id and private_key are required", source=name)
        return KalshiSource(name, settings, **kwargs)
    source: KalshiSource = (KalshiStreamingSource if settings.stream else KalshiSource)(
        name, settings, **kwargs)
    if source.problem:
        log.warning("kalshi source off", source=name, error=source.problem)
    return source
