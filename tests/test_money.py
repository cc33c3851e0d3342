"""The amount grammar, the bounds and their messages, and the exact wire form (issue 12, item 5)."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northstard.actors.hub import parse_position
from northstard.core.money import MAX_PLACES, check_bounds, format_money, parse_money, within_bounds
from northstard.errors import SchemaDriftError
from northstard.http import decode_json
from northstard_plugins.revenue_http.parse import amount_at

D = Decimal


@pytest.mark.parametrize("text", [
    "2_5", "1_000.50", "١٢", "１２", "12\u0663", " 12 ", "12 ", "\t1", "", "+", "-", ".", "1e", "e5",
    "1.2.3", "0x10", "NaN", "-Infinity", "sNaN", "1,5", "١٢.٥",
])
def test_only_ascii_decimal_syntax_is_an_amount(text: str) -> None:
    with pytest.raises(SchemaDriftError, match=r"^cost\.amount: not an ASCII decimal number: "):
        parse_money(text, field="cost.amount")


@pytest.mark.parametrize(("text", "value"), [
    ("12", "12"), ("-0.10", "-0.10"), ("+3.5", "3.5"), (".5", "0.5"), ("5.", "5"),
    ("1.5E+3", "1500"), ("25e-2", "0.25"), ("99999999999999.999999999999", "99999999999999.999999999999"),
    ("0.000000000001", "1E-12"), ("1.000000000000000", "1"),
])
def test_ascii_amounts_are_read_exactly(text: str, value: str) -> None:
    assert parse_money(text) == D(value)


@pytest.mark.parametrize(("value", "reason"), [
    ("1.00000000001", None),  # 11 places: fine
    ("0.0100000000001", "cost.amount: more than 12 decimal places: '0.0100000000001'"),
    ("100000000000000", "cost.amount: $100 trillion or more: '100000000000000'"),
    ("1e99999999999", "cost.amount: $100 trillion or more: '1e99999999999'"),
    ("-1E+14", "cost.amount: $100 trillion or more: '-1E+14'"),
    ("1e-99999999999", "cost.amount: more than 12 decimal places: '1e-99999999999'"),
    ("1" * 101, "cost.amount: longer than 100 characters"),
])
def test_a_value_out_of_bounds_is_refused_naming_field_and_reason(value: str, reason: str | None) -> None:
    if reason is None:
        assert parse_money(value, field="cost.amount") == D(value)
        return
    with pytest.raises(SchemaDriftError) as caught:
        parse_money(value, field="cost.amount")
    assert str(caught.value) == reason


def test_ints_floats_and_bools() -> None:
    assert parse_money(12) == D(12)
    with pytest.raises(SchemaDriftError, match=r"^x: \$100 trillion or more: '1{15}'$"):
        parse_money(10**15 // 9, field="x")
    for bad in (1.5, True):
        with pytest.raises(SchemaDriftError, match="expected a decimal string"):
            parse_money(bad)


def test_json_numbers_go_through_the_same_bounds_with_readable_messages() -> None:
    body = decode_json(b'{"invoiced": 1e99999999999, "collected": 1e-99999999999, "ok": 1.5E+3}',
                       what="revenue")
    with pytest.raises(SchemaDriftError) as caught:
        amount_at(body, "invoiced")
    assert str(caught.value) == "invoiced: $100 trillion or more: '1E+99999999999'"
    with pytest.raises(SchemaDriftError, match=r"^collected: more than 12 decimal places"):
        amount_at(body, "collected")
    assert amount_at(body, "ok") == D(1500)
    with pytest.raises(SchemaDriftError, match=r"^revenue: a JSON number is too long$"):
        decode_json(b'{"invoiced": ' + b"1" * 5000 + b"}", what="revenue")


@pytest.mark.parametrize("text", ["E:\u0661\u0662", "E:\uff11\uff12", "E:1_2", "E: 12", "E:+12", "E:"])
def test_a_position_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError, match="EPOCH:SEQ"):
        parse_position(text)
    assert parse_position("E:12").seq == 12


@pytest.mark.parametrize(("value", "text"), [
    ("0", "0.00"), ("-0.000", "0.00"), ("5.6", "5.60"), ("3.6979", "3.6979"), ("-0.10", "-0.10"),
    ("1E+3", "1000.00"), ("1.5E-13", "0.00000000000015"), ("120.500", "120.50"),
    ("9999999999999998000000000000.0001", "9999999999999998000000000000.0001"),
    ("-1.5E+26", "-150000000000000000000000000.00"),
])
def test_format_money(value: str, text: str) -> None:
    assert format_money(D(value)) == text


WIDE = st.decimals(allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(WIDE)
def test_format_money_is_exact_and_canonical_in_any_context(value: Decimal) -> None:
    with localcontext() as context:
        context.prec = 3  # a narrow context must not round the wire form
        text = format_money(value)
    assert D(text) == value
    whole, fraction = text.lstrip("-").split(".")
    assert len(fraction) >= 2 and (len(fraction) == 2 or not fraction.endswith("0"))
    assert whole == "0" or not whole.startswith("0")
    assert format_money(D(text)) == text


@settings(max_examples=300)
@given(WIDE)
def test_format_money_ignores_the_context_exponent_letter(value: Decimal) -> None:
    """``str`` of a Decimal writes "e" under ``capitals=0``: the wire form stays the same."""
    expected = format_money(value)
    with localcontext() as context:
        context.capitals = 0
        assert format_money(value) == expected


@settings(max_examples=300)
@given(st.decimals(), st.booleans())
def test_within_bounds_is_exponent_and_magnitude(value: Decimal, capitals: bool) -> None:
    """The quick test: finite, at most 12 places as written, under $100 trillion; then the
    full check agrees."""
    expected = value.is_finite() and value.as_tuple().exponent >= -MAX_PLACES and value.adjusted() < 14
    with localcontext() as context:
        context.capitals = int(capitals)
        assert within_bounds(value) == expected
    if expected:
        check_bounds(value, "amount")


@pytest.mark.parametrize("text", ["\u0661\u0662\u0663", "-\u0661", "1_000"])
def test_epoch_milliseconds_take_ascii_digits_only(text: str) -> None:
    from northstard.errors import RequestError
    from northstard.policy.params import parse_instant

    with pytest.raises(RequestError, match="from: expected ISO 8601 or epoch milliseconds"):
        parse_instant("from", text)
    assert parse_instant("from", "123") == 123
