"""Which vendored schema each label a plugin's ``FieldLog`` records corresponds to (issue 17, item 4)."""

from __future__ import annotations

from northstard.core.fieldcheck import Shape

from spec_check import shape

__all__ = ["ANTHROPIC", "KALSHI", "STRIPE", "shapes"]

Where = tuple[str, str, tuple[str, ...]]  # (spec file, schema, path inside it)

KALSHI: dict[str, Where] = {
    "GET /exchange/user_data_timestamp": ("kalshi-openapi.json", "GetUserDataTimestampResponse", ()),
    "GET /portfolio/balance": ("kalshi-openapi.json", "GetBalanceResponse", ()),
    "GET /portfolio/balance balance_breakdown[]": ("kalshi-openapi.json", "IndexedBalance", ()),
    "GET /portfolio/positions": ("kalshi-openapi.json", "GetPositionsResponse", ()),
    "GET /portfolio/positions market_positions[]": ("kalshi-openapi.json", "MarketPosition", ()),
    "GET /portfolio/positions event_positions[]": ("kalshi-openapi.json", "EventPosition", ()),
    "GET /portfolio/fills": ("kalshi-openapi.json", "GetFillsResponse", ()),
    "GET /portfolio/fills fills[]": ("kalshi-openapi.json", "Fill", ()),
    "GET /portfolio/settlements": ("kalshi-openapi.json", "GetSettlementsResponse", ()),
    "GET /portfolio/settlements settlements[]": ("kalshi-openapi.json", "Settlement", ()),
    "GET /markets": ("kalshi-openapi.json", "GetMarketsResponse", ()),
    "GET /markets markets[]": ("kalshi-openapi.json", "Market", ()),
    "GET /markets markets[] price_ranges[]": ("kalshi-openapi.json", "PriceRange", ()),
}

STRIPE: dict[str, Where] = {
    "GET /v1/invoices": ("stripe-openapi.json", "InvoiceList", ()),
    "GET /v1/invoices data[]": ("stripe-openapi.json", "invoice", ()),
    "GET /v1/balance_transactions": ("stripe-openapi.json", "BalanceTransactionList", ()),
    "GET /v1/balance_transactions data[]": ("stripe-openapi.json", "balance_transaction", ()),
}

ANTHROPIC: dict[str, Where] = {
    "GET /v1/organizations/cost_report": ("anthropic-admin.json", "CostReport", ()),
    "GET /v1/organizations/cost_report data[]": ("anthropic-admin.json", "CostReport", ("data",)),
    "GET /v1/organizations/cost_report data[] results[]": ("anthropic-admin.json", "CostReportResult", ()),
    "GET /v1/organizations/usage_report/messages": ("anthropic-admin.json", "MessagesUsageReport", ()),
    "GET /v1/organizations/usage_report/messages data[]":
        ("anthropic-admin.json", "MessagesUsageReport", ("data",)),
    "GET /v1/organizations/usage_report/messages data[] results[]":
        ("anthropic-admin.json", "MessagesUsageReportResult", ()),
}


def shapes(labels: dict[str, Where]) -> dict[str, Shape]:
    """The ``Shape`` of every label, from the vendored specifications."""
    return {label: shape(spec, schema, *path) for label, (spec, schema, path) in labels.items()}
