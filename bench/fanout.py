"""Fan-out benchmark: one daemon, N streaming clients, R changes/s.

    python bench/fanout.py --transport ws|sse --clients N --rate R --seconds S [--json-out FILE]
    python bench/fanout.py --scenario issue2|issue7 [--json-out FILE]

Starts the real daemon as a subprocess (``python -m northstard --config F``)
with a temp config: the demo source polling every 1/R s (``seed = 1``), port
0, SQLite in a temp dir, log level warning (and a large slow-client timeout
where the daemon has that key). The open-files limit is raised to the hard
limit first (the daemon and the load generator inherit it). The load
generator (bench/loadgen.py) is a separate process that opens N raw-TCP
clients.

After every client connected, 2 s of warm-up, then a steady window of S
seconds measures: delivered messages/s (all clients), delivery latency
(receipt time - the engine's ``ts``) p50/p99/max, daemon CPU per 1,000
delivered messages, daemon RSS before clients and with them (-> KiB per
client), clients connected, and the fraction of the N x R x S messages
expected that arrived. One JSON object per run; ``--scenario issue2`` runs
WS 1000x10/s, WS 5000x1/s and SSE 1000x1/s (S = 10) and prints a list.

Traffic goes only to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import trio

from northstard.config import CORE

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
READY = "northstard dashboard: "
WARMUP_S = 2.0
ISSUE2 = (("ws", 1000, 10.0), ("ws", 5000, 1.0), ("sse", 1000, 1.0))
LOADGENS = {"trio": "loadgen.py", "epoll": "epollgen.py", "c": "cgen.c"}
BUILD = HERE / ".build"  # the C load generator's binary (git-ignored)


def loadgen_program(name: str) -> list[str]:
    """The command that runs load generator ``name`` (the C one compiled first when stale)."""
    source = HERE / LOADGENS[name]
    if source.suffix != ".c":
        return [sys.executable, str(source)]
    binary = BUILD / source.stem
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        BUILD.mkdir(exist_ok=True)
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", str(binary), str(source), "-lm"],
                       check=True)
    return [str(binary)]
ISSUE7 = (("ws", 1000, 10.0), ("ws", 10000, 1.0), ("sse", 1000, 10.0))  # bench/compare.py


@dataclass(frozen=True)
class Spec:
    transport: str
    clients: int
    rate: float
    seconds: float
    synchronous: str = "full"
    connect_timeout: float | None = None
    py_spy: Path | None = None
    gc_threshold: tuple[int, ...] | None = None
    overrides: tuple[tuple[str, str], ...] = ()
    loadgen: str = "trio"  # "epoll": bench/epollgen.py, cheaper per message (see compare.py)
    loadgen_nice: int = 0  # > 0: the clients' process runs under `nice -n N` (see compare.py)

    @property
    def connect_budget(self) -> float:
        if self.connect_timeout is not None:
            return self.connect_timeout
        return 30.0 + self.clients / 50


def raise_nofile() -> tuple[int, int]:
    """Soft open-files limit to the hard limit (children inherit it); returns the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _hub_section() -> str:
    """A large slow-client timeout, where this daemon version has that key."""
    if any(f.name == "slow_client_timeout_s" for f in CORE.get("hub", ())):
        return "[hub]\nslow_client_timeout_s = 3600.0\n"
    return ""


def _limits_section() -> str:
    """No per-address connection cap (every client comes from 127.0.0.1), where it exists."""
    if any(f.name == "max_connections_per_client" for f in CORE.get("limits", ())):
        return "[limits]\nmax_connections_per_client = 0\n"
    return ""


def write_config(directory: Path, spec: Spec) -> Path:
    text = f"""\
[server]
host = "127.0.0.1"
port = 0
shutdown_grace_s = 2.0

[storage]
path = {json.dumps(str(directory / "northstard.db"))}
synchronous = "{spec.synchronous}"

{_hub_section()}{_limits_section()}
[log]
level = "warning"
format = "json"

[sources.demo]
interval_s = {1.0 / spec.rate!r}
seed = 1
"""
    path = directory / "northstard.toml"
    path.write_text(text)
    return path


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of ``process`` and of its live children (the daemon's: its writer process)."""
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = each.cpu_times()
            total += times.user + times.system
    return total


def _env(overrides: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """The children's environment: no inherited NORTHSTARD_* overrides, only ``--set`` ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORTHSTARD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for key, value in overrides:
        section, _, name = key.partition(".")
        env[f"NORTHSTARD_{section.upper()}__{name.upper()}"] = value
    return env


async def _read_json_line(stream: trio.abc.ReceiveStream, buffer: bytearray, event: str) -> dict[str, Any]:
    """The next JSON line whose ``event`` is ``event`` (other lines are skipped)."""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"load generator exited before {event!r}")
            buffer += chunk
        index = buffer.index(b"\n")
        line = bytes(buffer[:index]).decode()
        del buffer[: index + 1]
        try:
            payload = json.loads(line)
        except ValueError:
            continue
        if isinstance(payload, dict) and payload.get("event") == event:
            return payload


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def daemon_command(config: Path, gc_threshold: tuple[int, ...] | None) -> list[str]:
    """``python -m northstard --config F``; with a GC threshold, the same through runpy."""
    if gc_threshold is None:
        return [sys.executable, "-m", "northstard", "--config", str(config)]
    wrapper = (
        "import gc, runpy, sys; gc.set_threshold(*map(int, sys.argv[1].split(',')));"
        " sys.argv = ['northstard'] + sys.argv[2:];"
        " runpy.run_module('northstard', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", wrapper, ",".join(map(str, gc_threshold)), "--config", str(config)]


async def _start_daemon(
    config: Path, log: Path, gc_threshold: tuple[int, ...] | None = None,
    overrides: tuple[tuple[str, str], ...] = (),
) -> tuple[trio.Process, str]:
    with log.open("ab") as handle:
        process = await trio.lowlevel.open_process(
            daemon_command(config, gc_threshold),
            stdout=subprocess.PIPE, stderr=handle, env=_env(overrides), cwd=str(REPO),
        )
    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(60):
        while not any(line.startswith(READY) for line in buffer.decode().splitlines(keepends=True)
                      if line.endswith("\n")):
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"daemon exited early:\n{_tail(log)}")
            buffer += chunk
    line = next(ln for ln in buffer.decode().splitlines() if ln.startswith(READY))
    return process, line[len(READY):].strip().rstrip("/")


async def _stop(process: trio.Process, limit: float) -> tuple[int | None, float]:
    """SIGTERM, wait up to ``limit`` s, then SIGKILL; returns (exit code, seconds to exit)."""
    if process.returncode is not None:
        return process.returncode, 0.0
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    with trio.move_on_after(limit):
        await process.wait()
        return process.returncode, round(time.monotonic() - started, 3)
    process.kill()
    await process.wait()
    return None, round(time.monotonic() - started, 3)


def _log_problems(log: Path) -> tuple[dict[str, int], list[str]]:
    """Counts of warning/error/critical lines in the daemon's JSON log, and a few of them."""
    counts: dict[str, int] = {}
    samples: list[str] = []
    if not log.exists():
        return counts, samples
    for line in log.read_text(errors="replace").splitlines():
        try:
            level = str(json.loads(line).get("level", "?"))
        except (ValueError, AttributeError):
            level = "unstructured"
        counts[level] = counts.get(level, 0) + 1
        if len(samples) < 5:
            samples.append(line[:300])
    return counts, samples


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def run_one(spec: Spec) -> dict[str, Any]:
    nofile = raise_nofile()
    with tempfile.TemporaryDirectory(prefix="northstard-fanout-") as tmp:
        directory = Path(tmp)
        config = write_config(directory, spec)
        log = directory / "daemon.log"
        daemon, url = await _start_daemon(config, log, spec.gc_threshold, spec.overrides)
        try:
            return await _measure(spec, daemon, url, log, nofile)
        finally:
            with trio.CancelScope(shield=True):
                if daemon.returncode is None:
                    await _stop(daemon, 20)


async def _drain(stream: trio.abc.ReceiveStream | None) -> None:
    if stream is None:
        return
    while await stream.receive_some(65536):
        pass


async def _measure(
    spec: Spec, daemon: trio.Process, url: str, log: Path, nofile: tuple[int, int]
) -> dict[str, Any]:
    host_port = url.split("://", 1)[1]
    host, _, port = host_port.rpartition(":")
    if host not in ("127.0.0.1", "[::1]", "localhost"):
        raise RuntimeError(f"daemon is not on loopback: {url}")
    proc = psutil.Process(daemon.pid)
    await trio.sleep(1.0)  # let the first changes land before measuring the idle RSS
    rss_before = proc.memory_info().rss
    connect_budget = spec.connect_budget
    loadgen_cmd = ["nice", "-n", str(spec.loadgen_nice)] if spec.loadgen_nice else []
    loadgen_cmd += [
        *loadgen_program(spec.loadgen), "--transport", spec.transport,
        "--host", host, "--port", port, "--clients", str(spec.clients),
        "--connect-timeout", str(connect_budget),
        "--max-seconds", str(connect_budget + WARMUP_S + spec.seconds + 60),
    ]
    profiled = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain, daemon.stdout)
        loadgen = await trio.lowlevel.open_process(
            loadgen_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(), cwd=str(REPO),
        )
        assert loadgen.stdin is not None and loadgen.stdout is not None
        loadgen_proc = psutil.Process(loadgen.pid)
        buffer = bytearray()
        try:
            with trio.fail_after(connect_budget + 30):
                connected = await _read_json_line(loadgen.stdout, buffer, "connected")
            await trio.sleep(WARMUP_S)
            rss_warm = proc.memory_info().rss
            cpu0, lg_cpu0, t0 = _cpu(proc), _cpu(loadgen_proc), time.monotonic()
            await loadgen.stdin.send_all(b"start\n")
            if spec.py_spy is not None:
                nursery.start_soon(_py_spy, daemon.pid, spec.seconds, spec.py_spy, profiled)
            await trio.sleep(spec.seconds)
            await loadgen.stdin.send_all(b"stop\n")
            cpu1, lg_cpu1, t1 = _cpu(proc), _cpu(loadgen_proc), time.monotonic()
            rss_with = proc.memory_info().rss
            loadgen_rss = loadgen_proc.memory_info().rss
            with trio.fail_after(60):
                window = await _read_json_line(loadgen.stdout, buffer, "result")
            with trio.move_on_after(30):
                await loadgen.wait()
        finally:
            with trio.CancelScope(shield=True):
                if loadgen.returncode is None:
                    loadgen.kill()
                    await loadgen.wait()
        if spec.py_spy is not None:
            with trio.move_on_after(30):
                await profiled.wait()
        exit_code, stop_s = await _stop(daemon, 20)
        nursery.cancel_scope.cancel()

    elapsed = t1 - t0
    delivered = int(window["messages"])
    clients = int(window["connected"])
    expected = spec.clients * spec.rate * spec.seconds
    published = int(window["published_changes"])
    span_s = int(window["published_span_ms"]) / 1000
    cpu = cpu1 - cpu0
    log_counts, log_samples = _log_problems(log)
    rss_per_client = (rss_with - rss_before) / clients / 1024 if clients else None
    latency = window["latency_ms"]
    return {
        "bench": "fanout",
        "transport": spec.transport,
        "clients": spec.clients,
        "rate_hz": spec.rate,
        "seconds": spec.seconds,
        "synchronous": spec.synchronous,
        "daemon_gc_threshold": list(spec.gc_threshold) if spec.gc_threshold else "default",
        "config_overrides": dict(spec.overrides),
        "load_generator": spec.loadgen, "loadgen_nice": spec.loadgen_nice,
        "connected": clients,
        "failed_connects": int(connected["failed"]),
        "gave_up_connecting": int(connected.get("gave_up", 0)),
        "connect_s": connected["connect_s"],
        "connected_by_second": connected["connected_by_second"],
        "delivered_msgs": delivered,
        "delivered_msgs_per_s": round(delivered / elapsed, 1),
        "expected_msgs": int(expected),
        "fraction_expected": _round(delivered / expected if expected else None, 4),
        "published_changes_per_s": round(published / span_s, 2) if span_s > 0 else None,
        "fraction_of_published": _round(
            delivered / (published / span_s * elapsed * clients) if published and clients
            and span_s > 0 else None, 4),
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max", "mean", "samples")},
        "daemon_cpu_s_per_1000_msgs": _round(cpu / delivered * 1000 if delivered else None, 4),
        "daemon_cpu_pct": round(100 * cpu / elapsed, 1),
        "loadgen_cpu_pct": round(100 * (lg_cpu1 - lg_cpu0) / elapsed, 1),
        "loadgen_rss_mib": round(loadgen_rss / 2**20, 1),
        "daemon_rss_before_mib": round(rss_before / 2**20, 1),
        "daemon_rss_warm_mib": round(rss_warm / 2**20, 1),
        "daemon_rss_with_clients_mib": round(rss_with / 2**20, 1),
        "rss_per_client_kib": _round(rss_per_client, 1),
        "seq_violations": window["seq_violations"],
        "snapshots_in_window": window["snapshots"],
        "disconnected": window["disconnected"],
        "client_errors": window["errors"],
        "daemon_exit_code": exit_code,
        "daemon_stop_s": stop_s,
        "daemon_log_levels": log_counts,
        "daemon_log_samples": log_samples,
        "nofile_limit": nofile[0],
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


async def _py_spy(pid: int, seconds: float, out: Path, done: trio.Event) -> None:
    """Sample the daemon (raw collapsed stacks) for the window; bench/pyspy_top.py summarises."""
    try:
        await trio.run_process(
            ["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
             "--rate", "100", "--nonblocking", "--format", "raw", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )
    finally:
        done.set()


def _override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section.isidentifier() or not name.isidentifier() \
            or section == "sources":
        raise argparse.ArgumentTypeError("expected SECTION.KEY=VALUE, e.g. storage.batch_deadline_ms=0")
    return f"{section}.{name}", value.strip()


def _gc_threshold(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(","))
    if not 1 <= len(values) <= 3 or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("expected 1 to 3 non-negative integers, e.g. 50000,20,100")
    return values


def _runs(args: argparse.Namespace) -> list[Spec]:
    if args.scenario in ("issue2", "issue7"):
        seconds = args.seconds if args.seconds is not None else 10.0
        runs = ISSUE2 if args.scenario == "issue2" else ISSUE7
        return [Spec(t, n, r, seconds, args.synchronous, args.connect_timeout, None,
                     args.gc_threshold, tuple(args.set), args.loadgen) for t, n, r in runs]
    if args.transport is None or args.clients is None or args.rate is None:
        raise SystemExit("fanout.py: --transport, --clients and --rate are required without --scenario")
    return [Spec(args.transport, args.clients, args.rate,
                 args.seconds if args.seconds is not None else 10.0, args.synchronous,
                 args.connect_timeout, args.py_spy, args.gc_threshold, tuple(args.set),
                 args.loadgen)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="northstard fan-out benchmark (prints JSON)")
    parser.add_argument("--transport", choices=("ws", "sse"))
    parser.add_argument("--clients", type=int, help="N clients")
    parser.add_argument("--rate", type=float, help="R changes/s (demo interval_s = 1/R)")
    parser.add_argument("--seconds", type=float, help="S: the steady window (default 10)")
    parser.add_argument("--scenario", choices=("issue2", "issue7"),
                        help="run a required set (issue7: the edges' comparison, see compare.py)")
    parser.add_argument("--synchronous", choices=("normal", "full"), default="full",
                        help="storage.synchronous of the daemon (default: full, the default)")
    parser.add_argument("--connect-timeout", type=float,
                        help="give up waiting for clients to connect after this (default 30 + N/50 s)")
    parser.add_argument("--py-spy", type=Path, metavar="FILE",
                        help="record the daemon with py-spy during the window (raw stacks to FILE)")
    parser.add_argument("--gc-threshold", type=_gc_threshold, metavar="G0[,G1[,G2]]",
                        help="experiment: run the daemon with gc.set_threshold(...) (default: untouched)")
    parser.add_argument("--set", type=_override, action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="experiment: a daemon config override (TOML value), e.g. "
                             "storage.batch_deadline_ms=0; repeatable")
    parser.add_argument("--loadgen", choices=tuple(LOADGENS), default="trio",
                        help="the clients' process: trio (loadgen.py, the default) or epoll "
                             "(epollgen.py: cheaper per message, for 10,000-client latency)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    specs = _runs(args)
    for spec in specs:
        if spec.clients < 1 or spec.clients > 20000 or spec.rate <= 0 or spec.rate > 1000 \
                or spec.seconds <= 0 or spec.seconds > 600:
            parser.error("need 1 <= clients <= 20000, 0 < rate <= 1000, 0 < seconds <= 600")
    results = [trio.run(run_one, spec) for spec in specs]
    out: Any = results if args.scenario else results[0]
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
