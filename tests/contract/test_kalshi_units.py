"""The kalshi plugin's pure parts: budget, back-off, signing, field reads, records, config."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

import northstard_plugins.kalshi as kalshi
from northstard.config import load_config
from northstard.core.pnl import Book, contribution, mark_value
from northstard.core.records import Position, Price, Retract, Settlement
from northstard.errors import ConfigError, SchemaDriftError, SourceError
from northstard.ops.sources_check import classify
from northstard.plugins import make_plugins
from northstard_plugins.kalshi import fields, parse
from northstard_plugins.kalshi.bucket import Backoff, TokenBucket
from northstard_plugins.kalshi.portfolio import Portfolio
from northstard_plugins.kalshi.settings import HOSTS, Settings
from northstard_plugins.kalshi.signing import PSS, load_signer, signed_path
from northstard_plugins.kalshi.stream import Messages, subscribe

from kalshi_fake import (
    FILLS,
    KEY_ID,
    MARKETS,
    POSITIONS,
    SETTLEMENTS,
    other_key,
    signing_key,
    ws_fill,
    ws_position,
)

T0 = datetime(2026, 8, 16, 4, 0, tzinfo=UTC)


# -- token bucket and back-off -----------------------------------------------


def test_a_full_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket.full(rate=200.0, capacity=400.0)
    for _ in range(40):  # the basic tier: bursts of about 40 GETs
        assert bucket.wait(10, now=0.0) == 0.0
        bucket = bucket.take(10, now=0.0)
    assert bucket.wait(10, now=0.0) == pytest.approx(0.05)  # 10 tokens at 200/s
    assert bucket.wait(10, now=0.05) == 0.0
    bucket = bucket.take(10, now=0.05)
    assert bucket.tokens == pytest.approx(0.0)
    assert bucket.refill(1000.0).tokens == 400.0  # never above capacity


def test_a_bucket_refuses_what_it_cannot_hold_and_what_it_has_not() -> None:
    bucket = TokenBucket.full(rate=1.0, capacity=5.0)
    with pytest.raises(ValueError, match="never fits"):
        bucket.wait(10, now=0.0)
    with pytest.raises(ValueError, match="tokens"):
        bucket.take(5, now=0.0).take(5, now=0.0)
    assert bucket.take(5, now=10.0).refill(9.0).tokens == 0.0  # time never runs backwards


def test_backoff_doubles_with_equal_jitter_and_a_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, cap=8.0)
    assert [backoff.delay(n, 0.0) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.delay(2, 0.5) == 1.5
    assert backoff.delay(10, 0.999) < 8.0
    with pytest.raises(ValueError):
        backoff.delay(0, 1.0)


# -- signing -------------------------------------------------------------------


def test_the_signature_is_rsa_pss_over_timestamp_method_and_path() -> None:
    pem, public = signing_key()
    signer = load_signer(KEY_ID, pem, wall=lambda: 1787022429.123)
    url = "https://external-api.kalshi.com/trade-api/v2/portfolio/fills?min_ts=1&limit=1000"
    headers = signer.headers("get", url)
    assert headers["KALSHI-ACCESS-KEY"] == KEY_ID
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "1787022429123"
    signature = base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"], validate=True)
    message = b"1787022429123GET/trade-api/v2/portfolio/fills"
    public.verify(signature, message, PSS, hashes.SHA256())  # raises if wrong
    assert signed_path("wss://external-api-ws.kalshi.com/trade-api/ws/v2") == "/trade-api/ws/v2"
    assert pem not in repr(signer) and KEY_ID not in repr(signer)


@pytest.mark.parametrize(
    ("key_id", "pem", "message"),
    [
        (None, None, "kalshi: key_id and private_key are required"),
        (KEY_ID, None, "kalshi: key_id and private_key are required"),
        (KEY_ID, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
         "kalshi: private_key is not an unencrypted PEM private key"),
    ],
)
def test_unusable_credentials_are_refused_clearly(key_id: str | None, pem: str | None, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        load_signer(key_id, pem)
    assert str(caught.value) == message
    assert caught.value.__cause__ is None


# -- field reads ---------------------------------------------------------------


def test_json_numbers_never_become_floats() -> None:
    body = fields.loads('{"a": 0.1, "b": 3, "c": "0.5600"}', "x")
    assert body == {"a": Decimal("0.1"), "b": 3, "c": "0.5600"}
    assert not any(isinstance(v, float) for v in body.values())
    with pytest.raises(SchemaDriftError, match="malformed JSON"):
        fields.loads('{"a": NaN}', "x")
    with pytest.raises(SchemaDriftError, match="expected a JSON object"):
        fields.loads("[1]", "x")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"market_exposure_dollars": 4.8389},
         "market_exposure_dollars: expected a decimal string, got a number"),
        ({"market_exposure_dollars": "4.8389", "position_fp": 9}, "position_fp: expected a decimal string"),
        ({"market_exposure": "4.8389"}, "missing field 'market_exposure_dollars'"),
        ({"market_exposure_dollars": "abc"}, "not an ASCII decimal number"),
    ],
)
def test_a_drifted_position_row_names_the_field(row: dict[str, Any], message: str) -> None:
    base = dict(POSITIONS[0])
    base.pop("market_exposure_dollars")
    with pytest.raises(SchemaDriftError, match=message) as caught:
        parse.position({**base, **row}, "GET /portfolio/positions: market_positions[0]", "bid", True, None)
    assert str(caught.value).startswith("kalshi: GET /portfolio/positions: market_positions[0]")


def test_integer_cents_must_be_integers() -> None:
    row = {**SETTLEMENTS[0], "revenue": Decimal("1500.0")}
    with pytest.raises(SchemaDriftError, match="revenue: expected integer cents, got a number"):
        parse.settlement(row, "s", None)
    with pytest.raises(SchemaDriftError, match="revenue: expected integer cents, got a str"):
        parse.settlement({**SETTLEMENTS[0], "revenue": "1500"}, "s", None)


# -- rows to records and P&L -----------------------------------------------------


def test_the_settlement_example_realizes_plus_3_6979() -> None:
    record = parse.settlement(SETTLEMENTS[0], "s", "atlas")
    assert record == Settlement(id="T", agent="atlas", ticker="T", revenue=Decimal("15"),
                                cost=Decimal("11.100000"), fee=Decimal("0.202100"), result="yes",
                                ts=datetime(2026, 8, 16, 4, 0, tzinfo=UTC))
    assert contribution(record)["trading", "realized"] == Decimal("3.6979")


def test_the_position_example_marked_at_a_yes_bid_of_0_56() -> None:
    position = parse.position(POSITIONS[0], "p", "bid", True, None)
    assert (position.count, position.cost_basis, position.fees) == (
        Decimal("9.13"), Decimal("4.8389"), Decimal("0.1592"))
    price = parse.price(MARKETS["T-A"], "m", None)
    assert mark_value(position, price) == Decimal("9.13") * Decimal("0.56")
    book = Book()
    book.ingest("kalshi", [position, price])
    assert book.total("trading", "unrealized") == Decimal("9.13") * Decimal("0.56") - Decimal("4.8389")
    assert book.document(T0)["trading"]["unrealized"] == "0.2739"


def test_realized_can_be_taken_as_gross_of_fees() -> None:
    row = POSITIONS[1]
    assert parse.position(row, "p", "bid", True, None).realized_pnl == Decimal("0.5000")
    assert parse.position(row, "p", "bid", False, None).realized_pnl == Decimal("0.4300")


def test_fills_keep_their_side_action_price_and_fee() -> None:
    first = parse.fill(FILLS[0], "f", None)
    assert (first.id, first.ticker, first.side, first.action) == ("f1", "KXUFCFIGHT-X", "yes", "buy")
    assert (first.count, first.price, first.fee) == (Decimal("15.00"), Decimal("0.7400"), Decimal("0.202100"))
    assert first.ts == datetime(2026, 8, 16, 3, 0, tzinfo=UTC)
    third = parse.fill(FILLS[2], "f", None)  # no deprecated side/action: outcome_side + book_side
    assert (third.side, third.action, third.price) == ("no", "buy", Decimal("0.4200"))


def test_balance_prefers_dollars_and_falls_back_to_cents() -> None:
    body = {"balance": 2065, "balance_dollars": "20.6583", "updated_ts": 1787022429}
    assert parse.balance(body, T0, "balance", None).cash == Decimal("20.6583")
    cents_only = {"balance": 2065}
    record = parse.balance(cents_only, T0, "balance", None)
    assert (record.cash, record.ts) == (Decimal("20.65"), T0)


# -- the portfolio between polls ---------------------------------------------------


def positions(*rows: dict[str, Any]) -> list[Position]:
    return [parse.position(row, "p", "bid", True, None) for row in rows]


def test_vanished_positions_are_retracted_with_their_price() -> None:
    book = Portfolio()
    book.apply_positions(positions(*POSITIONS))
    book.apply_prices([parse.price(MARKETS[t], "m", None) for t in ("T-A", "T-B")])
    assert book.held() == ["T-A", "T-B"]
    out = book.apply_positions(positions(*POSITIONS[1:]))
    assert Retract(id="T-A", target_kind="position") in out
    assert Retract(id="T-A", target_kind="price") in out
    assert book.held() == ["T-B"]


def test_a_settled_market_is_counted_once_by_its_settlement() -> None:
    book = Portfolio()
    settled = positions({**POSITIONS[2], "ticker": "T"}, {**POSITIONS[0], "ticker": "T"})
    book.apply_positions(settled[:1])
    settlements = [parse.settlement(row, "s", None) for row in SETTLEMENTS]
    assert book.would_hold(settled[1:], settlements) == []
    out = book.apply_settlements(settlements)
    assert [r.kind for r in out] == ["settlement", "retract", "settlement"]
    assert book.apply_positions(settled) == []
    assert book.apply_settlements(settlements) == []  # seen before
    assert book.settlements_since == int(datetime(2026, 8, 16, 4, 0, tzinfo=UTC).timestamp())


def test_fills_are_deduplicated_and_the_cursor_is_the_newest_second() -> None:
    book = Portfolio()
    fills = [parse.fill(row, "f", None) for row in FILLS]
    assert [f.id for f in book.apply_fills(fills)] == ["f1", "f2", "f3"]
    assert book.fills_since == 1786849200
    assert book.apply_fills(fills[:1]) == []
    assert book.on_ws_fill(FILLS[0]) == []


def test_a_ticker_message_merges_into_the_last_quotes() -> None:
    book = Portfolio()
    book.apply_positions(positions(POSITIONS[0]))
    book.apply_prices([parse.price(MARKETS["T-A"], "m", None)])
    [price] = book.on_ws_ticker({"market_ticker": "T-A", "yes_bid_dollars": "0.6000",
                                 "yes_ask_dollars": "0.6200"})
    assert price == Price(id="T-A", yes_bid=Decimal("0.6000"), yes_ask=Decimal("0.6200"),
                          no_bid=Decimal("0.3800"), no_ask=Decimal("0.4000"), last=Decimal("0.5700"))
    assert book.on_ws_ticker({"market_ticker": "T-A", "yes_bid_dollars": "0.6000"}) == []
    assert book.on_ws_ticker({"market_ticker": "T-Z", "yes_bid_dollars": "0.6000"}) == []  # not held
    with pytest.raises(SchemaDriftError, match="yes_bid_dollars: expected a decimal string"):
        book.on_ws_ticker({"market_ticker": "T-A", "yes_bid_dollars": 0.61})


def test_stream_messages_become_records_and_drift_is_dropped() -> None:
    book = Portfolio(mark="mid")
    messages = Messages(book, "kalshi")
    documented = ws_position()  # Kalshi's AsyncAPI example, verbatim
    [record] = messages.records(_json(documented))
    assert record == Position(id="FED-23DEC-T3.00", ticker="FED-23DEC-T3.00", count=Decimal("100.00"),
                              cost_basis=Decimal("50.0000"), realized_pnl=Decimal("10.0000"),
                              fees=Decimal("1.0000"), mark="mid")
    assert messages.records('{"type":"subscribed","id":1,"msg":{"channel":"fill","sid":1}}') == []
    drifted = ws_position(position_fp=9.13)
    assert messages.records(_json(drifted)) == []
    assert messages.records("{not json") == []
    assert messages.dropped == 2
    with pytest.raises(SourceError, match="stream error: code 9"):
        messages.records('{"type":"error","id":1,"msg":{"code":9,"msg":"Authentication required"}}')
    assert subscribe(2, ["ticker"], ["T-A"]) == {
        "id": 2, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["T-A"]}}


def test_a_stream_position_in_rest_names_is_the_old_guess_and_is_dropped() -> None:
    """Before issue 17 the plugin read ``market_exposure_dollars`` from the stream: never sent there."""
    messages = Messages(Portfolio(), "kalshi")
    guessed = ws_position()
    guessed["msg"]["market_exposure_dollars"] = guessed["msg"].pop("position_cost_dollars")
    assert messages.records(_json(guessed)) == [] and messages.dropped == 1


@pytest.mark.parametrize("changes, side, action, price", [
    ({}, "yes", "buy", "0.7500"),  # the documented example
    ({"outcome_side": "no", "book_side": "ask", "side": "yes", "action": "sell"}, "no", "buy", "0.2500"),
    ({"outcome_side": "no", "book_side": "ask", "action": "sell_partial"}, "no", "buy", "0.2500"),
    ({"outcome_side": "yes", "action": ""}, "yes", "buy", "0.7500"),
])
def test_stream_fills_follow_the_documented_direction_and_price(
    changes: dict[str, Any], side: str, action: str, price: str
) -> None:
    message = ws_fill(**changes)
    [record] = Portfolio().on_ws_fill(message["msg"])
    assert (record.id, record.ticker) == ("d91bc706-ee49-470d-82d8-11418bda6fed", "HIGHNY-22DEC23-B53.5")
    assert (record.side, record.action, record.price) == (side, action, Decimal(price))
    assert record.ts == datetime(2022, 12, 24, 16, 29, 57, tzinfo=UTC)  # from ts_ms


def test_legacy_fills_without_outcome_side_use_side_and_action() -> None:
    row = {k: v for k, v in FILLS[0].items() if k not in ("outcome_side", "book_side")}
    row.update(side="no", action="sell_to_close")
    record = parse.fill(row, "f", None)
    assert (record.side, record.action, record.price) == ("no", "sell", Decimal("0.2600"))
    with pytest.raises(SchemaDriftError, match="action: expected buy or a sell, got 'hold'"):
        parse.fill({**row, "action": "hold"}, "f", None)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


# -- config and the plugin seam ----------------------------------------------------


def test_the_kalshi_type_is_registered_through_the_entry_point() -> None:
    source_type = make_plugins(blocked=()).source_types()["kalshi"]
    assert source_type.default_interval_s == 5.0
    secrets = {f.name for f in source_type.fields if f.secret}
    assert secrets == {"key_id", "private_key"}


def test_secrets_come_from_files_never_from_the_config_file(tmp_path: Path) -> None:
    pem, _ = signing_key()
    (tmp_path / "key.pem").write_text(pem)
    (tmp_path / "key_id").write_text(KEY_ID + "\n")
    schemas = make_plugins(entry_points=False, extra=[kalshi], blocked=()).source_types()
    good = tmp_path / "good.toml"
    good.write_text(f'[sources.kalshi]\nenv = "demo"\nmark = "mid"\n'
                    f'key_id_file = "{tmp_path / "key_id"}"\nprivate_key_file = "{tmp_path / "key.pem"}"\n')
    section = load_config(good, schemas, environ={}).sources[0]
    settings = Settings.from_options(section.options)
    assert (settings.key_id, settings.private_key) == (KEY_ID, pem.strip())
    assert (settings.env, settings.mark) == ("demo", "mid")
    assert settings.rest_url == HOSTS["demo"][0] and settings.websocket_url == HOSTS["demo"][1]
    assert pem.strip() not in repr(settings) and KEY_ID not in repr(settings)
    bad = tmp_path / "bad.toml"
    bad.write_text('[sources.kalshi]\nkey_id = "abc"\n')
    with pytest.raises(ConfigError, match="secrets are not read from the config file"):
        load_config(bad, schemas, environ={})
    with pytest.raises(ConfigError, match="mark: must be one of bid, mid, last"):
        Settings.from_options({"mark": "ask"}, "sources.kalshi")


async def test_without_credentials_the_source_is_off_and_says_why() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        source = kalshi.create_source(plugin="kalshi", name="kalshi", config={})
    assert kalshi.create_source(plugin="demo", name="demo", config={}) is None
    assert isinstance(source, kalshi.KalshiSource)
    assert not hasattr(source, "stream")  # nothing to stream: not a StreamingSource
    assert [entry["event"] for entry in logs] == ["kalshi source off: key_id and private_key are required"]
    with pytest.raises(SourceError, match=r"^kalshi: key_id and private_key are required$") as caught:
        await source.poll()
    assert classify(caught.value) == (False, False)  # `sources check`: not reachable, not authenticated
    await source.aclose()


async def test_a_key_that_is_not_pem_is_off_without_quoting_it() -> None:
    secret = "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0IGJ5dGVz\n-----END RSA PRIVATE KEY-----"
    source = kalshi.create_source(plugin="kalshi", name="k", config={"key_id": KEY_ID, "private_key": secret})
    assert source is not None
    with pytest.raises(SourceError) as caught:
        await source.poll()
    assert "c2VjcmV0" not in str(caught.value) and "PEM" in str(caught.value)
    assert "c2VjcmV0" not in repr(source)
    config = {"key_id": KEY_ID, "private_key": other_key()}
    other = kalshi.create_source(plugin="kalshi", name="k", config=config)
    assert isinstance(other, kalshi.KalshiStreamingSource)
    await other.aclose()
