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
    "GET /v1/invoices": Shape(
        known=frozenset({
            "data", "has_more", "object", "url",
        }),
        required=frozenset({
            "data", "has_more", "object", "url",
        }),
    ),
    "GET /v1/invoices data[]": Shape(
        known=frozenset({
            "account_country", "account_name", "account_tax_ids", "amount_due",
            "amount_overpaid", "amount_paid", "amount_paid_off_stripe", "amount_remaining",
            "amount_shipping", "application", "attempt_count", "attempted", "auto_advance",
            "automatic_tax", "automatically_finalizes_at", "billing_reason",
            "collection_method", "confirmation_secret", "created", "currency", "custom_fields",
            "customer", "customer_account", "customer_address", "customer_email",
            "customer_name", "customer_phone", "customer_shipping", "customer_tax_exempt",
            "customer_tax_ids", "default_payment_method", "default_source", "default_tax_rates",
            "deleted", "description", "discounts", "due_date", "effective_at", "ending_balance",
            "footer", "from_invoice", "hosted_invoice_url", "id", "invoice_pdf", "issuer",
            "last_finalization_error", "latest_revision", "lines", "livemode", "metadata",
            "next_payment_attempt", "number", "object", "on_behalf_of", "parent",
            "payment_settings", "payments", "period_end", "period_start",
            "post_payment_credit_notes_amount", "pre_payment_credit_notes_amount",
            "receipt_number", "rendering", "shipping_cost", "shipping_details",
            "starting_balance", "statement_descriptor", "status", "status_details",
            "status_transitions", "subtotal", "subtotal_excluding_tax", "test_clock",
            "threshold_reason", "total", "total_discount_amounts", "total_excluding_tax",
            "total_pretax_credit_amounts", "total_taxes", "webhooks_delivered_at",
        }),
        required=frozenset({
            "account_country", "account_name", "account_tax_ids", "amount_due",
            "amount_overpaid", "amount_paid", "amount_remaining", "amount_shipping",
            "application", "attempt_count", "attempted", "automatic_tax",
            "automatically_finalizes_at", "billing_reason", "collection_method", "created",
            "currency", "custom_fields", "customer", "customer_account", "customer_address",
            "customer_email", "customer_name", "customer_phone", "customer_shipping",
            "customer_tax_exempt", "default_payment_method", "default_source",
            "default_tax_rates", "description", "discounts", "due_date", "effective_at",
            "ending_balance", "footer", "from_invoice", "id", "issuer",
            "last_finalization_error", "latest_revision", "lines", "livemode", "metadata",
            "next_payment_attempt", "number", "object", "on_behalf_of", "parent",
            "payment_settings", "period_end", "period_start",
            "post_payment_credit_notes_amount", "pre_payment_credit_notes_amount",
            "receipt_number", "rendering", "shipping_cost", "shipping_details",
            "starting_balance", "statement_descriptor", "status", "status_transitions",
            "subtotal", "subtotal_excluding_tax", "test_clock", "total",
            "total_discount_amounts", "total_excluding_tax", "total_pretax_credit_amounts",
            "total_taxes", "webhooks_delivered_at",
        }),
    ),
    "GET /v1/balance_transactions": Shape(
        known=frozenset({
            "data", "has_more", "object", "url",
        }),
        required=frozenset({
            "data", "has_more", "object", "url",
        }),
    ),
    "GET /v1/balance_transactions data[]": Shape(
        known=frozenset({
            "amount", "available_on", "balance_type", "created", "currency", "description",
            "exchange_rate", "fee", "fee_details", "id", "net", "object", "reporting_category",
            "source", "status", "type",
        }),
        required=frozenset({
            "amount", "available_on", "balance_type", "created", "currency", "description",
            "exchange_rate", "fee", "fee_details", "id", "net", "object", "reporting_category",
            "source", "status", "type",
        }),
    ),
}
