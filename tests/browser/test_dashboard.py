"""The dashboard in a real Chromium against the real daemon (demo source, fixed seed)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from .history import current_figures, seed_history
from .pages import (
    DESKTOP,
    PHONE,
    check_applied,
    free_port,
    money,
    read_state,
    wait_applied_via,
    wait_in_sync,
    wait_transport,
)

expect = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'").expect
STATIC = Path(__file__).resolve().parents[2] / "northstard" / "edges" / "http" / "static"


def test_shows_the_live_value_the_server_has(start_daemon: Any, new_page: Any) -> None:
    page = new_page()
    began = time.monotonic()
    daemon = start_daemon()
    page.goto(daemon.url)
    shown = page.get_by_test_id("net-pnl")
    page.wait_for_function("() => /\\d/.test(document.querySelector('[data-testid=net-pnl]').textContent)",
                           timeout=max(1.0, 2.0 - (time.monotonic() - began)) * 1000)
    assert time.monotonic() - began < 2.0
    first = shown.text_content()
    page.wait_for_function("(first) => document.querySelector('[data-testid=net-pnl]').textContent !== first",
                           arg=first)
    wait_transport(page, "ws")
    state = wait_in_sync(page, daemon.url, texts=["trading-realized", "costs-estimated", "revenue-invoiced"])
    doc = state["doc"]
    assert state["texts"] == {
        "trading-realized": money(doc["trading"]["realized"]),
        "costs-estimated": money(doc["costs"]["estimated"]),
        "revenue-invoiced": money(doc["revenue"]["invoiced"]),
    }
    assert page.get_by_test_id("source-demo").get_attribute("data-status") == "ok"
    expect(page.get_by_test_id("latency")).to_have_text(re.compile(r"^latency (<1|\d+) ms$"))
    check_applied(page)


def test_amounts_are_formatted_from_their_digits(start_daemon: Any, new_page: Any) -> None:
    page = new_page()
    page.goto(start_daemon().url)
    cases = {
        "1234.565": "$1,234.56", "1234.575": "$1,234.58", "-0.004": "$0.00", "0.015": "$0.02",
        "-1234567.891": "-$1,234,567.89", "123456789012345678.995": "$123,456,789,012,345,679.00",
        "1e3": "$1,000.00", "0.1": "$0.10",
    }
    shown = page.evaluate("(cases) => cases.map((c) => window.northstard.format.fmtMoney(c))", list(cases))
    assert dict(zip(cases, shown, strict=True)) == cases
    sums = page.evaluate("""() => [window.northstard.format.decSum(['0.1', 1], ['0.2', 1]),
                                   window.northstard.format.decSum(['1.5', 1], ['2.25', -1])]""")
    assert sums == ["0.3", "-0.75"]


def test_falls_back_to_sse_then_polling_and_steps_back_up(
    start_daemon: Any, relay: Any, new_page: Any
) -> None:
    daemon = start_daemon()
    net = relay(int(urlparse(daemon.url).port or 0))
    blocked = {"ws": True, "sse": False}

    def websocket(ws: Any) -> None:
        if blocked["ws"]:
            ws.close(code=1011, reason="blocked by the test")
        else:
            ws.connect_to_server()

    def event_stream(route: Any) -> None:
        if blocked["sse"]:
            route.abort("connectionrefused")
        else:
            route.continue_()

    page = new_page()
    page.route_web_socket("**/ws*", websocket)
    page.route("**/api/pnl/stream*", event_stream)
    page.goto(f"{net.url}/?stepup=1")
    wait_transport(page, "sse")
    wait_applied_via(page, "sse")
    wait_in_sync(page, daemon.url)

    blocked["sse"] = True
    net.cut()  # the open event stream drops; reconnecting to SSE is refused
    wait_transport(page, "poll")
    wait_applied_via(page, "poll")
    wait_in_sync(page, daemon.url)

    blocked["ws"] = blocked["sse"] = False
    wait_transport(page, "ws")
    wait_applied_via(page, "ws")
    wait_in_sync(page, daemon.url)
    vias = [entry["via"] for entry in check_applied(page)]
    assert vias[0] == "sse"  # the WebSocket never delivered before it was unblocked


def test_offline_shows_the_cached_snapshot_then_comes_back(
    start_daemon: Any, new_page: Any, output: Path
) -> None:
    port = free_port()
    daemon = start_daemon(port=port)
    page = new_page()
    page.goto(f"{daemon.url}/?stepup=1")
    wait_transport(page, "ws")
    wait_in_sync(page, daemon.url)

    daemon.stop()
    wait_transport(page, "offline")
    page.wait_for_function("""() => {
      const saved = JSON.parse(localStorage.getItem('northstard.last') || 'null');
      return saved && saved.seq === window.northstard.state.seq; }""")
    last = read_state(page)
    assert last["shown"] == money(last["doc"]["net_pnl"])
    banner = page.get_by_test_id("banner")
    assert banner.is_visible()
    assert banner.text_content().startswith("Offline — showing the last figures received")
    page.screenshot(path=output / "desktop-light-offline.png", full_page=True)

    # A page opened while the daemon is down (its files from a cache) shows the saved snapshot.
    cached = new_page(context=page.context)

    def from_disk(route: Any) -> None:
        path = urlparse(route.request.url).path
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        if (path == "/" or path.startswith("/static/")) and (STATIC / name).is_file():
            route.fulfill(path=STATIC / name)
        else:
            route.abort("connectionrefused")

    cached.route("**/*", from_disk)
    cached.goto(daemon.url)
    assert cached.get_by_test_id("transport").text_content() == "Offline"
    assert cached.get_by_test_id("net-pnl").text_content() == last["shown"]
    assert cached.get_by_test_id("position").text_content() == f"{last['epoch']}:{last['seq']}"
    assert cached.get_by_test_id("banner").is_visible()
    cached.close()

    daemon.start()  # same port, same SQLite file; no reload
    page.wait_for_function("(seq) => window.northstard.state.seq > seq", arg=last["seq"], timeout=20_000)
    wait_transport(page, "ws")
    wait_in_sync(page, daemon.url)
    assert page.get_by_test_id("banner").is_hidden()


def test_range_picker_changes_the_history_request(start_daemon: Any, new_page: Any) -> None:
    daemon = start_daemon()
    page = new_page()
    page.goto(daemon.url)
    wait_transport(page, "ws")
    for _ in range(2):  # the chart's newest point follows the live value
        state = wait_in_sync(page, daemon.url)
        assert f" to {state['shown']}, " in state["chart"], state["chart"]

    def history(resolution: str) -> Any:
        return lambda r: "/api/pnl/history" in r.url and f"resolution={resolution}&" in r.url

    spans = {}
    for name, resolution, label in (("24h", "5m", "Last 24 hours"), ("7d", "1h", "Last 7 days"),
                                    ("30d", "1h", "Last 30 days"), ("1h", "1m", "Last hour")):
        button = page.get_by_role("group", name="Chart range").get_by_role("button", name=name, exact=True)
        with page.expect_response(history(resolution)) as info:
            button.click()
        assert info.value.status == 200
        assert button.get_attribute("aria-pressed") == "true"
        query = parse_qs(urlparse(info.value.url).query)
        start, end = (datetime.fromisoformat(query[k][0].replace("Z", "+00:00")) for k in ("from", "to"))
        spans[name] = (end - start).total_seconds()
        expect(page.locator("#spark-label")).to_have_text(f"Net P&L · {label.lower()}")
    assert spans == {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "1h": 3600}

    # Keyboard: arrows move along the group and pick.
    picker = page.get_by_role("group", name="Chart range")
    picker.get_by_role("button", name="1h", exact=True).focus()
    with page.expect_request(history("5m")):
        page.keyboard.press("ArrowRight")
    assert picker.get_by_role("button", name="24h", exact=True).get_attribute("aria-pressed") == "true"
    assert page.evaluate("() => document.activeElement.dataset.range") == "24h"


def test_daily_trend_is_close_minus_open_and_follows_live(start_daemon: Any, new_page: Any) -> None:
    daemon = start_daemon()
    page = new_page()
    with page.expect_response(lambda r: "resolution=1d" in r.url) as info:
        page.goto(daemon.url)
    query = parse_qs(urlparse(info.value.url).query)
    start = datetime.fromisoformat(query["from"][0].replace("Z", "+00:00"))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert (today - start).days == 29 and start.hour == 0
    wait_transport(page, "ws")
    state = wait_in_sync(page, daemon.url)
    params = {"resolution": "1d", "from": query["from"][0]}
    day = httpx.get(f"{daemon.url}/api/pnl/history", params=params).json()
    [bucket] = day["buckets"]  # a fresh database: today only
    doc = state["doc"]  # rendered: wait_in_sync saw this seq's position on the page

    def change(now: str, series: str) -> str:
        return str(Decimal(now) - Decimal(bucket[series]["open"]))

    revenue = change(doc["revenue"][doc["revenue"]["basis"]], "revenue")
    costs = change(doc["costs"]["total"], "costs")
    net = money(change(doc["net_pnl"], "net"))
    net = net if net.startswith("-") or net == "$0.00" else f"+{net}"
    assert state["trend"] == f"Today: revenue {money(revenue)} · costs {money(costs)} · net {net}"
    page.get_by_text("Daily figures").click()
    assert page.get_by_test_id("daily-table").locator("tbody tr").count() == 1


def test_a_failing_source_marks_its_figures_stale(start_daemon: Any, new_page: Any, output: Path) -> None:
    from scripted import FEEDS, Feed

    FEEDS["ledger"] = Feed("ledger")
    FEEDS["ledger"].fail("ledger API answered 503")
    daemon = start_daemon({"demo": {"interval_s": 0.25, "seed": 7}, "ledger": {"plugin": "scripted"}})
    page = new_page()
    page.goto(daemon.url)
    row = page.get_by_test_id("source-ledger")
    row.wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=source-ledger]').dataset.status"
                           " === 'failing'")
    assert "ledger API answered 503" in row.text_content()
    stale = page.get_by_test_id("stale-net")
    assert stale.is_visible() and "ledger" in stale.text_content()
    assert page.locator(".trading-card.is-stale, .costs-card.is-stale, .revenue-card.is-stale").count() == 3
    assert page.get_by_test_id("source-demo").get_attribute("data-status") == "ok"
    page.screenshot(path=output / "desktop-light-stale.png", full_page=True)


def test_a_source_refusing_records_shows_degraded_with_the_reason(start_daemon: Any, new_page: Any) -> None:
    from scripted import FEEDS, Feed

    FEEDS["ledger"] = Feed("ledger")
    FEEDS["ledger"].refused = ("row 3: amount: not an ASCII decimal number: '2_5'",)
    daemon = start_daemon({"demo": {"interval_s": 0.25, "seed": 7},
                           "ledger": {"plugin": "scripted", "interval_s": 0.2}})
    page = new_page()
    page.goto(daemon.url)
    row = page.get_by_test_id("source-ledger")
    row.wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=source-ledger]').dataset.status"
                           " === 'degraded'")
    assert "1 record refused: row 3: amount: not an ASCII decimal number" in row.text_content()
    assert row.locator(".pill-degraded").text_content() == "degraded"
    assert "1 degraded" in page.get_by_test_id("sources-summary").text_content()
    assert "ledger" in page.get_by_test_id("stale-net").text_content()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(start_daemon: Any, new_page: Any, output: Path, scheme: str) -> None:
    daemon = start_daemon()
    seed_history(daemon.config.db_path, current_figures(daemon.url), int(time.time() * 1000))
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = new_page(viewport=viewport, color_scheme=scheme)
        page.goto(daemon.url)
        wait_transport(page, "ws")
        page.wait_for_function("""() => document.querySelector('#spark .spark-line')
            && document.querySelector('[data-testid=trend-summary]').textContent""")
        page.screenshot(path=output / f"{name}-{scheme}.png", full_page=True)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{name}: the page is wider than the screen ({width}px)"


def test_page_weight_on_first_load(start_daemon: Any, new_page: Any, output: Path) -> None:
    """Bytes received on a first visit (empty cache): headers + bodies as sent, and WebSocket frames."""
    daemon = start_daemon()
    page = new_page()
    finished: list[Any] = []
    frames: list[int] = []
    page.on("requestfinished", lambda request: finished.append(request))

    def frame(payload: str | bytes) -> None:
        frames.append(len(payload.encode() if isinstance(payload, str) else payload))

    page.on("websocket", lambda ws: ws.on("framereceived", frame))
    page.goto(daemon.url)
    wait_transport(page, "ws")
    page.wait_for_function("""() => document.querySelector('#spark .spark-line')
        && document.querySelector('[data-testid=trend-summary]').textContent""")
    by_path: dict[str, int] = {}
    for request in finished:
        sizes = request.sizes()
        path = urlparse(request.url).path
        by_path[path] = by_path.get(path, 0) + sizes["responseHeadersSize"] + sizes["responseBodySize"]
    files = sum(v for k, v in by_path.items() if k == "/" or k.startswith("/static/"))
    report = {"page_files": files, "http_data": sum(by_path.values()) - files,
              "first_websocket_frame": frames[0], "by_path": by_path}
    (output / "page-weight.json").write_text(json.dumps(report, indent=2) + "\n")
    assert files < 100_000, report
