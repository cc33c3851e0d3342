"""The fields the provider's published specification gives for each response this plugin reads.

Generated from the vendored specification (tests/contract/specs/, see its
README) by tests/contract/spec_labels.py; test_spec_conformance checks that
this copy still equals it. ``northstard sources check``'s field report
compares what a live source sent with these (northstard.core.fieldcheck).
"""

from __future__ import annotations

from northstard.core.fieldcheck import Shape

__all__ = ["SHAPES"]

SHAPES: dict[str, Shape] = {
    "GET /exchange/user_data_timestamp": Shape(
        known=frozenset({
            "as_of_time",
        }),
        required=frozenset({
            "as_of_time",
        }),
    ),
    "GET /portfolio/balance": Shape(
        known=frozenset({
            "balance", "balance_breakdown", "balance_dollars", "portfolio_value", "updated_ts",
        }),
        required=frozenset({
            "balance", "balance_dollars", "portfolio_value", "updated_ts",
        }),
    ),
    "GET /portfolio/balance balance_breakdown[]": Shape(
        known=frozenset({
            "balance", "exchange_index",
        }),
        required=frozenset({
            "balance", "exchange_index",
        }),
    ),
    "GET /portfolio/positions": Shape(
        known=frozenset({
            "cursor", "event_positions", "market_positions",
        }),
        required=frozenset({
            "event_positions", "market_positions",
        }),
    ),
    "GET /portfolio/positions market_positions[]": Shape(
        known=frozenset({
            "exchange_index", "fees_paid_dollars", "last_updated_ts", "market_exposure_dollars",
            "position_fp", "realized_pnl_dollars", "ticker", "total_traded_dollars",
        }),
        required=frozenset({
            "exchange_index", "fees_paid_dollars", "last_updated_ts", "market_exposure_dollars",
            "position_fp", "realized_pnl_dollars", "ticker", "total_traded_dollars",
        }),
    ),
    "GET /portfolio/positions event_positions[]": Shape(
        known=frozenset({
            "event_exposure_dollars", "event_ticker", "fees_paid_dollars",
            "realized_pnl_dollars", "total_cost_dollars", "total_cost_shares_fp",
        }),
        required=frozenset({
            "event_exposure_dollars", "event_ticker", "fees_paid_dollars",
            "realized_pnl_dollars", "total_cost_dollars", "total_cost_shares_fp",
        }),
    ),
    "GET /portfolio/fills": Shape(
        known=frozenset({
            "cursor", "fills",
        }),
        required=frozenset({
            "cursor", "fills",
        }),
    ),
    "GET /portfolio/fills fills[]": Shape(
        known=frozenset({
            "action", "book_side", "count_fp", "created_time", "exchange_index", "fee_cost",
            "fill_id", "is_taker", "market_ticker", "no_price_dollars", "order_id",
            "outcome_side", "side", "subaccount_number", "ticker", "trade_id", "ts",
            "yes_price_dollars",
        }),
        required=frozenset({
            "book_side", "count_fp", "exchange_index", "fee_cost", "fill_id", "is_taker",
            "market_ticker", "no_price_dollars", "order_id", "outcome_side", "ticker",
            "trade_id", "yes_price_dollars",
        }),
    ),
    "GET /portfolio/settlements": Shape(
        known=frozenset({
            "cursor", "settlements",
        }),
        required=frozenset({
            "settlements",
        }),
    ),
    "GET /portfolio/settlements settlements[]": Shape(
        known=frozenset({
            "event_ticker", "exchange_index", "fee_cost", "market_result", "no_count_fp",
            "no_total_cost_dollars", "revenue", "settled_time", "ticker", "value",
            "yes_count_fp", "yes_total_cost_dollars",
        }),
        required=frozenset({
            "event_ticker", "exchange_index", "fee_cost", "market_result", "no_count_fp",
            "no_total_cost_dollars", "revenue", "settled_time", "ticker", "yes_count_fp",
            "yes_total_cost_dollars",
        }),
    ),
    "GET /markets": Shape(
        known=frozenset({
            "cursor", "markets",
        }),
        required=frozenset({
            "cursor", "markets",
        }),
    ),
    "GET /markets markets[]": Shape(
        known=frozenset({
            "can_close_early", "cap_strike", "close_time", "created_time", "custom_strike",
            "early_close_condition", "event_ticker", "exchange_index",
            "expected_expiration_time", "expiration_time", "expiration_value",
            "fee_waiver_expiration_time", "floor_strike", "functional_strike", "is_provisional",
            "last_price_dollars", "latest_expiration_time", "liquidity_dollars", "market_type",
            "mve_collection_ticker", "mve_selected_legs", "no_ask_dollars", "no_bid_dollars",
            "no_sub_title", "notional_value_dollars", "occurrence_datetime", "open_interest_fp",
            "open_time", "previous_price_dollars", "previous_yes_ask_dollars",
            "previous_yes_bid_dollars", "price_level_structure", "price_ranges",
            "primary_participant_key", "result", "rules_primary", "rules_secondary",
            "settlement_timer_seconds", "settlement_ts", "settlement_value_dollars", "status",
            "strike_type", "subtitle", "ticker", "title", "updated_time", "volume_24h_fp",
            "volume_fp", "yes_ask_dollars", "yes_ask_size_fp", "yes_bid_dollars",
            "yes_bid_size_fp", "yes_sub_title",
        }),
        required=frozenset({
            "can_close_early", "close_time", "created_time", "event_ticker", "expiration_value",
            "last_price_dollars", "latest_expiration_time", "market_type", "no_ask_dollars",
            "no_bid_dollars", "no_sub_title", "notional_value_dollars", "open_interest_fp",
            "open_time", "previous_price_dollars", "previous_yes_ask_dollars",
            "previous_yes_bid_dollars", "price_level_structure", "price_ranges", "result",
            "rules_primary", "rules_secondary", "settlement_timer_seconds", "status", "ticker",
            "updated_time", "volume_24h_fp", "volume_fp", "yes_ask_dollars", "yes_ask_size_fp",
            "yes_bid_dollars", "yes_bid_size_fp", "yes_sub_title",
        }),
    ),
    "GET /markets markets[] price_ranges[]": Shape(
        known=frozenset({
            "end", "start", "step",
        }),
        required=frozenset({
            "end", "start", "step",
        }),
    ),
}
