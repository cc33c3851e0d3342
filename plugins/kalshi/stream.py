"""Kalshi WebSocket messages: the subscribe commands we send and what we make of replies.

Checked against Kalshi's AsyncAPI document (docs.kalshi.com asyncapi.yaml,
vendored as tests/contract/specs/kalshi-asyncapi.json): the handshake is
signed like a REST call (path ``/trade-api/ws/v2``); the command is
``{"id", "cmd": "subscribe", "params": {"channels", "market_tickers"}}``
(``market_tickers`` filters fill, market_positions and ticker); the channels
``fill``, ``market_positions`` (private) and ``ticker`` send messages
``{"type", "sid", "msg"}`` with ``type`` ``fill``, ``market_position`` and
``ticker`` (``const`` in each payload schema). Their fields are NOT all the
REST names: see ``parse.py`` (``position_cost_dollars``, a fill's YES price
only, ``trade_id``, ``market_ticker``). A ticker message carries
``yes_bid_dollars``, ``yes_ask_dollars`` and ``price_dollars`` only: the NO
quotes are derived (1 - YES) and merged into the last known ones. Still
assumed (no specification says): the ``error`` message's ``msg`` is
``{"code", "msg"}``. A message that does not fit is dropped and logged once
per problem; polling reconciles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from northstard.core.records import Record
from northstard.errors import SchemaDriftError, SourceError

from .fields import loads
from .portfolio import Portfolio

__all__ = ["ASSUMPTION", "PRIVATE_CHANNELS", "Messages", "subscribe"]

log = structlog.get_logger("northstard_plugins.kalshi")

PRIVATE_CHANNELS = ("fill", "market_positions")
TICKER_CHANNEL = "ticker"
ASSUMPTION = (
    "kalshi stream: message shapes are those of Kalshi's AsyncAPI document (fill, market_position, "
    "ticker); a message that does not fit is dropped and polling reconciles it"
)


def subscribe(command_id: int, channels: Sequence[str], tickers: Sequence[str] = ()) -> dict[str, Any]:
    """A ``subscribe`` command; ``tickers`` limits it to those markets."""
    params: dict[str, Any] = {"channels": list(channels)}
    if tickers:
        params["market_tickers"] = list(tickers)
    return {"id": command_id, "cmd": "subscribe", "params": params}


class Messages:
    """Turns message texts into records through a ``Portfolio``; remembers what it logged."""

    def __init__(self, portfolio: Portfolio, source: str) -> None:
        self.portfolio = portfolio
        self.source = source
        self.dropped = 0
        self._logged: set[str] = set()

    def __repr__(self) -> str:
        return f"<Messages {self.source!r} dropped={self.dropped}>"

    def records(self, text: str) -> list[Record]:
        """The records one message changes; [] for acks and for messages that drifted."""
        try:
            message = loads(text, "stream message")
            return self._dispatch(message)
        except SchemaDriftError as exc:
            self.dropped += 1
            self._log_once(str(exc))
            return []

    def _dispatch(self, message: Mapping[str, Any]) -> list[Record]:
        kind = message.get("type")
        body = message.get("msg")
        if kind == "error":
            raise SourceError(f"kalshi: stream error: {_error_text(body)}")
        if kind not in ("ticker", "market_position", "fill"):
            return []  # subscribed, ok, unsubscribed, other channels
        if not isinstance(body, dict):
            raise SchemaDriftError(f"kalshi: stream {kind}: msg is not an object")
        if kind == "ticker":
            return self.portfolio.on_ws_ticker(body)
        if kind == "market_position":
            return self.portfolio.on_ws_position(body)
        return self.portfolio.on_ws_fill(body)

    def _log_once(self, problem: str) -> None:
        if problem not in self._logged:
            self._logged.add(problem)
            log.warning("kalshi stream message dropped", source=self.source, error=problem,
                        assumption=ASSUMPTION)


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        code = body.get("code")
        text = body.get("msg") or body.get("message")
        return f"code {code}: {str(text)[:120]}"
    return "no details"
