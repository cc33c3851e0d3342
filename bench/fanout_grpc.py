"""Fan-out benchmark, gRPC mode: one daemon, N ``Subscribe`` streams, R changes/s.

    python bench/fanout_grpc.py --streams N --rate R [--seconds S] [--channels C] [--json-out FILE]
    python bench/fanout_grpc.py --scenario issue4 [--json-out FILE]    # N = 200 and 1000, R = 10

The same method and figures as bench/fanout.py (see bench/README.md): the
real daemon as a subprocess (demo source every 1/R s, ports 0, SQLite in a
temp dir, log level warning), a separate load generator process
(bench/grpc_loadgen.py: grpc.aio clients, C channels = C TCP connections,
default one per 100 streams), 2 s of warm-up once every stream had its
snapshot, then a window of S seconds: delivered events/s, latency (receipt
time - the engine's ``ts``) p50/p99, daemon CPU per 1,000 delivered events,
RSS. Traffic goes only to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import trio

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GRPC_READY = "northstard grpc: "
WEB_READY = "northstard dashboard: "
WARMUP_S = 2.0
ISSUE4 = ((200, 10.0), (1000, 10.0))


def write_config(directory: Path, rate: float) -> Path:
    path = directory / "northstard.toml"
    path.write_text(f"""\
[server]
port = 0
[grpc]
port = 0
shutdown_grace_s = 2.0
[storage]
path = {json.dumps(str(directory / "northstard.db"))}
[log]
level = "warning"
format = "json"
[sources.demo]
interval_s = {1.0 / rate!r}
seed = 1
""")
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORTHSTARD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _line(stream: trio.abc.ReceiveStream, buffer: bytearray, prefix: str) -> str:
    """The next line starting with ``prefix`` (JSON lines: ``{"event":...``)."""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"process exited before {prefix!r}")
            buffer += chunk
        index = buffer.index(b"\n")
        line = bytes(buffer[:index]).decode()
        del buffer[: index + 1]
        if line.startswith(prefix):
            return line[len(prefix):].strip()


async def _stop(process: trio.Process, limit: float) -> tuple[int | None, float]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    with trio.move_on_after(limit):
        await process.wait()
        return process.returncode, round(time.monotonic() - started, 3)
    process.kill()
    await process.wait()
    return None, round(time.monotonic() - started, 3)


async def run_one(streams: int, rate: float, seconds: float, channels: int) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="northstard-fanout-grpc-") as tmp:
        directory = Path(tmp)
        with (directory / "daemon.log").open("ab") as log:
            daemon = await trio.lowlevel.open_process(
                [sys.executable, "-m", "northstard", "--config", str(write_config(directory, rate))],
                stdout=subprocess.PIPE, stderr=log, env=_env(), cwd=str(REPO))
        try:
            assert daemon.stdout is not None
            buffer = bytearray()
            with trio.fail_after(60):
                target = await _line(daemon.stdout, buffer, GRPC_READY)
            if not target.startswith("127.0.0.1:"):
                raise RuntimeError(f"daemon is not on loopback: {target}")
            return await _measure(daemon, target, streams, rate, seconds, channels)
        finally:
            with trio.CancelScope(shield=True):
                if daemon.returncode is None:
                    await _stop(daemon, 20)


async def _measure(daemon: trio.Process, target: str, streams: int, rate: float, seconds: float,
                   channels: int) -> dict[str, Any]:
    proc = psutil.Process(daemon.pid)
    await trio.sleep(1.0)
    rss_before = proc.memory_info().rss
    loadgen = await trio.lowlevel.open_process(
        [sys.executable, str(HERE / "grpc_loadgen.py"), "--target", target, "--streams", str(streams),
         "--channels", str(channels), "--max-seconds", str(120 + seconds + streams / 20)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(), cwd=str(REPO))
    assert loadgen.stdin is not None and loadgen.stdout is not None
    loadgen_proc = psutil.Process(loadgen.pid)
    buffer = bytearray()
    try:
        with trio.fail_after(90 + streams / 20):
            connected = json.loads(await _line(loadgen.stdout, buffer, ""))
        await trio.sleep(WARMUP_S)
        cpu0, lg0, t0 = _cpu(proc), _cpu(loadgen_proc), time.monotonic()
        await loadgen.stdin.send_all(b"start\n")
        await trio.sleep(seconds)
        await loadgen.stdin.send_all(b"stop\n")
        cpu1, lg1, t1 = _cpu(proc), _cpu(loadgen_proc), time.monotonic()
        rss_with = proc.memory_info().rss
        with trio.fail_after(60):
            window = json.loads(await _line(loadgen.stdout, buffer, ""))
        with trio.move_on_after(30):
            await loadgen.wait()
    finally:
        with trio.CancelScope(shield=True):
            if loadgen.returncode is None:
                loadgen.kill()
                await loadgen.wait()
    exit_code, stop_s = await _stop(daemon, 20)
    return _figures(streams, rate, seconds, channels, connected, window, t1 - t0, cpu1 - cpu0,
                    lg1 - lg0, rss_before, rss_with, exit_code, stop_s)


def _figures(streams: int, rate: float, seconds: float, channels: int, connected: dict[str, Any],
             window: dict[str, Any], elapsed: float, cpu: float, lg_cpu: float, rss_before: int,
             rss_with: int, exit_code: int | None, stop_s: float) -> dict[str, Any]:
    delivered = int(window["messages"])
    clients = int(window["connected"])
    expected = streams * rate * seconds
    published, span_s = int(window["published_changes"]), int(window["published_span_ms"]) / 1000
    latency = window["latency_ms"]
    return {
        "bench": "fanout", "transport": "grpc", "clients": streams, "channels": channels,
        "rate_hz": rate, "seconds": seconds, "connected": clients, "connect_s": connected["connect_s"],
        "delivered_msgs": delivered, "delivered_msgs_per_s": round(delivered / elapsed, 1),
        "expected_msgs": int(expected), "fraction_expected": round(delivered / expected, 4),
        "published_changes_per_s": round(published / span_s, 2) if span_s > 0 else None,
        "fraction_of_published": round(delivered / (published / span_s * elapsed * clients), 4)
        if published and clients and span_s > 0 else None,
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max", "mean", "samples")},
        "daemon_cpu_s_per_1000_msgs": round(cpu / delivered * 1000, 4) if delivered else None,
        "daemon_cpu_pct": round(100 * cpu / elapsed, 1),
        "loadgen_cpu_pct": round(100 * lg_cpu / elapsed, 1),
        "daemon_rss_before_mib": round(rss_before / 2**20, 1),
        "daemon_rss_with_clients_mib": round(rss_with / 2**20, 1),
        "rss_per_client_kib": round((rss_with - rss_before) / clients / 1024, 1) if clients else None,
        "seq_violations": window["seq_violations"], "snapshots_in_window": window["snapshots"],
        "disconnected": window["disconnected"], "client_errors": window["errors"],
        "daemon_exit_code": exit_code, "daemon_stop_s": stop_s,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="northstard fan-out benchmark over gRPC (prints JSON)")
    parser.add_argument("--streams", type=int, help="N Subscribe streams")
    parser.add_argument("--rate", type=float, help="R changes/s (demo interval_s = 1/R)")
    parser.add_argument("--seconds", type=float, default=10.0, help="S: the window (default 10)")
    parser.add_argument("--channels", type=int, help="C connections (default: one per 100 streams)")
    parser.add_argument("--scenario", choices=("issue4",), help="N = 200 and 1000 at R = 10")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.scenario:
        runs = list(ISSUE4)
    elif args.streams and args.rate:
        runs = [(args.streams, args.rate)]
    else:
        parser.error("--streams and --rate, or --scenario")
    for streams, rate in runs:
        if not (1 <= streams <= 20000 and 0 < rate <= 1000 and 0 < args.seconds <= 600):
            parser.error("need 1 <= streams <= 20000, 0 < rate <= 1000, 0 < seconds <= 600")
    results = [trio.run(run_one, n, r, args.seconds, args.channels or math.ceil(n / 100))
               for n, r in runs]
    text = json.dumps(results if args.scenario else results[0], indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
