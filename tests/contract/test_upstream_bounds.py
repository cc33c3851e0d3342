"""Upstream bounds against real loopback fakes: bodies capped after decompression, Retry-After capped.

A 1 MB gzip body that expands to 1 GiB, a plain body over the limit (with and
without a Content-Length) and an oversized Kalshi WebSocket message are
refused with an error naming ``max_body_bytes``; in the daemon the source goes
failing with that error while the others keep streaming. Retry-After values
that would pause a source for hours or forever are capped at
``retry_after_max_s``, and the error says so (virtual time: autojump_clock).
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest
import trio

from northstard.core.bodylimit import MAX_BODY_BYTES
from northstard.errors import BodyTooLarge, RateLimited
from northstard.http import JsonClient
from northstard_plugins.kalshi import KalshiStreamingSource, Settings
from northstard_plugins.kalshi.client import KalshiClient
from northstard_plugins.kalshi.signing import load_signer

from fakes import FakeRevenue, FakeServer, Reply, gzip_bomb, rate_limited, wait_for_doc
from kalshi_fake import KalshiFake, options_for, signing_key

GOOD = '{"invoiced": "500.00", "collected": "400.00"}'


def bomb() -> Reply:
    return Reply(200, gzip_bomb(), {"content-encoding": "gzip"})


async def revenue(nursery: trio.Nursery, body: str = GOOD) -> FakeRevenue:
    fake = FakeRevenue(body)
    await fake.start(nursery)
    return fake


async def test_a_gzip_bomb_is_refused_naming_the_limit(nursery: trio.Nursery) -> None:
    fake = await revenue(nursery)
    fake.fail_always(bomb())
    assert len(gzip_bomb()) < 1_100_000  # ~1 MB on the wire, 1 GiB decoded
    client = JsonClient(fake.url, {}, timeout_s=30)
    with pytest.raises(BodyTooLarge) as caught:
        await client.get("/api/revenue")
    await client.aclose()
    assert str(caught.value) == (f"GET /api/revenue: body larger than max_body_bytes = {MAX_BODY_BYTES} "
                                 "bytes after decompression; refused")
    assert fake.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "close-delimited"])
async def test_an_oversized_plain_body_is_refused(nursery: trio.Nursery, declare_length: bool) -> None:
    fake = await revenue(nursery)
    fake.fail_always(Reply(200, b" " * 5000 + b"{}", declare_length=declare_length))
    client = JsonClient(fake.url, {}, timeout_s=30, max_body_bytes=4096)
    with pytest.raises(BodyTooLarge, match="body larger than max_body_bytes = 4096 bytes") as caught:
        await client.get("/api/revenue")
    assert ("(Content-Length 5002)" in str(caught.value)) is declare_length
    fake.fail_always(None)
    assert await client.get("/api/revenue") == {"invoiced": "500.00", "collected": "400.00"}
    await client.aclose()


async def test_a_gzipped_body_under_the_limit_is_read(nursery: trio.Nursery) -> None:
    fake = await revenue(nursery)
    fake.fail_always(Reply(200, zlib.compress(GOOD.encode(), wbits=31), {"content-encoding": "gzip"}))
    client = JsonClient(fake.url, {}, timeout_s=30)
    assert await client.get("/api/revenue") == {"invoiced": "500.00", "collected": "400.00"}
    await client.aclose()


@pytest.mark.parametrize("header", ["1e400", "inf", "99999", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_a_huge_retry_after_is_capped_and_says_so(
    nursery: trio.Nursery, autojump_clock: Any, header: str
) -> None:
    fake = await revenue(nursery)
    fake.fail_next(rate_limited(header))
    client = JsonClient(fake.url, {}, timeout_s=30, retry_after_max_s=120.0)
    with pytest.raises(RateLimited, match=r"retry in 120 s .*capped by retry_after_max_s = 120 s") as caught:
        await client.get("/api/revenue")
    assert caught.value.retry_in_s == 120.0
    await trio.sleep(119)
    with pytest.raises(RateLimited, match=r"not calling for another 1 s .*retry_after_max_s = 120 s"):
        await client.get("/api/revenue")
    assert len(fake.requests) == 1  # nothing sent inside the capped pause
    await trio.sleep(1)
    assert await client.get("/api/revenue") == {"invoiced": "500.00", "collected": "400.00"}
    await client.aclose()


@pytest.mark.parametrize(("header", "most_s"), [("nan", 3.0), ("-5", 0.0)])
async def test_nan_backs_off_and_a_negative_retry_after_retries_now(
    nursery: trio.Nursery, autojump_clock: Any, header: str, most_s: float
) -> None:
    fake = await revenue(nursery)
    fake.fail_next(rate_limited(header))
    client = JsonClient(fake.url, {}, timeout_s=30, rng=random.Random(3))
    start = trio.current_time()
    assert await client.get("/api/revenue") == {"invoiced": "500.00", "collected": "400.00"}
    assert trio.current_time() - start <= most_s + 0.5  # the backoff's own bound (base 1 s)
    assert len(fake.requests) == 2
    await client.aclose()


async def test_the_kalshi_client_refuses_a_gzip_bomb(nursery: trio.Nursery) -> None:
    fake = FakeServer()
    await fake.start(nursery)
    fake.fail_always(bomb())
    client = KalshiClient(fake.url, load_signer("key-id", signing_key()[0]), max_body_bytes=1 << 20)
    with pytest.raises(BodyTooLarge, match=(r"kalshi: GET /portfolio/balance: body larger than "
                                            r"max_body_bytes = 1048576 bytes after decompression")):
        await client.get("/portfolio/balance")
    await client.aclose()


async def test_a_kalshi_stream_message_over_the_limit_breaks_the_stream(nursery: trio.Nursery) -> None:
    fake = await KalshiFake(signing_key()[1]).start(nursery)
    settings = Settings.from_options(options_for(fake, max_body_bytes=4096))
    source = KalshiStreamingSource("kalshi", settings, rng=random.Random(7))
    failed: list[BaseException] = []

    async def consume() -> None:
        try:
            await source.stream().__anext__()
        except BodyTooLarge as exc:
            failed.append(exc)

    async with trio.open_nursery() as inner:
        inner.start_soon(consume)
        await fake.wait_until(lambda: "market_positions" in fake.subscribed)
        await fake.push_raw('{"type":"ticker","sid":1,"msg":{"pad":"' + "x" * 5000 + '"}}')
    await source.aclose()
    assert [str(e) for e in failed] == [
        "kalshi: stream: message: body larger than max_body_bytes = 4096 bytes; refused"]


async def test_e2e_a_bomb_marks_its_source_failing_while_the_others_stream(
    nursery: trio.Nursery, start_daemon: Any
) -> None:
    bomber = await revenue(nursery)
    bomber.fail_always(bomb())
    sales = await revenue(nursery)
    daemon = await start_daemon({
        "bomber": {"plugin": "revenue_http", "base_url": bomber.url, "interval_s": 0.05,
                   "failure_threshold": 100, "max_body_bytes": 65536},
        "sales": {"plugin": "revenue_http", "base_url": sales.url, "interval_s": 0.05},
        "demo": {"interval_s": 0.02, "seed": 7},
    })
    doc = await wait_for_doc(daemon, lambda d: d.get("sources", {}).get("bomber", {}).get("status")
                             == "failing")
    assert doc["sources"]["bomber"]["last_error"] == (
        "GET /api/revenue: body larger than max_body_bytes = 65536 bytes after decompression; refused")
    doc = await wait_for_doc(daemon, lambda d: d["sources"].get("sales", {}).get("status") == "ok")
    seq = daemon.hub.seq
    doc = await wait_for_doc(daemon, lambda d: daemon.hub.seq >= seq + 3)
    assert doc["sources"]["demo"]["status"] == "ok"
    assert doc["sources"]["bomber"]["status"] == "failing"
    assert len(bomber.requests) >= 1
