"""The ``kalshi`` source's config keys, hosts and their validated, typed form.

``key_id`` and ``private_key`` are secrets: they come from the environment
(``NORTHSTARD_SOURCES__KALSHI__KEY_ID``), from ``key_id_file`` /
``private_key_file`` or from the systemd credentials directory, never from the
TOML file. Without them the plugin still loads; the source says once at start
that it is off and every poll fails with a clear message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from northstard.config import Field
from northstard.http import MAX_BODY_BYTES, MAX_BODY_FIELD

__all__ = ["FIELDS", "HOSTS", "Settings"]

Env = Literal["production", "demo"]
Mark = Literal["bid", "mid", "last"]

HOSTS: dict[str, tuple[str, str]] = {
    "production": (
        "https://external-api.kalshi.com/trade-api/v2",
        "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
    ),
    "demo": (
        "https://external-api.demo.kalshi.co/trade-api/v2",
        "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
    ),
}


def _url(*schemes: str) -> Any:
    def check(value: Any) -> str | None:
        if not str(value).startswith(tuple(f"{s}://" for s in schemes)):
            return f"must start with {' or '.join(f'{s}://' for s in schemes)}"
        return None

    return check


FIELDS: tuple[Field, ...] = (
    Field("env", str, "production", choices=("production", "demo"),
          help="production or demo: a key works only in the environment that issued it"),
    Field("base_url", str, None, check=_url("https", "http"),
          help="REST base override (unset: per env), e.g. https://api.elections.kalshi.com/trade-api/v2"),
    Field("ws_url", str, None, check=_url("wss", "ws"), help="WebSocket URL override (unset: per env)"),
    Field("key_id", str, None, secret=True, help="API key id (a UUID)"),
    Field("private_key", str, None, secret=True,
          help="unencrypted PEM RSA private key; usually private_key_file = \"/path/key.pem\""),
    Field("mark", str, "bid", choices=("bid", "mid", "last"),
          help="how open positions are valued: bid, mid of bid/ask, or last trade (YES positions use "
               "YES quotes, NO positions NO quotes)"),
    Field("realized_includes_fees", bool, True,
          help="realized_pnl_dollars is already net of fees; false subtracts fees_paid"),
    Field("read_rate", float, 200.0, min=1.0, help="read budget refill, tokens per second"),
    Field("burst", float, 400.0, min=10.0, help="read budget size, tokens (each GET costs 10)"),
    Field("call_timeout_s", float, 10.0, min=0.001,
          help="time limit of one HTTP call or of the WebSocket handshake"),
    Field("stream", bool, True, help="also stream fills, positions and tickers over WebSocket"),
    Field("agent", str, None, help="agent the trading P&L is attributed to"),
    Field("subaccount", int, None, min=0,
          help="restrict positions, fills and settlements to one subaccount (unset: Kalshi's defaults, "
               "positions of the primary account 0, fills and settlements of all subaccounts)"),
    MAX_BODY_FIELD,
)


@dataclass(frozen=True)
class Settings:
    """The kalshi options, typed. ``repr`` never shows the secrets."""

    env: Env = "production"
    base_url: str | None = None
    ws_url: str | None = None
    key_id: str | None = None
    private_key: str | None = None
    mark: Mark = "bid"
    realized_includes_fees: bool = True
    read_rate: float = 200.0
    burst: float = 400.0
    call_timeout_s: float = 10.0
    stream: bool = True
    agent: str | None = None
    subaccount: int | None = None
    max_body_bytes: int = MAX_BODY_BYTES

    def __repr__(self) -> str:
        return (
            f"<Settings env={self.env} rest={self.rest_url} ws={self.websocket_url} "
            f"mark={self.mark} credentials={'yes' if self.has_credentials else 'no'}>"
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any], section: str = "sources.kalshi") -> Settings:
        """Validate ``options`` (missing keys take their defaults)."""
        values: dict[str, Any] = {}
        for spec in FIELDS:
            given = options.get(spec.name)
            values[spec.name] = (
                spec.default if given is None else spec.validate(f"{section}.{spec.name}", given)
            )
        return cls(**values)

    @property
    def has_credentials(self) -> bool:
        return bool(self.key_id and self.private_key)

    @property
    def rest_url(self) -> str:
        return (self.base_url or HOSTS[self.env][0]).rstrip("/")

    @property
    def websocket_url(self) -> str:
        return self.ws_url or HOSTS[self.env][1]
