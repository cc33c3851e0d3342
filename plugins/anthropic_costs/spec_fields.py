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
    "GET /v1/organizations/cost_report": Shape(
        known=frozenset({
            "data", "has_more", "next_page",
        }),
        required=frozenset({
            "data", "has_more", "next_page",
        }),
    ),
    "GET /v1/organizations/cost_report data[]": Shape(
        known=frozenset({
            "ending_at", "results", "starting_at",
        }),
        required=frozenset({
            "ending_at", "results", "starting_at",
        }),
    ),
    "GET /v1/organizations/cost_report data[] results[]": Shape(
        known=frozenset({
            "amount", "context_window", "cost_type", "currency", "description", "inference_geo",
            "model", "service_tier", "speed", "token_type", "workspace_id",
        }),
        required=frozenset({
            "amount", "context_window", "cost_type", "currency", "description", "inference_geo",
            "model", "service_tier", "token_type", "workspace_id",
        }),
    ),
    "GET /v1/organizations/usage_report/messages": Shape(
        known=frozenset({
            "data", "has_more", "next_page",
        }),
        required=frozenset({
            "data", "has_more", "next_page",
        }),
    ),
    "GET /v1/organizations/usage_report/messages data[]": Shape(
        known=frozenset({
            "ending_at", "results", "starting_at",
        }),
        required=frozenset({
            "ending_at", "results", "starting_at",
        }),
    ),
    "GET /v1/organizations/usage_report/messages data[] results[]": Shape(
        known=frozenset({
            "account_id", "api_key_id", "cache_creation", "cache_read_input_tokens",
            "context_window", "inference_geo", "model", "output_tokens", "server_tool_use",
            "service_account_id", "service_tier", "speed", "uncached_input_tokens",
            "workspace_id",
        }),
        required=frozenset({
            "api_key_id", "cache_creation", "cache_read_input_tokens", "context_window",
            "model", "output_tokens", "server_tool_use", "service_tier",
            "uncached_input_tokens", "workspace_id",
        }),
    ),
}
