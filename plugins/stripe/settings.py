"""The ``stripe`` source's config keys and their typed form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from northstard.config import Field
from northstard.http import HTTP_FIELDS, MAX_BODY_BYTES, RETRY_AFTER_MAX_S

from ..revenue_http.settings import check_url, validated

__all__ = ["FIELDS", "Settings"]


def _check_date(value: Any) -> str | None:
    if not value:
        return None
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return "expected a date as a string, YYYY-MM-DD"
    return None


def _check_currency(value: Any) -> str | None:
    text = str(value)
    return None if len(text) == 3 and text.isalpha() else "expected an ISO 4217 code such as usd"


def _check_types(value: Any) -> str | None:
    ok = value and all(isinstance(v, str) and v for v in value)
    return None if ok else "expected a list of balance transaction types"


FIELDS: tuple[Field, ...] = (
    Field("api_key", str, secret=True,
          help="restricted or secret key (sk_... / rk_...), read-only; environment or api_key_file"),
    Field("base_url", str, "https://api.stripe.com/v1", check=check_url, help="API base URL"),
    Field("currency", str, "usd", check=_check_currency,
          help="reporting currency; records in any other currency are refused (no FX)"),
    Field("agent_metadata_key", str, "agent",
          help="invoice metadata key naming the agent the revenue is attributed to"),
    Field("start_date", str, "", check=_check_date,
          help="only objects created on or after this day, YYYY-MM-DD; empty: all"),
    Field("refund_types", list, ["refund"], check=_check_types,
          help="balance transaction types counted as refunds (add payment_refund for non-card refunds)"),
    Field("api_version", str, "", help="Stripe-Version header; empty: the account's default"),
    Field("request_timeout_s", float, 20.0, min=0.001, help="time limit of one HTTP call"),
    *HTTP_FIELDS,
)


@dataclass(frozen=True)
class Settings:
    """The options of one ``[sources.NAME]`` section of type ``stripe``."""

    api_key: str | None = None
    base_url: str = "https://api.stripe.com/v1"
    currency: str = "usd"
    agent_metadata_key: str = "agent"
    start_date: date | None = None
    refund_types: tuple[str, ...] = ("refund",)
    api_version: str = ""
    request_timeout_s: float = 20.0
    max_body_bytes: int = MAX_BODY_BYTES
    retry_after_max_s: float = RETRY_AFTER_MAX_S

    def __repr__(self) -> str:
        key = "<redacted>" if self.api_key else None
        return f"Settings(base_url={self.base_url!r}, currency={self.currency!r}, api_key={key})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], section: str) -> Settings:
        """Validate ``options`` (missing keys take their defaults)."""
        values = validated(FIELDS, options, section)
        start = values.pop("start_date")
        return cls(
            start_date=date.fromisoformat(start) if start else None,
            refund_types=tuple(values.pop("refund_types")),
            currency=values.pop("currency").lower(),
            **values,
        )

    @property
    def start_ts(self) -> int | None:
        """``start_date`` as Unix seconds (for ``created[gte]``), or None."""
        if self.start_date is None:
            return None
        return int(datetime.combine(self.start_date, time(0), tzinfo=UTC).timestamp())

    def headers(self) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": "northstard"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        if self.api_version:
            headers["stripe-version"] = self.api_version
        return headers
