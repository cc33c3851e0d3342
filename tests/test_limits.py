"""[limits]: the pure limiters, then REST, connection and stream limits on the real daemon.

Distinct clients are distinct loopback addresses (127.0.0.2, 127.0.0.3, ...: all
of 127.0.0.0/8 reaches the daemon on 127.0.0.1), with ``exempt_loopback = false``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
import trio.testing
from hostile import http_from, open_raw, refused, sse, ws
from hypercorn.config import Config as HypercornConfig
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from test_fastws import hello, new_hub

from northstard.edges.grpc.client import PnlClient, open_channel
from northstard.edges.stream.fastws import WsEdge, WsSettings
from northstard.edges.stream.front import Edge, Front
from northstard.errors import ConfigError
from northstard.policy.auth import digest, new_token
from northstard.policy.limits import Concurrency, Limits, LimitSettings, OncePer, RateLimiter
from northstard.status.metrics import Metrics

from conftest import build_config
from grpc_helpers import GRPC, on_asyncio, until_serving


@asynccontextmanager
async def front_serving(edges: list[Edge], **options: Any) -> AsyncIterator[str]:
    """The front alone (a tiny ASGI app, our own hub) with ``options`` (limits, principal)."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(Front(hello, config, edges, **options).serve, stop.wait)
        yield urls[0]
        stop.set()


STRICT = {"exempt_loopback": False, "rest_rate_per_s": 0.0, "connect_rate_per_s": 0.0}


# -- the limiters, pure ---------------------------------------------------------------------


def test_a_bucket_gives_its_burst_then_says_how_long_to_wait() -> None:
    bucket = RateLimiter(rate=2.0, burst=3)
    assert [bucket.take("a", 10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a", 10.0) == pytest.approx(0.5)
    assert bucket.take("b", 10.0) == 0.0  # every key has its own bucket
    assert bucket.take("a", 10.25) == pytest.approx(0.25)  # half a token back after 0.25 s
    assert bucket.take("a", 10.5) == 0.0
    assert bucket.take("a", 100.0) == 0.0 and bucket.take("a", 100.0) == 0.0  # refilled to burst
    assert RateLimiter(rate=0, burst=1).take("a", 0.0) == 0.0  # rate 0: no limit


def test_the_key_table_is_a_bounded_lru() -> None:
    bucket = RateLimiter(rate=1.0, burst=1, max_keys=100)
    bucket.take("old", 0.0)
    for i in range(100_000):  # a flood from many addresses
        bucket.take(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(bucket) == 100
    assert bucket.take("old", 0.0) == 0.0  # evicted: starts full again


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 2)), max_size=200),
       st.floats(0.1, 50), st.integers(1, 20))
@settings(derandomize=True, max_examples=200)
def test_a_key_never_gets_more_than_burst_plus_rate_times_elapsed(
    events: list[tuple[str, float]], rate: float, burst: int
) -> None:
    bucket = RateLimiter(rate, burst)
    now, allowed = 0.0, {"a": 0, "b": 0, "c": 0}
    for key, step in events:
        now += step
        allowed[key] += bucket.take(key, now) == 0.0
    for count in allowed.values():
        assert count <= burst + rate * now + 1e-9


async def test_the_bucket_runs_on_the_trio_clock(mock_clock: trio.testing.MockClock) -> None:
    bucket = RateLimiter(rate=1.0, burst=1)
    assert bucket.take("a", trio.current_time()) == 0.0
    wait = bucket.take("a", trio.current_time())
    assert wait == pytest.approx(1.0)
    mock_clock.jump(wait)
    assert bucket.take("a", trio.current_time()) == 0.0


def test_concurrency_caps_the_total_and_each_key() -> None:
    streams = Concurrency(total=3, per_key=2)
    assert [streams.acquire("a"), streams.acquire("a"), streams.acquire("a")] == [None, None, "client"]
    assert streams.acquire(None) is None  # counted in the total only
    assert streams.acquire("b") == "total"
    streams.release("a")
    assert streams.count("a") == 1 and streams.acquire("b") is None
    for key in ("a", "b", None):
        streams.release(key)
    assert streams.open == 0 and streams.count("a") == 0 and "keys=0" in repr(streams)
    unlimited = Concurrency()
    assert all(unlimited.acquire("x") is None for _ in range(1000))


def test_a_refusal_is_logged_once_per_interval() -> None:
    once = OncePer(60.0, max_keys=10)
    assert [once.due("a", t) for t in (0.0, 1.0, 59.0, 60.0, 61.0)] == [True, False, False, True, False]
    assert once.due("b", 1.0)


@pytest.mark.parametrize(("host", "exempt"), [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("", True),
    ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("garbage", False),
])
def test_loopback_peers_are_exempt(host: str, exempt: bool) -> None:
    """A Unix socket peer (no address) is exempt with loopback; nothing is when the setting is off."""
    assert Limits(LimitSettings()).exempt(host) is exempt
    assert Limits(LimitSettings(exempt_loopback=False)).exempt(host) is False


def test_stream_keys_and_refusals_name_the_cap() -> None:
    limits = Limits(LimitSettings(max_streams=5, max_streams_per_client=2))
    assert limits.stream_key("127.0.0.1", None) is None  # loopback exempt by default
    assert limits.stream_key("127.0.0.1", "abc") == "token:abc"  # a token counts anywhere
    assert limits.stream_key("10.1.1.1", None) == "ip:10.1.1.1"
    assert limits.stream_refusal("client", "token:abc") == "too many streams for this token (max 2)"
    assert limits.stream_refusal("client", "ip:10.1.1.1") == "too many streams for this address (max 2)"
    assert limits.stream_refusal("total", None) == "the server has too many streams open (max 5)"
    strict = Limits(LimitSettings(exempt_loopback=False))
    assert strict.stream_key("127.0.0.1", None) == "ip:127.0.0.1"


@pytest.mark.parametrize(("values", "key"), [
    ({"rest_burst": 0}, "limits.rest_burst"),
    ({"header_timeout_s": 0}, "limits.header_timeout_s"),
    ({"max_streams": -1}, "limits.max_streams"),
    ({"exempt_loopback": "no"}, "limits.exempt_loopback"),
    ({"rest_rate": 5}, "limits.rest_rate"),
])
def test_bad_limits_name_the_key(tmp_path: Path, values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(tmp_path, {"demo": {}}, limits=values)
    assert raised.value.key == key


# -- REST and connection attempts --------------------------------------------------------------


async def test_rest_over_the_rate_gets_a_json_429_with_retry_after(start_daemon: Any) -> None:
    daemon = await start_daemon(limits={**STRICT, "rest_rate_per_s": 0.01, "rest_burst": 3})
    async with http_from("127.0.0.2") as http:
        codes = [(await http.get(f"{daemon.url}/api/health")).status_code for _ in range(3)]
        refused_answer = await http.get(f"{daemon.url}/api/pnl/current")
    assert codes == [200, 200, 200]
    assert refused_answer.status_code == 429
    assert 1 <= int(refused_answer.headers["retry-after"]) <= 100
    assert refused_answer.headers["content-type"] == "application/json"
    body = refused_answer.json()
    assert body["error"] == "rate_limited" and "requests/s from this address" in body["detail"]
    async with http_from("127.0.0.3") as other:  # another client is not affected
        assert (await other.get(f"{daemon.url}/api/health")).status_code == 200
    assert await refused(daemon.url, "request_rate") == 1


async def test_loopback_is_exempt_by_default(start_daemon: Any) -> None:
    daemon = await start_daemon(limits={"rest_rate_per_s": 0.01, "rest_burst": 1,
                                        "connect_rate_per_s": 0.01, "connect_burst": 1})
    for _ in range(5):  # a fresh connection each time: five connections, five requests
        async with http_from("127.0.0.1") as http:
            assert (await http.get(f"{daemon.url}/api/health")).status_code == 200


async def test_connection_attempts_over_the_rate_get_a_429_and_one_log_line(start_daemon: Any) -> None:
    daemon = await start_daemon(limits={**STRICT, "connect_rate_per_s": 0.01, "connect_burst": 2})
    with capture_logs() as logs:
        served = [await open_raw(daemon.url, source="127.0.0.2") for _ in range(2)]
        for client in served:
            line, _, _ = await client.request("GET /api/health HTTP/1.1\nHost: x\n\n")
            assert line.startswith("HTTP/1.1 200")
        for _ in range(3):
            refused_client = await open_raw(daemon.url, source="127.0.0.2")
            assert await refused_client.eof()  # answered and closed without a request
            head, _, body = bytes(refused_client.buffer).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 429") and b"retry-after: " in head
            assert json.loads(body)["error"] == "rate_limited"
        line, _, _ = await served[0].request("GET /api/health HTTP/1.1\nHost: x\n\n")
        assert line.startswith("HTTP/1.1 200")  # connections already open are not affected
    assert [e["client"] for e in logs if "rate limit" in e["event"]] == ["127.0.0.2"]
    assert await refused(daemon.url, "connection_rate") == 3


# -- stream caps ----------------------------------------------------------------------------------


def too_many(line: str, body: bytes, detail: str) -> bool:
    answer = json.loads(body)
    return line.startswith("HTTP/1.1 429") and answer == {"error": "too_many_streams", "detail": detail}


async def test_the_total_stream_cap_refuses_ws_and_sse_and_frees_on_disconnect(start_daemon: Any) -> None:
    daemon = await start_daemon(limits={"max_streams": 2})
    first, line, _ = await ws(daemon.url)
    assert line.startswith("HTTP/1.1 101")
    second, line, _ = await sse(daemon.url, source="127.0.0.2")
    assert line.startswith("HTTP/1.1 200")
    detail = "the server has too many streams open (max 2)"
    _, line, body = await ws(daemon.url, source="127.0.0.3")
    assert too_many(line, body, detail)
    _, line, body = await sse(daemon.url, source="127.0.0.3")
    assert too_many(line, body, detail)
    await first.send(0x8, (1000).to_bytes(2, "big"))  # a clean close; the slot is freed with the socket
    assert await first.eof()
    third, line, _ = await ws(daemon.url, source="127.0.0.3")
    assert line.startswith("HTTP/1.1 101")
    assert await refused(daemon.url, "streams_total") == 2
    await second.stream.aclose()
    await third.stream.aclose()


async def test_the_per_address_cap(start_daemon: Any) -> None:
    daemon = await start_daemon(limits={**STRICT, "max_streams_per_client": 1})
    held, line, _ = await ws(daemon.url, source="127.0.0.2")
    assert line.startswith("HTTP/1.1 101")
    _, line, body = await sse(daemon.url, source="127.0.0.2")
    assert too_many(line, body, "too many streams for this address (max 1)")
    _, line, _ = await sse(daemon.url, source="127.0.0.3")
    assert line.startswith("HTTP/1.1 200")
    await held.stream.aclose()


async def test_the_per_token_cap_follows_the_token_not_the_address(start_daemon: Any) -> None:
    alice, bob = new_token(), new_token()
    daemon = await start_daemon(auth={"tokens": [digest(alice), digest(bob)]},
                                limits={"max_streams_per_client": 1})
    held, line, _ = await ws(daemon.url, extra=f"Authorization: Bearer {alice}\n")
    assert line.startswith("HTTP/1.1 101")
    _, line, body = await sse(daemon.url, source="127.0.0.5", extra=f"Authorization: Bearer {alice}\n")
    assert too_many(line, body, "too many streams for this token (max 1)")
    _, line, _ = await ws(daemon.url, extra=f"Authorization: Bearer {bob}\n")
    assert line.startswith("HTTP/1.1 101")
    await held.stream.aclose()


async def test_the_front_keys_streams_by_its_principal() -> None:
    hub = new_hub()
    edge = WsEdge(hub, Metrics(), WsSettings(ping_interval_s=0))
    limits = Limits(LimitSettings(max_streams_per_client=1))
    async with front_serving([edge], limits=limits,
                             principal=lambda request: request.headers.get("x-user")) as url:
        a1, line, _ = await ws(url, extra="X-User: a\n")
        assert line.startswith("HTTP/1.1 101")
        _, line, body = await ws(url, extra="X-User: a\n")
        assert too_many(line, body, "too many streams for this token (max 1)")
        _, line, _ = await ws(url, extra="X-User: b\n")
        assert line.startswith("HTTP/1.1 101")
        _, line, _ = await ws(url)  # no principal, loopback: the total only
        assert line.startswith("HTTP/1.1 101")
        await a1.send(0x8, (1000).to_bytes(2, "big"))
        assert await a1.eof()
        _again, line, _ = await ws(url, extra="X-User: a\n")
        assert line.startswith("HTTP/1.1 101")
        assert limits.streams.count("token:a") == 1
        hub.close()


async def test_grpc_subscribe_caps_are_resource_exhausted_and_freed_on_cancel(start_daemon: Any) -> None:
    daemon = await start_daemon(grpc=GRPC, limits={"max_streams": 1})

    async def session() -> tuple[grpc.StatusCode, str, int]:
        async with open_channel(daemon.grpc_address or "") as channel:
            await until_serving(channel)
            client = PnlClient(channel)
            first = client.subscribe()
            await first.read()
            second = client.subscribe()
            try:
                await second.read()
                raise AssertionError("a second stream was allowed")
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
            first.cancel()
            tries = 0
            while True:  # the server frees the slot when its handler sees the cancel
                tries += 1
                third = client.subscribe()
                try:
                    await third.read()
                    third.cancel()
                    return code, details, tries
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and tries < 500
                    await asyncio.sleep(0.01)

    code, details, _tries = await on_asyncio(session)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "the server has too many streams open (max 1)"
    assert await refused(daemon.url, "grpc_streams_total") >= 1


async def test_grpc_per_token_caps_follow_the_token(start_daemon: Any) -> None:
    alice, bob = new_token(), new_token()
    daemon = await start_daemon(grpc=GRPC, auth={"tokens": [digest(alice), digest(bob)]},
                                limits={"max_streams_per_client": 1})

    async def session() -> tuple[grpc.StatusCode, str]:
        async with open_channel(daemon.grpc_address or "") as channel:
            await until_serving(channel)
            held = PnlClient(channel, alice).subscribe()
            await held.read()
            other = PnlClient(channel, bob).subscribe()
            await other.read()  # another token: its own count
            again = PnlClient(channel, alice).subscribe()
            try:
                await again.read()
                raise AssertionError("a second stream for the token was allowed")
            except grpc.aio.AioRpcError as exc:
                answer = exc.code(), exc.details() or ""
            held.cancel()
            other.cancel()
            return answer

    code, details = await on_asyncio(session)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "too many streams for this token (max 1)"
