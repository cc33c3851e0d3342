"""Issue 12, auth: malformed session cookies are a 401 (never a 500 or an error log) on every
edge, ``?token=`` on the API answers with the data (no cookie jar needed), and logout
revokes the cookie for good (bounded, across a restart)."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionRejected, open_websocket_url

from northstard.daemon import Daemon
from northstard.policy.auth import Authenticator, TokenEntry, digest
from northstard.policy.revoked import FILE_NAME as REVOKED_FILE
from northstard.policy.revoked import Pending, Revoked, load_revoked, write_pending

from clients import ws_url
from conftest import debug_logs, running

TOKEN = "nsd_reader-token-of-the-attack-tests"
AUTH = {"tokens": [{"name": "reader", "sha256": digest(TOKEN)}]}
ID = digest(TOKEN)[:16]
MAC = "ab" * 32
LATER = int(time.time()) + 3600

MALFORMED = {
    "huge expiry": f"abcd.{'9' * 5000}.ff",
    "huge expiry, valid id": f"{ID}.{'9' * 5000}.{MAC}",
    "non-ascii mac, valid id": f"{ID}.{LATER}.{'é' * 64}",
    "non-ascii digits": f"{ID}.{'١٢٣٤٥'}.{MAC}",
    "negative expiry": f"{ID}.-{LATER}.{MAC}",
    "hex expiry": f"{ID}.0x{LATER:x}.{MAC}",
    "expiry past the lifetime": f"{ID}.{LATER * 10}.{MAC}",
    "expired": f"{ID}.1.{MAC}",
    "upper-case mac": f"{ID}.{LATER}.{MAC.upper()}",
    "short mac": f"{ID}.{LATER}.ff",
    "missing mac": f"{ID}.{LATER}",
    "missing parts": f"{ID}",
    "empty parts": "..",
    "four parts": f"{ID}.{LATER}.{MAC}.{MAC}",
    "spaces": f"{ID} . {LATER} . {MAC}",
    "quoted": f'"{ID}.{LATER}.{MAC}"',
    "wrong mac": f"{ID}.{LATER}.{MAC}",
}
HEADERS = {name: {b"cookie": f"northstard_session={value}".encode()} for name, value in MALFORMED.items()}


@pytest.fixture
def logged() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event (any level) while the test runs."""
    with debug_logs() as logs:
        yield logs


def no_errors(logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    loud = [e for e in logs if e.get("log_level") in ("error", "critical", "exception")]
    assert loud == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_check_session_refuses_any_text_without_raising() -> None:
    auth = Authenticator([TokenEntry(digest(TOKEN))], b"k" * 32)
    for value in MALFORMED.values():
        assert auth.check_session(value) is None
    assert auth.check_session(auth.session(auth.tokens[0])) == auth.tokens[0]


@given(st.text(max_size=200), st.text(max_size=20), st.text(max_size=80))
def test_check_session_never_raises_on_fuzzed_parts(head: str, middle: str, tail: str) -> None:
    auth = Authenticator([TokenEntry(digest(TOKEN))], b"k" * 32)
    for value in (head, f"{ID}.{middle}.{tail}", f"{head}.{middle}.{tail}"):
        assert auth.check_session(value) is None


async def test_malformed_cookies_get_401_on_rest_sse_and_ws(
    start_daemon: Any, logged: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    daemon: Daemon = await start_daemon(auth=AUTH)
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as http:
        for name, headers in HEADERS.items():
            for path in ("/api/sources", "/api/pnl/stream", "/"):
                answer = await http.get(path, headers=headers)
                expected = 303 if path == "/" else 401
                assert answer.status_code == expected, (name, path, answer.text)
    for name, headers in HEADERS.items():
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(ws_url(daemon.url), extra_headers=list(headers.items())):
                pass
        assert refused.value.status_code == 401, name
    no_errors(logged, caplog)


async def test_token_in_the_query_serves_the_api_without_a_cookie_jar(start_daemon: Any) -> None:
    daemon: Daemon = await start_daemon(auth=AUTH)
    for path in ("/api/sources", "/api/pnl/current", "/metrics", "/openapi.json", "/api/pnl/breakdown"):
        async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as http:
            answer = await http.get(path, params={"token": TOKEN})
            assert answer.status_code == 200, (path, answer.status_code)
            assert "set-cookie" not in answer.headers and not http.cookies
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as http:
        assert "sources" in (await http.get("/api/sources", params={"token": TOKEN})).json()
        wrong = await http.get("/api/sources", params={"token": "nsd_wrong"})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        page = await http.get("/", params={"token": TOKEN, "transport": "sse"})  # a page: traded
        assert page.status_code == 303 and page.headers["location"] == "/?transport=sse"
        assert "northstard_session=" in page.headers["set-cookie"]


# -- 10: logout revokes, across a restart ---------------------------------------------------------

OTHER = "nsd_second-token-of-the-attack-tests"
BOTH = {"tokens": [digest(TOKEN), digest(OTHER)]}


async def signed_in(daemon: Daemon, token: str) -> str:
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as http:
        answer = await http.post("/login", data={"token": token})
        assert answer.status_code == 303
        return answer.cookies["northstard_session"]


async def statuses(daemon: Daemon, value: str) -> tuple[int, int, int]:
    """What the cookie gets on REST, SSE and /ws (101 when the WebSocket is accepted)."""
    headers = {"Cookie": f"northstard_session={value}"}
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as http:
        rest = (await http.get("/api/sources", headers=headers)).status_code
        async with http.stream("GET", "/api/pnl/stream", headers=headers) as sse:
            stream = sse.status_code
    try:
        extra = [(b"cookie", headers["Cookie"].encode())]
        async with open_websocket_url(ws_url(daemon.url), extra_headers=extra):
            ws = 101
    except ConnectionRejected as exc:
        ws = exc.status_code
    return rest, stream, ws


async def test_logout_revokes_the_cookie_for_good_even_across_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path, auth=BOTH) as daemon:
        gone, kept = await signed_in(daemon, TOKEN), await signed_in(daemon, OTHER)
        assert await statuses(daemon, gone) == (200, 200, 101)
        async with httpx.AsyncClient(base_url=daemon.url, timeout=10,
                                     cookies={"northstard_session": gone}) as http:
            out = await http.post("/logout")
        assert out.status_code == 303 and "max-age=0" in out.headers["set-cookie"].lower()
        assert await statuses(daemon, gone) == (401, 401, 401)  # the old cookie, replayed
        assert await statuses(daemon, kept) == (200, 200, 101)
    saved = tmp_path / REVOKED_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert gone.rpartition(".")[2] in saved.read_text() and TOKEN not in saved.read_text()
    async with running(tmp_path, auth=BOTH) as daemon:  # restarted: still revoked
        assert await statuses(daemon, gone) == (401, 401, 401)
        assert await statuses(daemon, kept) == (200, 200, 101)


def auth_with(revoked: Revoked) -> Authenticator:
    return Authenticator([TokenEntry(digest(TOKEN)), TokenEntry(digest(OTHER))], b"k" * 32,
                         lifetime_s=3600, revoked=revoked)


def test_revocations_are_kept_until_expiry_and_bounded(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    path = tmp_path / REVOKED_FILE
    auth = auth_with(load_revoked(path, now, limit=3))
    cookies = [auth.session(auth.tokens[i % 2], now + i) for i in range(5)]
    for value in cookies[:3]:
        assert auth.revoke(value, now + 10)
        write_pending(path, auth.revoked.take_pending() or Pending("", whole=False))
    assert not auth.revoke(cookies[0], now + 10)  # already ended: nothing to add
    assert [auth.check_session(c, now + 10) is None for c in cookies] == [True, True, True, False, False]
    assert len(auth.revoked) == 3  # at the bound
    reloaded = auth_with(load_revoked(path, now + 10, limit=3))
    assert [reloaded.check_session(c, now + 10) is None for c in cookies] == [True, True, True, False, False]
    # past their expiry they are dropped at load: the cookies are refused as expired anyway
    assert len(load_revoked(path, now + 3600 + 10, limit=3)) == 0
    # the bound: one more logout ends every session (a new generation), never forgets one
    assert auth.revoke(cookies[3], now + 10)
    assert auth.revoked.generation == 1 and len(auth.revoked) == 0
    assert all(auth.check_session(c, now + 10) is None for c in cookies)
    fresh = auth.session(auth.tokens[0], now + 20)
    assert auth.check_session(fresh, now + 20) == auth.tokens[0]
    write_pending(path, auth.revoked.take_pending() or Pending("", whole=False))
    again = auth_with(load_revoked(path, now + 20, limit=3))
    assert again.check_session(fresh, now + 20) == auth.tokens[0]
    assert all(again.check_session(c, now + 20) is None for c in cookies)
