"""Issue 16's benchmark: one core and two edges behind one Redis, WebSocket clients on each edge.

    python bench/scaleout.py [--clients 5000] [--rate 1] [--seconds 20] [--core-clients 100]
                             [--loadgen c|epoll] [--json-out FILE]

Starts a real redis-server on a free loopback port, the core daemon (demo source at ``--rate``
changes/s, ``[backplane]`` on that Redis, ``synchronous = full``) and two ``northstard edge``
processes, then one load generator process per target (bench/cgen.c by default, as
``bench/compare.py --loadgen c``): ``--clients`` WebSocket clients on each edge and
``--core-clients`` on the core itself. After every client has connected and a 2 s warm-up, a
window of ``--seconds``. Prints JSON:

* per edge: ``delivered_fraction`` = messages received / (changes the core published in the
  window × connected clients); latency p50/p99/max from the change's ``ts`` (stamped by the
  engine just before the SQLite commit, then published) to the kernel's receive timestamp at the
  client; ``cpu_us_per_msg`` = the edge process's CPU (user + system from /proc/PID/stat, all
  threads) over the window / messages its clients received;
* ``redis_hop_extra_ms``: an edge's latency minus the core's own clients' (p50 and p99): what
  the Redis hop and the edge add to the same change (with many more clients on an edge than on
  the core, this includes the edge's larger broadcast);
* ``xadd_to_hub_ms``: the Redis hop alone, sampled every 0.5 s from each edge's ``/api/health``
  (``backplane.lag_ms``: from the core's ``XADD`` to the edge's hub, last change);
* the core's and Redis's CPU, and the 1-minute load average before and after (2 shared cores).

Everything on 127.0.0.1; every wait is bounded; the processes are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edges import core_seq, start, start_redis, stop_all
from fanout import _hub_section, _limits_section, _read_json_line, loadgen_program, raise_nofile

REPO = Path(__file__).resolve().parent.parent
WARMUP_S = 2.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15


def config_text(folder: Path, name: str, rate: float, redis_url: str, core: bool) -> Path:
    text = (f'[server]\nhost = "127.0.0.1"\nport = 0\nshutdown_grace_s = 2.0\n[grpc]\nenabled = false\n'
            f'[storage]\npath = "{folder / (name + ".db")}"\nsynchronous = "full"\n'
            f'{_hub_section()}{_limits_section()}'
            f'[log]\nlevel = "warning"\nformat = "json"\n[backplane]\nurl = "{redis_url}"\n')
    if core:
        text += f"[sources.demo]\ninterval_s = {1.0 / rate!r}\nseed = 1\n"
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


class Clients:
    """One load generator process: N WebSocket clients on one target."""

    def __init__(self, name: str, url: str, count: int, program: list[str]) -> None:
        self.name, self.count = name, count
        host, _, port = url.split("://", 1)[1].rpartition(":")
        budget = 30.0 + count / 50
        self.budget = budget
        self.argv = [*program, "--transport", "ws", "--host", host, "--port", port, "--clients",
                     str(count), "--connect-timeout", str(budget), "--max-seconds", str(budget + 600)]
        self.process: trio.Process | None = None
        self.buffer = bytearray()
        self.connected: dict[str, Any] = {}
        self.result: dict[str, Any] = {}

    async def connect(self) -> None:
        self.process = await trio.lowlevel.open_process(self.argv, stdin=subprocess.PIPE,
                                                        stdout=subprocess.PIPE, cwd=str(REPO))
        assert self.process.stdout is not None
        with trio.fail_after(self.budget + 30):
            self.connected = await _read_json_line(self.process.stdout, self.buffer, "connected")

    async def say(self, word: bytes) -> None:
        assert self.process is not None and self.process.stdin is not None
        await self.process.stdin.send_all(word + b"\n")

    async def finish(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with trio.fail_after(60):
            self.result = await _read_json_line(self.process.stdout, self.buffer, "result")


def figures(clients: Clients, published: int, cpu: float | None) -> dict[str, Any]:
    result, latency = clients.result, clients.result["latency_ms"]
    connected = int(result["connected"])
    messages = int(result["messages"])
    expected = published * connected
    return {
        "clients": clients.count, "connected": connected, "disconnected": result["disconnected"],
        "messages": messages, "snapshots_in_window": result["snapshots"],
        "seq_violations": result["seq_violations"],
        "delivered_fraction": round(messages / expected, 4) if expected else None,
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max", "samples")},
        "cpu_s": None if cpu is None else round(cpu, 3),
        "cpu_us_per_msg": round(cpu / messages * 1e6, 2) if cpu is not None and messages else None,
        "connect_s": clients.connected.get("connect_s"),
    }


async def sample_lag(url: str, samples: list[int], stop: trio.Event) -> None:
    """``backplane.lag_ms`` of an edge's health every 0.5 s until ``stop``."""
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            health = (await client.get(f"{url}/api/health")).json()
            samples.append(int(health["backplane"]["lag_ms"]))
            with trio.move_on_after(0.5):
                await stop.wait()


def spread(values: list[int]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "max": None, "samples": 0}
    return {"p50": ordered[len(ordered) // 2], "max": ordered[-1], "samples": len(ordered)}


def hop(edge: dict[str, Any], core: dict[str, Any]) -> dict[str, float | None]:
    def minus(key: str) -> float | None:
        a, b = edge["latency_ms"][key], core["latency_ms"][key]
        return None if a is None or b is None else round(a - b, 2)

    return {"p50": minus("p50"), "p99": minus("p99")}


async def measure(args: argparse.Namespace, folder: Path, processes: list[trio.Process]) -> dict[str, Any]:
    redis, redis_url = await start_redis(folder)
    processes.append(redis)
    core, core_url = await start([sys.executable, "-m", "northstard", "--config",
                                  str(config_text(folder, "core", args.rate, redis_url, True))],
                                 folder / "core.log")
    processes.append(core)
    pids, urls = {"core": core.pid, "redis": redis.pid}, {"core": core_url}
    for name in ("edge1", "edge2"):
        config = config_text(folder, name, args.rate, redis_url, False)
        edge, urls[name] = await start([sys.executable, "-m", "northstard", "edge", "--backplane",
                                        redis_url, "--config", str(config)], folder / f"{name}.log")
        processes.append(edge)
        pids[name] = edge.pid
    program = loadgen_program(args.loadgen)
    groups = [Clients("core", urls["core"], args.core_clients, program),
              Clients("edge1", urls["edge1"], args.clients, program),
              Clients("edge2", urls["edge2"], args.clients, program)]
    try:
        async with trio.open_nursery() as nursery:
            for group in groups:
                nursery.start_soon(group.connect)
        await trio.sleep(WARMUP_S)
        load_before = round(os.getloadavg()[0], 2)
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        seq0, t0 = await core_seq(core_url), time.monotonic()
        for group in groups:
            await group.say(b"start")
        lags: dict[str, list[int]] = {"edge1": [], "edge2": []}
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for name, samples in lags.items():
                nursery.start_soon(sample_lag, urls[name], samples, stop)
            await trio.sleep(args.seconds)
            stop.set()
        for group in groups:
            await group.say(b"stop")
        seq1, t1 = await core_seq(core_url), time.monotonic()
        cpu = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
        for group in groups:
            await group.finish()
    finally:
        with trio.CancelScope(shield=True):
            for group in groups:
                if group.process is not None and group.process.returncode is None:
                    group.process.kill()
                    await group.process.wait()
    published = seq1 - seq0
    core_clients = figures(groups[0], published, None)
    edges = {g.name: figures(g, published, cpu[g.name]) for g in groups[1:]}
    for name, edge in edges.items():
        edge["redis_hop_extra_ms"] = hop(edge, core_clients)
        edge["xadd_to_hub_ms"] = spread(lags[name])
    return {
        "bench": "scaleout", "load_generator": args.loadgen, "rate_hz": args.rate,
        "clients_per_edge": args.clients, "core_clients": args.core_clients,
        "seconds": round(t1 - t0, 2), "published_changes": published,
        "core": {**core_clients, "cpu_s": round(cpu["core"], 3),
                 "cpu_pct": round(100 * cpu["core"] / (t1 - t0), 1)},
        **edges,
        "redis_cpu_s": round(cpu["redis"], 3),
        "loadavg_1m_before": load_before, "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile()
    folder = Path(tempfile.mkdtemp(prefix="northstard-scaleout-"))
    processes: list[trio.Process] = []
    try:
        return await measure(args, folder, processes)
    finally:
        await stop_all(processes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000, help="WebSocket clients per edge")
    parser.add_argument("--core-clients", type=int, default=100,
                        help="clients on the core itself: the baseline for the Redis hop")
    parser.add_argument("--rate", type=float, default=1.0, help="changes/s (the demo source's rate)")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--loadgen", choices=("c", "epoll"), default="c")
    parser.add_argument("--json-out", type=Path)
    arguments = parser.parse_args()
    text = json.dumps(trio.run(main, arguments), indent=2)
    print(text)
    if arguments.json_out:
        arguments.json_out.write_text(text + "\n")
