"""The dashboard with ``[auth]`` tokens: a ``?token=`` link, the login page, live values after either."""

from __future__ import annotations

from typing import Any

import pytest

from northstard.policy.auth import digest

from .pages import AT_OR_PAST, wait_transport

expect = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'").expect

TOKEN = "nsd_browser-token-of-the-auth-tests"
AUTH = {"tokens": [{"name": "browser", "sha256": digest(TOKEN)}]}
HAS_DIGIT = "() => /\\d/.test(document.querySelector('[data-testid=net-pnl]').textContent)"


def shows_live_values(page: Any) -> None:
    page.wait_for_function(HAS_DIGIT)
    wait_transport(page, "ws")
    first = page.get_by_test_id("net-pnl").text_content()
    page.wait_for_function("(first) => document.querySelector('[data-testid=net-pnl]').textContent !== first",
                           arg=first)


def test_a_token_link_opens_the_live_dashboard_and_leaves_the_address_bar(
    start_daemon: Any, new_page: Any
) -> None:
    daemon = start_daemon(auth=AUTH)
    page = new_page()
    page.goto(f"{daemon.url}/?token={TOKEN}&stepup=5")
    assert page.url == f"{daemon.url}/?stepup=5"
    shows_live_values(page)
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
        ("northstard_session", True, "Strict")]
    assert TOKEN not in cookies[0]["value"]
    server = page.request.get(f"{daemon.url}/api/pnl/current")  # with the page's cookie
    assert server.status == 200
    page.wait_for_function(AT_OR_PAST, arg=server.json()["seq"])
    assert page.evaluate("() => window.northstard.state.epoch") == server.json()["epoch"]


def test_the_login_page_lets_a_person_in(start_daemon: Any, new_page: Any) -> None:
    daemon = start_daemon(auth=AUTH)
    page = new_page()
    page.goto(daemon.url)
    assert page.url == f"{daemon.url}/login"
    expect(page.get_by_test_id("login-token")).to_be_focused()  # login.js ran under the CSP
    page.get_by_test_id("login-token").fill("nsd_wrong")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("That token is not accepted.")
    page.get_by_test_id("login-token").fill(TOKEN)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{daemon.url}/")
    shows_live_values(page)
    page.goto(f"{daemon.url}/?transport=poll")
    wait_transport(page, "poll")
    page.context.clear_cookies()  # the session ends: the next poll's 401 sends the page to /login
    page.wait_for_url(f"{daemon.url}/login")
