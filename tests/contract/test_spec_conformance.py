"""Every response the fakes serve is one the real API could send (issue 17, item 1).

The fakes are driven by the real plugins (a real poll, signed where the
provider signs, over loopback), and what they served (bodies, errors,
WebSocket messages) is checked against the providers' published schemas
vendored in ``specs/`` (see specs/README.md), strictly: a field the schema
does not name fails as surely as a missing or mistyped one. The schemas'
own documented examples are checked too, so a wrong transcription fails.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime
from typing import Any

import pytest
import trio

import northstard_plugins.anthropic_costs.spec_fields as anthropic_fields
import northstard_plugins.kalshi.spec_fields as kalshi_fields
import northstard_plugins.stripe.spec_fields as stripe_fields
from northstard.core.fieldcheck import MAX_DEPTH, MAX_LABELS, MAX_NAMES, FieldLog
from northstard.errors import SourceError
from northstard_plugins.anthropic_costs import AnthropicCostSource
from northstard_plugins.anthropic_costs import Settings as AnthropicSettings
from northstard_plugins.kalshi import KalshiStreamingSource
from northstard_plugins.kalshi import Settings as KalshiSettings
from northstard_plugins.stripe import Settings as StripeSettings
from northstard_plugins.stripe import StripeSource

import spec_labels
from fakes import FakeAnthropic, FakeStripe, cost_row, invoice, transaction, usage_row
from kalshi_fake import KalshiFake, options_for, signing_key, ws_fill, ws_position, ws_ticker
from spec_check import example, load, problems, response_problems

KALSHI = "kalshi-openapi.json"
KALSHI_WS = "kalshi-asyncapi.json"
STRIPE = "stripe-openapi.json"
ANTHROPIC = "anthropic-admin.json"


def served_problems(spec: str, served: list[tuple[str, int, bytes]], prefix: str = "") -> list[str]:
    out = []
    for path, status, body in served:
        out += [f"{path} HTTP {status}: {p}" for p in response_problems(spec, prefix + path, status, body)]
    return out


# -- the vendored examples fit their own schemas ---------------------------------


@pytest.mark.parametrize("name", ["fill", "market_position", "ticker"])
def test_kalshi_ws_documented_examples_fit_the_vendored_schema(name: str) -> None:
    assert problems(KALSHI_WS, name, example(KALSHI_WS, name)) == []


@pytest.mark.parametrize("name, schema", [
    ("MessagesUsageReport", "MessagesUsageReport"),
    ("RateLimitError", "ErrorResponse"),
    ("AuthenticationError", "ErrorResponse"),
])
def test_anthropic_documented_examples_fit_the_vendored_schema(name: str, schema: str) -> None:
    assert problems(ANTHROPIC, schema, example(ANTHROPIC, name)) == []


def test_the_check_is_strict_and_can_fail() -> None:
    good = example(KALSHI_WS, "market_position")
    renamed = json.loads(json.dumps(good).replace("position_cost_dollars", "market_exposure_dollars"))
    assert problems(KALSHI_WS, "market_position", renamed) == [
        "msg: 'position_cost_dollars' is a required property",
        "msg: Additional properties are not allowed ('market_exposure_dollars' was unexpected)",
    ]
    as_number = {**good, "msg": {**good["msg"], "position_fp": 100}}
    assert problems(KALSHI_WS, "market_position", as_number) == [
        "msg/position_fp: 100 is not of type 'string'"]


# -- Kalshi ------------------------------------------------------------------------


@pytest.fixture
async def kalshi(nursery: trio.Nursery) -> KalshiFake:
    return await KalshiFake(signing_key()[1]).start(nursery)


async def test_kalshi_fake_serves_only_what_the_openapi_documents(kalshi: KalshiFake) -> None:
    settings = KalshiSettings.from_options(options_for(kalshi, stream=False))
    source = KalshiStreamingSource("kalshi", settings, rng=random.Random(7))
    try:
        await source.poll()
        kalshi.fail("500", times=1)
        with pytest.raises(SourceError):
            await source.poll()
        kalshi.fail("429", times=1)
        await source.poll()  # retried after the documented 429
        bad = KalshiStreamingSource("kalshi", KalshiSettings.from_options(
            options_for(kalshi, stream=False, key_id="00000000-0000-0000-0000-000000000000")))
        with pytest.raises(SourceError):
            await bad.poll()
        await bad.aclose()
    finally:
        await source.aclose()
    endpoints = {path for path, _, _ in kalshi.served}
    assert endpoints == {"/exchange/user_data_timestamp", "/portfolio/balance", "/portfolio/positions",
                         "/portfolio/fills", "/portfolio/settlements", "/markets"}
    assert {status for _, status, _ in kalshi.served} == {200, 401, 429, 500}
    assert served_problems(KALSHI, kalshi.served) == []


def test_kalshi_fake_ws_messages_fit_the_asyncapi() -> None:
    messages = {"fill": ws_fill(), "market_position": ws_position(), "ticker": ws_ticker()}
    for kind, message in messages.items():
        assert problems(KALSHI_WS, kind, message) == [], kind
    assert ws_position() == example(KALSHI_WS, "market_position")  # the documented example, verbatim


# -- Stripe ------------------------------------------------------------------------


async def test_stripe_fake_serves_only_what_the_openapi_documents(nursery: trio.Nursery) -> None:
    fake = FakeStripe()
    await fake.start(nursery)
    fake.add("invoices", invoice("in_1", "paid", 1000), invoice("in_2", "open", 250, currency="jpy"),
             invoice("in_3", "draft", 99))
    fake.add("balance_transactions", transaction("txn_1", "charge", 1000, fee=59),
             transaction("txn_2", "refund", -250))
    source = StripeSource("stripe", StripeSettings(api_key=fake.api_key, base_url=fake.url + "/v1"))
    try:
        await source.poll()
    finally:
        await source.aclose()
    wrong = StripeSource("stripe", StripeSettings(api_key="sk_test_wrong", base_url=fake.url + "/v1"))
    with pytest.raises(SourceError):
        await wrong.poll()
    await wrong.aclose()
    assert {status for _, status, _ in fake.served} == {200, 401}
    assert served_problems(STRIPE, fake.served) == []


# -- Anthropic -----------------------------------------------------------------------


async def test_anthropic_fake_serves_only_what_the_reference_documents(nursery: trio.Nursery) -> None:
    day = date(2026, 8, 16)
    now = datetime(2026, 8, 16, 10, 30, tzinfo=UTC)
    fake = FakeAnthropic(clock=lambda: now, page_size=1)
    await fake.start(nursery)
    fake.costs[date(2026, 8, 14)] = [cost_row("123.78912"), cost_row("50", workspace_id=None)]
    fake.usage[datetime(2026, 8, 16, 9, tzinfo=UTC)] = [usage_row("claude-sonnet-4", uncached=1000)]
    settings = AnthropicSettings(admin_key=fake.admin_key, base_url=fake.url, start_date=date(2026, 8, 13))
    source = AnthropicCostSource("anthropic", settings, clock=lambda: now)
    try:
        await source.poll()
    finally:
        await source.aclose()
    wrong = AnthropicCostSource("anthropic", AnthropicSettings(
        admin_key="sk-ant-admin01-wrong", base_url=fake.url, start_date=day), clock=lambda: now)
    with pytest.raises(SourceError):
        await wrong.poll()
    await wrong.aclose()
    assert {status for _, status, _ in fake.served} == {200, 401}
    assert served_problems(ANTHROPIC, fake.served) == []


def test_documented_example_rows_are_served_verbatim() -> None:
    usage = example(ANTHROPIC, "MessagesUsageReport")["data"][0]["results"][0]
    assert problems(ANTHROPIC, "MessagesUsageReportResult", usage) == []
    assert problems(ANTHROPIC, "CostReportResult", cost_row()) == []


# -- the field sets `sources check` compares against (issue 17, item 4) --------------


@pytest.mark.parametrize("module, labels", [
    (kalshi_fields, spec_labels.KALSHI),
    (stripe_fields, spec_labels.STRIPE),
    (anthropic_fields, spec_labels.ANTHROPIC),
])
def test_each_plugins_field_sets_are_those_of_the_vendored_spec(module: Any, labels: Any) -> None:
    assert spec_labels.shapes(labels) == module.SHAPES


async def test_a_live_kalshi_source_reports_drift_from_the_openapi(kalshi: KalshiFake) -> None:
    kalshi.fills[0]["post_position_fp"] = "15.00"  # a field REST fills do not document
    del kalshi.markets["T-A"]["rules_secondary"]  # a required one, not sent
    settings = KalshiSettings.from_options(options_for(kalshi, stream=False))
    source = KalshiStreamingSource("kalshi", settings, rng=random.Random(7))
    assert source.field_drift() == {}  # nothing received yet
    try:
        await source.poll()
    finally:
        await source.aclose()
    assert source.field_drift() == {
        "GET /portfolio/fills fills[]": {"unknown": ["post_position_fp"], "missing": []},
        "GET /markets markets[]": {"unknown": [], "missing": ["rules_secondary"]},
    }


def test_the_field_log_is_bounded() -> None:
    log = FieldLog()
    log.observe("GET /x", {f"f{i}": 1 for i in range(MAX_NAMES + 10)})
    assert len(log.seen["GET /x"]) == MAX_NAMES and log.overflow == 10
    for i in range(MAX_LABELS + 5):
        log.observe(f"GET /y{i}", {"k": 1})
    assert len(log.seen) == MAX_LABELS and log.overflow > 10
    deep: dict[str, Any] = {"a": 1}
    for _ in range(10):
        deep = {"l": [deep]}
    walked = FieldLog()
    walked.observe("GET /deep", deep)  # nested lists past MAX_DEPTH are not walked
    assert max(label.count("[]") for label in walked.seen) == MAX_DEPTH


def test_the_fakes_error_replies_have_the_documented_shapes_and_headers() -> None:
    for reply in (FakeAnthropic.rate_limited("7"), FakeAnthropic.server_error(500),
                  FakeAnthropic.server_error(529)):
        assert problems(ANTHROPIC, "ErrorResponse", json.loads(reply.body)) == [], reply
    limited = FakeAnthropic.rate_limited("7")
    documented = load(ANTHROPIC)["components"]["x-rate-limit-headers"]
    assert set(documented) <= set(limited.headers) and limited.headers["retry-after"] == "7"
    for reply in (FakeStripe.rate_limited("3"), FakeStripe.server_error(500)):
        assert problems(STRIPE, "error", json.loads(reply.body)) == [], reply


async def test_the_kalshi_fake_records_what_the_real_api_could_not_send(kalshi: KalshiFake) -> None:
    """The ``fake`` fixtures of the kalshi tests assert ``violations == []`` at teardown: it can fail."""
    guessed = ws_position()
    guessed["msg"]["market_exposure_dollars"] = guessed["msg"].pop("position_cost_dollars")
    await kalshi.push(guessed)
    del kalshi.balance["balance_dollars"]
    settings = KalshiSettings.from_options(options_for(kalshi, stream=False))
    source = KalshiStreamingSource("kalshi", settings, rng=random.Random(7))
    try:
        await source.poll()  # the plugin falls back to integer cents; the fake still broke the spec
    finally:
        await source.aclose()
    assert kalshi.violations == [
        "ws market_position: msg: 'position_cost_dollars' is a required property",
        "ws market_position: msg: Additional properties are not allowed "
        "('market_exposure_dollars' was unexpected)",
        "GET /portfolio/balance: (root): 'balance_dollars' is a required property",
    ]
