"""Issue 12, auth: malformed session cookies are a 401 (never a 500 or an error log) on every
edge, and ``?token=`` on the API answers with the data (no cookie jar needed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs
from trio_websocket import ConnectionRejected, open_websocket_url

from northstard.auth import Authenticator, TokenEntry, digest
from northstard.daemon import Daemon

from clients import ws_url

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
HEADERS = {name: {"Cookie": f"northstard_session={value}".encode()} for name, value in MALFORMED.items()}


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event (any level) while the test runs."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


def no_errors(logs: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
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
    start_daemon: Any, logged: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
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
            async with open_websocket_url(ws_url(daemon.url), extra_headers=list(
                    (k.encode(), v) for k, v in headers.items())):
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
