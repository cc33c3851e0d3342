"""Alerts in the real daemon: a budget rule fires on a committed change, shows in /api/alerts and
/metrics with the explain link of that change, survives a restart without a second event, resolves."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from northstard.core.records import Cost, Invoice

from scripted import FEEDS

RULES = {
    "budget": {"metric": "costs.by_category.ai", "window": "day", "above": "10.00",
               "severity": "critical"},
    "drawdown": {"metric": "net_pnl", "below": "-10.00", "hysteresis": "2.00"},
}
SECTIONS: dict[str, Any] = {"alerts": RULES}
SOURCES = {"feed": {"plugin": "scripted"}}


def cost(i: int, amount: str) -> Cost:
    return Cost(id=f"c{i}", amount=Decimal(amount), category="ai", model="claude-sonnet-4",
                ts=datetime.now(UTC))


async def wait_event(http: httpx.AsyncClient, after: int, alert: str, event: str) -> dict[str, Any]:
    for _ in range(20):
        body = (await http.get("/api/alerts", params={"after": after, "wait": 10})).json()
        for found in body["events"]:
            if (found["alert"], found["event"]) == (alert, event):
                return found
        after = body["last_id"]
    raise AssertionError(f"no {alert} {event} event: {body}")


async def test_a_budget_fires_persists_and_resolves(tmp_path: Path) -> None:
    db_dir = tmp_path
    async with _daemon(db_dir) as daemon, httpx.AsyncClient(base_url=daemon.url, timeout=20) as http:
        await FEEDS["feed"].push([cost(1, "4.00")])
        await FEEDS["feed"].push([cost(2, "7.00")])
        fired = await wait_event(http, 0, "budget", "firing")
        assert fired["value"] == "11.00" and fired["severity"] == "critical"
        epoch, seq = fired["epoch"], fired["seq"]
        assert fired["explain"] == f"/api/pnl/explain?from={epoch}:{seq - 1}&to={epoch}:{seq}"
        changes = (await http.get("/api/pnl/changes", params={"since": f"{epoch}:{seq - 1}"})).json()
        assert changes["seq"] >= seq  # the firing change is a committed, resumable position
        down = await wait_event(http, 0, "drawdown", "firing")
        metrics = (await http.get("/metrics")).text
        assert 'northstard_alert_firing{alert="budget",severity="critical"} 1.0' in metrics
        assert 'northstard_alert_firing{alert="drawdown",severity="warning"} 1.0' in metrics
    async with _daemon(db_dir) as daemon, httpx.AsyncClient(base_url=daemon.url, timeout=20) as http:
        body = (await http.get("/api/alerts")).json()
        assert {c["alert"] for c in body["current"]} == {"budget", "drawdown"}
        assert [(h["alert"], h["event"]) for h in body["history"]] == [
            ("drawdown", "firing"), ("budget", "firing")]  # no second event after the restart
        # revenue lifts the net to -1.00: past the threshold and the 2.00 hysteresis
        await FEEDS["feed"].push([Invoice(id="in-1", total=Decimal("10.00"), paid=Decimal(0),
                                          status="open", ts=datetime.now(UTC))])
        resolved = await wait_event(http, down["id"], "drawdown", "resolved")
        assert resolved["value"] == "-1.00"
        page = (await http.get("/api/alerts", params={"limit": 2})).json()
        assert len(page["history"]) == 2 and page["next_before"] == page["history"][-1]["id"]
        rest = (await http.get("/api/alerts", params={"limit": 2, "before": page["next_before"]})).json()
        assert [h["id"] for h in rest["history"]] == [fired["id"]]
        bad = await http.get("/api/alerts", params={"before": "x"})
        assert bad.status_code == 400 and bad.json()["error"] == "bad_parameter"


def _daemon(tmp_path: Path) -> Any:
    from contextlib import asynccontextmanager

    import trio

    from northstard.daemon import run_daemon

    from conftest import build_config, plugins_for_tests

    @asynccontextmanager
    async def run() -> Any:
        config = build_config(tmp_path, SOURCES, **SECTIONS)
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(
                lambda task_status: run_daemon(config, plugins_for_tests(), handle_signals=False,
                                               task_status=task_status))
            try:
                yield daemon
            finally:
                daemon.stop()

    return run()


async def test_alert_messages_reach_websocket_and_sse_clients(start_daemon: Any) -> None:
    import json

    import trio
    from trio_websocket import open_websocket_url

    from clients import sse_events, ws_url

    daemon = await start_daemon(SOURCES, alerts={"budget": RULES["budget"]})
    got: dict[str, dict[str, Any]] = {}
    sse_ready = trio.Event()

    async def read_sse(client: httpx.AsyncClient) -> None:
        async for event_id, event, data in sse_events(client, f"{daemon.url}/api/pnl/stream"):
            sse_ready.set()
            if event == "alert":
                assert event_id == ""  # no id: Last-Event-ID stays a stream position
                got["sse"] = data
                return

    async with httpx.AsyncClient(timeout=20) as client, trio.open_nursery() as nursery, \
            open_websocket_url(ws_url(daemon.url)) as ws:
        nursery.start_soon(read_sse, client)
        assert json.loads(await ws.get_message())["type"] == "snapshot"
        await sse_ready.wait()
        await FEEDS["feed"].push([cost(1, "12.00")])
        with trio.fail_after(20):
            while "ws" not in got:
                message = json.loads(await ws.get_message())
                if message["type"] == "alert":
                    got["ws"] = message
    assert got["ws"] == got["sse"]
    assert got["ws"]["alert"] == "budget" and got["ws"]["event"] == "firing"
    assert got["ws"]["explain"].endswith(f"to={got['ws']['epoch']}:{got['ws']['seq']}")
