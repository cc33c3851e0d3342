"""Access control on the real daemon: REST, login and ``?token=`` cookies, WS, SSE, gRPC, CORS, headers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from northstard.daemon import Daemon
from northstard.policy.auth import digest

from clients import ws_url
from conftest import running
from grpc_helpers import GRPC, with_client

TOKEN = "nsd_reader-token-of-the-auth-tests"
OTHER = "nsd_second-token-of-the-auth-tests"
AUTH = {"tokens": [{"name": "reader", "sha256": digest(TOKEN)}]}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ORIGIN = "https://ops.example"


def client(daemon: Daemon, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=daemon.url, timeout=10, **options)


def assert_refused(response: httpx.Response, error: str | None = None) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.json()["error"] == "unauthorized" and response.json()["detail"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
    assert response.headers["x-content-type-options"] == "nosniff"


async def login(http: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    return await http.post("/login", data={"token": token})


def session_cookie(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    match = re.match(r"northstard_session=([^;]+);", header)
    assert match, header
    return match.group(1)


# -- REST --------------------------------------------------------------------------------------


async def test_rest_needs_a_bearer_token(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH)
    async with client(daemon) as http:
        for path in ("/api/sources", "/api/pnl/breakdown", "/openapi.json", "/metrics",
                     "/api/pnl/changes?since=x:1&wait=0", "/static/app.js", "/no/such/route"):
            assert_refused(await http.get(path))
            assert_refused(await http.get(path, headers={"Authorization": "Bearer nsd_wrong"}),
                           "invalid_token")
        assert_refused(await http.post("/api/sources"))
        for path in ("/api/sources", "/openapi.json", "/metrics", "/static/app.js"):
            assert (await http.get(path, headers=BEARER)).status_code == 200, path
        poll = await http.get(f"/api/pnl/changes?since={daemon.hub.position}&wait=0", headers=BEARER)
        assert poll.status_code == 200 and poll.json()["type"] in ("unchanged", "delta")
        assert (await http.get("/api/health")).status_code == 200  # open by default
        for path in ("/login", "/static/login.js", "/static/theme.css", "/static/login.css"):
            assert (await http.get(path)).status_code == 200, path
        spec = (await http.get("/openapi.json", headers=BEARER)).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/health"]["get"]["security"] == []
    assert "401" in spec["paths"]["/api/sources"]["get"]["responses"]


@pytest.mark.parametrize(("opened", "health", "metrics"), [
    ([], 401, 401), (["metrics"], 401, 200), (["health", "metrics"], 200, 200),
])
async def test_health_and_metrics_are_open_as_configured(
    start_daemon: Any, opened: list[str], health: int, metrics: int
) -> None:
    daemon = await start_daemon(auth={**AUTH, "open": opened})
    async with client(daemon) as http:
        assert (await http.get("/api/health")).status_code == health
        assert (await http.get("/metrics")).status_code == metrics
        assert (await http.get("/api/health", headers=BEARER)).status_code == 200


async def test_without_tokens_everything_stays_open(daemon: Daemon) -> None:
    async with client(daemon) as http:
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/api/sources")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get("/login")).headers["location"] == "/"
        assert "securitySchemes" not in (await http.get("/openapi.json")).json()["components"]


# -- browsers: the login page and ?token= links ------------------------------------------------


async def test_the_login_page_sets_a_session_cookie(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH)
    async with client(daemon) as http:
        first = await http.get("/")
        assert first.status_code == 303 and first.headers["location"] == "/login"
        page = await http.get("/login")
        assert page.status_code == 200 and 'action="/login"' in page.text
        assert 'data-testid="login-error" hidden' in page.text
        wrong = await login(http, "nsd_wrong")
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        assert "That token is not accepted." in wrong.text and "nsd_wrong" not in wrong.text
        for forged_by in ({"Origin": "https://evil.example"},
                          {"Sec-Fetch-Site": "cross-site", "Origin": "null"}):
            forged = await http.post("/login", data={"token": TOKEN}, headers=forged_by)
            assert forged.status_code == 403 and "set-cookie" not in forged.headers
        accepted = await login(http)
        assert accepted.status_code == 303 and accepted.headers["location"] == "/"
        attributes = {a.strip().lower() for a in accepted.headers["set-cookie"].split(";")[1:]}
        assert {"httponly", "path=/", "samesite=strict", "max-age=604800"} <= attributes
        assert "secure" not in attributes  # plain HTTP here: Secure follows the request's scheme
        assert TOKEN not in accepted.headers["set-cookie"]
        assert (await http.get("/")).status_code == 200  # httpx keeps the cookie
        assert (await http.get("/api/sources")).status_code == 200
        assert (await http.get("/login")).headers["location"] == "/"
        out = await http.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert "max-age=0" in out.headers["set-cookie"].lower()
        assert_refused(await http.get("/api/sources"))


async def test_a_token_link_is_traded_for_a_cookie_and_leaves_the_url(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH)
    async with client(daemon) as http:
        traded = await http.get(f"/?transport=sse&token={TOKEN}&stepup=5")
        assert traded.status_code == 303
        assert traded.headers["location"] == "/?transport=sse&stepup=5"
        value = session_cookie(traded)
        assert (await http.get("/")).status_code == 200
    async with client(daemon, cookies={"northstard_session": value}) as http:
        assert (await http.get("/api/sources")).status_code == 200
    async with client(daemon) as http:
        bad = await http.get("/?token=nsd_wrong")
        assert bad.status_code == 303 and bad.headers["location"] == "/login?error=link"
        assert "not accepted" in (await http.get("/login?error=link")).text
        assert_refused(await http.get("/api/sources?token=nsd_wrong"), "invalid_token")
        api = await http.get(f"/api/sources?token={TOKEN}")  # the API serves the data directly
        assert api.status_code == 200 and "set-cookie" not in api.headers
        elsewhere = await http.get(f"{daemon.url}//evil.example/x?token={TOKEN}")
        assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/evil.example/x"


async def test_a_removed_token_invalidates_its_cookie(tmp_path: Path) -> None:
    both = {"tokens": [digest(TOKEN), digest(OTHER)]}
    cookies: dict[str, str] = {}
    async with running(tmp_path, auth=both) as daemon, client(daemon) as http:
        for token in (TOKEN, OTHER):
            cookies[token] = session_cookie(await login(http, token))
            http.cookies.clear()
    async with running(tmp_path, auth={"tokens": [digest(OTHER)]}) as daemon:
        for token, status in ((TOKEN, 401), (OTHER, 200)):
            async with client(daemon, cookies={"northstard_session": cookies[token]}) as http:
                assert (await http.get("/api/sources")).status_code == status, token


# -- the streams -------------------------------------------------------------------------------


async def first_ws_message(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    async with open_websocket_url(url, extra_headers=extra) as ws:
        message: dict[str, Any] = json.loads(await ws.get_message())
        return message


async def test_the_websocket_needs_a_token(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH)
    url = ws_url(daemon.url)
    for headers in (None, {"Authorization": "Bearer nsd_wrong"}, {"Cookie": "northstard_session=a.1.b"}):
        with pytest.raises(ConnectionRejected) as refused:
            await first_ws_message(url, headers)
        assert refused.value.status_code == 401
        assert json.loads(refused.value.body or b"{}")["error"] == "unauthorized"
        assert dict(refused.value.headers)[b"www-authenticate"].startswith(b"Bearer")
    async with client(daemon) as http:
        value = session_cookie(await login(http))
    assert (await first_ws_message(url, BEARER))["type"] == "snapshot"
    assert (await first_ws_message(url, {"Cookie": f"northstard_session={value}"}))["type"] == "snapshot"
    assert (await first_ws_message(f"{url}?token={TOKEN}"))["type"] == "snapshot"


async def first_sse_event(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str:
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                return line[len("event: "):]
    raise AssertionError("the stream ended")


async def test_sse_needs_a_token(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH)
    async with client(daemon) as http:
        assert_refused(await http.get("/api/pnl/stream"))
        assert_refused(await http.get("/api/pnl/stream", headers={"Authorization": "Bearer x"}),
                       "invalid_token")
        value = session_cookie(await login(http))
        http.cookies.clear()
        assert await first_sse_event(http, "/api/pnl/stream", BEARER) == "snapshot"
        cookie = {"Cookie": f"northstard_session={value}"}
        assert await first_sse_event(http, "/api/pnl/stream", cookie) == "snapshot"
        assert await first_sse_event(http, f"/api/pnl/stream?token={TOKEN}", {}) == "snapshot"


async def test_grpc_accepts_the_auth_tokens(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH, grpc={**GRPC, "tokens": [digest(OTHER)]})

    async def current(token: str | None) -> Any:
        async def call(client: Any) -> Any:
            try:
                return (await client.current()).seq
            except grpc.aio.AioRpcError as exc:
                return exc.code()

        return await with_client(daemon, call, token)

    assert isinstance(await current(TOKEN), int)
    assert isinstance(await current(OTHER), int)  # grpc.tokens: still accepted, by gRPC only
    assert await current(None) == grpc.StatusCode.UNAUTHENTICATED
    async with client(daemon) as http:
        assert_refused(await http.get("/api/sources", headers={"Authorization": f"Bearer {OTHER}"}),
                       "invalid_token")


# -- CORS and security headers -----------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"}


async def test_cors_answers_listed_origins_on_rest_and_sse(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH, server={"cors_allowed_origins": [ORIGIN]})
    async with client(daemon) as http:
        for path in ("/api/pnl/current", "/api/pnl/stream"):
            allowed = await http.options(path, headers=preflight(ORIGIN))
            assert allowed.status_code == 204, path
            assert allowed.headers["access-control-allow-origin"] == ORIGIN
            assert allowed.headers["access-control-allow-credentials"] == "true"
            assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
            assert "Origin" in allowed.headers["vary"]
            other = await http.options(path, headers=preflight("https://evil.example"))
            assert other.status_code == 204 and "access-control-allow-origin" not in other.headers
        read = await http.get("/api/sources", headers={**BEARER, "Origin": ORIGIN})
        assert read.headers["access-control-allow-origin"] == ORIGIN and "Origin" in read.headers["vary"]
        refused = await http.get("/api/sources", headers={"Origin": ORIGIN})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN
        evil = await http.get("/api/sources", headers={**BEARER, "Origin": "https://evil.example"})
        assert evil.status_code == 200 and "access-control-allow-origin" not in evil.headers
        sse_refused = await http.get("/api/pnl/stream", headers={"Origin": ORIGIN})
        assert sse_refused.status_code == 401 and sse_refused.headers["access-control-allow-origin"] == ORIGIN
        for origin, echoed in ((ORIGIN, ORIGIN), ("https://evil.example", None)):
            async with http.stream("GET", "/api/pnl/stream", headers={**BEARER, "Origin": origin}) as stream:
                assert stream.status_code == 200
                assert stream.headers.get("access-control-allow-origin") == echoed


async def test_a_star_origin_never_gets_credentials(start_daemon: Any) -> None:
    daemon = await start_daemon(server={"cors_allowed_origins": ["*"]})
    async with client(daemon) as http:
        answer = await http.get("/api/sources", headers={"Origin": "https://any.example"})
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
        async with http.stream("GET", "/api/pnl/stream", headers={"Origin": "https://any.example"}) as sse:
            assert sse.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in sse.headers


def inline_code(html: str) -> list[str]:
    """Inline scripts, inline event handlers, style attributes and style elements of a page."""
    scripts = [tag for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag]
    return scripts + re.findall(r"\s(on[a-z]+|style)=", html) + re.findall(r"<style\b", html)


async def test_pages_carry_the_security_headers(start_daemon: Any) -> None:
    daemon = await start_daemon(auth=AUTH)
    async with client(daemon) as http:
        pages = {"/login": await http.get("/login")}
        await login(http)
        pages["/"] = await http.get("/")
        for path, page in pages.items():
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            csp = {d.split()[0]: d.split()[1:] for d in page.headers["content-security-policy"].split("; ")}
            assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'self'"], path
            assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'self'"], path
            assert "'unsafe-inline'" not in page.headers["content-security-policy"]
            assert page.headers["referrer-policy"] == "no-referrer"
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["x-content-type-options"] == "nosniff"
            assert inline_code(page.text) == [], path
        others = [await http.get("/static/login.js"), await http.get("/api/sources"),
                  await http.post("/logout"), await http.get("/api/sources")]
        assert [r.status_code for r in others] == [200, 200, 303, 401]
        assert all(r.headers["x-content-type-options"] == "nosniff" for r in others)
