"""The daemon as a separate process, as systemd or a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import trio

READY = "northstard dashboard: "


class DaemonProcess:
    def __init__(self, config: Path, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.process: trio.Process | None = None
        self.url = ""

    async def start(self) -> str:
        """Start and wait for the line that says where the dashboard is."""
        with self.log.open("ab") as log:
            self.process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "northstard", "--config", str(self.config)],
                stdout=subprocess.PIPE, stderr=log, env=self.env,
            )
        assert self.process.stdout is not None
        buffer = b""
        with trio.fail_after(30):
            while READY.encode() not in buffer or not buffer.endswith(b"\n"):
                chunk = await self.process.stdout.receive_some(4096)
                if not chunk:
                    raise AssertionError(f"daemon exited early:\n{self.log.read_text()[-3000:]}")
                buffer += chunk
        line = next(ln for ln in buffer.decode().splitlines() if ln.startswith(READY))
        self.url = line[len(READY):].rstrip("/")
        return self.url

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, limit: float = 10) -> int:
        assert self.process is not None
        with trio.fail_after(limit):
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid
