"""Issue 11 items 4 and 5: the daemon's RSS under hostile history readers and upstream bodies.

    python bench/bounds.py [--queries 300] [--bomb-polls 20] [--history-bytes N] [--json-out FILE]

Starts the real daemon (``python -m northstard``) as a subprocess with the demo
source and two ``revenue_http`` sources pointed at a fake upstream on
127.0.0.1: ``bomber`` is answered a 1 MB gzip body that expands to 1 GiB,
``sales`` a normal answer. It seeds 30 days of closed 1m buckets into the
daemon's SQLite file (30 days), then measures:

- ``upstream_body``: RSS before, after ``--bomb-polls`` polls of the bomb, and
  the process's peak (VmHWM); the bomber's status and last_error; whether
  ``sales`` and the demo kept streaming.
- ``history``: RSS before and after ``--queries`` ``GET /api/pnl/history`` at
  1m, each a distinct range of 5,000 buckets (random ends, seeded); the answer size; the cache's
  stats; request times (median, p90).
- ``dashboard``: 20 rounds of the dashboard's five history requests (its
  ranges slide with the clock), request times and the cache's hits/misses.

Prints one JSON object. ``--history-bytes 0`` turns the history cache off,
for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing, suppress
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from northstard.core.buckets import Bucket, Ohlc, bucket_start

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "contract"))
from fakes import gzip_bomb  # noqa: E402  (the tests' fake-upstream body)

READY = "northstard dashboard: "
MINUTE = 60_000
DAY = 86_400_000
SEEDED_DAYS = 30
DASHBOARD = (("1m", 3_600_000), ("5m", DAY), ("1h", 7 * DAY), ("1h", 30 * DAY), ("1d", 30 * DAY))


class Upstream(BaseHTTPRequestHandler):
    """``/bomb``: 1 MB of gzip expanding to 1 GiB; anything else: revenue totals."""

    def do_GET(self) -> None:
        if self.path.startswith("/bomb"):
            body, headers = gzip_bomb(), {"content-encoding": "gzip"}
        else:
            body, headers = b'{"invoiced": "500.00", "collected": "400.00"}', {}
        self.send_response(200)
        for name, value in {"content-type": "application/json",
                            "content-length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):  # the daemon refused it mid-way
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def write_config(directory: Path, upstream: str, history_bytes: int | None) -> Path:
    cache = f"[cache]\nhistory_bytes = {history_bytes}\n" if history_bytes is not None else ""
    text = f"""\
[server]
host = "127.0.0.1"
port = 0

[grpc]
enabled = false

[storage]
path = {json.dumps(str(directory / "northstard.db"))}

[limits]
rest_rate_per_s = 0

{cache}
[log]
level = "warning"
format = "json"

[sources.demo]
interval_s = 0.2
seed = 1

[sources.bomber]
plugin = "revenue_http"
base_url = "{upstream}"
path = "/bomb"
interval_s = 0.3
failure_threshold = 1000000

[sources.sales]
plugin = "revenue_http"
base_url = "{upstream}"
interval_s = 0.3
"""
    path = directory / "northstard.toml"
    path.write_text(text)
    return path


def start_daemon(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORTHSTARD_")}
    env["PYTHONPATH"] = str(REPO)
    with log.open("ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "northstard", "--config", str(config)],
                                   stdout=subprocess.PIPE, stderr=handle, env=env, cwd=str(REPO))
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"daemon exited early: {log.read_text()[-2000:]}")
        if line.startswith(READY):
            return process, line[len(READY):].strip().rstrip("/")
    raise RuntimeError("daemon did not start within 60 s")


def rss_mb(process: psutil.Process) -> float:
    return round(process.memory_info().rss / 2**20, 1)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def seed(db: Path, now_ms: int, days: int = SEEDED_DAYS) -> int:
    """Closed 1m buckets for ``days`` before now (the kind of rows the writer stores)."""
    open_start = bucket_start(now_ms, "1m")
    rows = []
    for i in range(1, days * 1440):
        value = Decimal(123456 + i) / 100
        series = {k: Ohlc(value, value + 1, value - 1, value + 2)
                  for k in ("net", "trading", "revenue", "costs")}
        rows.append(("1m", open_start - i * MINUTE, Bucket("1m", 0, series).body()))
    with closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        conn.executemany("INSERT OR IGNORE INTO buckets (resolution, start_ms, body) VALUES (?, ?, ?)", rows)
    return len(rows)


def sources(client: httpx.Client, base: str) -> dict[str, Any]:
    return {s["name"]: s for s in client.get(f"{base}/api/sources").json()["sources"]}


def measure_bomb(client: httpx.Client, base: str, proc: psutil.Process, polls: int) -> dict[str, Any]:
    before = rss_mb(proc)
    start = sources(client, base)["bomber"].get("errors", 0)
    seq_before = client.get(f"{base}/api/health").json()["seq"]
    deadline = time.monotonic() + 120
    while sources(client, base)["bomber"].get("errors", 0) < start + polls and time.monotonic() < deadline:
        time.sleep(0.2)
    after = sources(client, base)
    health = client.get(f"{base}/api/health").json()
    return {
        "rss_before_mb": before, "rss_after_mb": rss_mb(proc), "peak_mb": peak_mb(proc.pid),
        "bomb_refusals": after["bomber"].get("errors", 0) - start,
        "bomber_status": after["bomber"].get("status"),
        "bomber_last_error": after["bomber"].get("last_error"),
        "sales_status": after["sales"].get("status"), "changes_meanwhile": health["seq"] - seq_before,
    }


def timed_get(client: httpx.Client, url: str, params: dict[str, str]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url, params=params)
    return (time.perf_counter() - started) * 1000, response


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


def measure_history(client: httpx.Client, base: str, proc: psutil.Process, queries: int) -> dict[str, Any]:
    before = rss_mb(proc)
    now_ms = int(time.time() * 1000)
    offsets = random.Random(1).sample(range(0, SEEDED_DAYS * 1440 - 5000), queries)
    times, sizes = [], []
    for offset in offsets:
        to_ms = now_ms - offset * MINUTE
        params = {"resolution": "1m", "from": str(to_ms - 5000 * MINUTE), "to": str(to_ms)}
        elapsed, response = timed_get(client, f"{base}/api/pnl/history", params)
        response.raise_for_status()
        times.append(elapsed)
        sizes.append(len(response.content))
    return {
        "queries": queries, "rss_before_mb": before, "rss_after_mb": rss_mb(proc),
        "rss_growth_mb": round(rss_mb(proc) - before, 1), "peak_mb": peak_mb(proc.pid),
        "answer_bytes_max": max(sizes), "ms_median": round(statistics.median(times), 2),
        "ms_p90": percentile(times, 0.9), "cache": client.get(f"{base}/api/cache/stats").json(),
    }


def measure_dashboard(client: httpx.Client, base: str, rounds: int = 20) -> dict[str, Any]:
    before = client.get(f"{base}/api/cache/stats").json()
    times = []
    for _ in range(rounds):
        now_ms = int(time.time() * 1000)
        for resolution, span in DASHBOARD:
            params = {"resolution": resolution, "from": str(now_ms - span), "to": str(now_ms)}
            elapsed, response = timed_get(client, f"{base}/api/pnl/history", params)
            response.raise_for_status()
            times.append(elapsed)
    after = client.get(f"{base}/api/cache/stats").json()
    return {"requests": len(times), "ms_median": round(statistics.median(times), 2),
            "ms_p90": percentile(times, 0.9), "hits": after["hits"] - before["hits"],
            "misses": after["misses"] - before["misses"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--bomb-polls", type=int, default=20)
    parser.add_argument("--history-bytes", type=int, default=None)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gzip_bomb()  # built before the daemon starts
    with tempfile.TemporaryDirectory(prefix="bounds-") as tmp:
        directory = Path(tmp)
        config = write_config(directory, f"http://127.0.0.1:{server.server_port}", args.history_bytes)
        daemon, base = start_daemon(config, directory / "daemon.log")
        try:
            proc = psutil.Process(daemon.pid)
            with httpx.Client(timeout=60) as client:
                seeded = seed(directory / "northstard.db", int(time.time() * 1000))
                result = {
                    "seeded_1m_buckets": seeded,
                    "upstream_body": measure_bomb(client, base, proc, args.bomb_polls),
                    "history": measure_history(client, base, proc, args.queries),
                    "dashboard": measure_dashboard(client, base),
                }
        finally:
            daemon.terminate()
            daemon.wait(30)
            server.shutdown()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
