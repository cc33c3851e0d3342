"""BoundedBody and the Retry-After cap: the pure parts of the upstream bounds."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest

from northstard.core.bodylimit import BoundedBody
from northstard.errors import BodyTooLarge, SchemaDriftError
from northstard.http import capped_wait, retry_after_s

LIMIT = 64 * 1024


def chunks(data: bytes, size: int = 16384) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def feed_all(body: BoundedBody, data: bytes) -> int:
    """Feed ``data`` in wire-sized chunks; the most decoded bytes ever held."""
    most = 0
    for chunk in chunks(data):
        body.feed(chunk)
        most = max(most, body.size)
    return most


@pytest.mark.parametrize("encoding", ["", "identity", "gzip", "deflate", "deflate-raw"])
def test_a_body_under_the_limit_is_decoded_exactly(encoding: str) -> None:
    text = b'{"invoiced": "1234.56"}' * 1000
    wire = {
        "gzip": lambda: zlib.compress(text, wbits=31),
        "deflate": lambda: zlib.compress(text),
        "deflate-raw": lambda: zlib.compress(text, wbits=-15),
    }.get(encoding, lambda: text)()
    body = BoundedBody(encoding.removesuffix("-raw"), LIMIT, "GET /x")
    feed_all(body, wire)
    assert body.finish() == text


def test_a_plain_body_one_byte_over_the_limit_is_refused_naming_the_setting() -> None:
    body = BoundedBody("", LIMIT, "GET /api/revenue")
    body.feed(bytes(LIMIT))
    with pytest.raises(BodyTooLarge, match=f"GET /api/revenue: body larger than max_body_bytes = {LIMIT}"):
        body.feed(b"x")
    assert body.size == LIMIT


def test_a_gzip_bomb_is_refused_while_holding_at_most_the_limit() -> None:
    wire = zlib.compress(bytes(64 << 20), level=9, wbits=31)  # ~64 KB -> 64 MiB
    body = BoundedBody("gzip", LIMIT, "GET /bomb")
    most = 0
    with pytest.raises(BodyTooLarge, match="after decompression") as caught:
        for chunk in chunks(wire):
            body.feed(chunk)
            most = max(most, body.size)
    assert caught.value.limit == LIMIT
    assert most <= LIMIT  # never more than the limit decoded and kept
    assert body.size <= LIMIT and repr(body).endswith(f"/{LIMIT}>")


def test_exactly_the_limit_after_decompression_is_accepted() -> None:
    text = bytes(LIMIT)
    body = BoundedBody("gzip", LIMIT, "GET /x")
    feed_all(body, zlib.compress(text, wbits=31))
    assert body.finish() == text


@pytest.mark.parametrize(("encoding", "wire", "message"), [
    ("br", b"\x00", "unsupported Content-Encoding 'br'"),
    ("gzip", b"not gzip at all", "body is not valid gzip"),
])
def test_unreadable_encodings_are_schema_drift(encoding: str, wire: bytes, message: str) -> None:
    with pytest.raises(SchemaDriftError, match=message):
        BoundedBody(encoding, LIMIT, "GET /x").feed(wire)


NOW = datetime(2026, 8, 16, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "wait", "capped"), [
    ("7", 7.0, False),
    ("300", 300.0, False),
    ("99999", 300.0, True),
    ("1e400", 300.0, True),  # float overflow: inf
    ("inf", 300.0, True),
    ("-5", 0.0, False),
    ("Sun, 16 Aug 2026 12:00:30 GMT", 30.0, False),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 300.0, True),
])
def test_retry_after_is_capped(header: str, wait: float, capped: bool) -> None:
    asked = retry_after_s(header, NOW)
    assert asked is not None
    got, note = capped_wait(asked, 300.0)
    assert got == wait
    assert ("capped by retry_after_max_s = 300 s" in note) is capped


def test_a_retry_after_that_is_not_a_number_is_ignored() -> None:
    assert retry_after_s("nan", NOW) is None  # the client backs off on its own schedule
    assert retry_after_s("soon", NOW) is None
