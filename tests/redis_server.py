"""A real redis-server on a free loopback port, for the backplane tests (Debian's redis 7)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

READY = b"Ready to accept connections"

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed (scripts/test installs it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``--save ''`` (nothing on disk) unless ``persistent`` (AOF under ``folder``);
    ``password``: ``--requirepass``."""

    def __init__(self, folder: Path, persistent: bool = False, password: str | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.folder = folder
        self.persistent = persistent
        self.password = password
        self.tls = tls  # (certificate, key): TLS only, no plain port
        self.port = free_port()
        self.process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        ports = ["--port", str(self.port)]
        if self.tls:
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls[0]),
                     "--tls-key-file", str(self.tls[1]), "--tls-auth-clients", "no"]
        argv = ["redis-server", *ports, "--bind", "127.0.0.1", "--save", "", "--dir", str(self.folder)]
        argv += ["--requirepass", self.password] if self.password else []
        return argv + (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else [])

    async def start(self) -> None:
        """Start and wait for its "ready" line."""
        self.process = await trio.lowlevel.open_process(self._argv(), stdout=subprocess.PIPE,
                                                        stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        seen = b""
        with trio.fail_after(20):
            while READY not in seen:
                chunk = await self.process.stdout.receive_some(4096)
                assert chunk, f"redis-server exited: {seen.decode(errors='replace')[-500:]}"
                seen = seen[-4096:] + chunk

    async def stop(self, signum: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signum)
            with trio.fail_after(20):
                await self.process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@asynccontextmanager
async def redis_running(folder: Path, persistent: bool = False, password: str | None = None,
                        tls: tuple[Path, Path] | None = None) -> AsyncIterator[RedisServer]:
    await trio.Path(folder).mkdir(parents=True, exist_ok=True)
    server = RedisServer(folder, persistent, password, tls)
    await server.start()
    try:
        yield server
    finally:
        with trio.CancelScope(shield=True):
            await server.stop()
