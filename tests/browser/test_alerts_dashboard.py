"""The alerts banner in a real Chromium against the real daemon: severity, since when, the link to
what moved, the badge count, the history list, and acknowledge kept per browser across a reload."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'").expect

RULES = {"spend": {"metric": "costs.total", "above": "-1.00", "severity": "critical"},
         "quiet_note": {"metric": "net_pnl", "above": "-1000000000.00", "severity": "info"}}


def test_banner_badge_history_and_acknowledge(start_daemon: Any, new_page: Any) -> None:
    daemon = start_daemon(alerts=RULES)
    page = new_page()
    page.goto(daemon.url)
    rows = page.get_by_test_id("alert-banner-row")
    expect(rows).to_have_count(2)
    critical = page.locator("[data-testid=alert-banner-row][data-alert=spend]")
    expect(critical).to_have_attribute("data-severity", "critical")
    expect(critical).to_have_class(re.compile(r"\balert-critical\b"))
    expect(critical.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    fired = next(e for e in httpx.get(f"{daemon.url}/api/alerts").json()["current"] if e["alert"] == "spend")
    epoch, seq = fired["epoch"], fired["seq"]
    expect(critical.get_by_test_id("alert-explain")).to_have_attribute(
        "href", f"#/explain?from={epoch}:{seq - 1}&to={epoch}:{seq}")
    expect(page.get_by_test_id("alerts-badge")).to_have_text("2")
    expect(page.get_by_test_id("alert-history-row")).to_have_count(2)
    critical.get_by_test_id("alert-ack").click()
    expect(rows).to_have_count(1)
    expect(page.get_by_test_id("alerts-badge")).to_have_text("1")
    page.reload()
    expect(page.get_by_test_id("alerts-badge")).to_have_text("1")  # the acknowledgement stayed
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-alert", "quiet_note")
    rows.first.get_by_test_id("alert-ack").click()
    expect(page.get_by_test_id("alerts-banner")).to_be_hidden()
    expect(page.get_by_test_id("alerts-badge")).to_be_hidden()
    other = new_page()  # another browser (a fresh context): its own acknowledgements
    other.goto(daemon.url)
    expect(other.get_by_test_id("alert-banner-row")).to_have_count(2)
