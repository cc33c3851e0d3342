"""The app's half of the port: h11 requests as ASGI scopes, and ASGI responses on a real socket.

The pure part (``web/asgi.py``) is checked on h11 events; the server part
(``web/appserver.py``) serves one request of a real socket pair, with the
client's side written and read as raw bytes, so what is on the wire is what
is checked. The wire tests of the whole port (test_hostile_edge, test_fastws,
test_slowloris, test_tls, ...) cover it inside the daemon.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trio.testing
from hostile import open_raw

from northstard.edges.appserver import AppServer, AppSettings
from northstard.edges.asgi import Message, Receive, Scope, Send, http_scope, response_event
from northstard.edges.lifespan import run_lifespan
from northstard.errors import RequestError
from northstard.policy.auth import digest

GUARD_S = 30  # a hang guard, not a speed check


def request(target: bytes, *headers: tuple[bytes, bytes], method: bytes = b"GET") -> h11.Request:
    return h11.Request(method=method, target=target, headers=[(b"Host", b"x"), *headers])


# -- the pure part: scopes and response heads --------------------------------------------------


def test_a_request_becomes_an_asgi_http_scope() -> None:
    state = {"started": True}
    scope = http_scope(request(b"/api/a%20b?x=1&y=%2F", (b"X-Token", b"t")), scheme="https",
                       client=("10.0.0.1", 4242), server=("127.0.0.1", 8080), state=state)
    assert scope["type"] == "http" and scope["http_version"] == "1.1" and scope["method"] == "GET"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/api/a b", b"/api/a%20b",
                                                                         b"x=1&y=%2F")
    assert scope["scheme"] == "https" and scope["root_path"] == ""
    assert scope["headers"] == [(b"host", b"x"), (b"x-token", b"t")]  # h11 lower-cases names
    assert scope["client"] == ("10.0.0.1", 4242) and scope["server"] == ("127.0.0.1", 8080)
    assert scope["state"] == state and scope["state"] is not state  # a copy per request
    assert scope["asgi"]["version"] == "3.0"


def test_a_response_start_becomes_an_h11_response_with_a_date_unless_the_app_set_one() -> None:
    start = {"type": "http.response.start", "status": 201, "headers": [(b"Content-Type", b"a/b")]}
    response = response_event(start, [(b"date", b"D1")])
    assert response.status_code == 201
    assert list(response.headers) == [(b"content-type", b"a/b"), (b"date", b"D1")]
    own = response_event({**start, "headers": [(b"date", b"mine")]}, [(b"date", b"D1")])
    assert list(own.headers) == [(b"date", b"mine")]


@pytest.mark.parametrize("message", [
    {"type": "http.response.body", "body": b"x"},  # no start first
    {"type": "http.response.start", "status": 100},  # informational: not a response
    {"type": "http.response.start", "status": 200, "headers": [(b"bad name", b"v")]},
    {"type": "http.response.start"},  # no status
], ids=["body-first", "status-100", "bad-header", "no-status"])
def test_a_bad_response_start_is_an_internal_error(message: Message) -> None:
    with pytest.raises(RequestError) as caught:
        response_event(message)
    assert caught.value.status == 500


# -- one request on a real socket --------------------------------------------------------------


class Wire:
    """The client's end of a socket pair, read and written as raw bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self.buffer = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                raise AssertionError(f"closed before {marker!r}: {bytes(self.buffer)!r}")
            self.buffer += data
        end = self.buffer.index(marker) + len(marker)
        taken = bytes(self.buffer[:end])
        del self.buffer[:end]
        return taken

    async def rest(self) -> bytes:
        """Everything until the server closes."""
        while data := await self.stream.receive_some(65536):
            self.buffer += data
        return bytes(self.buffer)


@asynccontextmanager
async def served(app: Any, head: bytes, settings: AppSettings | None = None
                 ) -> AsyncIterator[tuple[Wire, dict[str, Any]]]:
    """``app`` serves the request whose head is ``head``; ``result["rest"]`` is what serve returned."""
    server, client = socket.socketpair()
    server.setblocking(False)
    refused: list[str] = []
    result: dict[str, Any] = {"refused": refused}

    async def serve() -> None:
        result["rest"] = await AppServer(app, settings or AppSettings(), {}, refused.append).serve(
            server, bytearray(head), "http")
        server.close()

    with trio.fail_after(GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            yield Wire(client), result
    client.close()


async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
    """Three body parts and no Content-Length: chunked."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for part in (b"one", b"two", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def test_a_streamed_body_is_sent_chunked_and_a_pipelined_request_is_given_back() -> None:
    head = b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n"
    async with served(streaming, head + b"GET /next HT") as (wire, result):
        answer = await wire.until(b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked\r\n" in answer.lower() and b"date: " in answer.lower()
    assert answer.endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")
    assert result["rest"] == b"GET /next HT"  # the next request's bytes, for the front


async def test_head_gets_the_headers_without_the_body() -> None:
    async def sized(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})

    async with served(sized, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n") as (wire, result):
        answer = await wire.until(b"\r\n\r\n")
    assert b"content-length: 5\r\n" in answer.lower()
    assert result["rest"] == b"" and wire.buffer == b""  # no body bytes, and kept alive


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, answers its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def test_the_body_streams_to_the_app_after_a_100_continue() -> None:
    head = b"POST /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n"
    async with served(echo_length, head) as (wire, result):
        assert (await wire.until(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
        await wire.send(b"a" * 70000)
        answer = await wire.until(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert await wire.until(b"70000") == b"70000"
    assert result["rest"] == b""


async def test_a_body_over_the_limit_is_refused_unread_and_closed() -> None:
    head = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n"
    async with served(echo_length, head, AppSettings(max_body_bytes=1024)) as (wire, result):
        answer = await wire.rest()
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"error":"request_entity_too_large"' in answer
    assert result == {"rest": None, "refused": ["request_entity_too_large"]}


async def test_a_stalled_body_is_answered_408_and_closed(autojump_clock: trio.testing.MockClock) -> None:
    head = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
    async with served(echo_length, head, AppSettings(body_timeout_s=5)) as (wire, result):
        started = trio.current_time()
        answer = await wire.rest()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"stalled over 5 s" in answer
    assert trio.current_time() - started >= 5
    assert result == {"rest": None, "refused": ["body_timeout"]}


async def test_a_body_the_app_does_not_read_is_dropped_and_the_connection_goes_on() -> None:
    async def no_read(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab"
    async with served(no_read, head) as (wire, result):
        assert (await wire.until(b"\r\n\r\n")).startswith(b"HTTP/1.1 401 ")
        await wire.send(b"cdefGET / HTTP/1.1\r\n")  # the body's end, then the next request
    assert result["rest"] == b"GET / HTTP/1.1\r\n"


async def test_connection_close_closes_after_the_answer() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    async with served(streaming, head) as (wire, result):
        answer = await wire.rest()
    assert b"connection: close\r\n" in answer.lower() and answer.endswith(b"0\r\n\r\n")
    assert result["rest"] is None


async def test_an_app_waiting_for_a_client_that_leaves_is_told_so() -> None:
    told: list[str] = []

    async def long_poll(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"
        told.append((await receive())["type"])  # no answer yet: waits for the client to leave

    async with served(long_poll, b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n") as (wire, result):
        await trio.testing.wait_all_tasks_blocked()
        await wire.stream.aclose()
    assert told == ["http.disconnect"] and result["rest"] is None


async def test_an_app_that_fails_or_says_nothing_gets_a_500() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return

    for app in (failing, silent):
        async with served(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") as (wire, result):
            answer = await wire.rest()
        assert answer.startswith(b"HTTP/1.1 500 ") and b'"error":"internal_error"' in answer
        assert result["rest"] is None


async def test_a_head_h11_refuses_is_a_400() -> None:
    async with served(streaming, b"GET / HTTP/1.1\r\n\r\n") as (wire, result):  # no Host
        answer = await wire.rest()
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"error":"bad_request"' in answer
    assert result["rest"] is None


# -- the lifespan ------------------------------------------------------------------------------


async def test_the_lifespan_starts_before_and_shuts_down_after() -> None:
    said: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            said.append(message["type"])
            scope["state"]["ready"] = True
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    state: dict[str, Any] = {}
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_lifespan, app, state, stop)
        assert said == ["lifespan.startup"] and state == {"ready": True}
        stop.set()
    assert said == ["lifespan.startup", "lifespan.shutdown"]


async def test_an_app_without_a_lifespan_is_served_without_one() -> None:
    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        raise TypeError(f"no {scope['type']}")

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_lifespan, http_only, {}, stop)
        stop.set()


async def test_a_lifespan_that_ends_unanswered_does_not_hold_the_shutdown(autojump_clock: Any) -> None:
    """The daemon's stop cancels the app's lifespan task when its grace is over: the shutdown
    phase then stops waiting at once instead of holding the stop for its whole time limit."""
    app_scope = trio.CancelScope()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        with app_scope:
            await send({"type": (await receive())["type"] + ".complete"})
            await trio.sleep_forever()  # never answers the shutdown

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_lifespan, app, {}, stop, timeout_s=60.0))
        began = trio.current_time()
        app_scope.cancel()
        stop.set()
    assert trio.current_time() - began < 60.0  # virtual time: it did not wait for the limit


# -- inside the daemon: the bounds the app server adds -----------------------------------------

AUTH = {"tokens": [{"name": "reader", "sha256": digest("t" * 32)}]}  # /login reads its body
QUIET = {"demo": {"interval_s": 3600.0, "seed": 7}}  # one snapshot, then no change for an hour


async def test_a_login_body_that_stalls_is_answered_408_after_the_head_timeout(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH, limits={"header_timeout_s": 0.5})
    client = await open_raw(daemon.url)
    await client.stream.send_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                                 b"x-www-form-urlencoded\r\nContent-Length: 50\r\n\r\ntoken=")
    began = trio.current_time()
    with trio.fail_after(30):  # a hang guard, not a speed check
        assert await client.eof()
    assert bytes(client.buffer).startswith(b"HTTP/1.1 408 ")
    assert trio.current_time() - began >= 0.5
    counted = daemon.metrics.registry.get_sample_value("northstard_refused_total", {"reason": "body_timeout"})
    assert counted == 1


async def test_a_long_poll_whose_client_leaves_stops_waiting(start_daemon: Any) -> None:
    daemon = await start_daemon(QUIET, server={"longpoll_max_s": 3600.0})
    with trio.fail_after(30):  # a hang guard: the poll is an hour long
        for _ in range(10):  # the source's own first status change may answer a poll: poll on from it
            position = daemon.hub.position
            client = await open_raw(daemon.url)
            await client.stream.send_all(f"GET /api/pnl/changes?since={position.epoch}:{position.seq}"
                                         "&wait=3600 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            while daemon.hub.clients["poll"] != 1 and daemon.hub.position == position:
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)  # the request reaches the hub
            if daemon.hub.clients["poll"] == 1:
                break
            await client.stream.aclose()
        await client.stream.aclose()
        while daemon.hub.clients["poll"] != 0:  # the server saw the client leave: the wait ended
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
