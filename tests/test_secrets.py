"""Known fake secrets, driven through failing sources, errors and shutdown: they
appear in no log line and no response."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clients import Follower, sse_events
from conftest import write_config
from proc import DaemonProcess

pytestmark = pytest.mark.slow

ADMIN_KEY = "sk-ant-admin01-FAKEfakeFAKEfake0123456789"
SALES_TOKEN = "sales-token-FAKE-5f3c2a91"
KALSHI_KEY_ID = "0b9c3f1e-fake-4bad-9d2e-5e1f00c0ffee"


async def echo_server(task_status: trio.TaskStatus[int]) -> None:
    """An upstream that fails and echoes every request (headers included) in its error body."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            request = await stream.receive_some(65536)
            body = b"upstream broke; you sent: " + request
            await stream.send_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                + body
            )

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


def pem(tmp_path: Path) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "kalshi.pem"
    path.write_text(text)
    return path, text


async def test_secrets_never_appear_in_logs_or_responses(tmp_path: Path) -> None:
    key_path, key_text = pem(tmp_path)
    (tmp_path / "sales.token").write_text(SALES_TOKEN)
    (tmp_path / "kalshi.key_id").write_text(KALSHI_KEY_ID)
    secrets = [ADMIN_KEY, SALES_TOKEN, KALSHI_KEY_ID, key_text.splitlines()[1]]
    async with trio.open_nursery() as nursery:
        port = await nursery.start(echo_server)
        upstream = f"http://127.0.0.1:{port}"
        config = write_config(
            tmp_path,
            {
                "demo": {"interval_s": 0.05, "seed": 2},
                "sales": {"plugin": "revenue_http", "base_url": upstream,
                          "token_file": str(tmp_path / "sales.token"), "interval_s": 0.1},
                "anthropic": {"plugin": "anthropic_costs", "base_url": upstream,
                              "interval_s": 0.2},
                "kalshi": {"base_url": upstream + "/trade-api/v2", "stream": False,
                           "key_id_file": str(tmp_path / "kalshi.key_id"),
                           "private_key_file": str(key_path), "interval_s": 0.1},
            },
            log={"level": "debug"},
        )
        env = {"NORTHSTARD_SOURCES__ANTHROPIC__ADMIN_KEY": ADMIN_KEY}
        daemon = DaemonProcess(config, tmp_path / "daemon.log", env)
        url = await daemon.start()
        bodies: list[str] = []
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                follower = Follower()
                async for _, _, data in sse_events(client, f"{url}/api/pnl/stream"):
                    follower.apply(data)  # until every failing source has reported its error
                    sources = follower.doc.get("sources", {})
                    failing = {name for name, entry in sources.items() if "last_error" in entry}
                    if {"sales", "anthropic", "kalshi"} <= failing:
                        bodies.append(json.dumps(follower.doc))
                        break
                for path in ("/api/sources", "/api/health", "/api/pnl/current", "/metrics",
                             "/api/pnl/breakdown", "/nope", "/api/pnl/history?from=x"):
                    bodies.append((await client.get(url + path)).text)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert await daemon.wait() == 0
        nursery.cancel_scope.cancel()
    checked = await trio.run_process(
        [sys.executable, "-m", "northstard", "--config", str(config), "check-config"],
        capture_stdout=True, capture_stderr=True, env=daemon.env,
    )
    stdout, stderr = checked.stdout.decode(), checked.stderr.decode()
    assert json.loads(stdout)["sources"]["anthropic"]["admin_key"] == "<redacted>"
    log = (tmp_path / "daemon.log").read_text()
    assert "source down" in log
    for text in [log, stdout, stderr, *bodies]:
        for secret in secrets:
            assert secret not in text
