"""REST latency and throughput of the one-port listener: ``GET /api/pnl/current`` over keep-alive.

    python bench/rest.py [--seconds S] [--connections C] [--client wrk|httpx] [--path P]

Starts the daemon as shipped (bench/fanout.py's config: demo source at 1 Hz,
SQLite ``synchronous = full``), then loads one path for S seconds from C
keep-alive connections and prints JSON: requests/s, latency percentiles (ms)
and the daemon's CPU (user + system, all threads) per request in µs.

``--client wrk`` (the default when ``wrk`` is installed: ``apt-get install wrk``)
costs little CPU per request; ``--client httpx`` is a Python loop (C tasks on
one httpx client) whose own CPU shares the 2 cores, so its figures are lower
bounds. Compare runs made with the same client on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import Spec, _cpu, _start_daemon, _stop, write_config

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return round(float(number) * UNITS_MS[unit], 3)


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s and the latency distribution from ``wrk --latency`` output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = {f"p{m[1]}_ms": _ms(m[2]) for m in re.finditer(r"^\s+(50|90|99)%\s+(\S+)", output, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"requests_per_s": float(rate[1]) if rate else None, **latency,
            "non_2xx": int(errors[1]) if errors else 0}


async def run_wrk(url: str, seconds: float, connections: int) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    done = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    return parse_wrk(done.stdout.decode())


async def run_httpx(url: str, seconds: float, connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await client.get(url)
            latencies.append((time.perf_counter() - started) * 1000)
            failures += answer.status_code != 200

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client, trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker, client)
    cuts = statistics.quantiles(latencies, n=100)
    return {"requests_per_s": round(len(latencies) / seconds, 1), "p50_ms": round(cuts[49], 3),
            "p90_ms": round(cuts[89], 3), "p99_ms": round(cuts[98], 3), "non_2xx": failures}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        config = write_config(directory, Spec("ws", 0, 1.0, args.seconds))
        daemon, base = await _start_daemon(config, directory / "daemon.log")
        try:
            process = psutil.Process(daemon.pid)
            run = run_wrk if args.client == "wrk" else run_httpx
            await run(base + args.path, 1.0, args.connections)  # warm-up, not counted
            cpu = _cpu(process)
            figures = await run(base + args.path, args.seconds, args.connections)
            cpu = _cpu(process) - cpu
        finally:
            await _stop(daemon, 10)
    total = (figures["requests_per_s"] or 0) * args.seconds
    return {"client": args.client, "path": args.path, "connections": args.connections,
            "seconds": args.seconds, **figures,
            "cpu_us_per_request": round(cpu / total * 1e6, 1) if total else None,
            "load": list(psutil.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client", choices=("wrk", "httpx"),
                        default="wrk" if shutil.which("wrk") else "httpx")
    parser.add_argument("--path", default="/api/pnl/current")
    print(json.dumps(trio.run(measure, parser.parse_args())))


if __name__ == "__main__":
    main()
