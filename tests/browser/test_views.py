"""Drill-down, "What moved" and statements in a real Chromium against the real daemon.

A scripted source holds still (the test pushes its records), so each figure
and the records behind it can be compared exactly with what the API says.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from northstard.core.records import Cost, Invoice, Retract

from .pages import wait_transport

expect = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'").expect
LEDGER = {"ledger": {"plugin": "scripted"}}


def exact(text: str) -> Decimal:
    """A figure the views show exactly ("-1,234.5678"): separators are the only formatting."""
    return Decimal(text.replace(",", "").replace("+", ""))


def at(minutes_ago: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)


BOOKS = [
    Cost(id="c1", amount=Decimal("1.2345"), category="ai", model="claude-opus-4", agent="atlas", ts=at(50)),
    Cost(id="c2", amount=Decimal("0.10"), category="ai", model="claude-sonnet-4", agent="atlas", ts=at(40)),
    Cost(id="c3", amount=Decimal("7.5"), category="infrastructure", agent="borealis", ts=at(30)),
    Cost(id="c4", amount=Decimal("2.0001"), category="ai", model="claude-opus-4", agent="borealis",
         ts=at(20)),
    Invoice(id="i1", total=Decimal("120.00"), paid=Decimal("120.00"), status="paid", agent="atlas",
            ts=at(10)),
]


def push(daemon: Any, records: list[Any]) -> None:
    from scripted import FEEDS

    daemon.call(FEEDS["ledger"].push, records)


def ledger_daemon(start_daemon: Any) -> Any:
    from scripted import FEEDS, Feed

    FEEDS["ledger"] = Feed("ledger")
    daemon = start_daemon(LEDGER)
    push(daemon, BOOKS)
    settled_doc(daemon.url, lambda d: Decimal(d["costs"]["total"]) == Decimal("10.8346"))
    return daemon


def settled_doc(base: str, ready: Any) -> dict[str, Any]:
    """The document once ``ready(doc)`` holds (long-polls for changes; no sleep)."""
    for _ in range(40):
        snap = httpx.get(f"{base}/api/pnl/current", timeout=10).json()
        if ready(snap["data"]):
            return dict(snap["data"])
        httpx.get(f"{base}/api/pnl/changes", params={"since": f"{snap['epoch']}:{snap['seq']}", "wait": 5},
                  timeout=15)
    raise AssertionError("the pushed records never showed in the document")


def figure(doc: dict[str, Any], path: str) -> Decimal:
    """The amount at a dotted figure path ("costs.by_model.claude-opus-4", "agents.atlas.net")."""
    head, rest = path.split(".", 1) if "." in path else (path, "")
    if head == "agents":
        agent, part = rest.rsplit(".", 1)
        return Decimal(doc["agents"][agent][part])
    if rest.startswith("by_"):
        group, name = rest.split(".", 1)
        return Decimal(doc[head][group][name])
    return Decimal(doc[head][rest] if rest else doc[head])


def page_position(context: Any, base: str) -> str:
    """The position a closed page saved in its context's localStorage ("epoch:seq")."""
    probe = context.new_page()
    probe.route("**/*", lambda route: route.fulfill(body="<!doctype html><title>probe</title>",
                                                      content_type="text/html"))
    probe.goto(base)  # same origin, a blank page: the dashboard does not run and overwrite it
    raw = probe.evaluate("() => localStorage.getItem('northstard.last')")
    probe.close()
    assert raw, "the page saved no position"
    saved = json.loads(raw)
    return f"{saved['epoch']}:{saved['seq']}"


def open_live(page: Any, base: str) -> None:
    page.goto(base)
    wait_transport(page, "ws")
    page.wait_for_function("() => /\\d/.test(document.querySelector('[data-testid=costs-total]')"
                           ".textContent)")


def drilled_sum(page: Any) -> Decimal:
    """Load every page of the records view; the sum it shows of the figure's contributions."""
    page.get_by_test_id("records-sum").wait_for()  # the first page is in
    more = page.get_by_test_id("records-more")
    while more.is_visible():
        count = page.get_by_test_id("record").count()
        more.click()
        page.wait_for_function("(n) => document.querySelectorAll('[data-testid=record]').length > n",
                               arg=count)
    return exact(page.get_by_test_id("records-sum").text_content())


def test_routes_and_exact_amounts(start_daemon: Any, new_page: Any) -> None:
    """The pure parts: hash routes parse and print back; amounts keep every digit."""
    page = new_page()
    page.goto(start_daemon().url)
    page.wait_for_function("() => window.northstard && window.northstard.routes")
    routes = page.evaluate("""async () => {
      const r = window.northstard.routes;
      const { statementRange } = await import('/static/views.js');
      const hrefs = ['#/records?kind=cost&model=claude-opus-4&figure=costs.by_model.claude-opus-4',
                     '#/explain?from=abc%3A3&to=abc%3A9',
                     '#/statement?period=week&from=2026-11-02&to=2026-12-07'];
      const again = (h) => { const p = r.parseRoute(h); return r.routeHref(p.view, p.params); };
      return {
        parsed: hrefs.map((h) => r.parseRoute(h)), printed: hrefs.map(again),
        live: ['', '#main', '#/', '#/nope?x=1'].map((h) => r.parseRoute(h).view),
        agent: r.figureFilters('agents.atlas.costs'),
        model: r.figureHref('costs.by_model.a.b', { from: '2026-12-03T10:00:00.000Z' }),
        month: statementRange('month', Date.UTC(2026, 11, 3)),
        week: statementRange('week', Date.UTC(2026, 11, 3)),
      };
    }""")
    assert routes["parsed"][0] == {"view": "records", "params": {
        "kind": "cost", "model": "claude-opus-4", "figure": "costs.by_model.claude-opus-4"}}
    assert routes["parsed"][1]["params"] == {"from": "abc:3", "to": "abc:9"}
    assert routes["printed"] == ["#/records?kind=cost&model=claude-opus-4"
                                 "&figure=costs.by_model.claude-opus-4",
                                 "#/explain?from=abc%3A3&to=abc%3A9",
                                 "#/statement?period=week&from=2026-11-02&to=2026-12-07"]
    assert routes["live"] == ["live"] * 4
    assert routes["agent"] == {"agent": "atlas", "kind": "cost"}
    assert routes["model"] == ("#/records?kind=cost&model=a.b&from_time=2026-12-03T10%3A00%3A00.000Z"
                               "&figure=costs.by_model.a.b")
    assert routes["month"] == {"from": "2026-01-01", "to": "2027-01-01"}
    assert routes["week"] == {"from": "2026-09-14", "to": "2026-12-07"}  # 12 weeks from a Monday
    cases = {"-1234.5678": "-1,234.5678", "0.10": "0.10", "1000000": "1,000,000", "-0.0": "0.0",
             "123456789012345678.123456789": "123,456,789,012,345,678.123456789", ".5": "0.5"}
    shown = page.evaluate("(c) => c.map((v) => window.northstard.format.fmtExact(v))", list(cases))
    assert dict(zip(cases, shown, strict=True)) == cases


def test_each_figure_drills_down_to_records_that_add_up_to_it(
    start_daemon: Any, new_page: Any, output: Path
) -> None:
    daemon = ledger_daemon(start_daemon)
    doc = settled_doc(daemon.url, lambda d: True)
    page = new_page()
    open_live(page, daemon.url)
    clicks = [
        ("costs.by_model.claude-opus-4", page.locator("[data-figure='costs.by_model.claude-opus-4']")),
        ("net_pnl", page.get_by_test_id("net-pnl")),
        ("agents.borealis.costs", page.locator("[data-figure='agents.borealis.costs']")),
        ("revenue.invoiced", page.get_by_test_id("revenue-invoiced")),
    ]
    for path, link in clicks:
        link.click()
        page.wait_for_url(f"**#/records?*figure={path}*")
        assert drilled_sum(page) == figure(doc, path), path
        rows = page.locator("[data-testid=record][data-status=current]")
        cells = rows.locator("[data-testid=record-contribution] .amt").all_text_contents()
        assert cells and sum(map(exact, cells)) == figure(doc, path), path  # each record's, added up here
        page.go_back()
        page.get_by_test_id("net-pnl").wait_for()
        assert urlparse(page.url).fragment in ("", "/")
    # A chart bucket (a day of the daily table) opens the records of its time range.
    page.get_by_text("Daily figures").click()
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    page.get_by_test_id("daily-table").get_by_role("link").first.click()
    page.wait_for_url(f"**from_time={day:%Y-%m-%dT%H}%3A00%3A00.000Z"
                      f"&to_time={day + timedelta(days=1):%Y-%m-%dT%H}%3A00%3A00.000Z&figure=net_pnl")
    page.get_by_test_id("records-summary").get_by_test_id("records-sum").wait_for()
    page.screenshot(path=output / "desktop-light-records.png", full_page=True)
    page.go_back()

    # A shared URL opens the same view; pages of 2 follow next_cursor and still add up.
    other = new_page()
    other.goto(f"{daemon.url}/#/records?kind=cost&limit=2&figure=costs.total")
    assert drilled_sum(other) == Decimal(doc["costs"]["total"])
    assert other.get_by_test_id("record").count() == 4
    assert other.get_by_role("heading", level=1).text_content() == "Records behind Costs · total"


def test_replaced_and_retracted_records_are_marked(start_daemon: Any, new_page: Any) -> None:
    daemon = ledger_daemon(start_daemon)
    push(daemon, [Cost(id="c2", amount=Decimal("0.25"), category="ai", model="claude-sonnet-4", agent="atlas",
                       ts=BOOKS[1].ts), Retract(id="c3", target_kind="cost")])
    doc = settled_doc(daemon.url, lambda d: Decimal(d["costs"]["total"]) == Decimal("3.4846"))
    page = new_page()
    page.goto(f"{daemon.url}/#/records?kind=cost&status=all&figure=costs.total")
    # Replaced and retracted versions add nothing.
    assert drilled_sum(page) == Decimal(doc["costs"]["total"])
    rows = page.get_by_test_id("record")
    statuses = [rows.nth(i).get_attribute("data-status") for i in range(rows.count())]
    assert statuses.count("retracted") == 1 and statuses.count("replaced") == 1, statuses
    retracted = page.locator("[data-testid=record][data-status=retracted]")
    assert "c3" in retracted.text_content() and "retracted" in retracted.text_content()


def test_what_moved_lists_the_explain_items_since_midnight_and_the_last_visit(
    start_daemon: Any, new_page: Any, output: Path
) -> None:
    daemon = ledger_daemon(start_daemon)
    page = new_page()
    open_live(page, daemon.url)
    midnight = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    today = page.get_by_test_id("moved-today")
    today.get_by_test_id("moved-item").first.wait_for()
    explained = httpx.get(f"{daemon.url}/api/pnl/explain", params={"from_time": midnight, "limit": 5}).json()
    labels = [item["label"] for item in explained["items"]]
    expect(today.get_by_test_id("moved-item")).to_have_count(len(labels))
    shown = today.get_by_test_id("moved-item").all_text_contents()
    assert [text.startswith(label) for text, label in zip(shown, labels, strict=True)] == [True] * len(labels)
    net = Decimal(explained["difference"]["net_pnl"])
    assert exact(today.locator(".moved-net .amt").text_content()) == net
    status = page.get_by_role("status").filter(has_text="Since 00:00 UTC: Net")  # what a screen reader hears
    expect(status).to_have_attribute("aria-live", "polite")
    context = page.context
    page.close()  # the page keeps the position it saw last (pagehide)
    seen = page_position(context, daemon.url)

    # Back later: more has happened since; the panel explains from the position this browser last saw.
    push(daemon, [Cost(id="c9", amount=Decimal("300.00"), category="ai", model="claude-opus-4", agent="atlas",
                       ts=at(0))])
    settled_doc(daemon.url, lambda d: Decimal(d["costs"]["total"]) == Decimal("310.8346"))
    later = new_page(context=context)
    later.goto(daemon.url)
    visit = later.get_by_test_id("moved-visit")
    visit.get_by_test_id("moved-item").first.wait_for()
    since = httpx.get(f"{daemon.url}/api/pnl/explain", params={"from": seen, "limit": 5}).json()
    assert since["from"]["position"] == seen
    later.screenshot(path=output / "desktop-light-what-moved.png")
    assert visit.get_by_test_id("moved-item").first.text_content().startswith(since["items"][0]["label"])
    assert exact(visit.locator(".moved-net .amt").text_content()) == Decimal(since["difference"]["net_pnl"])
    assert Decimal(since["difference"]["costs.total"]) == Decimal("300.00")  # c9, and nothing seen before
    # Each item opens the records behind it; "All contributors" the full explanation.
    visit.get_by_test_id("moved-item").first.get_by_role("link").click()
    later.wait_for_url("**#/records?*")
    expect(later.locator("[data-testid=record].rec-focus")).to_contain_text("c9")
    later.go_back()
    visit.get_by_role("link", name="All contributors").click()
    later.wait_for_url("**#/explain?from=*")
    later.get_by_test_id("explain-item").first.wait_for()
    assert exact(later.locator("[data-testid=explain-net] .amt").text_content()) == Decimal(
        since["difference"]["net_pnl"])


def test_statement_page_shows_the_table_and_downloads_the_same_csv(
    start_daemon: Any, new_page: Any, output: Path
) -> None:
    daemon = ledger_daemon(start_daemon)
    page = new_page()
    open_live(page, daemon.url)
    page.get_by_test_id("nav-statement").click()
    page.wait_for_url("**#/statement?period=month&from=*&to=*")  # the URL names the range shown
    page.get_by_role("combobox", name="Period").select_option("day")  # the last 30 days by default
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**#/statement?period=day&*")
    page.get_by_test_id("statement-row").first.wait_for()
    query = dict(p.split("=") for p in urlparse(page.url).fragment.split("?", 1)[1].split("&"))
    body = httpx.get(f"{daemon.url}/api/pnl/statement", params=query).json()
    rows = page.get_by_test_id("statement-row")
    assert rows.count() == len(body["rows"]) == 30
    last = body["rows"][-1]
    row = page.locator(f"[data-testid=statement-row][data-start='{last['start']}']")
    assert exact(row.locator("[data-col=net]").text_content()) == Decimal(last["net"])
    assert exact(row.locator("[data-col=costs_total]").text_content()) == Decimal(last["costs_total"])
    page.screenshot(path=output / "desktop-light-statement.png", full_page=True)
    with page.expect_download() as info:
        page.get_by_test_id("statement-csv").click()
    downloaded = Path(info.value.path()).read_text()
    table = list(csv.DictReader(io.StringIO(downloaded)))
    assert [r["net"] for r in table] == [r["net"] for r in body["rows"]]
    assert [r["costs_total"] for r in table] == [r["costs_total"] for r in body["rows"]]
    assert table[-1]["costs_ai"] == last["costs_by_category"]["ai"]


def test_keyboard_alone_reaches_a_drilldown_and_escape_comes_back(start_daemon: Any, new_page: Any) -> None:
    daemon = ledger_daemon(start_daemon)
    page = new_page()
    open_live(page, daemon.url)
    page.locator("body").focus()
    for _ in range(30):  # Tab through the page until a figure has the focus
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.figure"):
            break
    target = page.evaluate("() => document.activeElement.dataset.figure")
    assert target, "Tab never reached a figure"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**figure={target}*")
    page.get_by_test_id("records-sum").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "view-title"  # the view's heading, announced
    assert page.get_by_test_id("records-summary").get_attribute("aria-live") == "polite"
    assert page.locator("table[data-testid=records] th[scope=col]").count() >= 5
    page.keyboard.press("Escape")
    page.get_by_test_id("net-pnl").wait_for()
    assert page.evaluate("() => document.activeElement.dataset.figure") == target  # focus back where it was


def test_a_last_visit_the_daemon_no_longer_holds_is_said_so(start_daemon: Any, new_page: Any) -> None:
    daemon = ledger_daemon(start_daemon)
    page = new_page()
    saved = {"type": "snapshot", "epoch": "0123456789abcd", "seq": 3, "ts": 1_700_000_000_000,
             "data": {"net_pnl": "1.00", "currency": "USD"}}
    page.context.add_init_script(f"localStorage.setItem('northstard.last', {json.dumps(json.dumps(saved))})")
    with page.expect_response(lambda r: "/api/pnl/explain?from=0123456789abcd" in r.url) as info:
        page.goto(daemon.url)
    assert info.value.status == 410 and info.value.json()["error"] == "position_gone"
    visit = page.get_by_test_id("moved-visit")
    expect(visit).to_have_attribute("data-state", "gone")
    expect(visit.locator(".moved-net")).to_have_text(
        "Your last visit is older than the history the daemon holds.")
    expect(page.get_by_test_id("moved-today")).to_have_attribute("data-state", "ok")  # the rest still answers


def test_chart_buckets_are_one_tab_stop_with_arrows(start_daemon: Any, new_page: Any) -> None:
    daemon = ledger_daemon(start_daemon)
    page = new_page()
    open_live(page, daemon.url)
    page.wait_for_function("() => document.querySelector('#spark a.chart-link[tabindex=\"0\"]')")
    stops = page.locator("#spark a.chart-link[tabindex='0']")
    assert stops.count() == 1  # however many buckets, one Tab stop
    page.locator("body").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.matches('#spark a.chart-link')"):
            break
    newest = page.evaluate("() => document.activeElement.dataset.t")
    assert newest == page.locator("#spark a.chart-link").last.get_attribute("data-t")
    page.keyboard.press("Home")
    oldest = page.evaluate("() => document.activeElement.dataset.t")
    assert oldest == page.locator("#spark a.chart-link").first.get_attribute("data-t")
    page.keyboard.press("Enter")
    page.wait_for_url("**#/records?from_time=*&to_time=*&figure=net_pnl")
    params = dict(p.split("=", 1) for p in urlparse(page.url).fragment.split("?", 1)[1].split("&"))
    start, end = (datetime.fromisoformat(params[k].replace("%3A", ":").replace("Z", "+00:00"))
                  for k in ("from_time", "to_time"))
    assert end - start == timedelta(minutes=1)  # one 1h-range bucket
    assert int(start.timestamp() * 1000) == int(oldest)
    page.get_by_test_id("records-sum").wait_for()
