"""The per-model price table that turns token usage into an estimated cost.

Prices are dollars per million tokens, as decimal strings or integers (a
TOML float is refused: it may already have lost digits), with at most six
decimal places, so that every estimate is exact within 12 places. A model name from
the usage report is priced by the longest table key it starts with, up to a
``-`` (``claude-sonnet-4-20250514`` → ``claude-sonnet-4``;
``claude-opus-4-5-20251101`` → ``claude-opus-4-5``).

The built-in defaults are ASSUMPTIONS (Anthropic's list prices for the
standard tier, 0-200k context, as last known to the authors): check them
against your contract and override them in ``price_table``. A 1-hour cache
write costs ``cache_write_1h``, by default twice the input price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from northstard.core.money import parse_money
from northstard.errors import SchemaDriftError

__all__ = ["DEFAULT_PRICES", "PRICE_KEYS", "Price", "PriceTable", "parse_price_table"]

PRICE_KEYS = ("input", "output", "cache_write", "cache_read")
OPTIONAL_KEYS = ("cache_write_1h",)
MILLION = Decimal(1_000_000)
# a price per million tokens with at most 6 places gives a cost with at most 12:
# exact, and within the bounds every record keeps (``northstard.core.money``)
MAX_PRICE_PLACES = 6


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens of one model."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal
    cache_write_1h: Decimal

    def cost(self, *, uncached: int, output: int, cache_5m: int, cache_1h: int, cache_read: int) -> Decimal:
        """Exact dollars for these token counts."""
        total = (
            uncached * self.input
            + output * self.output
            + cache_5m * self.cache_write
            + cache_1h * self.cache_write_1h
            + cache_read * self.cache_read
        )
        return total / MILLION


def _price(input: str, output: str, cache_write: str, cache_read: str, cache_1h: str) -> Price:
    return Price(Decimal(input), Decimal(output), Decimal(cache_write), Decimal(cache_read),
                 Decimal(cache_1h))


# ASSUMPTIONS: list prices, standard tier, <=200k context; override in price_table.
DEFAULT_PRICES: dict[str, Price] = {
    "claude-opus-4": _price("15", "75", "18.75", "1.50", "30"),
    "claude-opus-4-5": _price("5", "25", "6.25", "0.50", "10"),
    "claude-sonnet-4": _price("3", "15", "3.75", "0.30", "6"),
    "claude-haiku-4": _price("1", "5", "1.25", "0.10", "2"),
}


def _amount(model: str, key: str, value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f"{model}.{key}: write prices as strings (\"3.00\"), not floats")
    try:
        amount = parse_money(value, field=f"{model}.{key}")
    except SchemaDriftError as exc:
        raise ValueError(str(exc)) from None
    if amount < 0:
        raise ValueError(f"{model}.{key}: a price cannot be negative")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PRICE_PLACES:
        raise ValueError(f"{model}.{key}: at most {MAX_PRICE_PLACES} decimal places")
    return amount


def _entry(model: str, given: Any) -> Price:
    if not isinstance(given, Mapping):
        raise ValueError(f"{model}: expected a table of {', '.join(PRICE_KEYS)}")
    unknown = set(given) - set(PRICE_KEYS) - set(OPTIONAL_KEYS)
    if unknown:
        raise ValueError(f"{model}: unknown key(s) {', '.join(sorted(unknown))}")
    missing = [key for key in PRICE_KEYS if key not in given]
    if missing:
        raise ValueError(f"{model}: missing {', '.join(missing)}")
    values = {key: _amount(model, key, given[key]) for key in PRICE_KEYS}
    one_hour = given.get("cache_write_1h")
    values["cache_write_1h"] = (
        _amount(model, "cache_write_1h", one_hour) if one_hour is not None else 2 * values["input"]
    )
    return Price(**values)


def parse_price_table(given: Mapping[str, Any]) -> dict[str, Price]:
    """The defaults overridden by ``given`` (model → {input, output, cache_write, cache_read}).

    Raises ``ValueError`` naming the model and key at fault.
    """
    table = dict(DEFAULT_PRICES)
    for model, entry in given.items():
        if not isinstance(model, str) or not model:
            raise ValueError("model names must be non-empty strings")
        table[model] = _entry(model, entry)
    return table


class PriceTable:
    """Prices by model name, matched by the longest key prefix."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self.prices = dict(prices)
        self._by_length = sorted(self.prices, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"<PriceTable {sorted(self.prices)}>"

    def key_for(self, model: str) -> str | None:
        """The table key that prices ``model``, or None."""
        for key in self._by_length:
            if model == key or (model.startswith(key) and model[len(key)] == "-"):
                return key
        return None

    def names(self) -> list[str]:
        """Every table key, sorted."""
        return sorted(self.prices)
