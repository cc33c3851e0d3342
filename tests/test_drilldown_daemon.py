"""The drill-down routes on a real daemon (scripted source, loopback, real SQLite), across a restart."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import trio

from northstard.core.records import Cost, Invoice, Record
from northstard.daemon import Daemon, run_daemon

from conftest import build_config, plugins_for_tests
from scripted import FEEDS

D = Decimal
T = datetime(2026, 12, 3, 10, tzinfo=UTC)
LEDGER = {"ledger": {"plugin": "scripted"}}


@asynccontextmanager
async def daemon_on(tmp_path: Path, sources: Mapping[str, Any] = LEDGER) -> AsyncIterator[Daemon]:
    config = build_config(tmp_path, sources, grpc={"port": 0, "shutdown_grace_s": 1.0})
    async with trio.open_nursery() as nursery:
        daemon: Daemon = await nursery.start(
            lambda task_status: run_daemon(config, plugins_for_tests(), handle_signals=False,
                                           task_status=task_status))
        try:
            yield daemon
        finally:
            daemon.stop()


async def push_and_wait(http: httpx.AsyncClient, records: list[Record], costs: str) -> str:
    """Push a reading and wait (long-polls) until the document shows ``costs``; its position."""
    await FEEDS["ledger"].push(records)
    while True:
        current = (await http.get("/api/pnl/current")).json()
        if current["data"]["costs"]["total"] == costs:
            return f"{current['epoch']}:{current['seq']}"
        since = f"{current['epoch']}:{current['seq']}"
        await http.get("/api/pnl/changes", params={"since": since, "wait": 5})


def opus(i: int, amount: str) -> Cost:
    return Cost(id=f"c-{i}", amount=D(amount), category="ai", model="claude-opus-4", agent="atlas",
                ts=T)


async def test_records_and_explain_answer_from_the_database_across_a_restart(tmp_path: Path) -> None:
    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        start = await push_and_wait(http, [opus(1, "1.25"), Invoice(
            id="i-1", total=D("500"), paid=D("0"), status="open", ts=T, agent="hermes")], "1.25")
        end = await push_and_wait(http, [opus(2, "300.00")], "301.25")
        page = (await http.get("/api/records", params={"agent": "atlas", "limit": 1})).json()
        assert [r["id"] for r in page["records"]] == ["c-1"] and "next_cursor" in page
        rest = (await http.get("/api/records", params={"agent": "atlas",
                                                       "cursor": page["next_cursor"]})).json()
        assert [r["id"] for r in rest["records"]] == ["c-2"] and "next_cursor" not in rest
        [record] = rest["records"]
        assert record["contributions"] == {
            "agents.atlas.costs": "300.00", "agents.atlas.net": "-300.00",
            "costs.by_category.ai": "300.00", "costs.by_model.claude-opus-4": "300.00",
            "costs.total": "300.00", "net_pnl": "-300.00"}
        assert record["time"] == "2026-12-03T10:00:00.000Z" and record["status"] == "current"
        before = (await http.get("/api/pnl/explain", params={"from": start, "to": end})).json()
    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        after = (await http.get("/api/pnl/explain", params={"from": start, "to": end})).json()
        since = (await http.get("/api/pnl/explain", params={"from": start})).json()
        kinds = (await http.get("/api/records", params={"kind": "invoice"})).json()["records"]
    assert after == before  # the same answer from the database after a restart
    assert before["difference"]["net_pnl"] == "-300.00"
    [item] = before["items"]
    assert item["id"] == "c-2" and item["contributions"]["costs.by_model.claude-opus-4"] == "300.00"
    assert before["groups"]["agent"]["atlas"]["net_pnl"] == "-300.00"
    assert since["difference"]["net_pnl"] == "-300.00"
    assert [r["id"] for r in kinds] == ["i-1"] and kinds[0]["contributions"]["net_pnl"] == "500.00"


async def test_bad_parameters_answer_400_naming_them_and_old_positions_410(tmp_path: Path) -> None:
    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        await push_and_wait(http, [opus(1, "1.25")], "1.25")
        bad = {"/api/records": [("limit", "0"), ("limit", "1001"), ("kind", "nope"),
                                ("cursor", "not-a-cursor"), ("from_time", "yesterday"),
                                ("status", "gone")],
               "/api/pnl/explain": [("from", "nope"), ("limit", "x"), ("to_time", "soon")]}
        for path, cases in bad.items():
            for name, value in cases:
                params = {name: value} if path == "/api/records" or name == "from" else {
                    "from_time": "0", name: value}
                answer = await http.get(path, params=params)
                assert answer.status_code == 400, (path, name, answer.text)
                assert answer.json()["detail"].startswith(name), answer.json()
        gone = await http.get("/api/pnl/explain", params={"from": "someoneelse:1"})
        assert gone.status_code == 410
        assert gone.json()["error"] == "position_gone" and gone.json()["message"]


async def test_a_statement_equals_the_history_closes_in_json_and_csv(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    days = {"period": "day", "from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        await push_and_wait(http, [opus(1, "1.25"), Cost(
            id="c-9", amount=D("0.10"), category="infrastructure", ts=T), Invoice(
            id="i-1", total=D("500"), paid=D("0"), status="open", ts=T)], "1.35")
        current = (await http.get("/api/pnl/current")).json()["data"]
        body = (await http.get("/api/pnl/statement", params=days)).json()
        as_csv = await http.get("/api/pnl/statement", params=days, headers={"Accept": "text/csv"})
        history = (await http.get("/api/pnl/history", params={"resolution": "1d"})).json()
        months = (await http.get("/api/pnl/statement", params={
            "period": "quarter", "from": "2026-11-15", "to": "2027-01-02"})).json()
        refused = [await http.get("/api/pnl/statement", params={**days, **bad}) for bad in (
            {"period": "year"}, {"from": "2026-12"}, {"to": "2001-01-01"}, {"format": "xls"})]
    [row] = body["rows"]
    assert row["net"] == current["net_pnl"] == history["buckets"][-1]["net"]["close"] == "498.65"
    assert row["costs_by_category"] == {"ai": "1.25", "infrastructure": "0.10"}
    assert row["revenue_invoiced"] == "500.00" and row["margin_pct"] == "99.73"
    lines = as_csv.text.splitlines()
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert lines[0] == ("start,end,trading_realized,trading_unrealized,trading_fees,revenue_invoiced,"
                        "revenue_collected,costs_total,costs_ai,costs_infrastructure,net,margin_pct")
    assert lines[1].split(",")[7:] == ["1.35", "1.25", "0.10", "498.65", "99.73"]
    assert [(r["start"], r["end"]) for r in months["rows"]] == [
        ("2026-10-01", "2027-01-01"), ("2027-01-01", "2027-04-01")]
    assert [r.status_code for r in refused] == [400] * 4
    assert [r.json()["detail"].split(":")[0] for r in refused] == ["period", "from", "to", "format"]


async def export(*argv: str) -> trio.CompletedProcess[bytes]:
    return await trio.run_process([sys.executable, "-m", "northstard", "export", *argv],
                                  capture_stdout=True, capture_stderr=True, check=False)


async def test_export_reads_the_database_while_the_daemon_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "northstard.db")
    today = datetime.now(UTC).date()
    days = ["--from", today.isoformat(), "--to", (today + timedelta(days=1)).isoformat()]
    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        await push_and_wait(http, [opus(1, "1.25"), opus(2, "2.50")], "3.75")
        await push_and_wait(http, [opus(2, "3.00")], "4.25")  # c-2 replaced
        as_csv = await export("--db", db, "--from", "2026-12-03", "--to", "2026-12-04")
        as_jsonl = await export("--db", db, "--from", "2026-12-03T00:00:00Z", "--to", "2026-12-04",
                                "--format", "jsonl", "--kind", "cost", "--status", "all")
        nothing = await export("--db", db, "--from", "2026-12-04", "--to", "2026-12-05")
        by_day = await export("--db", db, "--statement", "day", *days)
        api = await http.get("/api/pnl/statement", params={
            "period": "day", "from": days[1], "to": days[3], "format": "csv"})
        bad = await export("--db", db, "--from", "soon", "--to", "2026-12-04")
        assert daemon.supervisor.healthy()  # the daemon went on beside the reader
    assert as_csv.returncode == 0, as_csv.stderr
    rows = as_csv.stdout.decode().splitlines()
    assert rows[0] == "source,kind,id,time,status,net_pnl,fields,contributions"
    assert [r.split(",")[2] + " " + r.split(",")[5] for r in rows[1:]] == ["c-1 -1.25", "c-2 -3.00"]
    lines = [json.loads(line) for line in as_jsonl.stdout.decode().splitlines()]
    assert [(r["id"], r["status"]) for r in lines] == [
        ("c-1", "current"), ("c-2", "replaced"), ("c-2", "current")]
    assert nothing.stdout.decode().splitlines() == [rows[0]]
    assert by_day.returncode == 0 and by_day.stdout.decode() == api.text
    assert bad.returncode == 2 and b"--from" in bad.stderr


async def test_grpc_explain_gives_the_rest_answer(tmp_path: Path) -> None:
    from google.protobuf import json_format

    from northstard._proto.northstar.v1 import pnl_pb2 as pb
    from northstard.edges.grpc.client import open_channel

    from grpc_helpers import on_asyncio, until_serving

    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        start = await push_and_wait(http, [opus(1, "1.25")], "1.25")
        await push_and_wait(http, [opus(2, "300.00"), opus(3, "0.01")], "301.26")
        rest = (await http.get("/api/pnl/explain", params={"from": start, "limit": 1})).json()
        epoch, seq = start.split(":")

        async def call(request: pb.ExplainRequest) -> Any:
            async with open_channel(daemon.grpc_address or "") as channel:
                await until_serving(channel)
                explain = channel.unary_unary(
                    "/northstar.v1.PnlStream/Explain",
                    request_serializer=pb.ExplainRequest.SerializeToString,
                    response_deserializer=pb.ExplainResponse.FromString)
                try:
                    return await explain(request)
                except grpc.aio.AioRpcError as exc:
                    return exc.code(), exc.details()

        answer = await on_asyncio(call, pb.ExplainRequest(
            from_position=pb.StreamPosition(epoch=epoch, seq=int(seq)), limit=1))
        gone = await on_asyncio(call, pb.ExplainRequest(
            from_position=pb.StreamPosition(epoch="other", seq=1)))
        missing = await on_asyncio(call, pb.ExplainRequest())
    assert dict(answer.difference) == rest["difference"]
    assert answer.items_by == rest["items_by"] == "record"
    assert [json_format.MessageToDict(i, preserving_proto_field_name=True) for i in answer.items] == [
        {k: v for k, v in item.items() if v not in (None, "")} for item in rest["items"]]
    assert [i.kind for i in answer.items] == ["cost", "other"]
    assert dict(answer.groups["agent"].values["atlas"].amounts) == rest["groups"]["agent"]["atlas"]
    assert gone[0] == grpc.StatusCode.OUT_OF_RANGE and gone[1].startswith("position_gone")
    assert missing[0] == grpc.StatusCode.INVALID_ARGUMENT and "from_position" in missing[1]


async def test_explain_of_the_demo_business_sums_exactly_and_shows_price_moves(tmp_path: Path) -> None:
    from conftest import DEMO_FAST

    async with daemon_on(tmp_path, DEMO_FAST) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        current = (await http.get("/api/pnl/current")).json()
        with trio.fail_after(30):
            while True:  # long-polls until a market price has moved since position 5
                await http.get("/api/pnl/changes", params={
                    "since": f"{current['epoch']}:{current['seq']}", "wait": 5})
                current = (await http.get("/api/pnl/current")).json()
                if current["seq"] <= 5:
                    continue
                start, end = f"{current['epoch']}:5", f"{current['epoch']}:{current['seq']}"
                answer = (await http.get("/api/pnl/explain", params={"from": start, "to": end,
                                                                     "limit": 1000})).json()
                if "price" in {item["kind"] for item in answer["items"]}:
                    break
        first = (await http.get("/api/pnl/explain", params={"from": f"{current['epoch']}:0",
                                                            "to": end, "limit": 5})).json()
    for body in (answer, first):
        total: dict[str, Decimal] = {}
        for item in body["items"]:
            for path, amount in item["contributions"].items():
                total[path] = total.get(path, D(0)) + D(amount)
        assert {p: a for p, a in total.items() if a} == {
            p: D(a) for p, a in body["difference"].items()}
        assert "unexplained" not in {item["kind"] for item in body["items"]}
    assert first["difference"]["net_pnl"] == current["data"]["net_pnl"]  # from the empty document
    assert len(first["items"]) == 6 and first["items"][-1]["kind"] == "other"
