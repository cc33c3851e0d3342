"""The ``anthropic_costs`` source's config keys and their typed form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from northstard.config import Field
from northstard.errors import ConfigError
from northstard.http import HTTP_FIELDS, MAX_BODY_BYTES, RETRY_AFTER_MAX_S

from ..revenue_http.settings import check_url, validated
from .prices import DEFAULT_PRICES, Price, parse_price_table

__all__ = ["ANTHROPIC_VERSION", "FIELDS", "Settings"]

ANTHROPIC_VERSION = "2023-06-01"


def _check_date(value: Any) -> str | None:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return "expected a date as a string, YYYY-MM-DD"
    return None


def _check_prices(value: Any) -> str | None:
    try:
        parse_price_table(value)
    except ValueError as exc:
        return str(exc)
    return None


FIELDS: tuple[Field, ...] = (
    Field("admin_key", str, secret=True,
          help="Admin API key (sk-ant-admin01-...), sent as x-api-key; environment or admin_key_file"),
    Field("oauth_token", str, secret=True,
          help="or an OAuth bearer token with org:admin scope; environment or oauth_token_file"),
    Field("base_url", str, "https://api.anthropic.com", check=check_url, help="API base URL"),
    Field("start_date", str, "", check=lambda v: _check_date(v) if v else None,
          help="first day of the cost report, YYYY-MM-DD; empty: 30 days ago"),
    Field("price_table", dict, {}, check=_check_prices,
          help="model -> {input, output, cache_write, cache_read[, cache_write_1h]} dollars per million "
               "tokens, as strings, at most 6 decimals, matched by longest model-name prefix; empty: "
               "the built-in table (assumptions, see docs/plugins.md)"),
    Field("usage_bucket", str, "1h", choices=("1m", "1h"),
          help="bucket width (1m or 1h) of the usage report behind the intraday estimate"),
    Field("request_timeout_s", float, 20.0, min=0.001, help="time limit of one HTTP call"),
    *HTTP_FIELDS,
)


@dataclass(frozen=True)
class Settings:
    """The options of one ``[sources.NAME]`` section of type ``anthropic_costs``."""

    admin_key: str | None = None
    oauth_token: str | None = None
    base_url: str = "https://api.anthropic.com"
    start_date: date | None = None
    prices: Mapping[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    usage_bucket: Literal["1m", "1h"] = "1h"
    request_timeout_s: float = 20.0
    max_body_bytes: int = MAX_BODY_BYTES
    retry_after_max_s: float = RETRY_AFTER_MAX_S

    def __repr__(self) -> str:
        auth = "admin_key" if self.admin_key else "oauth_token" if self.oauth_token else "none"
        return f"Settings(base_url={self.base_url!r}, auth={auth}, start_date={self.start_date})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], section: str) -> Settings:
        """Validate ``options`` (missing keys take their defaults)."""
        values = validated(FIELDS, options, section)
        try:
            prices = parse_price_table(values.pop("price_table"))
        except ValueError as exc:  # pragma: no cover - the field check already ran
            raise ConfigError(f"{section}.price_table", str(exc)) from None
        start = values.pop("start_date")
        return cls(prices=prices, start_date=date.fromisoformat(start) if start else None, **values)

    @property
    def has_credentials(self) -> bool:
        return bool(self.admin_key or self.oauth_token)

    def headers(self) -> dict[str, str]:
        """The request headers: version, and the admin key (preferred) or the bearer token."""
        headers = {"anthropic-version": ANTHROPIC_VERSION, "accept": "application/json",
                   "user-agent": "northstard"}
        if self.admin_key:
            headers["x-api-key"] = self.admin_key
        elif self.oauth_token:
            headers["authorization"] = f"Bearer {self.oauth_token}"
        return headers

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.admin_key, self.oauth_token) if s]
