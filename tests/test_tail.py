"""``northstard tail``: the line format, and the real command against a daemon process."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from northstard.edges.grpc.auth import digest
from northstard.ops.tail import Printer, change_paths

from conftest import write_config
from proc import read_printed


def test_change_paths_flatten_a_patch() -> None:
    patch = {"net_pnl": "1.00", "costs": {"by_model": {"a.b": "2.00"}, "total": "3.00"},
             "gross_margin_pct": None, "sources": {"demo": {"stale": False}}, "agents": {"x": {}}}
    assert change_paths(patch) == [
        ("agents.x", {}), ("costs.by_model.a.b", "2.00"), ("costs.total", "3.00"),
        ("gross_margin_pct", None), ("net_pnl", "1.00"), ("sources.demo.stale", False),
    ]


def test_one_line_per_event() -> None:
    out = io.StringIO()
    printer = Printer(out)
    doc = {"as_of": "2026-11-21T19:25:02.437Z", "currency": "USD", "net_pnl": "5.00"}
    printer.json_message({"type": "snapshot", "epoch": "e", "seq": 4, "ts": 1, "data": doc})
    printer.json_message({"type": "delta", "epoch": "e", "seq": 4, "prev": 3, "ts": 2,
                          "patch": {"net_pnl": "9.00"}})  # already held: no line
    printer.json_message({"type": "delta", "epoch": "e", "seq": 6, "prev": 4, "ts": 3,
                          "patch": {"net_pnl": "6.50", "gross_margin_pct": None,
                                    "sources": {"demo": {"stale": True}}}})
    assert out.getvalue().splitlines() == [
        "e:4  snapshot  net_pnl 5.00 USD  as_of 2026-11-21T19:25:02.437Z",
        "e:6  delta     net_pnl 6.50 USD  gross_margin_pct=- net_pnl=6.50 sources.demo.stale=true",
    ]
    with pytest.raises(ConnectionError, match="gap"):
        printer.json_message({"type": "delta", "epoch": "e", "seq": 9, "prev": 8, "ts": 4,
                              "patch": {}})


async def start_daemon_process(config: Path, log: Path) -> tuple[trio.Process, str, str]:
    """A daemon process; returns it with its dashboard URL and its gRPC address."""
    with log.open("ab") as handle:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "northstard", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=handle, env={**os.environ},
        )
    printed = await read_printed(process, log)
    address, url = printed["northstard grpc"], printed["northstard dashboard"]
    return process, url, address


async def tail(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "northstard", "tail", *args],
            capture_stdout=True, capture_stderr=True, check=False,
        )


@pytest.mark.slow
async def test_tail_prints_a_line_per_event_over_every_transport(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.02, "seed": 5}},
                          grpc={"port": 0, "tokens": [digest("s3cret")], "shutdown_grace_s": 1.0})
    process, url, address = await start_daemon_process(config, tmp_path / "daemon.log")
    try:
        runs = {
            "grpc": await tail("--grpc", "--url", f"grpc://{address}", "--token", "s3cret",
                               "--count", "5"),
            "ws": await tail("--ws", "--url", url, "--count", "4"),
            "sse": await tail("--sse", "--url", url, "--count", "4"),
            "refused": await tail("--url", address, "--token", "wrong", "--count", "1"),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await process.wait() == 0
    for name in ("grpc", "ws", "sse"):
        run = runs[name]
        assert run.returncode == 0, (name, run.stderr.decode())
        lines = run.stdout.decode().splitlines()
        assert len(lines) == (5 if name == "grpc" else 4), lines
        kinds = [line.split()[1] for line in lines]
        assert kinds[0] == "snapshot" and set(kinds[1:]) == {"delta"}, lines
        seqs = [int(line.split()[0].rpartition(":")[2]) for line in lines]
        assert seqs == sorted(set(seqs)), lines
        assert all(" net_pnl " in line and " USD " in line for line in lines), lines
        assert all("=" in line for line in lines[1:]), lines
    refused = runs["refused"]
    assert refused.returncode == 2 and b"refused" in refused.stderr and not refused.stdout
