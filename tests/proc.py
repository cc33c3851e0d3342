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


async def read_printed(process: trio.Process, log: Path | None = None,
                       limit: float = 30) -> dict[str, str]:
    """Wait for the dashboard line; what the daemon printed, ``{"northstard dashboard": URL, ...}``
    (URLs without the final /). Raises with the log's end if the daemon exits first."""
    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(limit):
        while READY.encode() not in buffer or not buffer.endswith(b"\n"):
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                text = (await trio.Path(log).read_text())[-3000:] if log else ""
                raise AssertionError(f"daemon exited early:\n{text}")
            buffer += chunk
    lines = (line.partition(": ") for line in buffer.decode().splitlines())
    return {key: value.rstrip("/") for key, sep, value in lines if sep}


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
        self.url = (await read_printed(self.process, self.log))["northstard dashboard"]
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
