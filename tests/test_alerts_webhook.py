"""Webhook delivery from the real daemon to a real receiver on 127.0.0.1: signed, retried with
backoff through 500s and a time-out, each event accepted exactly once and in order; dead letters."""

from __future__ import annotations

import os
import random
import socket
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from webhook_receiver import Receiver

from northstard.actors.webhook import backoff_s
from northstard.core.records import Cost

from scripted import FEEDS

SECRET = "whsec-test-7c1d"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def cost(i: int, amount: str) -> Cost:
    return Cost(id=f"c{i}", amount=Decimal(amount), category="ai", model="m", ts=datetime.now(UTC))


def test_backoff_doubles_is_capped_and_jittered_in_its_upper_half() -> None:
    rng = random.Random(7)
    waits = [backoff_s(n, 1.0, 8.0, rng) for n in range(1, 7)]
    for n, wait in enumerate(waits, start=1):
        base = min(8.0, 2.0 ** (n - 1))
        assert base / 2 <= wait <= base
    assert waits == [backoff_s(n, 1.0, 8.0, r) for r in [random.Random(7)] for n in range(1, 7)]


async def test_webhook_retries_then_delivers_each_event_once_in_order(
    start_daemon: Any, nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await Receiver(SECRET, failures=[500, 503, "hang", 500]).start(nursery)
    (tmp_path / "ops.secret").write_text(SECRET + "\n")
    notifiers = {
        "ops": {"url": receiver.url, "secret_file": str(tmp_path / "ops.secret"), "timeout_s": 0.5,
                "backoff_initial_s": 0.05, "backoff_max_s": 0.2},
        "gone": {"url": closed_port_url(), "max_attempts": 2, "backoff_initial_s": 0.01},
    }
    rules = {f"over{n}": {"metric": "costs.total", "above": f"{n}.00", "notify": ["ops", "gone"]}
             for n in (1, 2, 3)}
    daemon = await start_daemon({"feed": {"plugin": "scripted"}}, alerts=rules, notifiers=notifiers)
    for i, amount in enumerate(["1.50", "1.00", "1.00"], start=1):  # 1.50, 2.50, 3.50: one by one
        await FEEDS["feed"].push([cost(i, amount)])
    with trio.fail_after(30):
        await receiver.wait_accepted(3)
    assert [d.body["alert"]["alert"] for d in receiver.accepted] == ["over1", "over2", "over3"]
    assert all(d.signature_ok for d in receiver.attempts)
    assert receiver.accepted[0].body["text"].startswith("[warning] over1 FIRING")
    keys = [d.key for d in receiver.attempts]
    assert keys[:5] == [keys[0]] * 5  # the first event, four failures, then accepted: in order
    assert len(set(keys)) == 3
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as http:
        with trio.fail_after(30):
            while True:
                body = (await http.get("/api/alerts")).json()
                if len(body["dead_letters"]) == 3 and body["outbox"] == 0:
                    break
                await trio.sleep(0.05)
    assert {(d["notifier"], d["attempts"]) for d in body["dead_letters"]} == {("gone", 2)}
    assert all(SECRET not in str(d) for d in body["dead_letters"])


async def test_cli_alerts_test_sends_a_signed_test_notification(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    receiver = await Receiver(SECRET).start(nursery)
    config = tmp_path / "n.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "n.db"}"\n[notifiers.ops]\nurl = "{receiver.url}"\n'
                      '[notifiers.gone]\nurl = "' + closed_port_url() + '"\n'
                      '[alerts.budget]\nmetric = "costs.total"\nabove = "1"\nseverity = "critical"\n'
                      'notify = ["ops", "gone"]\n')
    env = {**os.environ, "NORTHSTARD_NOTIFIERS__OPS__SECRET": SECRET}
    command = [sys.executable, "-m", "northstard", "alerts", "test", "--config", str(config)]
    done = await trio.run_process([*command, "ops"], capture_stdout=True, capture_stderr=True, env=env,
                                  check=False)
    assert done.returncode == 0 and done.stdout.decode().strip() == "ops: delivered"
    (delivery,) = receiver.accepted
    assert delivery.signature_ok and delivery.body["alert"]["test"] is True
    done = await trio.run_process([*command, "budget"], capture_stdout=True, capture_stderr=True,
                                  env=env, check=False)
    assert done.returncode == 1
    assert done.stdout.decode().splitlines() == ["ops: delivered", "gone: ConnectError"]
    assert [d.body["text"].split(":")[0] for d in receiver.accepted] == ["[info] ops", "[critical] budget"]
    done = await trio.run_process([*command, "nobody"], capture_stdout=True, capture_stderr=True,
                                  env=env, check=False)
    assert done.returncode == 2 and b"nobody" in done.stderr
