"""Issue 16: changes/s and latency through core → Redis → 2 edges → WebSocket clients.

    python bench/edges.py [--interval 0.005] [--clients 50] [--seconds 20] [--json-out FILE]

Starts a real redis-server on a free loopback port, the core daemon (demo source polled every
``--interval`` s, ``[backplane]`` on that Redis) and two ``northstard edge`` processes, then
``--clients`` WebSocket clients on each edge and one on the core. For ``--seconds`` each client
applies every message (checking no gap), and stamps each delta's arrival against its ``ts``
(the change's time at the engine, just before the SQLite commit). Prints JSON: changes/s
published by the core and received per edge, the fraction of changes each edge's clients
reached, and latency p50/p99/max from the change to a client, on the core and on the edges
and, per edge, how long after the core's own client an edge client got the same seq (the Redis
hop and the edge: ``behind_core_client_ms``). Everything on 127.0.0.1, every wait bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

REPO = Path(__file__).resolve().parent.parent
READY = b"northstard dashboard: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config_text(db: Path, extra: str) -> str:
    return (f'[server]\nport = 0\n[grpc]\nenabled = false\n[storage]\npath = "{db}"\n'
            f'synchronous = "normal"\n[log]\nlevel = "warning"\nformat = "json"\n{extra}')


async def start(argv: list[str], log: Path) -> tuple[trio.Process, str]:
    with log.open("ab") as handle:
        process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=handle,
                                                   cwd=str(REPO), env={**os.environ})
    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(90):
        while READY not in buffer or not buffer.rstrip(b" ").endswith(b"\n"):
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"{argv[3:]} exited early: {(await trio.Path(log).read_text())[-2000:]}")
            buffer += chunk
    url = buffer.split(READY, 1)[1].split(b"\n", 1)[0].decode().strip().rstrip("/")
    return process, url


async def core_seq(url: str) -> int:
    """The core's own position (its /api/pnl/current), not what a client of it has received."""
    async with httpx.AsyncClient(timeout=30) as client:
        seq: int = (await client.get(f"{url}/api/pnl/current")).json()["seq"]
        return seq


async def start_redis(folder: Path) -> tuple[trio.Process, str]:
    port = free_port()
    process = await trio.lowlevel.open_process(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    seen = b""
    with trio.fail_after(20):
        while b"Ready to accept connections" not in seen:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError("redis-server exited early")
            seen += chunk
    return process, f"redis://127.0.0.1:{port}"


class Client:
    def __init__(self) -> None:
        self.seq = -1
        self.began = -1  # the seq when the measured window began
        self.latencies: list[float] = []
        self.arrivals: dict[int, float] = {}  # seq -> arrival (ms), in the measured window
        self.gaps = 0

    def take(self, message: dict[str, Any], now_ms: float) -> None:
        if message["type"] == "snapshot":
            self.seq = message["seq"]
            return
        if message["type"] != "delta":
            return
        if message["prev"] > self.seq:
            self.gaps += 1
        self.seq = message["seq"]
        if self.began >= 0:
            self.latencies.append(now_ms - message["ts"])
            self.arrivals[self.seq] = now_ms


async def run_client(url: str, client: Client, stop: trio.Event) -> None:
    async with open_websocket_url(url.replace("http://", "ws://") + "/ws") as ws:
        while not stop.is_set():
            with trio.move_on_after(1):
                text = await ws.get_message()
                client.take(json.loads(text), time.time() * 1000)


def percentiles(values: list[float], name: str) -> dict[str, float | None]:
    values = sorted(values)

    def pct(p: float) -> float | None:
        return round(values[min(len(values) - 1, int(p * len(values)))], 2) if values else None

    return {f"{name}_p50": pct(0.5), f"{name}_p99": pct(0.99), f"{name}_max": pct(1.0)}


def summary(clients: list[Client], seconds: float, published: int,
            core: Client | None = None) -> dict[str, Any]:
    latencies = sorted(x for c in clients for x in c.latencies)
    reached = [c.seq - c.began for c in clients]

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None

    return {
        "clients": len(clients),
        "changes_per_s_received": round(statistics.mean(reached) / seconds, 1) if reached else 0,
        "delivered_fraction": round(statistics.mean(reached) / published, 4) if published else None,
        "latency_ms_p50": pct(0.5), "latency_ms_p99": pct(0.99),
        "latency_ms_max": round(latencies[-1], 2) if latencies else None,
        "messages": len(latencies), "gaps": sum(c.gaps for c in clients),
        **(percentiles([at - core.arrivals[seq] for c in clients for seq, at in c.arrivals.items()
                        if seq in core.arrivals], "behind_core_client_ms") if core else {}),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="northstard-edges-"))
    redis, redis_url = await start_redis(folder)
    processes = [redis]
    try:
        core_config = folder / "core.toml"
        core_config.write_text(config_text(folder / "core.db", f'[backplane]\nurl = "{redis_url}"\n'
                                           f'[sources.demo]\ninterval_s = {args.interval}\nseed = 7\n'))
        core, core_url = await start([sys.executable, "-m", "northstard", "--config", str(core_config)],
                                     folder / "core.log")
        processes.append(core)
        edge_urls = []
        for name in ("e1", "e2"):
            path = folder / f"{name}.toml"
            path.write_text(config_text(folder / f"{name}.db", ""))
            edge, url = await start([sys.executable, "-m", "northstard", "edge", "--backplane", redis_url,
                                     "--config", str(path)], folder / f"{name}.log")
            processes.append(edge)
            edge_urls.append(url)
        groups = {"core": [Client()], "e1": [Client() for _ in range(args.clients)],
                  "e2": [Client() for _ in range(args.clients)]}
        urls = {"core": core_url, "e1": edge_urls[0], "e2": edge_urls[1]}
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for name, clients in groups.items():
                for client in clients:
                    nursery.start_soon(run_client, urls[name], client, stop)
            await trio.sleep(2)  # connect and settle
            for client in (c for clients in groups.values() for c in clients):
                client.began = client.seq
            began = await core_seq(core_url)
            await trio.sleep(args.seconds)
            published = await core_seq(core_url) - began
            stop.set()
        return {
            "interval_s": args.interval, "seconds": args.seconds,
            "core_changes_per_s": round(published / args.seconds, 1),
            "core_client": summary(groups["core"], args.seconds, published),
            "edge1": summary(groups["e1"], args.seconds, published, groups["core"][0]),
            "edge2": summary(groups["e2"], args.seconds, published, groups["core"][0]),
        }
    finally:
        await stop_all(processes)


async def stop_all(processes: list[trio.Process]) -> None:
    """SIGTERM each process, newest first; SIGKILL one still running 10 s later (shielded)."""
    with trio.CancelScope(shield=True):
        for process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.005, help="demo poll interval (s)")
    parser.add_argument("--clients", type=int, default=50, help="WebSocket clients per edge")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json-out", type=Path)
    arguments = parser.parse_args()
    text = json.dumps(trio.run(main, arguments), indent=2)
    print(text)
    if arguments.json_out:
        arguments.json_out.write_text(text + "\n")
